"""Memory of the webhook receiver under hostile posts: huge unsigned, forged and oversized bodies.

    .venv/bin/python bench/webhook_abuse.py [--posts 4] [--megabytes 50]

Starts the real receiver (uvicorn, as `campaigns serve-webhooks` does) in a child
process on a fresh SQLite database, posts each kind of abusive body, and prints
the receiver's resident memory before and after, and what each post was answered.
Run by hand; numbers go in the issue note, never in test asserts.
"""

from __future__ import annotations

import argparse
import base64
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

SERVER = """
import sys, uvicorn
from campaigns.db.engine import make_engine
from campaigns.sealing.keys import load_keys
from campaigns.settings import get_settings
from campaigns.schema_upgrade import upgrade_database
from campaigns.delivery.webhooks import create_app
engine = make_engine(sys.argv[1], keys=load_keys(get_settings())); upgrade_database(engine)
app = create_app(engine, sys.argv[2], twilio_auth_token="bench-token")
uvicorn.run(app, host="127.0.0.1", port=int(sys.argv[3]), log_level="warning")
"""


def rss_mb(pid: int) -> float:
    return int(Path(f"/proc/{pid}/statm").read_text().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 1e6


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--posts", type=int, default=4)
    parser.add_argument("--megabytes", type=int, default=50)
    args = parser.parse_args()
    key = ec.generate_private_key(ec.SECP256R1()).public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    workdir = Path(tempfile.mkdtemp(prefix="bench-webhooks-"))
    port = free_port()
    server = subprocess.Popen([sys.executable, "-c", SERVER, f"sqlite:///{workdir / 'w.db'}",
                               base64.b64encode(key).decode(), str(port)])
    base = f"http://127.0.0.1:{port}"
    try:
        for _ in range(100):
            try:
                httpx.post(f"{base}/webhooks/twilio/status", timeout=1)
                break
            except httpx.HTTPError:
                time.sleep(0.1)
        body = b"x" * (args.megabytes * 1_000_000)
        stamp = str(int(time.time()))
        cases = {
            "twilio inbound, unsigned": (f"{base}/webhooks/twilio/inbound", {}),
            "twilio inbound, forged signature": (f"{base}/webhooks/twilio/inbound", {"X-Twilio-Signature": "forged"}),
            "sendgrid, forged signature": (f"{base}/webhooks/sendgrid/events", {
                "X-Twilio-Email-Event-Webhook-Signature": "Zm9yZ2Vk",
                "X-Twilio-Email-Event-Webhook-Timestamp": stamp}),
            "sendgrid, 5,000-digit timestamp": (f"{base}/webhooks/sendgrid/events", {
                "X-Twilio-Email-Event-Webhook-Signature": "Zm9yZ2Vk",
                "X-Twilio-Email-Event-Webhook-Timestamp": "9" * 5000}),
        }
        print(f"receiver at start: {rss_mb(server.pid):.0f} MB")
        for label, (url, headers) in cases.items():
            answers = []
            for _ in range(args.posts):
                try:
                    answers.append(httpx.post(url, content=body, headers=headers, timeout=60).status_code)
                except httpx.HTTPError as exc:  # the server may close the connection once it has refused
                    answers.append(type(exc).__name__)
            print(f"{label:36} {args.posts} x {args.megabytes} MB -> {answers}; receiver {rss_mb(server.pid):.0f} MB")
    finally:
        server.terminate()
        server.wait(timeout=10)


if __name__ == "__main__":
    main()
