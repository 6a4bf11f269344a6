"""Kapok's fast paths through its dependencies' internals, one module per dependency.

Each module names every private attribute Kapok uses of its dependency, checks at start-up
that it is there as expected, and otherwise hands its caller the public API path, saying so
once in the log. ``KAPOK_FAST_PATHS=0`` (`Settings.fast_paths`) takes the public paths
everywhere; CI runs the bus suites a second time so. pyproject.toml bounds each of these
dependencies below its next major version.
"""

from __future__ import annotations

import functools
import logging
import os

log = logging.getLogger("kapok.compat")

_said: set[str] = set()


def fast_paths() -> bool:
    """The setting, as the environment has it now (read when a check runs, never per message;
    reading Settings costs milliseconds, so it is read once per value of the variable)."""
    return _fast_paths(os.environ.get("KAPOK_FAST_PATHS"))


@functools.cache
def _fast_paths(raw: str | None) -> bool:
    from shared.settings import Settings

    return Settings().fast_paths


def public_path(dependency: str, what: str, why: str) -> None:
    """Say once per process that ``what`` takes ``dependency``'s public API, and why."""
    line = f"{dependency}: {what} through the public API: {why}"
    if line in _said:
        return
    _said.add(line)
    if why.startswith("KAPOK_FAST_PATHS"):
        log.info(line)
    else:
        log.warning(line)
