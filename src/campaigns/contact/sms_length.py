"""How long an SMS really is: GSM-7 or UCS-2, and how many segments it costs.

A text that fits the GSM 03.38 alphabet is sent in 7-bit characters: 160 to a
single message, 153 per segment once it is split (the rest is the concatenation
header); the extension characters (``{ } [ ] ~ \\ | ^ €`` and form feed) take
two. One character outside it (any Chinese character, a curly quote, an emoji)
makes the whole message UCS-2: 70 UTF-16 units, 67 per segment. Carriers bill,
and some customers' phones display, per segment.
"""

from __future__ import annotations

from dataclasses import dataclass

GSM7_BASIC = frozenset(
    "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?"
    "¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà"
)
GSM7_EXTENSION = frozenset("\f^{}\\[~]|€")


@dataclass(frozen=True)
class SmsLength:
    encoding: str  # "GSM-7" or "UCS-2"
    units: int  # septets (GSM-7) or UTF-16 code units (UCS-2)
    segments: int

    def as_payload(self) -> dict[str, object]:
        return {"encoding": self.encoding, "segments": self.segments, "units": self.units}


def sms_length(text: str) -> SmsLength:
    """The encoding a provider will choose for ``text``, and its segment count."""
    if all(ch in GSM7_BASIC or ch in GSM7_EXTENSION for ch in text):
        units = sum(2 if ch in GSM7_EXTENSION else 1 for ch in text)
        single, per_segment, encoding = 160, 153, "GSM-7"
    else:
        units = len(text.encode("utf-16-le")) // 2  # characters beyond the BMP (emoji) take two
        single, per_segment, encoding = 70, 67, "UCS-2"
    segments = 1 if units <= single else -(-units // per_segment)
    return SmsLength(encoding, units, segments)


__all__ = ["GSM7_BASIC", "GSM7_EXTENSION", "SmsLength", "sms_length"]
