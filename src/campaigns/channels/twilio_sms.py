"""SMS through Twilio's Messages API, with the official ``twilio`` client.

The number must be E.164 (checked with phonenumbers before anything leaves us).
The sender is a Messaging Service (preferred: it handles STOP/HELP itself and
keeps its own opt-out list) or a number. The status callback URL carries our
attempt id, never anything personal, so Twilio's delivery reports
(``POST /webhooks/twilio/status``) find the attempt.

Outcomes map onto the gateway contract like SendGrid's: 201 → the message SID;
429 and 5xx, or a connection that never opened → transient; other 4xx →
permanent with Twilio's error code (21610, the recipient replied STOP, is
``opted_out``; 21211/21614 are ``invalid_address``); a read timeout once the
request may have gone out → ``unknown``, settled later by the status callback.
"""

from __future__ import annotations

import logging
from datetime import datetime
from urllib.parse import urlencode

import phonenumbers
import requests
from urllib3.exceptions import NewConnectionError
from twilio.base.exceptions import TwilioRestException
from twilio.http.http_client import TwilioHttpClient
from twilio.rest import Client

from campaigns.channels.codes import PERMANENT_CODES
from campaigns.channels.base import (
    DeliveryOutcomeUnknown,
    OutgoingMessage,
    PermanentDeliveryError,
    RateLimited,
    TransientDeliveryError,
)

# The client logs request URLs and headers at INFO; nothing of a message is wanted in our logs.
logging.getLogger("twilio.http_client").setLevel(logging.WARNING)

def e164(number: str | None) -> str:
    """The number in E.164, or ``PermanentDeliveryError('invalid_address')`` (the number is not echoed)."""
    try:
        parsed = phonenumbers.parse(number or "", None)
    except phonenumbers.NumberParseException:
        raise PermanentDeliveryError("invalid_address", "not an E.164 number") from None
    if not phonenumbers.is_valid_number(parsed):
        raise PermanentDeliveryError("invalid_address", "not a valid phone number")
    return phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164)


class TwilioSmsGateway:
    provider = "twilio"
    idempotent = False  # the Messages API has no idempotency key: a repeat is a second SMS

    def __init__(self, account_sid: str, auth_token: str, *, messaging_service_sid: str | None = None,
                 from_number: str | None = None, status_callback_url: str | None = None,
                 timeout_seconds: float = 10.0):
        if not account_sid or not auth_token:
            raise ValueError("the Twilio gateway needs CAMPAIGNS_TWILIO_ACCOUNT_SID and CAMPAIGNS_TWILIO_AUTH_TOKEN")
        if not (messaging_service_sid or from_number):
            raise ValueError("the Twilio gateway needs a sender: CAMPAIGNS_TWILIO_MESSAGING_SERVICE_SID "
                             "or CAMPAIGNS_TWILIO_FROM_NUMBER")
        self.client = Client(account_sid, auth_token, http_client=TwilioHttpClient(timeout=timeout_seconds))
        try:
            self.sender = ({"messaging_service_sid": messaging_service_sid} if messaging_service_sid
                           else {"from_": e164(from_number)})
        except PermanentDeliveryError:
            raise ValueError("CAMPAIGNS_TWILIO_FROM_NUMBER is not a valid E.164 number") from None
        self.status_callback_url = status_callback_url

    def request(self, message: OutgoingMessage) -> dict:
        """The parameters of the Messages API call (what the tests check)."""
        params = {"to": e164(message.recipient), "body": message.text, **self.sender}
        if self.status_callback_url:
            joiner = "&" if "?" in self.status_callback_url else "?"
            params["status_callback"] = (f"{self.status_callback_url}{joiner}"
                                         f"{urlencode({'attempt_id': message.attempt_id})}")
        return params

    def send(self, message: OutgoingMessage, now: datetime) -> str:
        params = self.request(message)
        try:
            created = self.client.messages.create(**params)
        except TwilioRestException as exc:
            if exc.status == 429:
                raise RateLimited("Twilio rate limit (429)", None) from None
            if exc.status >= 500:
                raise TransientDeliveryError(f"Twilio {exc.status}") from None
            reason = PERMANENT_CODES.get(exc.code or 0, "provider_auth" if exc.status in (401, 403)
                                         else "provider_rejected")
            raise PermanentDeliveryError(reason, f"Twilio {exc.status}, error {exc.code}") from None
        except requests.exceptions.ConnectTimeout:
            raise TransientDeliveryError("cannot reach Twilio: connect timeout") from None
        except requests.exceptions.Timeout as exc:  # a read timeout: the request went out
            raise DeliveryOutcomeUnknown("timed out waiting for Twilio's answer") from exc
        except requests.exceptions.ConnectionError as exc:
            cause = exc.args[0] if exc.args else None
            if isinstance(getattr(cause, "reason", cause), NewConnectionError):  # refused, or no DNS: never sent
                raise TransientDeliveryError("cannot reach Twilio: no connection") from None
            raise DeliveryOutcomeUnknown("the connection to Twilio broke after the request") from exc
        return created.sid


__all__ = ["PERMANENT_CODES", "TwilioSmsGateway", "e164"]
