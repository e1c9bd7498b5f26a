"""Provider credentials from Prefect Secret blocks, for the gateways switched on but not given one.

The environment (or the git-ignored `.env`) comes first. Where it leaves a
credential empty that a chosen gateway needs, the Secret block named
``campaigns-<setting>`` (``campaigns-sendgrid-api-key``, ``campaigns-twilio-auth-token``,
``campaigns-push-webhook-secret``) is read. Values are never logged: only which
names were found. With the default outbox gateways nothing is looked up.
"""

from __future__ import annotations

from prefect import get_run_logger
from prefect.blocks.system import Secret

from campaigns.settings import Settings, get_settings, missing_credentials, with_credentials


def secret_block_name(setting: str) -> str:
    return "campaigns-" + setting.replace("_", "-")


def load_credentials() -> Settings:
    """The environment's settings, with the missing credentials of the chosen gateways filled from Secret blocks: a
    new Settings the flow passes to ``ready_services``, which makes them its tasks' (the environment's settings
    are never rewritten)."""
    settings = get_settings()
    missing = missing_credentials(settings)
    if not missing:
        return settings
    found = {}
    for name in missing:
        try:
            found[name] = Secret.load(secret_block_name(name)).get()
        except ValueError:  # no such block: the gateway's own check names the missing setting
            continue
    if found:
        get_run_logger().info("credentials from Secret blocks: %s", ", ".join(map(secret_block_name, found)))
    return with_credentials(settings, found)
