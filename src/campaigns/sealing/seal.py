"""Seal and open one value (AES-256-GCM), and the column type that does it at the database's edge.

A sealed value is text: ``$cc1$<key id>$<base64url(nonce ‖ ciphertext ‖ tag)>``.
The nonce is 12 random bytes per value; the column's name (``customers.email``)
is authenticated with it, so a value moved to another column, a changed byte, or
the wrong key all fail to open, loudly (``SealBroken``), never as garbage.

A value without the prefix is one written before sealing existed: it is read as
it is, and ``campaigns keys rotate`` (also run by ``campaigns db upgrade``) seals it.
"""

from __future__ import annotations

import base64
import binascii
import os

from cryptography.exceptions import InvalidTag
from sqlalchemy import Text
from sqlalchemy.types import TypeDecorator

from campaigns.sealing.keys import KeyRing, MissingKeys, load_keys
from campaigns.settings import get_settings

PREFIX = "$cc1$"
NONCE_BYTES = 12


class SealError(ValueError):
    """A sealed value cannot be opened. The message names the column and key id, never the value."""


class UnknownKey(SealError):
    pass


class SealBroken(SealError):
    pass


def seal(ring: KeyRing, plain: str, field: str) -> str:
    """``plain`` sealed under the ring's primary key, bound to ``field``."""
    nonce = os.urandom(NONCE_BYTES)
    sealed = ring.cipher(ring.primary).encrypt(nonce, plain.encode(), field.encode())
    return f"{PREFIX}{ring.primary}${base64.urlsafe_b64encode(nonce + sealed).decode()}"


def is_sealed(value: str | None) -> bool:
    return value is not None and value.startswith(PREFIX)


def key_id_of(value: str) -> str | None:
    """The id of the key a stored value is sealed with (None: a plain value from before sealing)."""
    if not is_sealed(value):
        return None
    return value[len(PREFIX):].split("$", 1)[0]


def open_sealed(ring: KeyRing, value: str, field: str) -> str:
    """The plain text of a stored value (a plain one, from before sealing, comes back as it is)."""
    if not value.startswith(PREFIX):
        return value
    key_id, sep, body = value[len(PREFIX):].partition("$")
    cipher = ring.cipher(key_id)
    if cipher is None:
        raise UnknownKey(f"{field} is sealed with key {key_id!r}, which is not among the keys given "
                         f"({', '.join(sorted(ring.data_keys))}; from {ring.source})")
    try:
        raw = base64.urlsafe_b64decode(body) if sep else b""
        if len(raw) < NONCE_BYTES + 16:
            raise ValueError("short")
        return cipher.decrypt(raw[:NONCE_BYTES], raw[NONCE_BYTES:], field.encode()).decode()
    except (InvalidTag, ValueError, binascii.Error):
        raise SealBroken(f"{field}: a value sealed with key {key_id!r} does not open: the wrong key for that id, "
                         "or the stored value was altered") from None


# --- which keys an engine uses ----------------------------------------------------------------------

_RING_ATTRIBUTE = "campaigns_key_ring"


def use_keys(engine, ring: KeyRing | None) -> None:
    """Seal and open with ``ring`` on this engine (None: take its keys away). ``campaigns.bootstrap.build`` gives
    every engine it makes the settings' keys; there is no other source."""
    if ring is None:
        engine.dialect.__dict__.pop(_RING_ATTRIBUTE, None)
    else:
        setattr(engine.dialect, _RING_ATTRIBUTE, ring)


def ring_for(dialect) -> KeyRing:
    """The keys given to this dialect's engine (``use_keys``); ``MissingKeys`` if it was given none."""
    ring = getattr(dialect, _RING_ATTRIBUTE, None)
    if ring is None:
        raise MissingKeys("this database engine was given no keys to seal personal data with "
                          "(campaigns.bootstrap.build gives it the settings' keys; see `campaigns keys status`)")
    return ring


def reload_keys(dialect) -> KeyRing:
    """The keys read again from where the settings say they are, given to this dialect's engine.

    A rotation (``campaigns keys rotate``) adds a key to the key file while stage runs go on: a run that
    meets a value sealed with a key it has not seen reads the file again instead of failing.
    """
    ring = load_keys(get_settings())
    setattr(dialect, _RING_ATTRIBUTE, ring)
    return ring


class Sealed(TypeDecorator[str]):
    """Text sealed on the way in, opened on the way out. ``length`` is the plain value's limit, checked by
    the writers (the stored text is longer). Never compare such a column in SQL: use its blind index."""

    impl = Text
    cache_ok = True

    def __init__(self, field: str, length: int | None = None):
        super().__init__()
        self.field = field
        self.length = length

    def process_bind_param(self, value: str | None, dialect) -> str | None:
        if value is None:
            return None
        # Always sealed, even a value that looks sealed: a name typed as "$cc1$..." must not reach the
        # table unsealed and then fail to open. A rotation writes its sealed values through plain Text.
        return seal(ring_for(dialect), str(value), self.field)

    def process_result_value(self, value: str | None, dialect) -> str | None:
        if value is None:
            return None
        ring = ring_for(dialect)
        try:
            return open_sealed(ring, value, self.field)
        except UnknownKey:
            fresh = reload_keys(dialect)
            if fresh.data_keys.keys() == ring.data_keys.keys():
                raise
            return open_sealed(fresh, value, self.field)
