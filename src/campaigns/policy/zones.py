"""Which time zones a customer may plausibly be in.

The stated zone, plus the zone of a geographic phone number (a Pacific address
with an Eastern mobile gives both); only when neither says anything, every zone of
the country. An empty set means we do not know, and the rules fail closed.
"""

from __future__ import annotations

from functools import lru_cache
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import phonenumbers
from babel.core import get_global
from phonenumbers import timezone as phone_timezone

UNKNOWN = "Etc/Unknown"


@lru_cache(maxsize=65536)
def phone_zones(phone: str | None) -> tuple[str, ...]:
    """Zones of a geographic number (area code); () for mobile-anywhere, toll-free or unparseable."""
    if not phone:
        return ()
    try:
        number = phonenumbers.parse(phone, None)
    except phonenumbers.NumberParseException:
        return ()
    return number_zones(number)


def number_zones(number: phonenumbers.PhoneNumber) -> tuple[str, ...]:
    """``phone_zones`` of a number already parsed (the importer's)."""
    if not phonenumbers.is_number_geographical(number):
        return ()
    return tuple(z for z in phone_timezone.time_zones_for_geographical_number(number) if z != UNKNOWN)


def stored_zones(zones: tuple[str, ...]) -> str:
    """How ``customers.phone_zones`` holds them."""
    return ",".join(zones)


def parse_stored_zones(value: str) -> tuple[str, ...]:
    return tuple(z for z in value.split(",") if z)


@lru_cache(maxsize=512)
def country_zones(country: str | None) -> tuple[str, ...]:
    if not country:
        return ()
    return tuple(get_global("territory_zones").get(country.upper(), ()))


@lru_cache(maxsize=4096)
def _valid(zone: str | None) -> bool:
    if not zone:
        return False
    try:
        ZoneInfo(zone)
    except (ZoneInfoNotFoundError, ValueError):
        return False
    return True


def plausible_zones(stated: str | None, phone: str | None, country: str | None,
                    of_phone: str | None = None) -> tuple[str, ...]:
    """A sorted tuple of IANA zones (possibly empty); ``of_phone``: the phone's zones as stored at import
    (``customers.phone_zones``), else they are derived from ``phone``."""
    from_phone = parse_stored_zones(of_phone) if of_phone is not None else phone_zones(phone)
    zones = {z for z in (stated,) if _valid(z)} | {z for z in from_phone if _valid(z)}
    if not zones:
        zones = {z for z in country_zones(country) if _valid(z)}
    return tuple(sorted(zones))
