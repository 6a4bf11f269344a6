"""What a `kapok` command may meet that is not a bug: a port taken, a directory it cannot
write, a database URL it cannot use, a server that does not answer. Each ends the command
with one line saying what, and exit code 1; anything else is a bug and keeps its traceback.

Looked up among the modules already imported: an error cannot be of a type whose module was
never loaded, and `kapok` imports only what a command needs.
"""

from __future__ import annotations

import sys

# module -> the exception types of it that are an expected failure of any command
EXPECTED: dict[str, tuple[str, ...]] = {
    "builtins": ("OSError",),  # ports, files, connections refused, timeouts
    "httpx": ("TransportError",),
    "nats.errors": ("Error",),
    "sqlalchemy.exc": ("ArgumentError", "DBAPIError"),
    "asyncpg.exceptions": ("PostgresError", "InterfaceError"),
    "shared.bus.provision": ("NatsTooOld", "StreamMisconfigured"),
    "shared.bus.embedded": ("NatsStartError",),
}
# What only some commands expect: `kapok simulate` gives up with a RuntimeError saying which
# request was refused, or not answered in time.
EXPECTED_OF: dict[str, tuple[type[BaseException], ...]] = {"simulate": (RuntimeError,)}


def expected(error: BaseException, command: str) -> bool:
    if isinstance(error, EXPECTED_OF.get(command, ())):
        return True
    for module_name, names in EXPECTED.items():
        module = sys.modules.get(module_name)
        types = tuple(getattr(module, name) for name in names if hasattr(module, name))
        if types and isinstance(error, types):
            return True
    return False


def one_line(error: BaseException) -> str:
    """The error in one line a user can act on."""
    if isinstance(error, OSError) and error.strerror:
        where = f": {error.filename}" if error.filename else ""
        return f"{error.strerror}{where}"
    lines = str(error).strip().splitlines()
    text = lines[0] if lines else type(error).__name__
    sqlalchemy = sys.modules.get("sqlalchemy.exc")
    if sqlalchemy is not None and isinstance(error, sqlalchemy.ArgumentError):
        return f"the database URL (KAPOK_DATABASE_URL, --postgres): {text}"
    return text
