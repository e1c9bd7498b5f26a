"""Opt-out requests in inbound messages: the carrier keywords, in any case and with punctuation,
and plain-language requests such as "please stop texting me".

Only the matched keyword is ever stored or logged, never the message.
"""

from __future__ import annotations

import re
import unicodedata

KEYWORDS = ("stop", "stopall", "quit", "end", "revoke", "opt out", "optout", "cancel", "unsubscribe",
            "td", "t", "退订", "取消", "停止")
PHRASES = re.compile(
    r"\b(stop|quit|cease|no more|don'?t|do not|never)\b.{0,30}\b(text|texting|texts|sms|messag\w*|contact\w*|"
    r"send\w*|call\w*|email\w*)\b"
    r"|\b(unsubscribe|opt\s*me\s*out|opt\s*out|remove me|take me off)\b"
    r"|不要再?(发|联系|打)|别再?(发|联系|打)|请勿(发送|联系)",
    re.IGNORECASE,
)


def _normalise(text: str) -> str:
    text = unicodedata.normalize("NFKC", text).strip().lower()
    text = re.sub(r"[^\w\s'\u4e00-\u9fff]", " ", text)  # punctuation to spaces, keep CJK
    return re.sub(r"\s+", " ", text).strip()


def opt_out_keyword(text: str | None) -> str | None:
    """The keyword (or "phrase") that makes ``text`` an opt-out request; None if it is not one."""
    if not text:
        return None
    plain = _normalise(text)
    if plain in KEYWORDS:
        return plain
    if PHRASES.search(plain):
        return "phrase"
    return None
