"""`kapok up --cluster N`: compose.yaml's topology on one machine, without Docker.

N nats-server processes form a JetStream cluster on loopback (each its own client port,
route port, server name and store directory ``<data-dir>/nats-<i>``, each with Kapok's
identities as the single embedded server has), the streams and KV buckets get N replicas,
and every service runs twice (``<service>`` and ``<service>-2``, the second on its port +
`SECOND_INSTANCE_OFFSET`) on the same databases, under the leases of README's "Two
instances of a service". `kapok.up` supervises all of it as it does one of each.
"""

from __future__ import annotations

import asyncio
import secrets
import socket
from collections.abc import Callable, Collection, Sequence
from pathlib import Path

from shared.bus.embedded import (
    HOST,
    ClusterRoutes,
    DataDirInUseError,
    EmbeddedNats,
    NatsStartError,
    ServerAuth,
    port_is_free,
)

SECOND_INSTANCE_OFFSET = 10
ROUTES_SECRET = "nats-cluster.secret"


def node_name(index: int) -> str:
    """``nats-1``, ``nats-2``…: the server's name in the cluster and its store directory."""
    return f"nats-{index + 1}"


def instances(ports: dict[str, int]) -> tuple[dict[str, int], dict[str, str]]:
    """Two instances of each service: ``hotline`` on its port (what `kapok simulate`'s and
    `kapok audit replay`'s ``--<service>-port`` name) and ``hotline-2`` on that port +
    `SECOND_INSTANCE_OFFSET`; and the service each one runs."""
    both: dict[str, int] = {}
    service_of: dict[str, str] = {}
    for name, port in ports.items():
        both[name], service_of[name] = port, name
        both[f"{name}-2"], service_of[f"{name}-2"] = port + SECOND_INSTANCE_OFFSET, name
    return both, service_of


def _free_ports(count: int, avoid: Collection[int]) -> list[int]:
    # Held open together, so the same port is not handed out twice.
    socks: list[socket.socket] = []
    try:
        while len(socks) < count:
            sock = socket.socket()
            sock.bind((HOST, 0))
            if int(sock.getsockname()[1]) in avoid:
                sock.close()
                continue
            socks.append(sock)
        return [int(s.getsockname()[1]) for s in socks]
    finally:
        for sock in socks:
            sock.close()


def routes_password(data_dir: Path) -> str:
    """The routes' password, made on the first start and kept (0600 under the data dir)."""
    path = data_dir / ROUTES_SECRET
    if not path.is_file():
        path.write_text(secrets.token_urlsafe(24))
        path.chmod(0o600)
    return path.read_text().strip()


async def start_cluster(
    data_dir: Path,
    size: int,
    first_port: int,
    say: Callable[[str], None],
    avoid: Collection[int] = (),
    server_auth: ServerAuth | None = None,
) -> list[EmbeddedNats] | None:
    """``size`` nodes started together (a node's JetStream answers only once the cluster has
    a leader: one at a time would wait forever on the first). Client ports ``first_port``,
    +1, … when all free, else free ones; route ports always free ones."""
    wanted = [first_port + i for i in range(size)] if first_port else []
    if not wanted or not all(port_is_free(p) for p in wanted):
        if first_port:
            say(f"ports {first_port}..{first_port + size - 1} are not all free: free ones taken")
        wanted = _free_ports(size, avoid)
    routes = tuple(_free_ports(size, {*avoid, *wanted}))
    password = routes_password(data_dir)
    servers = [
        EmbeddedNats(
            data_dir,
            port=wanted[i],
            own_process_group=True,
            server_auth=server_auth,
            server_name=node_name(i),
            store=node_name(i),
            cluster=ClusterRoutes(routes[i], routes, password),
        )
        for i in range(size)
    ]
    results = await asyncio.gather(
        *(asyncio.to_thread(server.start) for server in servers), return_exceptions=True
    )
    failed = [r for r in results if isinstance(r, BaseException)]
    if failed:
        for server in servers:
            await asyncio.to_thread(server.stop)
        error = failed[0]
        if isinstance(error, DataDirInUseError):
            say(f"{error}: is another `kapok up` running on it? Stop it, or use --data-dir DIR")
        elif isinstance(error, (NatsStartError, FileNotFoundError, OSError)):
            say(f"the nats-server cluster did not start: {error}")
        else:
            raise error
        return None
    for i, server in enumerate(servers):
        say(
            f"{node_name(i)} {server.url} (pid {server.pid}), route port {routes[i]}, "
            f"JetStream in {server.nats_dir}"
        )
    return servers


def live_url(servers: Sequence[EmbeddedNats]) -> Callable[[int], str]:
    """For the ``index``-th child starting: a running node, spreading the children over them;
    the first node's URL if none runs (the connection then retries until one does)."""

    def pick(index: int) -> str:
        for step in range(len(servers)):
            server = servers[(index + step) % len(servers)]
            if server.running:
                return server.url
        return servers[0].url

    return pick


def nodes(servers: Sequence[EmbeddedNats]) -> dict[str, dict[str, object]]:
    """What up.json says of each node, for `kapok status`."""
    return {
        node_name(i): {"url": server.url, "pid": server.pid} for i, server in enumerate(servers)
    }
