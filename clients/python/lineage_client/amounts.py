"""OPEN amounts: people write decimals of OPEN ("0.05"), the API takes and gives base units (1 OPEN = 10**18)
as strings of digits. The conversion is exact (Decimal, never float): a price is money."""

from __future__ import annotations

from decimal import Decimal, InvalidOperation, localcontext

from .errors import InvalidAmountError

DECIMALS = 18
BASE_UNITS = 10**DECIMALS
UINT256_MAX = 2**256 - 1


def open_to_base_units(amount: str | int | Decimal) -> int:
    """Base units for an amount of OPEN: `"0.05"` → 50000000000000000. Takes a string, an int or a Decimal;
    a float is refused (0.1 is not 0.1 in binary: pass the string "0.1")."""
    if isinstance(amount, bool) or isinstance(amount, float):
        raise InvalidAmountError(f"Give the amount {amount!r} as a string such as \"0.05\" or a Decimal: a float "
                                 "is not exact.")
    if isinstance(amount, int):
        value = Decimal(amount)
    elif isinstance(amount, Decimal):
        value = amount
    elif isinstance(amount, str):
        text = amount.strip().replace("_", "")
        try:
            value = Decimal(text)
        except InvalidOperation:
            value = None
        if value is None or not text or not value.is_finite():
            raise InvalidAmountError(f"“{amount.strip()[:40]}” is not an amount of OPEN: give a decimal number "
                                     "such as 0.05 or 1.")
    else:
        raise InvalidAmountError(f"An amount of OPEN is a string, int or Decimal, not {type(amount).__name__}.")
    if not value.is_finite():
        raise InvalidAmountError(f"{amount} is not an amount of OPEN: give a finite decimal number.")
    if value < 0:
        raise InvalidAmountError(f"{amount} is negative: an amount of OPEN is 0 or more.")
    with localcontext() as context:
        context.prec = 200  # exact for every uint256 and 18 decimals
        units = value.scaleb(DECIMALS)
        if units != units.to_integral_value():
            raise InvalidAmountError(f"{amount} has more than {DECIMALS} decimal places: OPEN is divisible into "
                                     "10^-18 units and no further.")
        result = int(units)
    if result > UINT256_MAX:
        raise InvalidAmountError(f"{amount} OPEN is larger than any amount of OPEN can be.")
    return result


def base_units_to_open(units: int | str) -> str:
    """The decimal OPEN string for base units, without trailing zeros: 50000000000000000 → "0.05"."""
    value = int(units)
    sign, value = ("-", -value) if value < 0 else ("", value)
    whole, fraction = divmod(value, BASE_UNITS)
    tail = f"{fraction:0{DECIMALS}d}".rstrip("0")
    return f"{sign}{whole}.{tail}" if tail else f"{sign}{whole}"
