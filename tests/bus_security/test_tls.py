"""An operator's nats-server that speaks only TLS and verifies client certificates: a process
given Kapok's TLS settings (CA, certificate, key) and its seed signs in; without its
certificate it is turned away, whatever key it holds."""

from __future__ import annotations

import asyncio
import json
import shutil
import subprocess
import time
from pathlib import Path

import nats
import pytest

from kapok.identities import embedded_auth, signed_in_as
from shared.bus.auth import ADMIN, Keyring
from shared.bus.embedded import find_binary
from shared.bus.naming import Naming
from shared.runtime import connect_options
from shared.settings import Settings

pytestmark = pytest.mark.skipif(shutil.which("openssl") is None, reason="needs openssl")


def openssl(*args: str | Path, cwd: Path) -> None:
    subprocess.run(["openssl", *map(str, args)], cwd=cwd, check=True, capture_output=True)


def certificates(at: Path) -> None:
    """A CA, and the server's (for 127.0.0.1) and a client's certificates signed by it."""
    openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=kapok-ca",
            "-keyout", "ca.key", "-out", "ca.pem", cwd=at)  # fmt: skip
    (at / "san.ext").write_text("subjectAltName=IP:127.0.0.1\n")
    for name in ("server", "client"):
        openssl("req", "-newkey", "rsa:2048", "-nodes", "-subj", f"/CN={name}",
                "-keyout", f"{name}.key", "-out", f"{name}.csr", cwd=at)  # fmt: skip
        openssl("x509", "-req", "-in", f"{name}.csr", "-CA", "ca.pem", "-CAkey", "ca.key",
                "-CAcreateserial", "-days", "1", "-extfile", "san.ext", "-out", f"{name}.pem",
                cwd=at)  # fmt: skip


def test_a_process_signs_in_over_tls_with_its_certificate_and_its_key(tmp_path: Path) -> None:
    certificates(tmp_path)
    keyring = Keyring.of(tmp_path)
    auth = embedded_auth(keyring, Naming())
    tls = {
        "cert_file": str(tmp_path / "server.pem"),
        "key_file": str(tmp_path / "server.key"),
        "ca_file": str(tmp_path / "ca.pem"),
        "verify": True,
    }
    config = tmp_path / "tls.conf"
    config.write_text(
        f"host: 127.0.0.1\nport: -1\nports_file_dir: {json.dumps(str(tmp_path))}\n"
        f"jetstream {{ store_dir: {json.dumps(str(tmp_path / 'js'))} }}\n"
        f"tls {json.dumps(tls)}\n{auth.block}\n"
    )
    server = subprocess.Popen([str(find_binary()), "-c", str(config)], stderr=subprocess.DEVNULL)
    try:
        url = f"nats://127.0.0.1:{port_of(server, tmp_path)}"
        settings = signed_in_as(Settings(nats_url=url), keyring, ADMIN)
        with_tls = settings.model_copy(
            update={
                "nats_tls_ca": tmp_path / "ca.pem",
                "nats_tls_cert": tmp_path / "client.pem",
                "nats_tls_key": tmp_path / "client.key",
            }
        )
        assert asyncio.run(account(url, with_tls)) >= 0
        only_ca = settings.model_copy(update={"nats_tls_ca": tmp_path / "ca.pem"})
        with pytest.raises((nats.errors.Error, OSError, asyncio.TimeoutError)):
            asyncio.run(account(url, only_ca))
    finally:
        server.terminate()
        server.wait(10)


async def account(url: str, settings: Settings) -> int:
    """The number of streams the connection's account holds: it got in and JetStream answers."""
    nc = await nats.connect(
        url, allow_reconnect=False, max_reconnect_attempts=0, connect_timeout=3,
        **connect_options(settings, ADMIN),
    )  # fmt: skip
    try:
        return (await nc.jetstream().account_info()).streams
    finally:
        await nc.close()


def port_of(server: subprocess.Popen[bytes], directory: Path) -> int:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        assert server.poll() is None, "nats-server exited"
        for ports in directory.glob("*.ports"):
            try:
                with_port = json.loads(ports.read_text())["nats"][0]
            except ValueError:  # caught half-written
                continue
            return int(with_port.rsplit(":", 1)[1])
        time.sleep(0.05)
    raise AssertionError("nats-server wrote no ports file")
