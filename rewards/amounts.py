"""OPEN amounts as people read and type them ("0.05 OPEN"), against base units as the books keep them.

The database, the ledger and the APIs hold exact int base units (1 OPEN = 10**18, see `rewards.fields`).
Everything a person reads or types goes through this module instead:

* `format_open(amount)`: base units as an exact decimal, `50000000000000000 -> "0.05"`;
* `parse_open(text)`: the reverse, exact (no float, no rounding), refusing what is not an amount;
* `OpenAmountField`: the one form field for amounts (it is also `AmountField`'s form field, so the admin
  takes OPEN): it shows base units as OPEN and cleans "0.05" to `50000000000000000`;
* the `|open` template filter (`{% load open_amounts %}`) shows "0.05 OPEN";
* `format_open_rounded` and the `|open_rounded` filter: rounded to 6 decimals for reading, the exact amount kept
  in the markup (the rewards pages);
* `rewards.admin.OpenAmountsAdmin`: a ModelAdmin base that shows and takes amounts in OPEN.
"""

import re

from django import forms
from django.core.exceptions import ValidationError

DECIMALS = 18
BASE_UNITS = 10**DECIMALS
UINT256_MAX = (1 << 256) - 1

# Digits with an optional point; thousands may be grouped with commas ("1,000.5"), but a comma is never a
# decimal separator: "0,05" is refused rather than read as 5.
_AMOUNT = re.compile(r"^(?P<whole>\d{1,3}(?:,\d{3})+|\d*)(?:\.(?P<fraction>\d*))?$")
_UNIT = re.compile(r"\s*open\s*$", re.IGNORECASE)


def format_open(amount, *, grouping: bool = True) -> str:
    """Base units as an exact decimal OPEN string, e.g. 1500000000000000000 -> '1.5' (thousands grouped with
    commas unless `grouping=False`, as a form input shows it)."""
    sign = "-" if amount < 0 else ""
    whole, fraction = divmod(abs(int(amount)), BASE_UNITS)
    text = f"{whole:,}" if grouping else str(whole)
    if fraction:
        text += "." + f"{fraction:0{DECIMALS}d}".rstrip("0")
    return sign + text


class AmountError(ValueError):
    """Text that is not an amount of OPEN; the message says why, for the person who typed it."""


def parse_open(text) -> int:
    """'0.05' (or '0.05 OPEN', '1,000.5') -> base units, exactly. Raises `AmountError` for anything else:
    a negative amount, more than 18 decimals, exponents, a comma used as the decimal separator."""
    value = _UNIT.sub("", str(text).strip()).strip()
    if value.startswith("-"):
        raise AmountError("An amount of OPEN cannot be negative.")
    match = _AMOUNT.match(value.lstrip("+"))
    if not value or not match or not (match["whole"] or match["fraction"]):
        raise AmountError(f"Enter an amount of OPEN such as 0.05 (a point for decimals), not {str(text).strip()!r}.")
    fraction = match["fraction"] or ""
    if len(fraction) > DECIMALS:
        raise AmountError("OPEN has at most 18 decimals: the smallest amount is 0.000000000000000001.")
    whole = int(match["whole"].replace(",", "") or 0)
    return whole * BASE_UNITS + int(fraction.ljust(DECIMALS, "0") or 0)


class OpenAmountField(forms.Field):
    """A form field for an amount of OPEN: shows and takes OPEN with decimals ("0.05"), cleans to an int of
    base units (50000000000000000). `min_value` / `max_value` are in base units."""

    widget = forms.TextInput(attrs={"inputmode": "decimal", "autocomplete": "off", "spellcheck": "false"})

    def __init__(self, *, min_value: int = 0, max_value: int = UINT256_MAX, max_length=None, max_digits=None,
                 decimal_places=None, **kwargs):
        # (max_length / max_digits / decimal_places: what a model DecimalField hands its form field)
        self.min_value, self.max_value = min_value, max_value
        kwargs.setdefault("help_text", "In OPEN, up to 18 decimals (e.g. 0.05).")
        super().__init__(**kwargs)

    def prepare_value(self, value):
        if value is None or value == "" or isinstance(value, str):
            return value  # nothing yet, or what the person typed (shown back as typed)
        return format_open(int(value), grouping=False)

    def to_python(self, value):
        if value in self.empty_values or (isinstance(value, str) and not value.strip()):
            return None
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        try:
            return parse_open(value)
        except AmountError as exc:
            raise ValidationError(str(exc), code="invalid") from exc

    def validate(self, value):
        super().validate(value)
        if value is None:
            return
        if value < self.min_value:
            raise ValidationError(f"The amount must be at least {format_open(self.min_value)} OPEN.", code="min_value")
        if value > self.max_value:
            raise ValidationError(f"The amount must be at most {format_open(self.max_value)} OPEN.", code="max_value")

    def widget_attrs(self, widget):
        return {**super().widget_attrs(widget), "placeholder": "0.05"}


ROUNDED_DECIMALS = 6


def format_open_rounded(amount, *, decimals: int = ROUNDED_DECIMALS) -> str:
    """Base units as OPEN for reading, not for books: rounded half away from zero to `decimals` places, trailing
    zeros trimmed, thousands grouped ('6' for 6000000000000000004, '1,234.567891' for 1234567890500000000000).
    A non-zero amount smaller than the last place shown is '< 0.000001' ('> -0.000001' below zero), never '0'.
    Where the exact amount matters, show `format_open` (the `|open_rounded` filter puts it in the markup)."""
    if not 1 <= decimals <= DECIMALS:
        raise ValueError(f"decimals must be from 1 to {DECIMALS}")
    amount = int(amount)
    step = 10 ** (DECIMALS - decimals)
    units, remainder = divmod(abs(amount), step)
    if units == 0 and remainder:
        smallest = f"0.{'0' * (decimals - 1)}1"
        return f"< {smallest}" if amount > 0 else f"> -{smallest}"
    units += remainder * 2 >= step
    whole, fraction = divmod(units, 10**decimals)
    text = f"{whole:,}" + ("." + f"{fraction:0{decimals}d}".rstrip("0") if fraction else "")
    return ("-" if amount < 0 else "") + text


def open_display(amount) -> str:
    """What the `|open` filter and the admin show: '0.05 OPEN' ('—' for no amount)."""
    if amount is None or amount == "":
        return "—"
    return f"{format_open(int(amount))} OPEN"
