"""The domain packages decide without I/O: importing them loads no bus, database or web code.

Given a fresh interpreter, when every module of shared/domain and services/*/domain is
imported, then no I/O library (nor Kapok's own plumbing around one) is in sys.modules.
A fresh interpreter, because this test process has long since imported everything.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

DOMAIN_PACKAGES = [
    "shared/domain",
    *sorted(str(p.relative_to(ROOT)) for p in ROOT.glob("services/*/domain")),
]

# Third-party I/O, the stdlib's process and event-loop machinery, and Kapok's own packages
# that wrap them (the toolkit, the store, the bus, the runners).
FORBIDDEN = {
    "sqlalchemy",
    "aiosqlite",
    "asyncpg",
    "nats",
    "faststream",
    "fastapi",
    "starlette",
    "uvicorn",
    "httpx",
    "asyncio",
    "subprocess",
    "shared.service",
    "shared.eventstore",
    "shared.bus",
    "shared.relay",
    "shared.consumer",
    "shared.offload",
    "shared.runtime",
}

PROBE = """
import importlib, json, pkgutil, sys
before = set(sys.modules)
names = []
for package in json.loads(sys.argv[1]):
    name = package.replace("/", ".")
    module = importlib.import_module(name)
    names.append(name)
    for info in pkgutil.walk_packages(module.__path__, name + "."):
        importlib.import_module(info.name)
        names.append(info.name)
print(json.dumps({"imported": names, "loaded": sorted(set(sys.modules) - before)}))
"""


def _loaded_by_domain() -> dict[str, list[str]]:
    done = subprocess.run(
        [sys.executable, "-c", PROBE, json.dumps(DOMAIN_PACKAGES)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    )
    return json.loads(done.stdout)


def test_the_domain_packages_import_no_io() -> None:
    probe = _loaded_by_domain()
    assert {"shared.domain.aggregate", "services.hotline.domain.call"} <= set(probe["imported"])
    leaked = sorted(
        module
        for module in probe["loaded"]
        if any(module == bad or module.startswith(bad + ".") for bad in FORBIDDEN)
    )
    assert leaked == [], f"the domain packages load I/O: {leaked}"
