"""Fast bulk inserts for million-row uploads: COPY on PostgreSQL, executemany on SQLite.

The ORM costs ~50 µs a row; a lead pack of a million rows must load in well under a
minute, so the upload path hands plain tuples to the driver on the caller's connection
(same transaction as everything else in the upload).
"""
from __future__ import annotations

import io
import json
from datetime import datetime, timezone
from typing import Any, Callable, Sequence

from sqlalchemy import JSON, LargeBinary, Table
from sqlalchemy.engine import Connection

from bot.db.base import UtcDateTime

Converter = Callable[[Any], Any]


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


def _executemany(conn: Connection, table: Table, columns: Sequence[str], rows: Sequence[tuple]) -> None:
    prep = conn.dialect.identifier_preparer
    converters = [_sqlite_converter(table.c[name].type) for name in columns]
    sql = (f"INSERT INTO {prep.format_table(table)} ({', '.join(prep.quote(c) for c in columns)}) "
           f"VALUES ({', '.join('?' for _ in columns)})")
    converted = _convert(rows, converters)
    cursor = conn.connection.cursor()
    try:
        cursor.executemany(sql, converted)
    finally:
        cursor.close()


def _copy_into(conn: Connection, table: Table, columns: Sequence[str], rows: Sequence[tuple]) -> None:
    prep = conn.dialect.identifier_preparer
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
    buffer = io.StringIO("\n".join(lines))
    cursor = conn.connection.cursor()
    try:
        cursor.copy_expert(f"COPY {prep.format_table(table)} ({', '.join(prep.quote(c) for c in columns)}) "
                           "FROM STDIN", buffer)
    finally:
        cursor.close()


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


def _sqlite_datetime(value: datetime) -> str:
    # The text form SQLAlchemy's SQLite DateTime reads back; naive UTC like UtcDateTime writes.
    return value.astimezone(timezone.utc).replace(tzinfo=None).isoformat(" ", "microseconds")


def _sqlite_converter(column_type) -> Converter | None:
    if isinstance(column_type, UtcDateTime):
        return _sqlite_datetime
    if isinstance(column_type, JSON) or isinstance(getattr(column_type, "impl", None), JSON):
        return _json_text
    return None


# One encoder: json.dumps with options builds a new encoder on every call.
_json_text = json.JSONEncoder(ensure_ascii=False, separators=(",", ":")).encode


_COPY_ESCAPES = str.maketrans({"\\": "\\\\", "\t": "\\t", "\n": "\\n", "\r": "\\r"})


def _copy_text(value: Any) -> str:
    text = value if isinstance(value, str) else str(value)
    if "\\" in text or "\t" in text or "\n" in text or "\r" in text:
        return text.translate(_COPY_ESCAPES)
    return text


def _copy_converter(column_type) -> Converter:
    if isinstance(column_type, UtcDateTime):
        return lambda value: value.astimezone(timezone.utc).isoformat()
    if isinstance(column_type, LargeBinary):
        return lambda value: "\\\\x" + bytes(value).hex()
    if isinstance(column_type, JSON) or isinstance(getattr(column_type, "impl", None), JSON):
        return lambda value: _json_text(value).translate(_COPY_ESCAPES)
    return _copy_text
