"""Amounts, e-mail addresses, URLs and phone numbers in message text.

Amounts are written many ways: ``€1.200,50``, ``1.200,50 €``, ``$1,200.50``,
``R$ 350``, ``EUR 90``, ``5k€``, ``2 500 euros``. A separator followed by
exactly three digits groups thousands; one followed by one or two digits is
the decimal mark, and when both marks appear the last one is the decimal
mark. A bare ``$`` is read as US dollars.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from decimal import Decimal, InvalidOperation

import phonenumbers

from .types import Entity

_EMAIL = re.compile(r"[\w.+-]+@[\w-]+(?:\.[\w-]+)*\.[a-zA-Z]{2,}")
_URL = re.compile(r"\b(?:https?://|www\.)[^\s<>\"']+", re.IGNORECASE)
_URL_TRAILING = ".,;:!?)]}'\""

#: Seven digits with at most three separators between each pair: the least a
#: phone number needs, so shorter digit runs skip the slow phone matcher.
_PHONE_HINT = re.compile(r"(?:\d[\s().+/-]{0,3}){7}")

_CURRENCY_CODES: dict[str, str] = {
    "€": "EUR", "eur": "EUR", "euro": "EUR", "euros": "EUR",
    "$": "USD", "us$": "USD", "usd": "USD", "dollar": "USD", "dollars": "USD",
    "dolar": "USD", "dolares": "USD",
    "£": "GBP", "gbp": "GBP", "pound": "GBP", "pounds": "GBP",
    "r$": "BRL", "brl": "BRL", "real": "BRL", "reais": "BRL",
    "chf": "CHF", "mxn": "MXN",
}  # fmt: skip

_SYMBOL_BEFORE = r"(?P<before>r\$|us\$|€|\$|£|eur|usd|gbp|brl|chf|mxn)"
_SYMBOL_AFTER = (
    r"(?P<after>€|\$|£|eur|euros?|usd|dollars?|dolares|dolar|gbp|pounds?|brl|reais"
    r"|chf|mxn)"
)
_NUMBER = (
    r"\d{1,3}(?:[.,\u00a0\u202f](?=\d{3}\b)\d{3}"
    r"|\s(?=\d{3}\b(?![.,]\d))\d{3})+(?:[.,]\d{1,2})?"
    r"|\d+(?:[.,]\d{1,2})?"
)

_AMOUNT = re.compile(
    r"(?<![\w$€£])" + _SYMBOL_BEFORE + r"\s?(?P<n1>" + _NUMBER + r")(?P<k1>k\b)?"
    r"|\b(?P<n2>" + _NUMBER + r")(?P<k2>k)?\s?" + _SYMBOL_AFTER + r"(?![a-z])"
)

#: Characters or words that every written amount contains one of.
_AMOUNT_HINT = re.compile(
    r"[€$£]|\b(?:eur|euros?|usd|dollars?|dolares|gbp|pounds?|brl|reais|chf|mxn)\b"
)

#: Default phone region for each language hint, for numbers written without +.
_LANGUAGE_REGIONS = {"en": "US", "es": "ES", "pt": "BR", "de": "DE", "fr": "FR"}


def _parse_number(text: str) -> Decimal | None:
    digits = text.replace("\u00a0", "").replace("\u202f", "").replace(" ", "")
    last_mark = max(digits.rfind("."), digits.rfind(","))
    if last_mark < 0:
        return Decimal(digits)

    decimals = len(digits) - last_mark - 1
    mixed = "." in digits and "," in digits
    whole = digits[:last_mark].replace(".", "").replace(",", "")
    if mixed or decimals in (1, 2):
        normalized = f"{whole}.{digits[last_mark + 1 :]}"
    else:
        normalized = whole + digits[last_mark + 1 :]

    try:
        return Decimal(normalized)
    except InvalidOperation:
        return None


def find_amounts(folded: str, message_id: int) -> Iterator[Entity]:
    """Yield the amounts with a currency in a folded text.

    Parameters:
      folded: The folded message text.
      message_id: The message id to put on each entity.
    """
    if _AMOUNT_HINT.search(folded) is None:
        return

    for match in _AMOUNT.finditer(folded):
        symbol = match.group("before") or match.group("after")
        number = match.group("n1") or match.group("n2")
        value = _parse_number(number)
        if value is None:
            continue
        if match.group("k1") or match.group("k2"):
            value *= 1000

        currency = _CURRENCY_CODES[symbol]
        yield Entity("amount", format(value, "f"), message_id, currency)


def find_emails(text: str, message_id: int) -> Iterator[Entity]:
    """Yield the e-mail addresses in ``text``, in lower case."""
    if "@" not in text:
        return

    for match in _EMAIL.finditer(text):
        yield Entity("email", match.group().lower(), message_id)


def find_urls(text: str, message_id: int) -> Iterator[Entity]:
    """Yield the URLs in ``text``, without trailing punctuation."""
    if "http" not in text and "www." not in text:
        return

    for match in _URL.finditer(text):
        yield Entity("url", match.group().rstrip(_URL_TRAILING), message_id)


def phone_region(language: str, region: str | None) -> str:
    """Return the region for phone numbers without ``+``.

    Parameters:
      language: The user's language hint.
      region: The conversation's explicit region, which wins when set.
    """
    if region:
        return region.upper()

    return _LANGUAGE_REGIONS.get(language.lower()[:2], "US")


def find_phones(text: str, message_id: int, region: str) -> Iterator[Entity]:
    """Yield the valid phone numbers in ``text`` in E.164 form.

    Parameters:
      text: The original message text.
      message_id: The message id to put on each entity.
      region: ISO 3166 code for numbers written without a country code.
    """
    if _PHONE_HINT.search(text) is None:
        return

    for match in phonenumbers.PhoneNumberMatcher(text, region):
        number = phonenumbers.format_number(
            match.number, phonenumbers.PhoneNumberFormat.E164
        )
        yield Entity("phone", number, message_id)
