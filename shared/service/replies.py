"""The one reply shape both transports send, and how input and domain errors become it.

Success: the status and the result's JSON. Errors: ``{"status": 422, "error": "...",
"field": "items.17.category"}``, ``{"status": 409, "error": "...", "rule": "..."}``,
``{"status": 404, "error": "...", "resource": "..."}``; 500 says nothing was stored; 503 that
the database cannot be reached (nothing was stored: retry with the same Idempotency-Key).
"""

from __future__ import annotations

import functools
import logging
import time
from dataclasses import dataclass
from typing import Any, TypeVar

import orjson
from pydantic import BaseModel, ValidationError
from sqlalchemy.exc import DBAPIError
from sqlalchemy.exc import TimeoutError as PoolTimeout

from shared.domain.errors import DomainError, InvalidInput, NotFound, RuleBroken
from shared.service.commands import gc_paused

M = TypeVar("M", bound=BaseModel)

# Same shape as every other error; the transaction rolled back, so nothing was stored.
INTERNAL_ERROR = b'{"status":500,"error":"internal error: nothing was stored"}'
UNAVAILABLE = (
    b'{"status":503,"error":"the database cannot be reached: nothing was stored; '
    b'retry with the same Idempotency-Key"}'
)

log = logging.getLogger("kapok.service")


@dataclass(frozen=True, slots=True)
class Reply:
    """What a transport sends back: an HTTP-like status and a JSON body (bytes, so a stored
    reply is returned exactly as it was first sent)."""

    status: int
    body: bytes

    def json(self) -> object:
        return orjson.loads(self.body)


class Refused(Exception):
    """A request refused before anything was stored; ``reply`` says why, in the one shape."""

    def __init__(self, status: int, error: str, **detail: str) -> None:
        super().__init__(error)
        self.reply = Reply(status, orjson.dumps({"status": status, "error": error, **detail}))


def parse(model: type[M], raw: bytes | str, **path: str) -> M:
    """Validate a request body (JSON bytes); ``path`` adds identifiers taken from an HTTP path.
    Raises `Refused` (422) naming the first offending field."""
    try:
        if path:
            body = orjson.loads(raw or b"null")
            if not isinstance(body, dict):
                raise Refused(422, "the body must be a JSON object", field="body")
            for name in path:
                if name in body:
                    raise Refused(422, f"{name} is taken from the path", field=name)
            raw = orjson.dumps({**body, **path})
        with gc_paused():  # a batch is tens of thousands of objects: see gc_paused
            return model.model_validate_json(raw)
    except orjson.JSONDecodeError as error:
        raise Refused(422, f"the body is not JSON: {error}", field="body") from error
    except ValidationError as error:
        raise refusal_of(error) from error


def refusal_of(error: ValidationError) -> Refused:
    errors = error.errors(include_url=False)
    # A tuple whose items failed also reports "too short" with the items it kept: that is a
    # consequence, not the thing to fix; the failing item's own error is.
    errors = [e for e in errors if not _consequence(e)] or errors
    # The shortest location first: with 5,001 items, the count is the thing to fix.
    first = min(errors, key=lambda e: len(e["loc"]))
    loc = [str(part) for part in first["loc"]]
    message = first["msg"]
    if first["type"] == "value_error":
        message = message.removeprefix("Value error, ")
        named, sep, rest = message.partition(": ")
        if sep and named.isidentifier():  # a model check naming its field ("outcome: ...")
            loc, message = [*loc, named], rest
    if first["type"] == "json_invalid":
        loc = ["body"]
    field = ".".join(loc) or "body"
    return Refused(422, f"{field}: {message}", field=field)


def _consequence(error: Any) -> bool:
    given = error.get("input")
    kept = (error.get("ctx") or {}).get("actual_length")
    return (
        error["type"] == "too_short"
        and isinstance(given, list | tuple)
        and isinstance(kept, int)
        and kept < len(given)
    )


def refusal_from(error: DomainError) -> Refused:
    if isinstance(error, InvalidInput):
        return Refused(422, f"{error.field}: {error.message}", field=error.field)
    if isinstance(error, NotFound):
        return Refused(404, error.message, resource=error.resource)
    assert isinstance(error, RuleBroken)
    return Refused(409, error.message, rule=error.rule)


def unreachable(error: BaseException) -> bool:
    """Whether ``error`` says the database cannot be reached (down, restarting, a dropped or
    timed-out connection) rather than that this request is wrong: SQLAlchemy's
    OperationalError or InterfaceError, a DBAPIError whose connection was invalidated, the
    pool's timeout, a refused or reset connection, or asyncpg's errors for a server that is
    away, starting or shutting down."""
    seen: BaseException | None = error
    for _ in range(8):  # the cause chain: SQLAlchemy wraps the driver's error
        if seen is None:
            return False
        if isinstance(seen, DBAPIError):
            if seen.connection_invalidated or type(seen).__name__ in _UNREACHABLE_DBAPI:
                return True
        elif isinstance(seen, (PoolTimeout, ConnectionError, TimeoutError, *_asyncpg_away())):
            return True
        seen = seen.__cause__ or seen.__context__
    return False


# The DB-API's own classes for a server that cannot be used now (PEP 249), whatever driver.
_UNREACHABLE_DBAPI = frozenset({"OperationalError", "InterfaceError"})


@functools.cache
def _asyncpg_away() -> tuple[type[BaseException], ...]:
    try:
        from asyncpg import exceptions as pg
    except ImportError:  # SQLite only
        return ()
    return (
        pg.PostgresConnectionError,  # 08xxx, and the connection gone from under a query
        pg.ConnectionDoesNotExistError,
        pg.CannotConnectNowError,  # starting up or shutting down
        pg.AdminShutdownError,
        pg.CrashShutdownError,
    )


def outage_errors() -> tuple[type[BaseException], ...]:
    """The classes of the errors `unreachable` may say yes to (for handlers by class)."""
    return (DBAPIError, PoolTimeout, ConnectionError, TimeoutError, *_asyncpg_away())


class Outage:
    """The database's outage as this process sees it: logged once when it begins and once
    when it ends, with its duration, however many requests or health checks meet it."""

    def __init__(self) -> None:
        self.since: float | None = None  # wall-clock time; None: reachable
        self.last_error: str | None = None
        self.refused = 0  # requests answered 503 in this outage
        self._began = 0.0

    def failed(self, error: BaseException) -> None:
        self.last_error = f"{type(error).__name__}: {error}".splitlines()[0][:300]
        if self.since is None:
            self.since, self._began, self.refused = time.time(), time.monotonic(), 0
            log.error("the database cannot be reached (%s); answering 503", self.last_error)

    def ok(self) -> None:
        if self.since is not None:
            log.warning(
                "the database is back after %.1fs (%d requests answered 503)",
                time.monotonic() - self._began,
                self.refused,
            )
            self.since = None


DATABASE = Outage()
"""This process's database (each process has one)."""


def unavailable(error: BaseException) -> Reply | None:
    """The 503 reply if ``error`` says the database cannot be reached (noted in `DATABASE`);
    None for any other error."""
    if not unreachable(error):
        return None
    DATABASE.failed(error)
    DATABASE.refused += 1
    return Reply(503, UNAVAILABLE)
