"""`AmountField`: OPEN amounts in base units (18 decimals) as exact Python ints.

It is a `DecimalField(max_digits=78, decimal_places=0)` (78 digits hold any uint256). On PostgreSQL that
is `numeric(78, 0)`: exact storage, exact SUM. On SQLite it is not enough: a `decimal` column has NUMERIC
affinity, so SQLite turns anything past 2**63 into a REAL, and Django's SQLite converter rounds to 15
significant digits.
(`tests/rewards/test_ledger.py::test_amount_field_round_trips_uint256` checks this field keeps all 78 digits.)
So on SQLite the column is text holding the exact decimal digits, and code never asks SQLite to
add or compare amounts: sums go through `rewards.ledger.sum_amounts`, which sums in Python there.

A migration that turns a plain `DecimalField` column into an `AmountField` runs `AlterField`, then
`amounts_as_digits_on_sqlite(...)` (below): PostgreSQL keeps its `numeric(78, 0)` column and every value as it
was; SQLite copies the table, and its copy writes each value as text in the form SQLite held it.
"""

from decimal import Context, Decimal

from django.db import models
from django.utils.functional import cached_property

MAX_DIGITS = 78
UINT256_LIMIT = 1 << 256


def is_sqlite(connection) -> bool:
    return connection.vendor == "sqlite"


# What Django's SQLite converter showed of a `DecimalField` value SQLite held as a REAL: 15 significant digits.
_SHOWN_OF_A_REAL = Context(prec=15)


def amounts_as_digits_on_sqlite(app_label: str, model_name: str, field_name: str):
    """The `RunPython` step after an `AlterField` from a plain `DecimalField` to `AmountField`: on SQLite,
    rewrite each value the table copy left as anything but plain digits as plain digits (`from_db_value` reads
    digits). A value SQLite held as an INTEGER (below 2**63) was copied as its exact digits and is left alone;
    one it held as a REAL (any value from 2**63 up) was copied as "1.23456789012346e+26" and becomes the
    15-significant-digit amount the old field showed, the most that was left of it. Elsewhere it does nothing."""

    def forwards(apps, schema_editor):
        if not is_sqlite(schema_editor.connection):
            return
        meta = apps.get_model(app_label, model_name)._meta
        table, column = (schema_editor.quote_name(name) for name in (meta.db_table, meta.get_field(field_name).column))
        primary_key = schema_editor.quote_name(meta.pk.column)
        with schema_editor.connection.cursor() as cursor:
            cursor.execute(f"SELECT {primary_key}, {column} FROM {table} WHERE {column} GLOB '*[^0-9]*'")
            for pk, text in cursor.fetchall():
                digits = str(int(_SHOWN_OF_A_REAL.create_decimal(Decimal(str(text)))))
                cursor.execute(f"UPDATE {table} SET {column} = %s WHERE {primary_key} = %s", [digits, pk])

    return forwards


class AmountField(models.DecimalField):
    description = "An OPEN amount in base units (an exact integer up to 78 digits)"

    def __init__(self, *args, **kwargs):
        kwargs["max_digits"] = MAX_DIGITS
        kwargs["decimal_places"] = 0
        super().__init__(*args, **kwargs)

    def deconstruct(self):
        name, path, args, kwargs = super().deconstruct()
        kwargs.pop("max_digits", None)
        kwargs.pop("decimal_places", None)
        return name, path, args, kwargs

    def get_internal_type(self):
        # Not "DecimalField": that would bring back the SQLite backend's 15-digit float converter.
        return "AmountField"

    def db_type(self, connection):
        if is_sqlite(connection):
            return "varchar(80)"
        return f"numeric({MAX_DIGITS}, 0)"

    def rel_db_type(self, connection):
        return self.db_type(connection)

    def from_db_value(self, value, expression, connection):
        if value is None:
            return None
        if isinstance(value, float):
            raise TypeError("an OPEN amount came back from the database as a float; sum with sum_amounts()")
        return int(value)

    def to_python(self, value):
        if value is None or isinstance(value, int) and not isinstance(value, bool):
            return value
        if isinstance(value, Decimal | str):
            decimal = Decimal(value)
            if decimal != decimal.to_integral_value():
                raise ValueError(f"OPEN amounts are whole base units, got {value!r}")
            return int(decimal)
        raise TypeError(f"OPEN amounts are ints, got {type(value).__name__}")

    def get_db_prep_value(self, value, connection, prepared=False):
        if value is None:
            return None
        if hasattr(value, "resolve_expression"):
            return value
        value = self.to_python(value)
        if is_sqlite(connection):
            return str(value)
        return Decimal(value)

    def get_db_prep_save(self, value, connection):
        return self.get_db_prep_value(value, connection)

    @cached_property
    def validators(self):
        # DecimalValidator expects a Decimal; the value here is an int.
        return [*self.default_validators, *self._validators]

    def formfield(self, **kwargs):
        # People type OPEN with decimals ("0.05"); the form field cleans it to base units.
        from .amounts import OpenAmountField

        return models.Field.formfield(self, **{"form_class": OpenAmountField,
                                               "help_text": "In OPEN, up to 18 decimals (e.g. 0.05).", **kwargs})
