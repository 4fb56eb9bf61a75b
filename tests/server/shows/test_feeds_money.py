"""Feed prices to minor units with each currency's ISO 4217 exponent, not a blanket x100."""

from __future__ import annotations

import pytest

from server.shows.feeds import Money, PriceError, exponent, parse_price


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("19.00 EUR", Money("EUR", 1900)),
        ("EUR 19.00", Money("EUR", 1900)),  # code first, as Google's Manufacturer Center allows
        ("19 EUR", Money("EUR", 1900)),
        ("19.5 EUR", Money("EUR", 1950)),
        ("0.99 USD", Money("USD", 99)),
        ("1234567.89 USD", Money("USD", 123456789)),
        ("15.00 usd", Money("USD", 1500)),
        ("1500 JPY", Money("JPY", 1500)),
        ("1500.00 JPY", Money("JPY", 1500)),  # zero decimals beyond the exponent are harmless
        ("12.345 KWD", Money("KWD", 12345)),
        ("12.3 KWD", Money("KWD", 12300)),
        ("4 BHD", Money("BHD", 4000)),
        ("  19.00   EUR ", Money("EUR", 1900)),
    ],
)
def test_prices_to_minor_units(text: str, expected: Money) -> None:
    assert parse_price(text) == expected


@pytest.mark.parametrize(
    ("text", "unknown_currency"),
    [
        ("19,00 EUR", False),  # decimal comma: in neither spec
        ("1,900.00 USD", False),  # thousands separator
        ("19.999 EUR", False),  # more decimals than EUR has
        ("1500.5 JPY", False),  # yen have none
        ("12.3456 KWD", False),
        ("-5.00 EUR", False),
        ("19.00", False),  # no currency
        ("19.00 EUR extra", False),
        ("€19.00", False),
        ("19.00 €", False),
        ("", False),
        ("1e3 EUR", False),
        ("19.00 ABC", True),
        ("19.00 XAU", True),  # gold has no minor unit
        ("19.00 EU", False),
        ("9999999999999 EUR", False),  # beyond 10**12 minor units
    ],
)
def test_refused_prices(text: str, unknown_currency: bool) -> None:
    with pytest.raises(PriceError) as caught:
        parse_price(text)
    assert caught.value.unknown_currency is unknown_currency
    assert str(caught.value)


def test_bare_amount_takes_the_default_currency() -> None:
    assert parse_price("59.00", default_currency="EUR") == Money("EUR", 5900)
    assert parse_price("7990", default_currency="JPY") == Money("JPY", 7990)
    # A currency in the text wins over the default.
    assert parse_price("10.000 KWD", default_currency="EUR") == Money("KWD", 10000)


def test_exponents_come_from_the_iso_table() -> None:
    assert [exponent(c) for c in ("EUR", "USD", "JPY", "KWD", "BHD", "CLF")] == [2, 2, 0, 3, 3, 4]
    with pytest.raises(PriceError):
        exponent("XXX")
