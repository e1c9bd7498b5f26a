"""An in-memory gateway: records what it was given, and can refuse on cue."""

from __future__ import annotations

import os
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


class ProviderLog:
    """A provider that outlives our process: every message it accepts is a line in a file.

    Lines are appended with one ``os.write`` on an ``O_APPEND`` descriptor, so a
    line is either wholly there or not at all when our process is killed.
    ``idempotent=True`` makes it behave like a provider that honours an
    idempotency key (our attempt id): a repeat is answered with the first
    message id and not delivered again. ``idempotent=False`` delivers whatever it
    is given, so a duplicate would show as two lines.
    """

    def __init__(self, path, idempotent: bool, checkpoint=None):
        self.path = str(path)
        self.idempotent = idempotent
        self.checkpoint = checkpoint or (lambda where: None)

    def lines(self) -> list[tuple[int, str]]:
        try:
            with open(self.path, encoding="utf-8") as handle:
                return [(int(a), c) for a, c in (line.split() for line in handle if line.strip())]
        except FileNotFoundError:
            return []

    def send(self, message: OutgoingMessage, now: datetime) -> str:
        self.checkpoint("provider: request received")
        if self.idempotent and any(a == message.attempt_id for a, _ in self.lines()):
            return f"log-{message.attempt_id}"
        fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        try:
            os.write(fd, f"{message.attempt_id} {message.channel}\n".encode())
        finally:
            os.close(fd)
        self.checkpoint("provider: accepted, answer not yet returned")
        return f"log-{message.attempt_id}"

    def processed_events(self) -> list[dict]:
        """What the provider's event webhook would post: one ``processed`` event per accepted message."""
        return [{"event": "processed", "sg_event_id": f"log-{n}", "timestamp": 1_795_000_000 + n,
                 "attempt_id": str(attempt_id)} for n, (attempt_id, _) in enumerate(self.lines())]
