"""What every command shares: the Typer app, the consoles, the options and the one-line errors."""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from datetime import datetime
from enum import Enum
from functools import wraps
from typing import Annotated, Any

import typer
from rich.console import Console

# Prefect's telemetry cannot reach the network here and only adds noise.
os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")

app = typer.Typer(help="Debt-collection contact campaigns: kind, lawful, and logged.", no_args_is_help=True,
                  pretty_exceptions_enable=False, add_completion=False)
# Piped output (CI logs, `| less`) gets room for the tables instead of rich's 80 columns.
out = Console(width=None if sys.stdout.isatty() else 132, soft_wrap=True)
err = Console(stderr=True, width=None if sys.stderr.isatty() else 200, soft_wrap=True)


class CliError(Exception):
    pass


class StageName(str, Enum):
    pre_due = "pre_due"
    soft_nudge = "soft_nudge"
    plan_offer = "plan_offer"
    escalation = "escalation"


def parse_now_option(value: str | None) -> datetime | None:
    if value is None:
        return None
    from campaigns.clock import parse_now

    try:
        return parse_now(value)
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from exc


NowOpt = Annotated[
    str | None,
    typer.Option("--now", help="Decide as if it were this moment (ISO 8601 with offset, e.g. 2026-11-22T09:00:00-05:00). Default: the real clock."),
]
AsOfOpt = Annotated[
    datetime | None,
    typer.Option("--as-of", formats=["%Y-%m-%d"], help="The campaign day (YYYY-MM-DD). Default: today in the lender's time zone."),
]


def friendly_errors(fn: Callable) -> Callable:
    """Turn the errors a user can fix into one line on stderr and exit code 1."""

    @wraps(fn)
    def wrapper(*args: Any, **kwargs: Any):
        from pydantic import ValidationError
        from sqlalchemy.exc import OperationalError, ProgrammingError

        from campaigns.contact.ladder import LadderConfigError
        from campaigns.customers.calls import CallError
        from campaigns.customers.preferences import PreferenceError
        from campaigns.policy import PolicyConfigError
        from campaigns.portfolio.importer import PortfolioFileError
        from campaigns.settings import ConfigurationError

        try:
            return fn(*args, **kwargs)
        except (CliError, LadderConfigError, PolicyConfigError, PortfolioFileError, PreferenceError,
                CallError, ConfigurationError) as exc:
            err.print(f"error: {exc}", markup=False, highlight=False)
        except (OperationalError, ProgrammingError) as exc:
            first = str(exc.orig).strip().splitlines()[0] if exc.orig else type(exc).__name__
            hint = " (run `campaigns db upgrade` first?)" if "no such table" in first or "does not exist" in first else ""
            err.print(f"error: database: {first}{hint}", markup=False, highlight=False)
        except ValidationError as exc:  # settings from the environment
            first = exc.errors()[0]
            where = ".".join(str(x) for x in first["loc"]) or exc.title
            err.print(f"error: setting {where}: {first['msg']}", markup=False, highlight=False)
        raise typer.Exit(1)

    return wrapper


def wired_services():
    from campaigns.bootstrap import services

    return services()


def _ensure_schema(engine) -> None:
    from campaigns.db.engine import schema_revision

    current, head = schema_revision(engine)
    if current != head:
        raise CliError(f"database schema is at {current or 'nothing'}, code expects {head}: run `campaigns db upgrade`")


def migrated_services():
    """The services, once the database schema is known to be current (else a one-line error)."""
    s = wired_services()
    _ensure_schema(s.engine)
    return s


def clock_now(now: str | None) -> datetime:
    from campaigns.clock import resolve_clock

    return resolve_clock(None, parse_now_option(now), wired_services().settings.lender_zone)[1]
