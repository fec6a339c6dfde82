"""SQLite state files: one typed, explained error for a damaged or foreign file, and one kept connection."""

from __future__ import annotations

import os
import sqlite3
import threading
import weakref
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


class KeptConnection:
    """One connection to a state file per process, kept open and shared between threads under a lock.

    Opening a connection per call, and the WAL checkpoint SQLite runs when the last connection to a
    file closes, cost more than a small write itself (1-4 ms against 0.2 ms here). The connection is
    opened on first use, and again in a forked child: SQLite forbids using a parent's connection there.
    """

    def __init__(self, path: Path, what: str, remedy: str) -> None:
        self.path, self._what, self._remedy = path, what, remedy
        self._lock = threading.RLock()
        self._depth = 0  # nesting of transaction() in the thread holding the lock
        self._conn: sqlite3.Connection | None = None
        self._pid = 0

    def _connection(self) -> sqlite3.Connection:
        if self._conn is None or self._pid != os.getpid():
            conn = sqlite3.connect(self.path, timeout=30, check_same_thread=False)
            conn.execute("PRAGMA journal_mode=WAL")  # readers (`show`, `list`) run beside a writer
            self._conn, self._pid = conn, os.getpid()
            weakref.finalize(self, conn.close)
        return self._conn

    def close(self) -> None:
        with self._lock:
            if self._conn is not None and self._pid == os.getpid():
                self._conn.close()
            self._conn = None

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """The connection, inside a transaction committed when the outermost block ends (rolled back
        on an error); a nested block joins its caller's transaction instead of committing it early.
        A damaged or foreign file becomes StateFileUnusable naming it, whichever statement finds out."""
        with self._lock, state_file_errors(self.path, self._what, self._remedy):
            conn = self._connection()
            if self._depth:
                self._depth += 1
                try:
                    yield conn
                finally:
                    self._depth -= 1
                return
            self._depth = 1
            try:
                with conn:
                    yield conn
            finally:
                self._depth = 0
