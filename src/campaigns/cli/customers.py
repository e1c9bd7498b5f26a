"""Commands for what customers ask and agents do: ``optout``, ``sms``, ``hold``, ``dispute``, ``call``, ``customer``."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Annotated

import typer

from campaigns.cli.app import (
    CliError,
    NowOpt,
    OptOutChannel,
    app,
    clock_now,
    err,
    friendly_errors,
    migrated_services,
    out,
)

hold_app = typer.Typer(help="Holds that stop all collection contact with a customer.", no_args_is_help=True)
app.add_typer(hold_app, name="hold")

dispute_app = typer.Typer(help="Disputes: an open one stops collection on the account.", no_args_is_help=True)
app.add_typer(dispute_app, name="dispute")

sms_app = typer.Typer(help="Inbound SMS: STOP and friends opt the sender out of SMS at once.", no_args_is_help=True)
app.add_typer(sms_app, name="sms")

call_app = typer.Typer(help="Agents' calls: check before calling, log every call.", no_args_is_help=True)
app.add_typer(call_app, name="call")

from campaigns.cli.privacy import customer_app  # noqa: E402 - `campaigns customer` is one group: link joins show, ...


@customer_app.command("link")
@friendly_errors
def customer_link_command(
    account: Annotated[str, typer.Argument(help="Account id.")],
    days: Annotated[int | None, typer.Option(min=1, max=365, help="Days it works (default "
                                                                   "CAMPAIGNS_CUSTOMER_PAGE_VALID_DAYS).")] = None,
    now: NowOpt = None,
) -> None:
    """Print the account's self-service page link, for an agent to send (pay, plan, more time, why, call back,
    dispute, stop a channel, rate us); it works until the end of its last day in the lender's zone."""
    from dataclasses import replace

    from sqlalchemy import select

    from campaigns.db.models import Account

    s = migrated_services()
    if not s.brand.page_secret:
        raise CliError("the customer pages are off (CAMPAIGNS_CUSTOMER_PAGE_URL is empty)")
    with s.engine.connect() as conn:
        if conn.execute(select(Account.id).where(Account.id == account)).first() is None:
            raise CliError(f"no account {account!r}")
    brand = replace(s.brand, page_valid_days=days) if days else s.brand
    today = clock_now(now).astimezone(s.settings.lender_zone).date()
    link = brand.page_link(account, today)
    if link is None:
        raise CliError(f"account id {account!r} cannot be carried in a page link")
    out.print(link, highlight=False, soft_wrap=True)


@app.command("optout")
@friendly_errors
def optout_command(
    customer: Annotated[str, typer.Argument(help="Customer id.")],
    channel: Annotated[OptOutChannel, typer.Option(help="The channel, or all of them.")] = OptOutChannel.all,
    now: NowOpt = None,
) -> None:
    """Opt a customer out of a channel, at once: nothing queued or deferred on it goes out after this."""
    from campaigns.customers.preferences import OPT_OUT_CHANNELS, opt_out

    s = migrated_services()
    channels = list(OPT_OUT_CHANNELS) if channel is OptOutChannel.all else [channel.value]
    opt_out(s.engine, customer, channels, clock_now(now), source="cli")
    out.print(f"customer {customer} opted out of {', '.join(channels)}", highlight=False)


@sms_app.command("inbound")
@friendly_errors
def sms_inbound_command(
    sender: Annotated[str, typer.Option("--from", help="The sender's number, +<country code> form.")],
    body: Annotated[str, typer.Option(help="The message text.")],
    message_id: Annotated[str | None, typer.Option("--message-id", help="The provider's id of the message "
                                                                        "(Twilio's MessageSid): applied once.")
                          ] = None,
    now: NowOpt = None,
) -> None:
    """Apply one inbound SMS (e.g. from a provider webhook): an opt-out request stops SMS at once; anything else
    (HELP, 帮助, a dispute, a complaint, free text) goes to the agents' worklist as `replied`."""
    from campaigns.customers.replies import receive_sms_reply

    s = migrated_services()
    result = receive_sms_reply(s.engine, sender, body, clock_now(now), message_id=message_id)
    if result.duplicate:
        out.print(f"message {message_id} was already applied; nothing changed", highlight=False)
    elif result.kind == "stop":
        out.print(f"opt-out: {result.customers} customer(s) opted out of SMS", highlight=False)
    else:
        out.print(f"reply ({result.kind}) from {result.customers} customer(s): {result.items} worklist item(s)",
                  highlight=False)


@sms_app.command("ingest")
@friendly_errors
def sms_ingest_command(
    path: Annotated[Path, typer.Argument(help="CSV with columns from, body, received_at (ISO 8601 with offset); "
                                              "optional message_id (the provider's).")],
) -> None:
    """Apply a saved batch of inbound SMS (a back-fill): every opt-out request in it takes effect, once (the same
    file again changes nothing)."""
    import csv
    import hashlib

    from campaigns.clock import parse_now
    from campaigns.customers.preferences import PreferenceError, receive_sms

    s = migrated_services()
    if not path.is_file():
        raise CliError(f"{path}: no such file")
    opted = requests = again = bad = 0
    with path.open(newline="", encoding="utf-8-sig") as handle:
        reader = csv.DictReader(handle)
        missing = {"from", "body", "received_at"} - set(reader.fieldnames or [])
        if missing:
            raise CliError(f"{path}: missing column(s) {', '.join(sorted(missing))}")
        for row_number, row in enumerate(reader, start=2):
            try:
                # Without the provider's id, the message's own sender, moment and text make one.
                made = hashlib.sha256(f"{row['from']}|{row['received_at']}|{row['body']}".encode()).hexdigest()[:32]
                result = receive_sms(s.engine, row["from"], row["body"], parse_now(row["received_at"]),
                                     message_id=(row.get("message_id") or "").strip() or f"file-{made}",
                                     provider="sms_file")
            except (PreferenceError, ValueError) as exc:
                bad += 1
                field = "from" if isinstance(exc, PreferenceError) else "received_at"
                err.print(f"{path}: row {row_number}, field {field}: {exc}", markup=False, highlight=False)
                continue
            again += result.duplicate
            requests += result.keyword is not None and not result.duplicate
            opted += result.matched_customers
    out.print(f"{path}: {requests} opt-out request(s), {opted} customer(s) opted out of SMS, {again} already "
              f"applied, {bad} bad row(s)", highlight=False)
    if bad:
        raise typer.Exit(1)


@hold_app.command("set")
@friendly_errors
def hold_set_command(
    customer: Annotated[str, typer.Argument(help="Customer id.")],
    kind: Annotated[str, typer.Option(help="cease_and_desist, attorney_represented, bankruptcy, deceased, "
                                           "mental_capacity, breathing_space.")],
    until: Annotated[datetime | None, typer.Option(formats=["%Y-%m-%d"], help="End date (breathing space).")] = None,
    now: NowOpt = None,
) -> None:
    """Stop all collection contact with a customer, at once (messages already queued are stopped too)."""
    from datetime import timezone

    from campaigns.customers.preferences import set_hold

    s = migrated_services()
    ends = until.replace(tzinfo=timezone.utc) if until else None
    created = set_hold(s.engine, customer, kind, clock_now(now), ends_at=ends)
    out.print(f"hold {kind} {'set' if created else 'was already open'} for customer {customer}", highlight=False)


@hold_app.command("clear")
@friendly_errors
def hold_clear_command(
    customer: Annotated[str, typer.Argument(help="Customer id.")],
    kind: Annotated[str, typer.Option(help="The hold to clear.")],
    now: NowOpt = None,
) -> None:
    """Clear a hold: collection contact may resume on the next run."""
    from campaigns.customers.preferences import clear_hold

    s = migrated_services()
    n = clear_hold(s.engine, customer, kind, clock_now(now))
    out.print(f"{n} open {kind} hold(s) cleared for customer {customer}", highlight=False)


@dispute_app.command("open")
@friendly_errors
def dispute_open_command(account: Annotated[str, typer.Argument(help="Account id.")], now: NowOpt = None) -> None:
    """Open a dispute: collection on the account stops until it is resolved."""
    from campaigns.customers.preferences import open_dispute

    s = migrated_services()
    created = open_dispute(s.engine, account, clock_now(now))
    out.print(f"dispute {'opened' if created else 'was already open'} on account {account}", highlight=False)


@dispute_app.command("resolve")
@friendly_errors
def dispute_resolve_command(account: Annotated[str, typer.Argument(help="Account id.")], now: NowOpt = None) -> None:
    """Resolve the open dispute on an account: collection may resume."""
    from campaigns.customers.preferences import resolve_dispute

    s = migrated_services()
    n = resolve_dispute(s.engine, account, clock_now(now))
    out.print(f"{n} open dispute(s) resolved on account {account}", highlight=False)


@call_app.command("check")
@friendly_errors
def call_check_command(account: Annotated[str, typer.Argument(help="Account id.")], now: NowOpt = None) -> None:
    """May I call this customer now? (local window, Sundays, holidays, Reg F 7-in-7, quiet after a conversation)"""
    from campaigns.customers.calls import check_call

    s = migrated_services()
    decision = check_call(s.engine, s.policy, account, clock_now(now))
    if decision.allowed:
        out.print(f"yes: you may call account {account} now ({', '.join(decision.trace.get('local_times', []))})",
                  highlight=False)
        return
    when = ""
    if decision.next_allowed:
        local = ", ".join(f"{moment:%a %Y-%m-%d %H:%M} {zone}" for zone, moment in decision.next_allowed_locally())
        when = f"; next allowed {local + ' for the customer, ' if local else ''}{decision.next_allowed:%Y-%m-%d %H:%M} UTC"
    out.print(f"no: {decision.reason}{when}", highlight=False)
    raise typer.Exit(3)


@call_app.command("log")
@friendly_errors
def call_log_command(
    account: Annotated[str, typer.Argument(help="Account id.")],
    outcome: Annotated[str, typer.Option(help="connected, no_answer, voicemail, wrong_number.")],
    now: NowOpt = None,
) -> None:
    """Record a call that was made; it counts against the call caps from now on."""
    from campaigns.customers.calls import log_call

    s = migrated_services()
    decision = log_call(s.engine, s.policy, account, outcome, clock_now(now))
    out.print(f"call logged for account {account}: {outcome}", highlight=False)
    if not decision.allowed:
        err.print(f"warning: this call was not allowed ({decision.reason}); it is logged as such",
                  markup=False, highlight=False)
