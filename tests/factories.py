"""Hand-made customers and accounts for tests."""

from __future__ import annotations

from datetime import date, datetime, time, timedelta, timezone
from decimal import Decimal
from zoneinfo import ZoneInfo

from sqlalchemy import Engine, insert

from campaigns.db.models import Account, Customer, Dispute
from campaigns.money import ledger
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


# When a test account's statement was taken: before any payment a test records, so each applies on top.
STATEMENT_AT = datetime.combine(AS_OF - timedelta(days=60), time.min, timezone.utc)


def add_account(engine: Engine, account_id: str, *, days_past_due: int | None = None, due_date: date | None = None,
                customer_id: str | None = None, customer: dict | None = None, disputed: bool = False,
                statement_at: datetime = STATEMENT_AT, **overrides) -> str:
    """An account (with its own customer unless ``customer_id`` is given) due ``days_past_due`` before AS_OF.

    Its figures (``balance``, ``amount_due``, ``status``: paid owes nothing, closed is the lender's) are an
    opening statement in its ledger, as of ``statement_at``; the account's cache is what the ledger derives.
    """
    if customer_id is None:
        customer_id = add_customer(engine, f"C-{account_id}", **(customer or {}))
    if due_date is None:
        due_date = AS_OF - timedelta(days=days_past_due or 0)
    status = overrides.pop("status", "open")
    paid = status == "paid"
    balance = Decimal(overrides.pop("balance", Decimal(0) if paid else Decimal("600.00")))
    amount_due = Decimal(overrides.pop("amount_due", Decimal(0) if paid else Decimal("120.50")))
    row = {
        "id": account_id, "customer_id": customer_id, "currency": "USD", "balance": Decimal(0),
        "amount_due": Decimal(0), "due_date": due_date, "status": "open", "product": "card",
        "cease_contact": False, "created_at": NOW, "updated_at": NOW,
    }
    row.update(overrides)
    with engine.begin() as conn:
        conn.execute(insert(Account.__table__), row)
        ledger.append(conn, [ledger.entry_row(
            "statement", f"statement|{account_id}|factory", account_id, row["currency"], statement_at, NOW, "test",
            balance=balance, amount_due=amount_due, due_date=due_date,
            lender_status="closed" if status == "closed" else "open")])
        ledger.refresh(conn, [account_id], NOW, ZoneInfo("America/New_York"))
        if disputed:
            conn.execute(insert(Dispute.__table__), {"account_id": account_id, "opened_at": NOW,
                                                      "resolved_at": None, "source": "test"})
    return account_id


def keyed_engine(url: str):
    """An engine with the test session's keys (CAMPAIGNS_DATA_KEYS, set in conftest), as bootstrap.build gives one:
    without keys no sealed column can be read or written."""
    from campaigns.db.engine import make_engine
    from campaigns.sealing.keys import load_keys
    from campaigns.settings import get_settings

    return make_engine(url, keys=load_keys(get_settings()))
