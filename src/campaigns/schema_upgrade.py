"""Bringing a database to the code's schema: Alembic's upgrade, then the passes a new revision needs over data an
older version stored (sealing what was plain, reconciling accounts with the ledger).

It sits above ``db`` (the engine and migrations), ``privacy`` (the sealing pass) and ``money`` (the ledger's pass),
which is why it is a module of its own rather than part of the engine.
"""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any
from zoneinfo import ZoneInfo

from alembic import command
from sqlalchemy import Engine

from campaigns.db.engine import alembic_config, schema_revision
from campaigns.money.ledger import reconcile
from campaigns.privacy.rotation import SEALING_REVISION, anything_to_seal, reseal

LEDGER_REVISION = "0012"  # the revision that opened the money ledger


def upgrade_database(engine: Engine, revision: str = "head", lender_zone: Any = None) -> None:
    """Create or upgrade the schema with Alembic; then seal what an older version stored plain, and
    reconcile every account with the ledger an older version did not have.

    The sealing pass (``campaigns.privacy.rotation``) runs when the upgrade crosses revision 0010, the
    one that brought sealing, and commits chunk by chunk: stopped half-way, ``campaigns keys rotate`` goes
    on from where it is. It needs the keys only if there is something to seal. The ledger's pass
    (``campaigns.money.ledger.reconcile``) runs when it crosses 0012, also chunk by chunk (``campaigns
    ledger check --fix`` does the same again); ``lender_zone`` is the day promises are judged by.
    """
    before = schema_revision(engine)[0]
    command.upgrade(alembic_config(engine), revision)
    after = int(schema_revision(engine)[0] or 0)
    crossed = before is not None and int(before) < int(SEALING_REVISION) <= after
    if crossed:
        with engine.connect() as conn:
            pending = anything_to_seal(conn)
        if pending:
            reseal(engine, plain_only=True)
    if before is not None and int(before) < int(LEDGER_REVISION) <= after:
        reconcile(engine, datetime.now(timezone.utc), lender_zone or ZoneInfo("UTC"))
