"""Phone number normalisation for WhatsApp senders."""

from __future__ import annotations

import re

import phonenumbers

#: Text that can be a phone number: an optional plus, then digits with the
#: spaces, dashes, dots and brackets that WhatsApp and users put between them.
_PHONE_LIKE = re.compile(r"\+?[\d\s\-().\u00a0\u202f]{6,}")


def normalize_phone(text: str, default_region: str | None = None) -> str | None:
    """Normalise a phone number to E.164.

    Parameters:
      text: The number as shown, for example ``"+41 55 501 01 23"``.
      default_region: ISO 3166 region for numbers without a country code, such
        as ``"GB"`` from the user's locale.

    Returns:
      The number in E.164 form, or None when ``text`` is not a possible number,
      or has no country code and no default region was given.

    Note:
      This checks the length for the country, not whether the number is
      assigned, so fictional ranges such as ``+1 555`` are accepted.
    """
    candidate = text.strip()
    if not _PHONE_LIKE.fullmatch(candidate):
        return None

    if not candidate.startswith("+") and default_region is None:
        return None

    try:
        number = phonenumbers.parse(candidate, default_region)
    except phonenumbers.NumberParseException:
        return None

    if not phonenumbers.is_possible_number(number):
        return None

    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)
