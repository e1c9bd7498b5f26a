"""Provider credentials from Prefect Secret blocks when the environment gives none; never logged."""

from __future__ import annotations

import logging

import pytest
from prefect import flow

from campaigns.settings import get_settings, missing_credentials

KEY = "SG.not-a-real-key-but-secret-all-the-same"


@pytest.fixture
def sendgrid_without_key(monkeypatch):
    monkeypatch.setenv("CAMPAIGNS_CHANNEL_EMAIL", "sendgrid")
    monkeypatch.delenv("CAMPAIGNS_SENDGRID_API_KEY", raising=False)
    monkeypatch.chdir("/")  # no .env
    yield


def test_only_the_chosen_gateways_need_credentials(monkeypatch):
    monkeypatch.chdir("/")
    for name in ("CHANNEL_EMAIL", "CHANNEL_SMS", "CHANNEL_PUSH", "SENDGRID_API_KEY", "TWILIO_AUTH_TOKEN"):
        monkeypatch.delenv(f"CAMPAIGNS_{name}", raising=False)
    assert missing_credentials(get_settings()) == []
    monkeypatch.setenv("CAMPAIGNS_CHANNEL_SMS", "twilio")
    assert missing_credentials(get_settings()) == ["twilio_auth_token"]
    monkeypatch.setenv("CAMPAIGNS_TWILIO_AUTH_TOKEN", "from-the-environment")
    assert missing_credentials(get_settings()) == []


def test_a_secret_block_fills_a_missing_credential_and_is_never_logged(prefect_harness, sendgrid_without_key, caplog,
                                                                      monkeypatch, tmp_path):
    from prefect.blocks.system import Secret

    from campaigns.bootstrap import services
    from flows.credentials import load_credentials, secret_block_name

    Secret(value=KEY).save(secret_block_name("sendgrid_api_key"), overwrite=True)
    monkeypatch.setenv("CAMPAIGNS_DATA_DIR", str(tmp_path))

    @flow
    def starts_a_run():
        settings = load_credentials()
        services(settings)  # as every flow does: ready_services(load_credentials())
        return settings

    with caplog.at_level(logging.DEBUG):
        settings = starts_a_run()
    assert settings.sendgrid_api_key == KEY
    assert services().settings is settings  # the tasks of the run see the same settings
    assert services().gateways["email"].__class__.__name__ == "SendGridEmailGateway"
    assert get_settings().sendgrid_api_key == ""  # the environment's settings are never rewritten
    assert KEY not in caplog.text and KEY not in repr(settings)
    assert "campaigns-sendgrid-api-key" in caplog.text


def test_the_environment_wins_over_a_secret_block(prefect_harness, sendgrid_without_key, monkeypatch):
    from prefect.blocks.system import Secret

    from flows.credentials import load_credentials, secret_block_name

    Secret(value=KEY).save(secret_block_name("sendgrid_api_key"), overwrite=True)
    monkeypatch.setenv("CAMPAIGNS_SENDGRID_API_KEY", "from-the-environment")

    @flow
    def starts_a_run():
        return load_credentials()

    assert starts_a_run().sendgrid_api_key == "from-the-environment"


def test_without_a_block_the_credential_stays_missing_for_the_gateway_to_report(prefect_harness, monkeypatch):
    from flows.credentials import load_credentials

    monkeypatch.setenv("CAMPAIGNS_CHANNEL_PUSH", "webhook")
    monkeypatch.delenv("CAMPAIGNS_PUSH_WEBHOOK_SECRET", raising=False)
    monkeypatch.chdir("/")

    @flow
    def starts_a_run():
        return load_credentials()

    assert starts_a_run().push_webhook_secret == ""
