"""What every command shares: the Typer app, the consoles, the options and the one-line errors."""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from datetime import datetime
from enum import Enum
from functools import wraps
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console

# Prefect's telemetry cannot reach the network here and only adds noise.
os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
# Without PREFECT_API_URL, Prefect starts a temporary server for each command; its default
# 20 s to start is too short on a busy machine. (Read when Prefect is first imported.)
EPHEMERAL_TIMEOUT = "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS"
os.environ.setdefault(EPHEMERAL_TIMEOUT, "90")

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
    thank_you = "thank_you"


class MessageChannel(str, Enum):
    """The channels that carry a message to a customer (the outbox stores them all)."""

    email = "email"
    sms = "sms"
    push = "push"


class OptOutChannel(str, Enum):
    email = "email"
    sms = "sms"
    push = "push"
    all = "all"


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
    """Turn the errors a user can fix into one line on stderr and exit code 1.

    Database errors are reduced to their first line (or, for a refused write, to
    the error's class): never the statement's parameters, which carry personal data.
    """

    @wraps(fn)
    def wrapper(*args: Any, **kwargs: Any):
        from pydantic import ValidationError
        from pydantic_settings import SettingsError
        from sqlalchemy.exc import DBAPIError, OperationalError, ProgrammingError

        from campaigns.clock import FutureDayError
        from campaigns.contact.adhoc import AdhocError
        from campaigns.ladder.config import LadderConfigError
        from campaigns.customers.calls import CallError
        from campaigns.customers.preferences import PreferenceError
        from campaigns.customers.worklist import WorklistError
        from campaigns.db.engine import DatabaseMissing
        from campaigns.money.agency import AgencyError
        from campaigns.money.links import LinkError
        from campaigns.money.offers import PlanError
        from campaigns.money.payments import PaymentError
        from campaigns.money.promises import PromiseError
        from campaigns.policy import PolicyConfigError
        from campaigns.intake.rows import RowFileError
        from campaigns.sealing.seal import SealError
        from campaigns.privacy.subject import SubjectError
        from campaigns.review.config import ReviewConfigError
        from campaigns.settings import ConfigurationError

        try:
            return fn(*args, **kwargs)
        except (CliError, LadderConfigError, PolicyConfigError, RowFileError, PreferenceError,
                CallError, ConfigurationError, DatabaseMissing, PaymentError, PlanError, PromiseError, AgencyError,
                WorklistError, LinkError, AdhocError, ReviewConfigError, SealError, SubjectError,
                FutureDayError) as exc:
            say(f"error: {exc}")
        except (OperationalError, ProgrammingError) as exc:
            first = str(exc.orig).strip().splitlines()[0][:200] if exc.orig else type(exc).__name__
            hint = " (run `campaigns db upgrade` first?)" if "no such table" in first or "does not exist" in first else ""
            say(f"error: database: {first}{hint}")
        except DBAPIError as exc:
            code = getattr(exc.orig, "sqlstate", None)
            say(f"error: the database refused a write ({type(exc.orig).__name__}"
                f"{f', SQLSTATE {code}' if code else ''}); what that step wrote was rolled back")
        except ValidationError as exc:  # settings from the environment
            first = exc.errors()[0]
            where = ".".join(str(x) for x in first["loc"])
            message = first["msg"].removeprefix("Value error, ")
            say(f"error: setting {setting_name(where) if where else exc.title}: {message}")
        except SettingsError as exc:  # a value pydantic-settings could not even parse (JSON settings)
            say(f"error: {unparsable_setting(str(exc))}")
        except OSError as exc:  # a path the user gave (--out, a file to read) that the system refused
            if exc.filename is None:
                raise
            reason = {FileExistsError: "a file is there, where a directory is needed",
                      NotADirectoryError: "a part of the path is a file, not a directory",
                      IsADirectoryError: "a directory is there, where a file is needed",
                      FileNotFoundError: "no such file or directory",
                      PermissionError: "permission denied"}.get(type(exc), (exc.strerror or type(exc).__name__).lower())
            parent = Path(str(exc.filename)).parent
            if isinstance(exc, FileNotFoundError) and not parent.exists():
                reason = f"the directory {parent} does not exist"
            say(f"error: {exc.filename}: {reason}")
        except RuntimeError as exc:
            if "ephemeral Prefect API server" not in str(exc):
                raise
            say(f"error: Prefect's temporary server did not start within {os.environ.get(EPHEMERAL_TIMEOUT)} s "
                f"(a busy machine?): set {EPHEMERAL_TIMEOUT} higher, or run `prefect server start` and point "
                "PREFECT_API_URL at it")
        raise typer.Exit(1)

    return wrapper


def print_row_errors(errors: list, limit: int = 200) -> None:
    """A file's bad rows on stderr, one line each (file, row, field), the first ``limit`` of them."""
    for error in errors[:limit]:
        err.print(str(error), markup=False, highlight=False)
    if len(errors) > limit:
        err.print(f"... and {len(errors) - limit} more errors", markup=False)


def say(line: str) -> None:
    err.print(line, markup=False, highlight=False)


def setting_name(field_name: str) -> str:
    """``provider_rate_limits`` → ``CAMPAIGNS_PROVIDER_RATE_LIMITS``, the name a user sets."""
    return f"CAMPAIGNS_{field_name.upper()}"


def unparsable_setting(message: str) -> str:
    import re

    match = re.search(r'field "(\w+)"', message)
    name = setting_name(match.group(1)) if match else "a CAMPAIGNS_ setting"
    return (f"setting {name}: cannot be parsed: it takes JSON, e.g. "
            + ("{\"sendgrid\": 100, \"twilio\": 10}" if name.endswith("RATE_LIMITS") else "{\"key\": \"value\"}"))


def wired_services():
    from campaigns.bootstrap import services

    return services()


def migrated_services():
    """The services, once the database exists and its schema is current (else a one-line error)."""
    from campaigns.db.engine import SchemaNotReady, require_current_schema

    s = wired_services()
    s.require_keys()
    try:
        require_current_schema(s.engine)
    except SchemaNotReady as exc:
        raise CliError(str(exc)) from None
    return s


def creating_services():
    """The services for commands that may create the database (``db upgrade``, ``demo``)."""
    from campaigns.db.engine import prepare_sqlite_file
    from campaigns.settings import get_settings

    settings = get_settings()
    prepare_sqlite_file(settings.database_url, create=True, data_dir=settings.data_dir)
    return wired_services()


def clock_now(now: str | None) -> datetime:
    from campaigns.clock import resolve_clock

    return resolve_clock(None, parse_now_option(now), wired_services().settings.lender_zone)[1]


@app.callback()
def _every_command() -> None:
    """Runs before any command: long work shows its progress on the terminal (stderr, so that the tables on stdout
    stay clean when piped). Installed when a command runs, not when the module is imported."""
    from campaigns.cli.progress import install

    install(err)
