"""Feed prices to minor units, per ISO 4217 exponents (JPY 0, EUR 2, KWD 3) — not a blanket 100.

The exponents come from the ``iso4217`` package, which ships ISO's own table. Google and
Meta write a price as a number with a period as the decimal point, a space and the currency
code (``"19.00 EUR"``); Google's Manufacturer Center also allows the code first, so both orders
are read. A decimal comma (``"19,00 EUR"``) and thousands separators are not in either spec and
are refused: ``"1,000"`` could mean one thousand or one. Shopify's price columns are bare
numbers in the store's currency, which the host names.
"""

from __future__ import annotations

import re

import msgspec
from iso4217 import Currency

# Up to 12 integer digits: the API caps a price at 10**12 minor units anyway.
_AMOUNT_RE = re.compile(r"([0-9]{1,12})(?:\.([0-9]{1,6}))?")
_CODE_RE = re.compile(r"[A-Za-z]{3}")
MAX_MINOR = 10**12


class Money(msgspec.Struct, frozen=True):
    currency: str
    minor: int


class PriceError(ValueError):
    """A price that cannot be read; ``unknown_currency`` tells a currency problem apart."""

    def __init__(self, message: str, *, unknown_currency: bool = False) -> None:
        super().__init__(message)
        self.unknown_currency = unknown_currency


def exponent(code: str) -> int:
    """The number of minor-unit digits of an ISO 4217 currency; PriceError if it has none
    (unknown code, or a fund/metal like XAU whose minor unit is "N.A.")."""
    try:
        currency = Currency(code.upper())
    except ValueError:
        raise PriceError(f"{code!r:.20} is not an ISO 4217 currency code", unknown_currency=True) from None
    if currency.exponent is None:
        raise PriceError(f"{currency.code} has no minor unit and cannot price a product", unknown_currency=True)
    return currency.exponent


def to_minor(amount: str, currency: str) -> Money:
    """``"19.5"`` in EUR → 1950. More decimals than the currency has are refused unless they are
    zeros (``"1500.00"`` JPY is 1500, ``"19.999"`` EUR is refused): rounding would change the
    price the host sees in the feed."""
    code = currency.upper()
    digits = exponent(code)
    match = _AMOUNT_RE.fullmatch(amount)
    if match is None:
        if "," in amount:
            raise PriceError(f"{amount!r:.40}: use a period as the decimal point and no thousands separator")
        raise PriceError(f"{amount!r:.40} is not a price (expected a number like 19.00)")
    whole, frac = match.group(1), match.group(2) or ""
    extra = frac[digits:]
    if extra.strip("0"):
        raise PriceError(f"{amount} {code}: {code} has {digits} decimal(s)")
    frac = frac[:digits].ljust(digits, "0")
    minor = int(whole + frac)
    if minor > MAX_MINOR:
        raise PriceError(f"{amount} {code} is more than LiveDrop's largest price")
    return Money(code, minor)


def parse_price(text: str, default_currency: str | None = None) -> Money:
    """``"19.00 EUR"``, ``"EUR 19.00"``, or a bare ``"19.00"`` when ``default_currency`` is given.
    Raises PriceError with a message for the host."""
    parts = text.split()
    if len(parts) == 2:
        first, second = parts
        if _CODE_RE.fullmatch(second):
            return to_minor(first, second)
        if _CODE_RE.fullmatch(first):
            return to_minor(second, first)
        raise PriceError(f"{text!r:.40}: expected an amount and a 3-letter ISO 4217 code, like 19.00 EUR")
    if len(parts) == 1 and default_currency is not None:
        return to_minor(parts[0], default_currency)
    if len(parts) == 1:
        raise PriceError(f"{text!r:.40} has no currency; write it like 19.00 EUR")
    raise PriceError(f"{text!r:.40}: expected an amount and a 3-letter ISO 4217 code, like 19.00 EUR")
