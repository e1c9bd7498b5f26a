"""Hand-made customers and accounts for tests."""

from __future__ import annotations

from datetime import date, timedelta
from decimal import Decimal

from sqlalchemy import Engine, insert

from campaigns.db.models import Account, Customer, Dispute
from campaigns.privacy.lookup import with_blind_indexes
from tests.conftest import AS_OF, NOW


def add_customer(engine: Engine, customer_id: str, **overrides) -> str:
    row = {
        "id": customer_id, "name": f"Customer {customer_id}", "email": f"{customer_id.lower()}@example.com",
        "phone": "+12125550123", "locale": "en-US", "timezone": "America/New_York", "country": "US",
        "email_opt_out": False, "sms_opt_out": False, "sms_consent": True,
        "created_at": NOW, "updated_at": NOW,
    }
    row.update(overrides)
    with engine.begin() as conn:
        with_blind_indexes(conn, [row])
        conn.execute(insert(Customer.__table__), row)
    return customer_id


def add_account(engine: Engine, account_id: str, *, days_past_due: int | None = None, due_date: date | None = None,
                customer_id: str | None = None, customer: dict | None = None, disputed: bool = False,
                **overrides) -> str:
    """An account (with its own customer unless ``customer_id`` is given) due ``days_past_due`` before AS_OF."""
    if customer_id is None:
        customer_id = add_customer(engine, f"C-{account_id}", **(customer or {}))
    if due_date is None:
        due_date = AS_OF - timedelta(days=days_past_due or 0)
    row = {
        "id": account_id, "customer_id": customer_id, "currency": "USD", "balance": Decimal("600.00"),
        "amount_due": Decimal("120.50"), "due_date": due_date, "status": "open", "product": "card",
        "cease_contact": False, "created_at": NOW, "updated_at": NOW,
    }
    row.update(overrides)
    with engine.begin() as conn:
        conn.execute(insert(Account.__table__), row)
        if disputed:
            conn.execute(insert(Dispute.__table__), {"account_id": account_id, "opened_at": NOW,
                                                      "resolved_at": None, "source": "test"})
    return account_id
