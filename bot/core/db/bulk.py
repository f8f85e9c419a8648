"""Fast bulk inserts for million-row uploads: COPY on PostgreSQL, executemany on SQLite.

The ORM costs ~50 µs a row; a lead pack of a million rows must load in well under a
minute, so the upload path hands plain tuples to the driver on the caller's connection
(same transaction as everything else in the upload).
"""

from __future__ import annotations

import io
import json
import sqlite3
from collections.abc import Callable, Sequence
from datetime import datetime, timezone
from itertools import chain
from typing import Any

from sqlalchemy import JSON, LargeBinary, String, Table, any_, bindparam
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.engine import Connection
from sqlalchemy.sql.elements import ColumnElement

from bot.core.db.base import UtcDateTime

Converter = Callable[[Any], Any]


def matches_any(column, values: Sequence[str], dialect_name: str) -> ColumnElement:
    """`column IN (values)` for a few thousand strings. On PostgreSQL one array parameter
    (`= ANY(%s)`, adapted by the driver in C) instead of thousands of bound values to render."""
    if dialect_name == "postgresql":
        return column == any_(bindparam("matches_any", list(values), type_=ARRAY(String), unique=True))
    # One expanding parameter: `in_(list)` would coerce every value into the expression first.
    return column.in_(bindparam("matches_any", list(values), expanding=True, unique=True))


def bulk_insert(conn: Connection, table: Table, columns: Sequence[str], rows: Sequence[tuple]) -> None:
    if not rows:
        return
    dialect = conn.dialect.name
    if dialect == "postgresql":
        _copy_into(conn, table, columns, rows)
    elif dialect == "sqlite":
        _executemany(conn, table, columns, rows)
    else:
        conn.execute(table.insert(), [dict(zip(columns, row)) for row in rows])


def insert_encoded(conn: Connection, table: Table, columns: Sequence[str], rows: Sequence) -> None:
    """Rows already in the driver's form, for callers that encode millions of rows themselves: on
    PostgreSQL each row is one COPY text line (fields escaped with `copy_text`, tab-separated, no
    newline); on SQLite a tuple of values sqlite3 binds as they are (see `sqlite_datetime`)."""
    if not rows:
        return
    if conn.dialect.name == "postgresql":
        lines = list(rows)
        lines.append("")
        _copy_text_into(conn, table, columns, "\n".join(lines))
    elif conn.dialect.name == "sqlite":
        _executemany_raw(conn, table, columns, rows)
    else:
        raise NotImplementedError(f"insert_encoded: no encoded form for {conn.dialect.name}")


def _executemany(conn: Connection, table: Table, columns: Sequence[str], rows: Sequence[tuple]) -> None:
    converters = [_sqlite_converter(table.c[name].type) for name in columns]
    _executemany_raw(conn, table, columns, _convert(rows, converters))


def _executemany_raw(conn: Connection, table: Table, columns: Sequence[str], rows: Sequence[tuple]) -> None:
    """Multi-row INSERT statements of up to ~1000 rows, not executemany: sqlite3 releases the GIL around
    every step, and a step per row means re-acquiring it per row — which stalls behind any other busy
    Python thread (the upload checks rows in one) instead of running beside it."""
    prep = conn.dialect.identifier_preparer
    head = f"INSERT INTO {prep.format_table(table)} ({', '.join(prep.quote(c) for c in columns)}) VALUES "
    one = f"({', '.join('?' for _ in columns)})"
    per_statement = max(1, min(1000, _sqlite_max_variables() // len(columns)))
    cursor = conn.connection.cursor()
    try:
        for start in range(0, len(rows), per_statement):
            batch = rows[start : start + per_statement]
            cursor.execute(head + ", ".join([one] * len(batch)), list(chain.from_iterable(batch)))
    finally:
        cursor.close()


def _sqlite_max_variables() -> int:
    return 32766 if sqlite3.sqlite_version_info >= (3, 32, 0) else 999  # SQLITE_MAX_VARIABLE_NUMBER defaults


def _copy_text_into(conn: Connection, table: Table, columns: Sequence[str], text: str) -> None:
    prep = conn.dialect.identifier_preparer
    cursor = conn.connection.cursor()
    try:
        # 1 MiB reads: fewer trips through Python while libpq streams (it releases the GIL as it sends).
        cursor.copy_expert(
            f"COPY {prep.format_table(table)} ({', '.join(prep.quote(c) for c in columns)}) FROM STDIN",
            io.StringIO(text),
            size=1 << 20,
        )
    finally:
        cursor.close()


def _copy_into(conn: Connection, table: Table, columns: Sequence[str], rows: Sequence[tuple]) -> None:
    converters = [_copy_converter(table.c[name].type) for name in columns]
    lines = []
    # Upload rows share values (created_at, pack id): convert each distinct object once per column.
    memo: list[tuple[Any, str]] = [(object(), "")] * len(converters)
    for row in rows:
        fields = []
        for index, value in enumerate(row):
            if value is None:
                fields.append(r"\N")
                continue
            last_value, last_text = memo[index]
            if last_value is value:
                fields.append(last_text)
                continue
            converted = converters[index](value)
            memo[index] = (value, converted)
            fields.append(converted)
        lines.append("\t".join(fields))
    lines.append("")
    _copy_text_into(conn, table, columns, "\n".join(lines))


def _convert(rows: Sequence[tuple], converters: list[Converter | None]) -> list[tuple] | Sequence[tuple]:
    active = [(i, c) for i, c in enumerate(converters) if c is not None]
    if not active:
        return rows
    out = []
    # Upload rows share values (created_at, pack id): convert each distinct object once.
    memo: dict[int, tuple[Any, Any]] = {}
    for row in rows:
        values = list(row)
        for index, convert in active:
            value = values[index]
            if value is not None:
                cached = memo.get(index)
                if cached is not None and cached[0] is value:
                    values[index] = cached[1]
                else:
                    converted = convert(value)
                    memo[index] = (value, converted)
                    values[index] = converted
        out.append(tuple(values))
    return out


def sqlite_datetime(value: datetime) -> str:
    """The text form SQLAlchemy's SQLite DateTime reads back; naive UTC like UtcDateTime writes."""
    return value.astimezone(timezone.utc).replace(tzinfo=None).isoformat(" ", "microseconds")


def copy_datetime(value: datetime) -> str:
    """A timestamptz field in COPY text."""
    return value.astimezone(timezone.utc).isoformat()


def _sqlite_converter(column_type) -> Converter | None:
    if isinstance(column_type, UtcDateTime):
        return sqlite_datetime
    if isinstance(column_type, JSON) or isinstance(getattr(column_type, "impl", None), JSON):
        return json_text
    return None


# One encoder: json.dumps with options builds a new encoder on every call.
json_text = json.JSONEncoder(ensure_ascii=False, separators=(",", ":")).encode

COPY_NULL = r"\N"
_COPY_ESCAPES = str.maketrans({"\\": "\\\\", "\t": "\\t", "\n": "\\n", "\r": "\\r"})


def copy_text(value: Any) -> str:
    """A text field in COPY text: backslash, tab and line breaks escaped."""
    text = value if isinstance(value, str) else str(value)
    if "\\" in text or "\t" in text or "\n" in text or "\r" in text:
        return text.translate(_COPY_ESCAPES)
    return text


def copy_bytea(value: bytes) -> str:
    """A bytea field in COPY text (hex form, its backslash escaped)."""
    return "\\\\x" + value.hex()


def _copy_converter(column_type) -> Converter:
    if isinstance(column_type, UtcDateTime):
        return copy_datetime
    if isinstance(column_type, LargeBinary):
        return lambda value: copy_bytea(bytes(value))
    if isinstance(column_type, JSON) or isinstance(getattr(column_type, "impl", None), JSON):
        return lambda value: json_text(value).translate(_COPY_ESCAPES)
    return copy_text
