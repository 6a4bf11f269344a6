"""aiosqlite's internals (0.x) that the event store's one-trip connections use
(shared/eventstore/database.py), checked before use, with SQLAlchemy's own aiosqlite
connections where they are not as expected or ``KAPOK_FAST_PATHS=0``.

- ``Connection._execute(fn, *args)``: runs ``fn(*args)`` on the connection's thread, the
  one trip a statement takes instead of SQLAlchemy's four;
- ``Connection._conn``: the sqlite3 connection, read on that thread;
- ``Connection._thread``: made a daemon before it starts, as SQLAlchemy's aiosqlite
  dialect does (a process must not wait on a connection nobody closed);
- ``aiosqlite.context.Result``: what ``cursor()`` returns, awaitable and a context manager.

Checked once per process, never per statement: the names below are the dependency's own
functions, so a call through them costs what the attribute would.
"""

from __future__ import annotations

import functools
import inspect
import sqlite3
import threading
from collections.abc import Callable, Coroutine
from typing import Any

import aiosqlite

from shared.compat import fast_paths, public_path

try:
    from aiosqlite.context import Result
except ImportError:  # pragma: no cover - then the one-trip connections are never made
    Result = None  # type: ignore[assignment,misc]

on_thread: Callable[..., Coroutine[Any, Any, Any]] = getattr(aiosqlite.Connection, "_execute", None)
"""``on_thread(connection, fn, *args)``: ``fn(*args)`` on the connection's thread."""

_conn = getattr(aiosqlite.Connection, "_conn", None)
sqlite3_of: Callable[[aiosqlite.Connection], sqlite3.Connection] = getattr(_conn, "fget", None)
"""The sqlite3 connection under an aiosqlite one (on its thread)."""


def daemon(connection: aiosqlite.Connection) -> None:
    """Its thread a daemon, before it starts."""
    connection._thread.daemon = True


def one_trip() -> bool:
    """Whether the database may use its one-trip connections (else SQLAlchemy's own)."""
    what = "SQLite statements, four trips to aiosqlite's thread each"
    if not fast_paths():
        public_path("aiosqlite", what, "KAPOK_FAST_PATHS=0")
        return False
    if not _as_expected():
        public_path("aiosqlite", what, "its Connection's _execute, _conn or _thread are gone")
        return False
    return True


@functools.cache
def _as_expected() -> bool:
    if Result is None or sqlite3_of is None or not inspect.iscoroutinefunction(on_thread):
        return False
    try:
        inspect.signature(on_thread).bind(object(), len, "fn's argument")
        # Made, not started (no thread runs until it is awaited): its thread as described.
        connection = aiosqlite.Connection(lambda: sqlite3.connect(":memory:"), 64)
        thread = connection._thread
    except Exception:
        return False
    return isinstance(thread, threading.Thread) and not thread.is_alive()
