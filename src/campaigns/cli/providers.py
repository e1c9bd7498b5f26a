"""Commands for provider events: ``events ingest``, ``serve-webhooks``."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from campaigns.cli.app import CliError, NowOpt, app, clock_now, err, friendly_errors, migrated_services, out

events_app = typer.Typer(help="Provider delivery events (delivered, bounce, unsubscribe, ...).", no_args_is_help=True)
app.add_typer(events_app, name="events")


@events_app.command("ingest")
@friendly_errors
def events_ingest_command(
    path: Annotated[Path, typer.Argument(help="A saved batch of SendGrid events: a JSON array, or JSON lines.")],
    now: NowOpt = None,
) -> None:
    """Apply saved provider events (a back-fill), exactly as the webhook would: each event once.

    A bad event (or line) is reported and recorded; the others are applied.
    """
    from campaigns.delivery.provider_events import apply_sendgrid_events, split_json_array, split_json_lines

    s = migrated_services()
    if not path.is_file():
        raise CliError(f"{path}: no such file")
    text = path.read_text(encoding="utf-8", errors="replace").strip()
    events = split_json_array(text) if text.startswith("[") else split_json_lines(text)
    report = apply_sendgrid_events(s.engine, events, clock_now(now))
    for problem in report.problems[:50]:
        err.print(f"{path}: {problem}", markup=False, highlight=False)
    out.print(f"{path}: {len(events)} event(s): " + ", ".join(f"{k} {v}" for k, v in report.as_dict().items()),
              highlight=False)
    if report.problems:
        raise typer.Exit(1)


@app.command("serve-webhooks")
@friendly_errors
def serve_webhooks_command(
    host: Annotated[str, typer.Option(help="Interface to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port.")] = 8085,
) -> None:
    """Run the webhook receiver (ASGI, uvicorn): SendGrid events, Twilio status reports and replies, the
    customers' own pages (GET /c/{token} and its forms) unless CAMPAIGNS_CUSTOMER_PAGE_URL is empty, the
    plan-acceptance pages (GET/POST /plans/{token}) when the ladder offers plans, and payment notifications
    (POST /webhooks/payments) when CAMPAIGNS_PAYMENT_WEBHOOK_SECRET is set."""
    import uvicorn

    from campaigns.delivery.customer_page import CustomerPages, uvicorn_log_config
    from campaigns.delivery.webhooks import InboundEmail, PaymentNotifications, PlanLinks, create_app, default_limits

    s = migrated_services()
    rules = s.ladder.plan_rules
    links = (PlanLinks(s.brand.plan_link_secret, rules, s.settings.lender_zone, brand=s.brand)
             if rules is not None else None)
    payments = (PaymentNotifications(s.settings.payment_webhook_secret, s.settings.lender_zone)
                if s.settings.payment_webhook_secret else None)
    pages = (CustomerPages(s.brand.page_secret, s.brand, s.settings.lender_zone, s.ladder.deferral, s.ladder.segments)
             if s.brand.page_secret else None)
    inbound = None
    if s.settings.inbound_email_path_token or s.settings.inbound_email_password:
        if not (s.settings.inbound_email_path_token and s.settings.inbound_email_password):
            raise CliError("email replies need both CAMPAIGNS_INBOUND_EMAIL_PATH_TOKEN and "
                           "CAMPAIGNS_INBOUND_EMAIL_PASSWORD")
        inbound = InboundEmail(s.settings.inbound_email_path_token, s.settings.inbound_email_password)
    if not (s.settings.sendgrid_webhook_public_key or s.settings.twilio_auth_token or links or payments or pages
            or inbound):
        raise CliError("nothing to receive: set CAMPAIGNS_SENDGRID_WEBHOOK_PUBLIC_KEY, CAMPAIGNS_TWILIO_AUTH_TOKEN "
                       "and/or CAMPAIGNS_PAYMENT_WEBHOOK_SECRET")
    app_ = create_app(s.engine, s.settings.sendgrid_webhook_public_key, s.settings.webhook_tolerance_seconds,
                      twilio_auth_token=s.settings.twilio_auth_token, twilio_url_base=s.settings.twilio_webhook_url_base,
                      max_body_bytes=s.settings.webhook_max_body_bytes, plan_links=links, payments=payments,
                      customer_pages=pages, inbound_email=inbound,
                      limits=default_limits(s.settings.webhook_requests_per_second, s.settings.webhook_burst,
                                            s.settings.webhook_failures_per_minute))
    # The access log keeps paths, but not the signatures of the customers' page and plan links in them.
    uvicorn.run(app_, host=host, port=port, log_level="info", log_config=uvicorn_log_config())
