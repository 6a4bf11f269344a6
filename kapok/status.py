"""`kapok status`: the whole system's health at a glance, a line per process.

It reads ``<data-dir>/up.json`` (written by the `kapok up` running there: pids, ports, the
NATS URL), asks nats-server for its INFO and JetStream (one protocol round trip,
`shared.bus.embedded.probe`) and every service for ``/api/health``, and prints each one's
status (``ok``, ``degraded``, ``down``) with the problems it names. The exit code is 0 only
when everything is ``ok``: 1 when anything is degraded or down, 2 when no `kapok up` runs on
the data directory.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

TIMEOUT_S = 5.0  # per question; a health check itself answers within about 2 s


@dataclass
class Row:
    """One process's line, and the problems under it."""

    name: str
    status: str  # ok, degraded, down
    pid: object
    where: str
    detail: str = ""
    problems: list[str] = field(default_factory=list)

    def lines(self) -> list[str]:
        pid = f"pid {self.pid}" if self.pid else "no pid"
        head = f"{self.name:<11} {self.status:<9} {pid:<10} {self.where}"
        return [f"{head}  {self.detail}".rstrip(), *(f"    - {p}" for p in self.problems)]


async def nats_row(url: str, pid: object, data_dir: Path) -> Row:
    from shared.bus.auth import AUDITOR, Keyring
    from shared.bus.embedded import NatsStartError, NotReady, ServerAuth, probe

    parts = urlsplit(url)
    host, port = parts.hostname or "127.0.0.1", parts.port or 4222
    # `kapok up`'s server takes no anonymous connection: the auditor's identity, which may
    # look and change nothing, if the data directory has its seed.
    seed = Keyring.of(data_dir).seed_path(AUDITOR)
    signed = ServerAuth("", seed, AUDITOR) if seed.is_file() else None
    try:
        status = await asyncio.to_thread(probe, host, port, TIMEOUT_S, signed)
    except (NotReady, NatsStartError, OSError) as error:
        return Row("nats-server", "down", pid, url, problems=[str(error)])
    streams = status.jetstream.get("streams")
    return Row("nats-server", "ok", pid, url, f"{status.version}, JetStream, {streams} streams")


async def service_row(
    name: str, port: int, pid: object, headers: dict[str, str] | None = None
) -> Row:
    import httpx

    base = f"http://127.0.0.1:{port}"
    if not pid:
        return Row(name, "down", pid, base, problems=["not running (restarting?)"])
    try:
        async with httpx.AsyncClient(timeout=TIMEOUT_S, headers=headers) as client:
            answer = await client.get(f"{base}/api/health")
        body: dict[str, Any] = answer.json()
    except (httpx.HTTPError, ValueError) as error:
        return Row(name, "down", pid, base, problems=[f"/api/health: {error!r}"])
    status = str(body.get("status") or ("ok" if answer.status_code == 200 else "down"))
    return Row(name, status, pid, base, _detail(body), [str(p) for p in body.get("problems", [])])


def _detail(body: dict[str, Any]) -> str:
    """The figures worth a glance: the relay's lag, the consumers' lag and dead letters."""
    said: list[str] = []
    if relay := body.get("relay"):
        said.append(f"relay at {relay.get('position')} of {relay.get('head')}")
    for name, lease in (body.get("leases") or {}).items():  # two instances of a service
        if not lease.get("held"):
            said.append(f"{name} standing by ({lease.get('holder') or 'no one'} holds it)")
    for sources in (body.get("consumers") or {}).values():
        for source, s in sources.items():
            said.append(f"{source} lag {s.get('lag')}")
    return ", ".join(said)


async def rows(up: dict[str, Any], data_dir: Path) -> list[Row]:
    from kapok.tokens import admin_token
    from shared.settings import Settings

    pids = up.get("services") or {}
    # Health's parts are for roles that watch: signed in as the `kapok up`'s administrator.
    token = admin_token(Settings(data_dir=data_dir))
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    ports = (up.get("ports") or {}).items()
    asked = [service_row(n, int(p), pids.get(n), headers) for n, p in ports]
    nodes = up.get("nats_nodes")
    if isinstance(nodes, dict) and nodes:  # `kapok up --cluster N`: a row per node
        asked[:0] = [node_row(n, str(v["url"]), v.get("pid"), data_dir) for n, v in nodes.items()]
    elif up.get("nats_url"):
        asked.insert(0, nats_row(str(up["nats_url"]), up.get("nats"), data_dir))
    return list(await asyncio.gather(*asked))


async def node_row(name: str, url: str, pid: object, data_dir: Path) -> Row:
    row = await nats_row(url, pid, data_dir)
    row.name = name
    return row


def run(data_dir: Path) -> int:
    from kapok.up import running

    up = running(data_dir)
    if not up:
        print(f"kapok status: no `kapok up` runs on {data_dir} (no live {data_dir}/up.json)")
        return 2
    print(f"kapok status: {data_dir.resolve()} (kapok up pid {up.get('up')})")
    found = asyncio.run(rows(up, data_dir))
    for row in found:
        print("\n".join(row.lines()))
    return 0 if all(row.status == "ok" for row in found) else 1
