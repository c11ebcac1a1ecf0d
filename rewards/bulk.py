"""Many-row INSERTs for the fee settlement batch.

Django's `bulk_create` on PostgreSQL sends one placeholder per value: a batch of 500 fees is ~30,000
placeholders, and assembling and binding them costs far more than PostgreSQL takes to insert the rows.
`insert_rows` sends one text array per column instead (`INSERT ... SELECT ... FROM unnest(...)`), bound on
the server (`execute_bound`), so the statement has a handful of parameters whatever the row count. Each
column is cast back to the field's own database type; integers and amounts must be exact ints (floats and
bools are refused), other values go through the field's `get_db_prep_save`. Other databases (SQLite) use
`bulk_create`.
"""

import datetime
import json
from decimal import Decimal

from django.db import connection, models

from .fields import AmountField


def _integer(value) -> str:
    if type(value) is not int:  # noqa: E721 - bool and float are refused, as AmountField does
        raise TypeError(f"expected an int, got {type(value).__name__}")
    return str(value)


def _prepared(field):
    def text(value) -> str:
        value = field.get_db_prep_save(value, connection)
        if isinstance(value, datetime.datetime | datetime.date):
            return value.isoformat()
        if isinstance(value, int | Decimal | str) and not isinstance(value, bool):
            return str(value)
        raise TypeError(f"{field.name}: cannot send {type(value).__name__} as text")

    return text


def _to_text(field):
    """value -> its text form for `field`, chosen once per column (this runs for every value)."""
    if isinstance(field, models.JSONField):
        return lambda value: json.dumps(value, cls=field.encoder)
    if isinstance(field, models.BooleanField):
        return lambda value: "true" if value else "false"
    if isinstance(field, models.CharField):
        return str
    if isinstance(field, models.IntegerField | models.ForeignKey) or isinstance(field, AmountField):
        return _integer
    return _prepared(field)


def insert_rows(model, rows: list[dict], *, returning: tuple[str, ...] = ()) -> list[tuple]:
    """Insert `rows` (dicts of attname -> value, all with the same keys) in one statement. Returns the
    `returning` attnames of the inserted rows as tuples, in no promised order (map them by a unique
    column, as the settlement batch does by inference id)."""
    if not rows:
        return []
    names = list(rows[0])
    if connection.vendor != "postgresql":
        created = model.objects.bulk_create([model(**row) for row in rows])
        return [tuple(getattr(obj, name) for name in returning) for obj in created]
    fields = [model._meta.get_field(name) for name in names]
    columns = ", ".join(connection.ops.quote_name(field.column) for field in fields)
    unnest = ", ".join(["%s::text[]"] * len(fields))
    casts = ", ".join(f"c{i}::{field.db_type(connection)}" for i, field in enumerate(fields))
    aliases = ", ".join(f"c{i}" for i in range(len(fields)))
    sql = (f"INSERT INTO {connection.ops.quote_name(model._meta.db_table)} ({columns}) "
           f"SELECT {casts} FROM unnest({unnest}) AS t({aliases})")
    if returning:
        sql += " RETURNING " + ", ".join(connection.ops.quote_name(model._meta.get_field(n).column) for n in returning)
    params = []
    for name, field in zip(names, fields, strict=True):
        text = _to_text(field)
        params.append([None if row[name] is None else text(row[name]) for row in rows])
    return execute_bound(sql, params, fetch=bool(returning))


def execute_bound(sql: str, params, *, fetch: bool = False) -> list[tuple]:
    """Run one PostgreSQL statement with server-side parameter binding, on Django's connection and inside
    its transaction, logged like any query (CaptureQueriesContext sees it). Django binds on the client,
    quoting every array element in Python; bound on the server, psycopg sends each array as one value."""
    from psycopg import Cursor

    connection.ensure_connection()
    raw = Cursor(connection.connection)
    cursor = connection.make_debug_cursor(raw) if connection.queries_logged else connection.make_cursor(raw)
    with cursor:
        cursor.execute(sql, params)
        return [tuple(row) for row in cursor.fetchall()] if fetch else []
