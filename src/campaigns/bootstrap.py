"""The one place that wires settings to real collaborators: engine, ladder, templates, gateways."""

from __future__ import annotations

from dataclasses import dataclass, field, replace

from sqlalchemy import Engine

from campaigns.channels import AgentWorklistGateway, DeliveryGateway, OutboxGateway
from campaigns.db.engine import make_engine
from campaigns.ladder.config import Ladder, load_ladder
from campaigns.review.config import ReviewRules, load_review_rules
from campaigns.contact.pipeline import Brand
from campaigns.policy import PolicyConfig, load_policy
from campaigns.contact.render import TemplateLibrary
from campaigns.settings import ConfigurationError, Settings, get_settings

_gateway_overrides: dict[str, DeliveryGateway] = {}


@dataclass
class Services:
    settings: Settings
    engine: Engine
    ladder: Ladder
    templates: TemplateLibrary
    brand: Brand
    policy: PolicyConfig
    review: ReviewRules
    gateways: dict[str, DeliveryGateway] = field(default_factory=dict)
    # No keys to seal personal data with: the error for whatever needs the database (ready_services, the
    # CLI's migrated_services); work that never touches it (checking templates) goes on without keys.
    keys_missing: Exception | None = None

    def require_keys(self) -> None:
        if self.keys_missing is not None:
            raise self.keys_missing


_engines: dict[str, Engine] = {}


def _engine(url: str) -> Engine:
    if url not in _engines:
        _engines[url] = make_engine(url)
    return _engines[url]


def _sendgrid(settings: Settings) -> DeliveryGateway:
    from campaigns.channels.sendgrid_email import SendGridEmailGateway

    return SendGridEmailGateway(
        api_key=settings.sendgrid_api_key, from_email=settings.sendgrid_from_email,
        from_name=settings.sendgrid_from_name, asm_group_id=settings.sendgrid_asm_group_id,
        sandbox=settings.sendgrid_sandbox, timeout_seconds=settings.sendgrid_timeout_seconds,
        host=settings.sendgrid_host,
    )


def _twilio(settings: Settings) -> DeliveryGateway:
    from campaigns.channels.twilio_sms import TwilioSmsGateway

    return TwilioSmsGateway(
        settings.twilio_account_sid, settings.twilio_auth_token,
        messaging_service_sid=settings.twilio_messaging_service_sid, from_number=settings.twilio_from_number,
        status_callback_url=settings.twilio_status_callback_url, timeout_seconds=settings.twilio_timeout_seconds,
    )


def _push_webhook(settings: Settings) -> DeliveryGateway:
    from campaigns.channels.push_webhook import PushWebhookGateway

    return PushWebhookGateway(settings.push_webhook_url or "", settings.push_webhook_secret,
                              timeout_seconds=settings.push_timeout_seconds)


def build_gateways(settings: Settings, engine: Engine) -> dict[str, DeliveryGateway]:
    """The gateway of each channel, as the settings choose (the outbox unless told otherwise)."""
    known = {
        "email": {"outbox": lambda: OutboxGateway(engine), "sendgrid": lambda: _sendgrid(settings)},
        "sms": {"outbox": lambda: OutboxGateway(engine), "twilio": lambda: _twilio(settings)},
        "push": {"outbox": lambda: OutboxGateway(engine), "webhook": lambda: _push_webhook(settings)},
    }
    gateways: dict[str, DeliveryGateway] = {}
    for channel, choice in (("email", settings.channel_email), ("sms", settings.channel_sms),
                            ("push", settings.channel_push)):
        if choice not in known[channel]:
            raise ConfigurationError(f"CAMPAIGNS_CHANNEL_{channel.upper()}={choice!r} is not an available gateway "
                             f"(one of {', '.join(known[channel])})")
        try:
            gateways[channel] = known[channel][choice]()
        except ValueError as exc:  # a provider switched on without what it needs
            raise ConfigurationError(str(exc)) from None
    gateways["agent"] = AgentWorklistGateway(engine)
    return gateways


GATEWAY_MEANING = {"outbox": "outbox (kept in the database, nothing leaves)", "sendgrid": "SendGrid",
                   "twilio": "Twilio", "webhook": "the wallet's push webhook"}


def describe_gateways(settings: Settings) -> str:
    """Where each channel's messages go under these settings, for what ops read (artifacts, logs):
    ``email → SendGrid; sms, push → outbox (kept in the database, nothing leaves)``."""
    by_gateway: dict[str, list[str]] = {}
    for channel, choice in (("email", settings.channel_email), ("sms", settings.channel_sms),
                            ("push", settings.channel_push)):
        by_gateway.setdefault(choice, []).append(channel)
    return "; ".join(f"{', '.join(channels)} → {GATEWAY_MEANING.get(choice, choice)}"
                     for choice, channels in by_gateway.items())


_built: tuple[Settings, Services] | None = None


def plan_link_secret(settings: Settings) -> bytes:
    """The key that signs plan links: from settings, or one made once for this installation (a private file)."""
    if settings.plan_link_secret:
        return settings.plan_link_secret.encode()
    import os
    import secrets

    from campaigns.files import ensure_private_directory, open_private

    path = ensure_private_directory(settings.data_dir) / "plan-link.key"
    if not path.exists():
        # Written aside, then linked into place: two processes starting at once agree on one key.
        draft = path.with_name(f".plan-link.{os.getpid()}.tmp")
        with open_private(draft) as handle:
            handle.write(secrets.token_hex(32))
        try:
            os.link(draft, path)
        except FileExistsError:
            pass
        finally:
            draft.unlink()
    return path.read_text().strip().encode()


def services(settings: Settings | None = None) -> Services:
    """The wired collaborators for ``settings`` (default: the environment's).

    Built once per settings object and reused by every task of a run: the config
    files are read and validated, templates and gateways set up, only once.
    Gateway overrides are applied on every call, so they take effect at once.
    """
    global _built
    settings = settings or get_settings()
    if _built is None or _built[0] is not settings:
        from campaigns.sealing.keys import MissingKeys, load_keys
        from campaigns.sealing.seal import use_keys

        engine = _engine(settings.database_url)
        # The keys first: malformed ones are one clear error here; missing ones, before the database is used.
        try:
            ring, keys_missing = load_keys(settings), None
        except MissingKeys as exc:
            ring, keys_missing = None, exc
        use_keys(engine, ring)
        _built = (settings, Services(
            settings=settings,
            engine=engine,
            ladder=load_ladder(settings.ladder_config),
            templates=TemplateLibrary(settings.templates_dir),
            brand=Brand(
                lender_name=settings.lender_name,
                pay_url=settings.pay_url,
                email_preferences_url=settings.email_preferences_url,
                support_phone=settings.support_phone,
                plan_url=settings.plan_url,
                plan_link_secret=plan_link_secret(settings),
                lender_timezone=settings.lender_timezone,
            ),
            policy=load_policy(settings.policy_config),
            review=load_review_rules(settings.review_config),
            gateways=build_gateways(settings, engine),
            keys_missing=keys_missing,
        ))
    built = _built[1]
    return replace(built, gateways={**built.gateways, **_gateway_overrides})


_schema_checked: set[str] = set()


def ready_services(settings: Settings | None = None) -> Services:
    """``services()``, once the database is known to exist at the code's schema (checked once per
    process and database). Where a run starts: a missing or stale database is one clear error
    (``SchemaNotReady``: run `campaigns db upgrade`), not a retried ``no such table`` in every task."""
    from campaigns.db.engine import require_current_schema

    s = services(settings)
    s.require_keys()
    key = s.engine.url.render_as_string(hide_password=False)
    if key not in _schema_checked:
        require_current_schema(s.engine)
        _schema_checked.add(key)
    return s


def override_gateway(channel: str, gateway: DeliveryGateway | None) -> None:
    """Put a gateway in place of the configured one (tests, local experiments); None restores it."""
    if gateway is None:
        _gateway_overrides.pop(channel, None)
    else:
        _gateway_overrides[channel] = gateway


def dispose_engines() -> None:
    """Close pooled connections (e.g. before a test drops its database)."""
    global _built
    _built = None
    _schema_checked.clear()
    while _engines:
        _engines.popitem()[1].dispose()
