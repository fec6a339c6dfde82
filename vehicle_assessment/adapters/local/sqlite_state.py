"""Turns SQLite's errors on a damaged or foreign state file into one typed, explained error."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path

from vehicle_assessment.ports import StateFileUnusable

# Busy/locked is another process at work, not damage: those errors pass through unchanged.
_TRANSIENT = ("locked", "busy")


@contextmanager
def state_file_errors(path: Path, what: str, remedy: str) -> Iterator[None]:
    """Raise StateFileUnusable for any SQLite error that means the file cannot be used as `what`."""
    try:
        yield
    except sqlite3.DatabaseError as exc:
        detail = " ".join(str(exc).split()) or type(exc).__name__
        if isinstance(exc, sqlite3.OperationalError) and any(word in detail for word in _TRANSIENT):
            raise
        raise StateFileUnusable(f"{path} is not a usable {what} ({detail}); {remedy}") from exc


def check_schema(conn: sqlite3.Connection, expected: Mapping[str, Iterable[str]]) -> None:
    """Raise sqlite3.DatabaseError if the file holds other tables than ours, or ours with other columns.

    `CREATE TABLE IF NOT EXISTS` succeeds on a file that already holds a table of the same name
    and another shape, or other applications' tables; both would fail later, far from the cause.
    """
    tables = {
        name
        for (name,) in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")
        if not name.startswith("sqlite_")
    }
    foreign = sorted(tables - set(expected))
    if foreign:
        raise sqlite3.DatabaseError(f"it holds other tables: {', '.join(foreign)}")
    for table in sorted(tables):  # absent tables are created by the caller's schema
        columns = expected[table]
        found = {row[1] for row in conn.execute(f"PRAGMA table_info({table})")}
        missing = sorted(set(columns) - found)
        if missing:
            raise sqlite3.DatabaseError(f"table {table} lacks the columns {', '.join(missing)}")
