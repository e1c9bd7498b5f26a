"""A daily campaign run in its own process, killed (SIGKILL) at the K-th checkpoint.

Used by ``tests/delivery/test_crash_recovery.py``. Checkpoints are every SQL statement
before and after it runs, every commit, and the fake provider's two moments (a
request received; a message accepted whose answer has not come back yet).
With ``CRASH_KILL_AT=0`` it runs to the end and prints how many checkpoints it
passed, so the test can draw K from the whole run.

Environment: CAMPAIGNS_* (database, ladder, chunk size), PREFECT_API_URL (the
test session's server), CRASH_PROVIDER_LOG (empty: the outbox), CRASH_IDEMPOTENT, CRASH_KILL_AT,
CRASH_AS_OF, CRASH_NOW.
"""

from __future__ import annotations

import json
import os
import signal
from datetime import date, datetime
from functools import partial

from sqlalchemy import event

from campaigns import bootstrap
from tests.fakes import ProviderLog

passed: list[str] = []
KILL_AT = int(os.environ["CRASH_KILL_AT"])


def checkpoint(label: str, *_args, **_kwargs) -> None:
    passed.append(label)
    if len(passed) == KILL_AT:
        os.kill(os.getpid(), signal.SIGKILL)


def main() -> None:
    from flows.daily import daily_campaign

    engine = bootstrap.services().engine
    for name in ("before_cursor_execute", "after_cursor_execute", "commit"):
        event.listen(engine, name, partial(checkpoint, name))
    if os.environ["CRASH_PROVIDER_LOG"]:  # else the configured outbox: messages written final with their attempts
        provider = ProviderLog(os.environ["CRASH_PROVIDER_LOG"], os.environ["CRASH_IDEMPOTENT"] == "1", checkpoint)
        bootstrap.PROCESS.override_gateway("email", provider)
        bootstrap.PROCESS.override_gateway("sms", provider)
    daily_campaign(as_of=date.fromisoformat(os.environ["CRASH_AS_OF"]),
                   now=datetime.fromisoformat(os.environ["CRASH_NOW"]))
    print(json.dumps(passed))


if __name__ == "__main__":
    main()
