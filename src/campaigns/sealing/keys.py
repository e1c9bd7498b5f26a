"""The keys that seal personal data, and where they come from.

In order: the environment (``CAMPAIGNS_DATA_KEYS``, ``CAMPAIGNS_BLIND_INDEX_KEY``),
filled by the flows from Prefect Secret blocks where the environment leaves them
empty, else the installation's key file (``DATA_DIR/data-keys.json``, 0600, made
by ``campaigns keys init`` and by the demo). Nothing found is one clear error
(``MissingKeys``); a new key is never made up on the fly, because a database
sealed under a lost key cannot be read again.

``CAMPAIGNS_DATA_KEYS`` is ``id:base64,id:base64``: the first key seals new
values, the others only open older ones (a rotation in progress). Each key is 32
random bytes (AES-256).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import os
import re
import secrets
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from campaigns.settings import ConfigurationError

KEY_BYTES = 32
KEY_ID = re.compile(r"^[A-Za-z0-9_-]{1,16}$")


class KeyProblem(ConfigurationError):
    """The keys given cannot be used (missing, malformed); the message names the setting, never a key."""


class MissingKeys(KeyProblem):
    """No data keys were given and no key file exists."""


@dataclass(frozen=True)
class KeyRing:
    """Data keys by id (``primary`` seals new values) and the blind-index key."""

    data_keys: dict[str, bytes]
    primary: str
    index_key: bytes
    source: str = "settings"  # where they came from, for messages (never the keys)
    file: Path | None = None  # the key file they were read from (None: the environment's)
    _ciphers: dict[str, AESGCM] = field(default_factory=dict, repr=False, compare=False)

    def __post_init__(self) -> None:
        if self.primary not in self.data_keys:
            raise KeyProblem(f"the primary data key {self.primary!r} is not among the keys ({self.source})")
        for key_id, key in self.data_keys.items():
            if not KEY_ID.match(key_id):
                raise KeyProblem(f"data key id {key_id!r} ({self.source}): letters, digits, - and _, at most 16")
            if len(key) != KEY_BYTES:
                raise KeyProblem(f"data key {key_id!r} ({self.source}) is {len(key)} bytes, not {KEY_BYTES}")
            self._ciphers[key_id] = AESGCM(key)
        if len(self.index_key) < 16:
            raise KeyProblem(f"the blind-index key ({self.source}) is {len(self.index_key)} bytes, at least 16 needed")

    def __repr__(self) -> str:  # keys never reach a log or a traceback
        return f"KeyRing(primary={self.primary!r}, keys={sorted(self.data_keys)!r}, source={self.source!r})"

    def cipher(self, key_id: str) -> AESGCM | None:
        return self._ciphers.get(key_id)

    def blind_index(self, kind: str, value: str) -> str:
        """The keyed index of a value for equality lookups: HMAC-SHA256 over ``kind`` and the value, hex."""
        return hmac.new(self.index_key, f"{kind}\x00{value}".encode(), hashlib.sha256).hexdigest()

    def with_primary(self, key_id: str, key: bytes) -> KeyRing:
        """This ring with ``key`` added as the one that seals new values (the old ones still open)."""
        return KeyRing({key_id: key, **{k: v for k, v in self.data_keys.items() if k != key_id}}, key_id,
                       self.index_key, self.source, self.file)


def new_key() -> bytes:
    return secrets.token_bytes(KEY_BYTES)


def _decode(text: str, what: str) -> bytes:
    try:
        return base64.b64decode(text.strip(), validate=True)
    except (binascii.Error, ValueError):
        raise KeyProblem(f"{what} is not base64") from None


def parse_data_keys(text: str, source: str = "CAMPAIGNS_DATA_KEYS") -> tuple[dict[str, bytes], str]:
    """``id:base64,id:base64`` into keys by id and the primary (the first)."""
    keys: dict[str, bytes] = {}
    for n, item in enumerate(filter(None, (part.strip() for part in text.split(","))), start=1):
        key_id, sep, encoded = item.partition(":")
        if not sep:
            raise KeyProblem(f"{source}: item {n} is not id:base64")
        if key_id in keys:
            raise KeyProblem(f"{source}: key id {key_id!r} is given twice")
        keys[key_id] = _decode(encoded, f"{source}: key {key_id!r}")
    if not keys:
        raise KeyProblem(f"{source} is empty")
    return keys, next(iter(keys))


def load_keys(settings) -> KeyRing:
    """The key ring the settings give: the environment's keys, else the key file. ``MissingKeys`` if neither."""
    if settings.data_keys or settings.blind_index_key:
        if not (settings.data_keys and settings.blind_index_key):
            missing = "CAMPAIGNS_BLIND_INDEX_KEY" if settings.data_keys else "CAMPAIGNS_DATA_KEYS"
            raise MissingKeys(f"{missing} is empty: data keys and the blind-index key are given together")
        keys, primary = parse_data_keys(settings.data_keys)
        return KeyRing(keys, primary, _decode(settings.blind_index_key, "CAMPAIGNS_BLIND_INDEX_KEY"),
                       source="the environment's CAMPAIGNS_DATA_KEYS")
    path = settings.key_file_path
    if not path.exists():
        raise MissingKeys(
            f"no keys to seal personal data with: no key file at {path} and CAMPAIGNS_DATA_KEYS is empty. "
            "Restore the key file from your backup, set CAMPAIGNS_DATA_KEYS and CAMPAIGNS_BLIND_INDEX_KEY "
            "(or the Secret blocks campaigns-data-keys and campaigns-blind-index-key), "
            "or, for a new installation, run `campaigns keys init`")
    return read_key_file(path)


def read_key_file(path: Path) -> KeyRing:
    try:
        data = json.loads(path.read_text())
        keys = {key_id: _decode(encoded, f"{path}: key {key_id!r}") for key_id, encoded in data["data_keys"].items()}
        return KeyRing(keys, data["primary"], _decode(data["blind_index_key"], f"{path}: blind_index_key"),
                       source=str(path), file=path)
    except (OSError, json.JSONDecodeError, KeyError, TypeError, AttributeError) as exc:
        raise KeyProblem(f"the key file {path} cannot be read ({type(exc).__name__}): restore it from your backup"
                         ) from None


def write_key_file(path: Path, ring: KeyRing) -> Path:
    """Write ``ring`` to ``path`` (0600, its directory 0700), replacing it atomically."""
    from campaigns.files import ensure_private_directory, open_private

    ensure_private_directory(path.parent)
    data = {"primary": ring.primary,
            "data_keys": {k: base64.b64encode(v).decode() for k, v in ring.data_keys.items()},
            "blind_index_key": base64.b64encode(ring.index_key).decode(),
            "written_at": datetime.now(timezone.utc).isoformat(timespec="seconds")}
    draft = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with open_private(draft) as handle:
        json.dump(data, handle, indent=2)
        handle.write("\n")
    os.replace(draft, path)
    return path


def create_key_file(path: Path, key_id: str = "k1") -> tuple[KeyRing, bool]:
    """A new key file at ``path`` unless one exists (it is then read): (the ring, whether it was made now).

    Written aside and linked into place, so two processes starting at once agree on one set of keys.
    """
    from campaigns.files import ensure_private_directory

    if path.exists():
        return read_key_file(path), False
    ensure_private_directory(path.parent)
    ring = KeyRing({key_id: new_key()}, key_id, new_key(), source=str(path), file=path)
    draft = write_key_file(path.with_name(f".{path.name}.new.{os.getpid()}"), ring)
    try:
        os.link(draft, path)
        made = True
    except FileExistsError:
        made = False
    finally:
        draft.unlink()
    return read_key_file(path), made


def ensure_keys(settings) -> tuple[Path | None, bool]:
    """The installation's keys, made now if none are given: (the key file, or None when the environment gives
    the keys; whether it was made now). For ``campaigns keys init`` and the demo, never on the fly elsewhere."""
    if settings.data_keys or settings.blind_index_key:
        load_keys(settings)  # given: they must at least be usable
        return None, False
    path = settings.key_file_path
    _, made = create_key_file(path)
    return path, made
