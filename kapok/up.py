"""`kapok up`: the whole system on one machine, one process per service, one Ctrl-C to stop.

A small supervisor on asyncio subprocesses. It starts the embedded nats-server (unless
``--nats URL``) and restarts it on the same port when it dies (`NatsKeeper`), then each
service in ``SERVABLE`` as ``python -m kapok.cli serve <name>`` with ``KAPOK_NATS_URL`` and
``KAPOK_DATA_DIR`` in its environment, prefixes every log line with the service's name,
restarts a service that dies (with a backoff), and on SIGINT or SIGTERM stops the services
first and nats-server last, so each service can drain its connection to a live server. All
state lives under the data directory, so a second `kapok up` on it picks up where the first
stopped. `kapok status` reads what it writes in ``<data-dir>/up.json``.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import socket
import sys
import time
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from shared.bus.embedded import (
    HOST,
    DataDirInUseError,
    EmbeddedNats,
    NatsStartError,
    PortInUseError,
    ServerAuth,
    die_with_parent,
    port_is_free,
)

NATS_DEFAULT_PORT = 4222
# A service that stayed up this long is considered healthy again: its backoff starts over.
HEALTHY_AFTER_S = 30.0
BACKOFF_MAX_S = 30.0
STOP_TIMEOUT_S = 15.0
WATCH_S = 0.5  # how often the embedded nats-server is looked at
PIDS_FILE = "up.json"


def dashboard_order(services: Sequence[str]) -> list[str]:
    """Reporting first: it is the dashboard a user opens."""
    return sorted(services, key=lambda name: (name != "reporting", services.index(name)))


def default_ports(services: Sequence[str]) -> dict[str, int]:
    import importlib

    return {
        name: int(importlib.import_module(f"services.{name}.main").DEFAULT_PORT)
        for name in services
    }


def taken_ports(ports: dict[str, int]) -> list[str]:
    """One message per port that cannot be used, naming the flag that changes it."""
    problems: list[str] = []
    seen: dict[int, str] = {}
    for name, port in ports.items():
        if port in seen:
            problems.append(
                f"{name} and {seen[port]} both want port {port}: change one with --{name}-port N"
            )
        elif not port_is_free(port):
            problems.append(
                f"{name}'s HTTP port {port} on {HOST} is already in use: "
                f"use --{name}-port N (0 is not accepted: the port must be known)"
            )
        seen[port] = name
    return problems


@dataclass
class Child:
    """One supervised service process."""

    name: str
    port: int
    service: str = ""  # what `kapok serve` runs; the name when empty (one instance each)
    proc: asyncio.subprocess.Process | None = None
    restarts: int = 0
    started_at: float = 0.0


@dataclass
class Supervisor:
    services: list[str]
    ports: dict[str, int]
    env: dict[str, str]
    data_dir: Path
    write: Callable[[str], None] = field(default=lambda line: print(line, flush=True))
    extra_pids: dict[str, object] = field(default_factory=dict)
    nats_url: str = ""
    env_of: dict[str, dict[str, str]] = field(default_factory=dict)  # a service's own
    # `--cluster N`: the service each child runs (``hotline-2``: hotline), and where a child
    # connects as it starts: a node that runs then, so a restart never waits on a dead one
    # (it learns the other nodes from the server's INFO and fails over to them).
    service_of: dict[str, str] = field(default_factory=dict)
    nats_url_for: Callable[[int], str] | None = None
    # `kapok demo` sends thousands of requests: one access-log line each would bury the rest.
    quiet_access: bool = False
    stopping: asyncio.Event = field(default_factory=asyncio.Event)
    children: dict[str, Child] = field(default_factory=dict)

    def say(self, message: str) -> None:
        self.write(f"kapok up: {message}")

    async def run(self) -> None:
        """Supervise every service until `stop()`; then stop them all."""
        self.children = {
            name: Child(name, self.ports[name], self.service_of.get(name, name))
            for name in self.services
        }
        tasks = [asyncio.create_task(self._supervise(c)) for c in self.children.values()]
        try:
            await self.stopping.wait()
        finally:
            self.stopping.set()
            await self._stop_all()
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            self._write_pids()

    def stop(self) -> None:
        self.stopping.set()

    def started(self, name: str, pid: object) -> None:
        """A process other than a service (nats-server) runs now as ``pid``: in up.json."""
        self.extra_pids[name] = pid
        self._write_pids()

    async def _supervise(self, child: Child) -> None:
        backoff = 1.0
        width = max(len(n) for n in self.services)
        index = self.services.index(child.name)
        first = self.service_of.get(child.name, child.name)
        if first != child.name:
            # A second instance starts once the first answers: two processes making a fresh
            # PostgreSQL database's tables at once fail on pg_type's unique index (seen).
            await wait_http(self.ports[first], "/openapi.json", 90.0)
        while not self.stopping.is_set():
            env = {**self.env, **self.env_of.get(child.name, {})}
            if self.nats_url_for is not None:
                env["KAPOK_NATS_URL"] = self.nats_url_for(index)
            child.proc = await asyncio.create_subprocess_exec(
                sys.executable,
                "-m",
                "kapok.cli",
                "serve",
                child.service or child.name,
                "--port",
                str(child.port),
                env=env,
                stdin=asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.STDOUT,
                # Its own process group: a terminal's Ctrl-C reaches only this supervisor,
                # which then stops each service once, in order, and never mistakes a
                # service stopping for a crash to restart.
                process_group=0,
                preexec_fn=die_with_parent,
            )
            if self.stopping.is_set():  # a stop came while it was being started
                child.proc.terminate()
            child.started_at = time.monotonic()
            self._write_pids()
            self.say(f"{child.name} started (pid {child.proc.pid})")
            assert child.proc.stdout is not None
            async for raw in child.proc.stdout:
                if self.quiet_access and b'HTTP/1.1" 2' in raw:
                    continue
                self.write(f"{child.name:<{width}} | {raw.decode(errors='replace').rstrip()}")
            code = await child.proc.wait()
            if self.stopping.is_set():
                return
            if time.monotonic() - child.started_at > HEALTHY_AFTER_S:
                backoff = 1.0
            child.restarts += 1
            self.say(f"{child.name} exited with code {code}; restarting in {backoff:g}s")
            # Waits out the backoff, unless a stop comes first.
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.stopping.wait(), backoff)
            backoff = min(backoff * 2, BACKOFF_MAX_S)

    async def _stop_all(self) -> None:
        running = [c.proc for c in self.children.values() if c.proc and c.proc.returncode is None]
        for proc in running:
            # SIGTERM: each service finishes its requests in flight, then closes cleanly.
            with contextlib.suppress(ProcessLookupError):
                proc.send_signal(signal.SIGTERM)
        if not running:
            return
        _, pending = await asyncio.wait(
            [asyncio.create_task(p.wait()) for p in running], timeout=STOP_TIMEOUT_S
        )
        if pending:
            for proc in running:
                if proc.returncode is None:
                    self.say(f"pid {proc.pid} did not stop in {STOP_TIMEOUT_S:g}s: killed")
                    with contextlib.suppress(ProcessLookupError):
                        proc.kill()
            await asyncio.gather(*(p.wait() for p in running))

    def _write_pids(self) -> None:
        """``<data-dir>/up.json``: who runs now, for tools and tests (empty once stopped)."""
        alive = {
            name: c.proc.pid
            for name, c in self.children.items()
            if c.proc is not None and c.proc.returncode is None and not self.stopping.is_set()
        }
        body = {
            "up": os.getpid(),
            **self.extra_pids,
            "services": alive,
            # Where to reach what runs, for `kapok audit replay` and scripts.
            "nats_url": self.nats_url,
            "ports": self.ports,
        }
        if self.stopping.is_set():
            body = {}
        path = self.data_dir / PIDS_FILE
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(body))
        tmp.replace(path)


@dataclass
class NatsKeeper:
    """The embedded nats-server, watched: when it dies (kill -9, a crash), it is reaped, said,
    and started again on the same port and store after a backoff (1 s, doubling up to
    `BACKOFF_MAX_S`, from 1 s again once it stayed up `HEALTHY_AFTER_S`). The services'
    connections reconnect by themselves; the relays publish what waited in their stores."""

    server: EmbeddedNats
    say: Callable[[str], None]
    started: Callable[[int], None]  # told the pid of each restart
    restarts: int = 0
    label: str = "nats-server"  # `--cluster N`: which node

    async def run(self, stopping: asyncio.Event) -> None:
        backoff, since = 1.0, time.monotonic()
        while not stopping.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stopping.wait(), WATCH_S)
            # `running` polls the process, which reaps it once dead: no zombie is left.
            if stopping.is_set() or self.server.running:
                continue
            pid, code = self.server.pid, self.server.wait(0)
            self.server.stop()  # forgets the dead process; the port and store stay chosen
            if time.monotonic() - since > HEALTHY_AFTER_S:
                backoff = 1.0
            said = f"{self.label} (pid {pid}) exited with code {code}"
            self.say(f"{said}; restarting in {backoff:g}s")
            while not stopping.is_set():
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stopping.wait(), backoff)
                if stopping.is_set():
                    return
                backoff = min(backoff * 2, BACKOFF_MAX_S)
                try:
                    # Blocking for about a second (it waits until JetStream answers).
                    await asyncio.to_thread(self.server.start)
                except (NatsStartError, FileNotFoundError, OSError) as error:
                    self.say(f"{self.label} did not start again: {error}; next try in {backoff:g}s")
                    continue
                break
            else:
                return
            self.restarts += 1
            since = time.monotonic()
            assert self.server.pid is not None
            self.say(f"{self.label} restarted: {self.server.url} (pid {self.server.pid})")
            self.started(self.server.pid)


async def wait_http(port: int, path: str, within_s: float) -> bool:
    """Whether ``GET path`` on the port answers 200 within ``within_s`` seconds."""
    import httpx

    deadline = time.monotonic() + within_s
    async with httpx.AsyncClient(timeout=2.0) as client:
        while time.monotonic() < deadline:
            with contextlib.suppress(httpx.HTTPError):
                if (await client.get(f"http://{HOST}:{port}{path}")).status_code == 200:
                    return True
            await asyncio.sleep(0.2)
    return False


def start_nats(
    data_dir: Path,
    port: int,
    say: Callable[[str], None],
    avoid: Collection[int] = (),
    server_auth: ServerAuth | None = None,
) -> EmbeddedNats | None:
    """The embedded server: ``port`` when free, else a free port that none of ``avoid`` (the
    services' HTTP ports, free but not yet bound) is, saying which."""
    chosen = port
    if not port or not port_is_free(port):
        if port:
            say(f"port {port} is taken (another nats-server?): the embedded one takes a free port")
        chosen = _free_port_outside(avoid)
    # A terminal's Ctrl-C goes to the whole foreground process group. nats-server must not
    # get it: it would vanish while the services drain their connections to it (neither
    # ignoring nor blocking SIGINT helps, Go takes it back). In a group of its own it stops
    # last, on the SIGTERM of `stop()`.
    server = EmbeddedNats(data_dir, port=chosen, own_process_group=True, server_auth=server_auth)
    try:
        server.start()
    except DataDirInUseError as exc:
        say(f"{exc}: is another `kapok up` running on it? Stop it, or use --data-dir DIR")
        return None
    except (PortInUseError, NatsStartError, FileNotFoundError) as exc:
        say(f"nats-server did not start: {exc}")
        return None
    say(f"nats-server {server.url} (pid {server.pid}), JetStream in {server.nats_dir}")
    return server


def safe_url(url: str) -> str:
    from sqlalchemy.engine import make_url

    return make_url(url).render_as_string(hide_password=True)


async def postgres_databases(url: str, services: Sequence[str]) -> dict[str, str]:
    """Each service owns its database, as with SQLite files: ``<database>_<service>`` on the
    server of ``url``, created when missing (connecting to ``url``'s own database to do it).
    One shared database would mix the services' event logs."""
    import asyncpg
    from sqlalchemy.engine import make_url

    base = make_url(url)
    if base.get_backend_name() != "postgresql":
        raise ValueError("not a PostgreSQL URL (postgresql+asyncpg://user@host:5432/name)")
    if not base.database:
        raise ValueError("name a database, e.g. postgresql+asyncpg://user@host:5432/kapok")
    conn = await asyncpg.connect(
        host=base.host,
        port=base.port,
        user=base.username,
        password=base.password,
        database=base.database,
        timeout=10,
    )
    out: dict[str, str] = {}
    try:
        for name in services:
            database = f"{base.database}_{name}"
            known = await conn.fetchval("SELECT 1 FROM pg_database WHERE datname = $1", database)
            if not known:
                # template0: nobody connects to it, so CREATE DATABASE cannot fail with
                # "source database is being accessed by other users".
                await conn.execute(f'CREATE DATABASE "{database}" TEMPLATE template0')
            out[name] = base.set(database=database).render_as_string(hide_password=False)
    finally:
        await conn.close()
    return out


def _free_port_outside(avoid: Collection[int]) -> int:
    # nats-server's own choice (port 0) could land on a service's port chosen moments ago.
    while True:
        with socket.socket() as sock:
            sock.bind((HOST, 0))
            port = int(sock.getsockname()[1])
        if port not in avoid:
            return port


async def up(
    *,
    data_dir: Path,
    ports: dict[str, int],
    nats_url: str | None,
    nats_port: int,
    postgres_url: str | None,
    ready: Callable[[dict[str, int]], object] | None = None,
    quiet_access: bool = False,
    no_auth: bool = False,
    cluster: int = 1,
) -> int:
    """Run until SIGINT/SIGTERM. ``ready`` is called (with the ports) once every service
    answers; `kapok demo` plays the scenario from there."""

    def say(message: str) -> None:
        print(f"kapok up: {message}", flush=True)

    from kapok import cluster as clustered

    service_of: dict[str, str] = {}
    names = dashboard_order(list(ports))  # the services, once each
    if not 1 <= cluster <= 5:
        say(f"--cluster {cluster}: 1 to 5 nodes (a stream has at most 5 replicas); 3 is usual")
        return 2
    if cluster > 1:
        if nats_url is not None:
            say("--cluster starts its own nats-servers: it does not go with --nats")
            return 2
        # Every process, this one included (it provisions): N replicas of each stream.
        os.environ["KAPOK_STREAM_REPLICAS"] = str(cluster)
        ports, service_of = clustered.instances(ports)
    services = dashboard_order(list(ports))
    problems = taken_ports(ports)
    if problems:
        for problem in problems:
            say(problem)
        return 2
    data_dir = data_dir.resolve()  # noqa: ASYNC240 - before anything runs
    # Everything this tree writes (databases, WAL files, the bus's store, keys, tokens) is
    # its owner's alone: 0600 files in 0700 directories, the services and nats-server too.
    os.umask(0o077)
    data_dir.mkdir(parents=True, exist_ok=True)
    data_dir.chmod(0o700)

    env_of: dict[str, dict[str, str]] = {}
    if postgres_url:
        try:
            urls = await postgres_databases(postgres_url, names)
        except Exception as error:  # its message names what is wrong: say it and stop
            say(f"--postgres {safe_url(postgres_url)}: {error}")
            return 2
        env_of = {name: {"KAPOK_DATABASE_URL": url} for name, url in urls.items()}
        say(f"PostgreSQL: one database per service, {', '.join(map(safe_url, urls.values()))}")

    # Here, not at the top: they import the services, which every `kapok` command would pay.
    from kapok.identities import embedded_auth, provision_as_admin, signed_in_as
    from shared import signing
    from shared.bus.auth import ADMIN, Keyring
    from shared.bus.naming import Naming
    from shared.settings import PRODUCERS, Settings

    settings = Settings()
    keyring = Keyring.of(data_dir)
    server: EmbeddedNats | None = None
    nodes: list[EmbeddedNats] = []
    if cluster > 1:
        found = await clustered.start_cluster(
            data_dir,
            cluster,
            nats_port,
            say,
            avoid=set(ports.values()),
            server_auth=embedded_auth(keyring, Naming.of(settings)),
        )
        if found is None:
            return 2
        nodes = found
        server = nodes[0]  # the one provisioning and `kapok status`'s first row use
        nats_url = server.url
        say(f"identities in {keyring.directory}: anonymous connections are refused")
        say(f"JetStream cluster of {cluster}: streams and KV buckets with {cluster} replicas")
    elif nats_url is None:
        # Always with Kapok's identities: the keys are made on the first start, and nobody
        # without one gets in (README, "The bus's identities").
        server_auth = embedded_auth(keyring, Naming.of(settings))
        # Blocking on purpose (about a second, nothing else runs yet): see start_nats.
        server = start_nats(
            data_dir, nats_port, say, avoid=set(ports.values()), server_auth=server_auth
        )
        if server is None:
            return 2
        nats_url = server.url
        say(f"identities in {keyring.directory}: anonymous connections are refused")
    else:
        say(f"NATS at {nats_url} (no embedded server)")
    if keyring.exists():
        # The administrator provisions before any service starts: the services' identities
        # may only check the streams. (An external server without Kapok's keys in the data
        # directory: every service provisions for itself, as the server lets anyone.)
        admin = signed_in_as(settings.model_copy(update={"nats_url": nats_url}), keyring, ADMIN)
        try:
            await provision_as_admin(admin)
        except Exception as error:  # its message names what is wrong: say it and stop
            say(f"provisioning the streams as {ADMIN} at {nats_url} failed: {error!r}")
            if server is not None:
                await asyncio.to_thread(server.stop)
            return 2
        for name in names:
            seed = {"KAPOK_NATS_NKEY_SEED": str(keyring.seed_path(name))}
            env_of[name] = {**env_of.get(name, {}), **seed}
    for child, name in service_of.items():
        # Each instance its database (its service's) and seed, and a name of its own.
        instance = child if child != name else f"{name}-1"
        env_of[child] = {**env_of.get(name, {}), "KAPOK_INSTANCE": instance}
    if no_auth:
        say("SIGN-IN IS OFF (--no-auth): anyone who can reach these ports may record, correct")
        say("and read everything. For local experiments only; never on a shared machine.")
    else:
        from kapok.tokens import first_tokens

        on = settings.model_copy(update={"nats_url": nats_url, "data_dir": data_dir})
        if keyring.exists():
            on = signed_in_as(on, keyring, ADMIN)
        try:
            await first_tokens(on, say)
            if ready is not None:  # `kapok demo` plays the scenario from here, signed in
                os.environ.setdefault("KAPOK_DATA_DIR", str(data_dir))
        except Exception as error:  # its message names what is wrong: say it and stop
            say(f"making the first tokens at {nats_url} failed: {error!r}")
            if server is not None:
                await asyncio.to_thread(server.stop)
            return 2
    # Every producer's signing key before anything starts: reporting checks each event's
    # signature from its first (README, "Signed history").
    signing.ensure_keys(settings.model_copy(update={"data_dir": data_dir}).signing_path, PRODUCERS)
    env = {**os.environ, "KAPOK_NATS_URL": nats_url, "KAPOK_DATA_DIR": str(data_dir)}
    env["KAPOK_AUTH"] = "0" if no_auth else "1"
    if keyring.exists():
        env.pop("KAPOK_NATS_CREDS", None)  # each service signs in with its own seed (env_of)
    # Unbuffered, so each service's log lines reach the terminal as they are written.
    env["PYTHONUNBUFFERED"] = "1"

    supervisor = Supervisor(
        services,
        ports,
        env,
        data_dir,
        extra_pids={"nats": server.pid} if server and server.pid else {},
        nats_url=nats_url,
        env_of=env_of,
        quiet_access=quiet_access,
        service_of=service_of,
        nats_url_for=clustered.live_url(nodes) if nodes else None,
    )
    if nodes:
        supervisor.extra_pids["nats_nodes"] = clustered.nodes(nodes)
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, supervisor.stop)
    watcher: asyncio.Task[None] | None = None
    keeper: asyncio.Task[None] | None = None
    keepers: list[asyncio.Task[None]] = []
    if nodes:

        def restarted(index: int) -> Callable[[int], None]:
            def tell(pid: int) -> None:
                if index == 0:
                    supervisor.extra_pids["nats"] = pid
                supervisor.started("nats_nodes", clustered.nodes(nodes))

            return tell

        for index, node in enumerate(nodes):
            label = clustered.node_name(index)
            kept = NatsKeeper(node, say, restarted(index), label=label)
            keepers.append(asyncio.create_task(kept.run(supervisor.stopping)))
    elif server is not None:
        nats_keeper = NatsKeeper(server, say, lambda pid: supervisor.started("nats", pid))
        keeper = asyncio.create_task(nats_keeper.run(supervisor.stopping))
    try:
        for name in services:
            label = "dashboard" if name == "reporting" else name
            where = "/" if name == "reporting" else "/docs"
            say(f"{label:<{max(9, *map(len, services))}} http://{HOST}:{ports[name]}{where}")

        async def announce() -> None:
            paths = {name: "/openapi.json" for name in services}
            oks = await asyncio.gather(*(wait_http(ports[n], paths[n], 60.0) for n in services))
            slow = [n for n, ok in zip(services, oks, strict=True) if not ok]
            if slow:
                say(f"not answering after 60s: {', '.join(slow)} (see their logs above)")
                return
            say(
                f"ready: dashboard http://{HOST}:{ports['reporting']}/ (printable report: "
                f"/api/report?format=html)"
                if "reporting" in ports
                else "ready"
            )
            if ready is not None:
                result = ready(ports)
                if asyncio.iscoroutine(result):
                    await result

        watcher = asyncio.create_task(announce())
        await supervisor.run()
    finally:
        for task in (watcher, keeper, *keepers):
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(signum)
        if nodes:
            # Last: the services have drained their connections to them.
            await asyncio.gather(*(asyncio.to_thread(node.stop) for node in nodes))
            say(f"the {len(nodes)} nats-servers stopped")
        elif server is not None:
            # Last: the services have drained their connections to it.
            await asyncio.to_thread(server.stop)
            say("nats-server stopped")
    say("stopped; the state stays in " + str(data_dir))
    return 0


# ---------------------------------------------------------------------------- the command


def add_arguments(parser: object, services: Sequence[str]) -> None:
    """The flags of `kapok up` (and `kapok demo`): one ``--<service>-port`` per service."""
    import argparse

    assert isinstance(parser, argparse.ArgumentParser)
    parser.add_argument("--data-dir", type=Path, default=None, help="default: $KAPOK_DATA_DIR")
    parser.add_argument(
        "--nats", default=None, metavar="URL", help="use this NATS server (no embedded one)"
    )
    parser.add_argument(
        "--nats-port",
        type=int,
        default=NATS_DEFAULT_PORT,
        help="the embedded server's port when free, else any free port (0: any free port)",
    )
    parser.add_argument(
        "--postgres", default=None, metavar="URL", help="SQLAlchemy URL instead of SQLite files"
    )
    parser.add_argument(
        "--cluster",
        type=int,
        default=1,
        metavar="N",
        help="N nats-servers as one JetStream cluster (N replicas) and two instances of "
        "each service, the second on its port + 10 (README, kapok up --cluster 3)",
    )
    parser.add_argument(
        "--no-auth",
        action="store_true",
        help="sign-in off: anyone who reaches the ports may do anything (local experiments only)",
    )
    # Defaults resolved in `run`: importing every service here would slow down every
    # `kapok` command, `kapok serve` included.
    for name in services:
        parser.add_argument(
            f"--{name}-port", type=int, default=None, metavar="N", help=f"{name}'s HTTP port"
        )


def running(data_dir: Path) -> dict[str, object]:
    """What the `kapok up` on ``data_dir`` wrote of itself (``{}`` if none runs there)."""
    try:
        body = json.loads((data_dir / PIDS_FILE).read_text())
        os.kill(int(body["up"]), 0)  # left behind by a `kapok up` killed outright?
    except (OSError, ValueError, KeyError, TypeError):
        return {}
    return body if isinstance(body, dict) else {}


def ports_from(args: object, services: Sequence[str]) -> dict[str, int]:
    """``--<service>-port`` flags, else each service's DEFAULT_PORT."""
    defaults = default_ports(services)
    return {n: getattr(args, f"{n}_port", None) or defaults[n] for n in services}


def run(args: object, services: Sequence[str], ready: Callable[..., object] | None = None) -> int:
    from shared.settings import Settings

    ports = ports_from(args, services)
    data_dir = getattr(args, "data_dir", None) or Settings().data_dir
    return asyncio.run(
        up(
            data_dir=data_dir,
            ports=ports,
            nats_url=getattr(args, "nats", None),
            nats_port=int(getattr(args, "nats_port", NATS_DEFAULT_PORT)),
            # A URL in the environment would give every service the same database.
            postgres_url=getattr(args, "postgres", None) or os.environ.get("KAPOK_DATABASE_URL"),
            ready=ready,
            quiet_access=ready is not None,
            no_auth=bool(getattr(args, "no_auth", False)),
            cluster=int(getattr(args, "cluster", 1) or 1),
        )
    )
