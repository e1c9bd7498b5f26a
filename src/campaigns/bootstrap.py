"""The one place that wires settings to real collaborators: engine, keys, ladder, templates, gateways.

``build(settings, gateways=, keys=, engine=)`` is pure: it returns new ``Services`` and keeps nothing. A process keeps
one set in ``PROCESS`` (a ``ProcessServices``), the only module-level state of the wiring: every task of a run asks it
(``services()``) and finds them built. How chunk workers in other processes get settings and keys: docs/design.md,
"Wiring".
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace

from sqlalchemy import Engine

from campaigns.channels import AgentWorklistGateway, DeliveryGateway, OutboxGateway
from campaigns.contact.brand import Brand
from campaigns.contact.render import TemplateLibrary
from campaigns.db.engine import make_engine
from campaigns.ladder.config import Ladder, load_ladder
from campaigns.policy import PolicyConfig, load_policy
from campaigns.review.config import ReviewRules, load_review_rules
from campaigns.sealing.keys import KeyRing, MissingKeys, load_keys
from campaigns.sealing.seal import use_keys
from campaigns.settings import ConfigurationError, Settings, get_settings


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


def plan_link_secret(settings: Settings) -> bytes:
    """The key that signs plan links: from settings, or one made once for this installation (a private file)."""
    return _installation_secret(settings, settings.plan_link_secret, "plan-link.key")


def customer_page_secret(settings: Settings) -> bytes:
    """The key that signs the customer pages' links: from settings, or one made once for this installation."""
    return _installation_secret(settings, settings.customer_page_secret, "customer-page.key")


def _installation_secret(settings: Settings, configured: str, file_name: str) -> bytes:
    if configured:
        return configured.encode()
    import os
    import secrets

    from campaigns.files import ensure_private_directory, open_private

    path = ensure_private_directory(settings.data_dir) / file_name
    if not path.exists():
        # Written aside, then linked into place: two processes starting at once agree on one key.
        draft = path.with_name(f".{file_name}.{os.getpid()}.tmp")
        with open_private(draft) as handle:
            handle.write(secrets.token_hex(32))
        try:
            os.link(draft, path)
        except FileExistsError:
            pass
        finally:
            draft.unlink()
    return path.read_text().strip().encode()


def build(settings: Settings, *, gateways: Mapping[str, DeliveryGateway] | None = None, keys: KeyRing | None = None,
          engine: Engine | None = None) -> Services:
    """The collaborators ``settings`` ask for, wired. Keeps nothing: call it again and you get new ones.

    ``keys``: the ring that seals personal data (default: the settings' keys, else the key file); it is given to
    the engine, and nothing seals without it. ``gateways``: channel by channel, in place of the configured ones
    (fakes in tests). ``engine``: an engine to reuse (default: a new one for ``settings.database_url``).
    """
    keys_missing = None
    if keys is None:
        # The keys first: malformed ones are one clear error here; missing ones, before the database is used.
        try:
            keys = load_keys(settings)
        except MissingKeys as exc:
            keys_missing = exc
    engine = engine if engine is not None else make_engine(settings.database_url)
    use_keys(engine, keys)
    return Services(
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
            page_url=settings.customer_page_url,
            page_secret=customer_page_secret(settings) if settings.customer_page_url else b"",
            page_valid_days=settings.customer_page_valid_days,
            logo_url=settings.brand_logo_url,
            colour=settings.brand_colour,
            support_email=settings.support_email,
            support_hours=settings.support_hours,
        ),
        policy=load_policy(settings.policy_config),
        review=load_review_rules(settings.review_config),
        gateways={**build_gateways(settings, engine), **(gateways or {})},
        keys_missing=keys_missing,
    )


class ProcessServices:
    """What one process keeps of the wiring: its services, built once and reused by every task of a run (the config
    files read and checked, templates and gateways set up, once), one engine per database URL, the databases whose
    schema it has checked, and the gateways put in place of the configured ones.

    Services are kept for the environment's settings (``get_settings()``) they were built from: a flow that starts
    with those settings plus credentials from Secret blocks (``flows/credentials.py``) makes them the process's with
    ``get(settings)``, and its tasks, asking ``get()``, find them. When the environment says something else (a test
    that sets a variable, say), the next ``get()`` builds anew.
    """

    def __init__(self) -> None:
        self._engines: dict[str, Engine] = {}
        self._current: tuple[Settings, Services] | None = None
        self._gateways: dict[str, DeliveryGateway] = {}
        self._schema_checked: set[str] = set()

    def engine(self, url: str) -> Engine:
        """This process's engine for ``url`` (its key ring is given when services are built for it)."""
        if url not in self._engines:
            self._engines[url] = make_engine(url)
        return self._engines[url]

    def get(self, settings: Settings | None = None) -> Services:
        environment = get_settings()
        current = self._current
        if settings is None:
            settings = current[1].settings if current is not None and current[0] == environment else environment
        # Built without keys (none yet): look again, as `campaigns keys init` may have made the key file since.
        if (current is None or current[0] != environment or current[1].settings != settings
                or current[1].keys_missing is not None):
            current = self._current = (environment, build(settings, engine=self.engine(settings.database_url)))
        built = current[1]
        return replace(built, gateways={**built.gateways, **self._gateways})

    def ready(self, settings: Settings | None = None) -> Services:
        """``get()``, once the database is known to exist at the code's schema (checked once per process and
        database). Where a run starts: a missing or stale database is one clear error (``SchemaNotReady``: run
        `campaigns db upgrade`), not a retried ``no such table`` in every task."""
        from campaigns.db.engine import require_current_schema

        s = self.get(settings)
        s.require_keys()
        key = s.engine.url.render_as_string(hide_password=False)
        if key not in self._schema_checked:
            require_current_schema(s.engine)
            self._schema_checked.add(key)
        return s

    def override_gateway(self, channel: str, gateway: DeliveryGateway | None) -> None:
        """Put a gateway in place of the configured one (tests, local experiments); None restores it."""
        if gateway is None:
            self._gateways.pop(channel, None)
        else:
            self._gateways[channel] = gateway

    def dispose(self) -> None:
        """Forget the services and close pooled connections (e.g. before a test drops its database)."""
        self._current = None
        self._schema_checked.clear()
        while self._engines:
            self._engines.popitem()[1].dispose()


# The process's one cache of wiring (see ProcessServices). Besides it, the package keeps between calls only memoised
# pure look-ups (lru_cache: zones, currencies, formats) and the CLI's progress display, which belongs to the context
# of the command that installed it (campaigns.progress).
PROCESS = ProcessServices()


def services(settings: Settings | None = None) -> Services:
    """This process's services (``PROCESS.get``): built for ``settings`` (default: the environment's, or those a
    flow started with), once."""
    return PROCESS.get(settings)


def ready_services(settings: Settings | None = None) -> Services:
    """This process's services, the database's schema checked (``PROCESS.ready``)."""
    return PROCESS.ready(settings)
