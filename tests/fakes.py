"""An in-memory gateway: records what it was given, and can refuse on cue."""

from __future__ import annotations

from datetime import datetime

from campaigns.channels.base import OutgoingMessage


class FakeGateway:
    def __init__(self, fail_on_calls: set[int] | None = None, error: type[Exception] | Exception | None = None):
        self.sent: list[OutgoingMessage] = []
        self.calls = 0
        self.fail_on_calls = fail_on_calls or set()
        self.error = error

    def send(self, message: OutgoingMessage, now: datetime) -> str:
        self.calls += 1
        if self.calls in self.fail_on_calls:
            raise self.error if isinstance(self.error, Exception) else self.error("refused by the fake")
        self.sent.append(message)
        return f"fake-{message.attempt_id}"

    def attempt_ids(self) -> list[int]:
        return [m.attempt_id for m in self.sent]
