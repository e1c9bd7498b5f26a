"""Configuration, from environment variables (prefix ``CAMPAIGNS_``) or a ``.env`` file.

Real providers and PostgreSQL are switched on here, never by code changes.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

PROJECT_ROOT = Path(__file__).resolve().parents[2]


# The installation's key file's name in DATA_DIR (campaigns.sealing.keys reads and writes it).
KEY_FILE_NAME = "data-keys.json"


class ConfigurationError(ValueError):
    """The settings do not add up (a provider switched on without its credentials, say)."""


class Settings(BaseSettings):
    # `.env` in the working directory: a worker's flow runs start in CAMPAIGNS_HOME (prefect.yaml's pull
    # step), so the project's git-ignored `.env` gives them the database URL and credentials.
    model_config = SettingsConfigDict(env_prefix="CAMPAIGNS_", env_file=".env", extra="ignore")

    database_url: str = Field(
        default=f"sqlite:///{PROJECT_ROOT / 'var' / 'campaigns.db'}",
        description="SQLAlchemy URL. SQLite file by default; postgresql+psycopg://... at scale.",
    )
    data_dir: Path = Field(default=PROJECT_ROOT / "var", description=(
        "Where the demo writes its files and, by default, the SQLite database and the key file; created readable by "
        "you only (0700), and the files in it that hold personal data are 0600 whatever the umask."))
    ladder_config: Path = Field(default=PROJECT_ROOT / "config" / "ladder.yaml",
                                description="The ladder: stages, days past due, channels, experiments, plans, agency.")
    policy_config: Path = Field(
        default=PROJECT_ROOT / "config" / "policy.yaml",
        description="Jurisdiction profiles (contact windows, caps, holidays) and max_defer_hours.")
    review_config: Path = Field(default=PROJECT_ROOT / "config" / "review.yaml",
                                description="The effectiveness review: attribution window, currencies, costs.")
    templates_dir: Path = Field(default=PROJECT_ROOT / "templates",
                                description="Message templates: <stage>/<channel>.<locale>[.<variant>].j2.")
    lender_timezone: str = Field(
        default="America/New_York",
        description="IANA zone of the lender: decides what 'today' is for a daily run.",
    )
    lender_name: str = Field(default="Acme Lending", description="The lender's name, as messages show it.")
    pay_url: str = Field(
        default="https://pay.example.com/a/{account_id}",
        description="The lender's payment page; {account_id} (and, if you want it, {amount}) is replaced per account. "
                    "The self-service page's Pay button opens it; messages link to it when there is no page.",
    )
    customer_page_url: str = Field(
        default="https://pay.example.com/c/{token}",
        description="Each customer's self-service page (pay, plan, more time, why, call back, dispute, stop a "
                    "channel, rate us), linked from every message; {token} is its signed token. Serve it with "
                    "`campaigns serve-webhooks` (GET /c/{token}) behind your public host. Empty: messages carry "
                    "PAY_URL instead.",
    )
    customer_page_secret: str = Field(
        default="", repr=False,
        description="HMAC key of the page links (its own, not the plan links'). Empty: a random key is made once in "
                    "DATA_DIR/customer-page.key (0600).")
    customer_page_valid_days: int = Field(default=30, ge=1, le=365,
                                          description="Days a message's page link keeps working after it was sent.")
    brand_logo_url: str = Field(default="", description="The lender's logo on the customer's page (https URL); "
                                                        "empty: the name alone.")
    brand_colour: str = Field(default="#1d4ed8", pattern=r"^#[0-9a-fA-F]{6}$",
                              description="The lender's colour on the customer's page (#rrggbb; the main button's "
                                          "background, so pick one white text reads well on).")
    support_email: str = Field(default="help@example.com", description="The address the customer's page gives "
                                                                      "for help.")
    support_hours: str = Field(default="Mon-Fri 09:00-18:00", description="When the support phone answers, as the "
                                                                          "customer's page shows it.")
    email_preferences_url: str = Field(
        default="https://pay.example.com/preferences/{account_id}",
        description="Where a customer opts out of email; {account_id} is replaced per account.",
    )
    support_phone: str = Field(default="+1 800 555 0100", description="The number messages give for help.")
    plan_url: str = Field(
        default="https://pay.example.com/plans/{token}",
        description="A plan offer's accept link; {token} is the signed token. Serve it with `campaigns serve-webhooks` "
                    "(GET /plans/{token} shows the offer, POST accepts it) behind your public host.",
    )
    plan_link_secret: str = Field(
        default="", repr=False,
        description="HMAC key of the plan links. Empty: a random key is made once in DATA_DIR/plan-link.key (0600).",
    )
    data_keys: str = Field(
        default="", repr=False,
        description="Keys that seal personal data at rest, as id:base64,id:base64 (32 random bytes each; the first "
                    "seals new values). Empty: the key file (KEY_FILE), or the Secret block campaigns-data-keys.")
    blind_index_key: str = Field(
        default="", repr=False,
        description="HMAC key (base64) of the blind indexes (lookups by phone or email). Given with DATA_KEYS.")
    key_file: Path | None = Field(
        default=None, description="The installation's key file (0600), used when DATA_KEYS is empty; "
                                  "default DATA_DIR/data-keys.json, made by `campaigns keys init` or the demo.")
    webhook_requests_per_second: float = Field(
        default=100.0, gt=0, description="Per source address: requests a second the webhook receiver and plan "
                                        "pages serve (bursts of WEBHOOK_BURST); beyond, 429.")
    webhook_burst: int = Field(default=500, ge=1, description="Requests one source may send at once.")
    webhook_failures_per_minute: float = Field(
        default=20.0, gt=0, description="Per source address: refused signatures or links (401/403) allowed a "
                                        "minute (20 at once); beyond, every request from it is answered 429 unread.")
    retention_message_days: int = Field(
        default=90, ge=1, le=36_500,
        description="Rendered messages (and the outbox's copies) older than this are reduced to the hash of what "
                    "was sent; the contact log's facts stay.")
    retention_closed_customer_days: int = Field(
        default=365, ge=1, le=36_500,
        description="A customer whose accounts have all been paid or closed for this long is anonymised.")
    # 5,000 by bench/scale.py on PostgreSQL (50k accounts, 2 cores): 1,000 -> 958 accounts/s, 2,000 -> 1,737,
    # 5,000 -> 1,862, 10,000 -> 1,796 with 94 MB more peak memory.
    chunk_size: int = Field(default=5000, ge=1, le=100_000,
                            description="Accounts per chunk task: one transaction, one task run of each kind.")
    task_runner: Literal["threads", "processes", "dask"] = Field(
        default="threads",
        description="How a stage runs its chunk tasks side by side: a thread pool, a process pool (every core on "
                    "one machine), or prefect-dask's DaskTaskRunner (CAMPAIGNS_DASK_ADDRESS, or a LocalCluster).")
    chunk_workers: int = Field(default=0, ge=0, le=256,
                               description="Chunk tasks at once (threads, processes or local Dask workers); "
                                           "0 = one per core.")
    dask_address: str = Field(default="", description="A Dask scheduler to join (tcp://host:8786); empty: "
                                                      "start a LocalCluster of CHUNK_WORKERS processes per flow run.")
    delivery_retries: int = Field(default=5, ge=0, le=50, description="Retries of a chunk's delivery after a transient provider error.")
    delivery_backoff_seconds: float = Field(default=2.0, ge=0, description="First retry delay; doubles each retry.")
    claim_lease_seconds: int = Field(
        default=900, ge=0, le=86_400,
        description="A claim (`sending`) older than this belongs to a deliverer that died: it is recovered.",
    )
    resend_unconfirmed_after_hours: float = Field(
        default=26.0, ge=0, le=24 * 14,
        description="An `unknown` attempt no provider event has confirmed after this long is sent again; 0 = never.",
    )
    channel_email: str = Field(default="outbox", description="Gateway for email: outbox or sendgrid.")
    sendgrid_api_key: str = Field(default="", repr=False,
                                  description="SendGrid API key (required with CHANNEL_EMAIL=sendgrid).")
    sendgrid_from_email: str = Field(default="collections@example.com", description="The sender's address.")
    sendgrid_from_name: str | None = Field(default=None, description="The sender's name.")
    sendgrid_asm_group_id: int | None = Field(default=None, description="Unsubscribe group for collection mail.")
    sendgrid_sandbox: bool = Field(default=False, description="Validate without delivering (SendGrid sandbox mode).")
    sendgrid_timeout_seconds: float = Field(default=10.0, gt=0, le=120,
                                            description="Request timeout (the client has none by default).")
    sendgrid_host: str = Field(default="https://api.sendgrid.com",
                               description="SendGrid's API base URL.")
    sendgrid_webhook_public_key: str = Field(default="", description="Event Webhook verification key (base64).")
    webhook_tolerance_seconds: int = Field(default=300, ge=10, le=3600, description="Older signed requests are refused.")
    payment_webhook_secret: str = Field(
        default="", repr=False,
        description="Shared secret that signs a processor's payment notifications (POST /webhooks/payments); empty: "
                    "the endpoint is off.")
    inbound_email_path_token: str = Field(
        default="", repr=False,
        description="Email replies (SendGrid Inbound Parse) are received at /webhooks/email/inbound/<this token>, "
                    "with basic auth (user `inbound`, INBOUND_EMAIL_PASSWORD); empty: off. Use 32 random characters.")
    inbound_email_password: str = Field(default="", repr=False,
                                        description="The basic-auth password in Inbound Parse's destination URL.")
    webhook_max_body_bytes: int = Field(
        default=1_048_576, ge=1024, le=100 * 1_048_576,
        description="Larger webhook bodies are refused (413) before they are read; SendGrid batches stay under 1 MB.",
    )
    channel_sms: str = Field(default="outbox", description="Gateway for SMS: outbox or twilio.")
    twilio_account_sid: str = Field(default="", description="Twilio account SID.")
    twilio_auth_token: str = Field(default="", repr=False,
                                   description="Twilio auth token; it also verifies Twilio's webhooks.")
    twilio_messaging_service_sid: str | None = Field(default=None, description="Preferred sender (handles STOP).")
    twilio_from_number: str | None = Field(default=None, description="Sender number (E.164) without a service.")
    twilio_status_callback_url: str | None = Field(
        default=None, description="Public URL of /webhooks/twilio/status (delivery reports).")
    twilio_webhook_url_base: str | None = Field(
        default=None, description="Public base URL Twilio calls (for its signatures), e.g. https://hooks.example.com")
    twilio_timeout_seconds: float = Field(default=10.0, gt=0, le=120, description="Request timeout.")
    channel_push: str = Field(default="outbox", description="Gateway for in-app push: outbox or webhook.")
    push_webhook_url: str | None = Field(default=None, description="The wallet's notification service endpoint.")
    push_webhook_secret: str = Field(default="", repr=False, description="HMAC-SHA256 signing secret.")
    push_timeout_seconds: float = Field(default=5.0, gt=0, le=60, description="Request timeout.")
    provider_rate_limits: dict[str, float] = Field(
        default_factory=dict,
        description='Messages per second per provider, kept by a Prefect global rate limit, e.g. {"sendgrid": 100}.',
    )

    # Operations: the long-lived Prefect server ops watch (`campaigns ops ...`, docs/operations.md).
    prefect_database_url: str = Field(
        default="postgresql+asyncpg://postgres@127.0.0.1:5432/prefect",
        description="Database of the long-lived Prefect server (`campaigns ops server`); created if missing.",
    )
    prefect_home: Path = Field(default=PROJECT_ROOT / "var" / "prefect-server",
                               description="PREFECT_HOME of the long-lived server (its logs, its UI build).")
    alert_webhook_url: str = Field(
        default="", repr=False,
        description="Where failure alerts are posted as JSON {\"text\": ...} (a Slack incoming webhook works as is).",
    )
    alert_block: str = Field(
        default="", description="Or: an existing Prefect notification block, as type-slug/name (e.g. email/ops).",
    )

    @field_validator("database_url")
    @classmethod
    def _supported_database(cls, value: str) -> str:
        """SQLite or PostgreSQL (through psycopg 3, the driver we install); anything else is one clear error."""
        from sqlalchemy.engine import make_url
        from sqlalchemy.exc import ArgumentError

        try:
            url = make_url(value)
        except ArgumentError:
            raise ValueError("is not a database URL; e.g. sqlite:///var/campaigns.db or "
                             "postgresql+psycopg://user@host:5432/db") from None
        if url.drivername in ("postgresql", "postgres"):
            return url.set(drivername="postgresql+psycopg").render_as_string(hide_password=False)
        if url.drivername in ("sqlite", "sqlite+pysqlite", "postgresql+psycopg"):
            return value
        raise ValueError(f"{url.drivername!r} is not supported: use SQLite (sqlite:///path/to/campaigns.db) or "
                         "PostgreSQL (postgresql+psycopg://user@host:5432/db)")

    @field_validator("plan_url")
    @classmethod
    def _plan_url_has_token(cls, value: str) -> str:
        if "{token}" not in value:
            raise ValueError("must contain {token}, where each plan link's signed token goes, e.g. "
                             "https://pay.example.com/plans/{token}")
        return value

    @field_validator("customer_page_url")
    @classmethod
    def _page_url_has_token(cls, value: str) -> str:
        if value and "{token}" not in value:
            raise ValueError("must contain {token}, where each page link's signed token goes, e.g. "
                             "https://pay.example.com/c/{token}")
        return value

    @field_validator("lender_timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise ValueError(f"unknown IANA time zone {value!r}") from exc
        return value

    @property
    def key_file_path(self) -> Path:
        """Where the installation's key file is: KEY_FILE, else DATA_DIR/data-keys.json."""
        return Path(self.key_file) if self.key_file else Path(self.data_dir) / KEY_FILE_NAME

    @property
    def lender_zone(self) -> ZoneInfo:
        return ZoneInfo(self.lender_timezone)


# Credentials a secret store may hold instead of the environment, by the gateway that needs them.
CREDENTIALS_BY_GATEWAY = {
    ("channel_email", "sendgrid"): ("sendgrid_api_key",),
    ("channel_sms", "twilio"): ("twilio_auth_token",),
    ("channel_push", "webhook"): ("push_webhook_secret",),
}

def get_settings() -> Settings:
    """The settings the environment (and the working directory's `.env`) gives now. Read at each call (about 1.5 ms)
    and kept by no one here: a process keeps what it builds from them in ``campaigns.bootstrap.PROCESS``, which
    builds again when they change."""
    return Settings()


def missing_credentials(settings: Settings) -> list[str]:
    """The credentials the chosen gateways need that the environment did not give (field names)."""
    names = [name for (channel, gateway), names in CREDENTIALS_BY_GATEWAY.items()
             if getattr(settings, channel) == gateway for name in names if not getattr(settings, name)]
    # The keys that seal personal data: from Secret blocks where neither the environment nor a key file gives them.
    if not (settings.data_keys or settings.blind_index_key) and not settings.key_file_path.exists():
        names += ["data_keys", "blind_index_key"]
    return names


def with_credentials(settings: Settings, values: dict[str, str]) -> Settings:
    """``settings`` plus ``values`` (credentials from a secret store) for the fields they left empty: a new Settings;
    ``settings`` are not changed. A flow passes the result down (``bootstrap.ready_services``)."""
    wanted = {name: value for name, value in values.items() if value and not getattr(settings, name)}
    return settings.model_copy(update=wanted) if wanted else settings
