"""Kapok as a user installs it: the wheel, in a virtual environment of its own, outside the
checkout.

Given the wheel built from the repository's files and installed with its dependencies into a
fresh virtual environment (no PYTHONPATH, the working directory outside the checkout, every
module imported from that environment's site-packages), when `kapok up` runs from there on a
fresh data directory, then the dashboard page, its script and style, a report and /metrics
are served, and one Ctrl-C stops everything.

The dependencies come from wheels kept in .ci/cache/wheels (fetched or built once, again only
when the dependencies change), the wheel is built without build isolation: about 20 s in all.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import subprocess
import sys
import sysconfig
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from harness.processes import descendants, free_port, until_gone, wait_for

REPO = Path(__file__).resolve().parents[2]
STATIC = REPO / "services" / "reporting" / "entrypoints" / "static"
WHEELS = REPO / ".ci" / "cache" / "wheels"
SERVICES = ("reporting", "hotline", "aid", "donation")


@pytest.fixture(scope="module")
def venv(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A fresh virtual environment with Kapok's wheel and its dependencies installed."""
    work = tmp_path_factory.mktemp("ship")
    wheel = build_wheel(copy_of_the_repository(work / "src"), work / "dist")
    env = work / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", env], check=True)
    install(wheel, env)
    yield env


def copy_of_the_repository(into: Path) -> Path:
    """The files git knows (committed or about to be), without tests and benchmarks: what a
    clone holds, and no build directory or egg-info of a developer's."""
    listed = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=REPO,
        capture_output=True,
        check=True,
    ).stdout.decode()
    for name in filter(None, listed.split("\0")):
        source = REPO / name
        if name.startswith(("tests/", "bench/", ".ci/")) or not source.is_file():
            continue
        (into / name).parent.mkdir(parents=True, exist_ok=True)
        (into / name).write_bytes(source.read_bytes())
    return into


def build_wheel(source: Path, into: Path) -> Path:
    pip_wheel = [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation"]
    subprocess.run([*pip_wheel, "-w", into, source], check=True)
    (wheel,) = into.glob("kapok-*.whl")
    return wheel


def install(wheel: Path, env: Path) -> None:
    """The wheel and its dependencies into ``env``, from the kept wheels; those downloaded
    first where one is missing."""
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check"]
    offline = [*pip, "--python", env / "bin" / "python", "install", "-q", "--no-index"]
    offline += ["--find-links", WHEELS, wheel]
    if subprocess.run(offline, capture_output=True).returncode == 0:
        return
    # `pip wheel`, not `pip download`: a dependency published only as source is built once.
    subprocess.run([*pip, "wheel", "-q", "-w", WHEELS, wheel], check=True)
    (WHEELS / wheel.name).unlink(missing_ok=True)  # Kapok's own wheel is built each time
    subprocess.run(offline, check=True)


def user_environment(env: Path) -> dict[str, str]:
    """A terminal's environment with the virtual environment on PATH, and nothing that would
    lead Python to the checkout or Kapok to the developer's settings."""
    kept = {
        k: v for k, v in os.environ.items() if not k.startswith(("KAPOK_", "PYTHON", "VIRTUAL_ENV"))
    }
    path = [p for p in kept.get("PATH", "").split(os.pathsep) if not p.startswith(str(REPO))]
    return {**kept, "PATH": os.pathsep.join([str(env / "bin"), *path])}


def test_the_installed_modules_come_from_the_environment_not_the_checkout(
    venv: Path, tmp_path: Path
) -> None:
    where = subprocess.run(
        [
            venv / "bin" / "python",
            "-c",
            "import json, sys, sysconfig, kapok.cli, shared.compat.natspy, "
            "services.reporting.entrypoints.dashboard as d; "
            "print(json.dumps({'files': [kapok.cli.__file__, shared.compat.natspy.__file__, "
            "d.__file__], 'path': sys.path, 'site': sysconfig.get_path('purelib')}))",
        ],
        cwd=tmp_path,
        env=user_environment(venv),
        capture_output=True,
        text=True,
        check=True,
    )
    found = json.loads(where.stdout)
    assert found["site"].startswith(str(venv))
    assert all(file.startswith(found["site"]) for file in found["files"]), found["files"]
    assert not [entry for entry in found["path"] if entry.startswith(str(REPO))]
    assert sysconfig.get_path("purelib") != found["site"]


async def test_kapok_up_from_the_wheel_serves_the_dashboard_a_report_and_metrics(
    venv: Path, tmp_path: Path
) -> None:
    ports = {name: free_port() for name in SERVICES}
    log = tmp_path / "up.log"
    flags = [f"--{name}-port={port}" for name, port in ports.items()]
    with log.open("wb") as out:
        up = await asyncio.create_subprocess_exec(
            *(venv / "bin" / "kapok", "up", "--data-dir", tmp_path / "data", "--nats-port=0"),
            *flags,
            cwd=tmp_path,
            env=user_environment(venv),
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # as a terminal runs a job: Ctrl-C reaches its group
        )
    try:
        async with httpx.AsyncClient(
            base_url=f"http://127.0.0.1:{ports['reporting']}", timeout=5
        ) as http:

            async def ready() -> bool:
                said = log.read_bytes()
                assert up.returncode is None and b" exited with code" not in said, said.decode()
                return b"ready: dashboard" in said

            await wait_for("kapok up ready", ready, 60)
            page = await http.get("/")
            linked = re.findall(r'(?:src|href)="(/static/[^"]+)"', page.text)
            assets = {path: await http.get(path) for path in linked}
            # Signed in with the tokens the first start made: an administrator's reads the
            # report, ops' (Prometheus's) the metrics; without one, neither answers.
            auth = tmp_path / "data" / "auth"
            unsigned = await http.get("/api/report", params={"as_of": "2020-03-07"})
            admin = {"Authorization": f"Bearer {(auth / 'admin.token').read_text().strip()}"}
            ops = {"Authorization": f"Bearer {(auth / 'ops.token').read_text().strip()}"}
            report = await http.get("/api/report", params={"as_of": "2020-03-07"}, headers=admin)
            metrics = await http.get("/metrics", headers=ops)
        started = descendants(up.pid)
    finally:
        os.killpg(up.pid, signal.SIGINT)
        try:
            async with asyncio.timeout(60):
                code = await up.wait()
        except TimeoutError:
            os.killpg(up.pid, signal.SIGKILL)
            raise
    assert page.status_code == 200 and "text/html" in page.headers["content-type"]
    assert sorted(linked) == ["/static/dashboard.css", "/static/dashboard.js"]
    for path, answer in assets.items():
        assert answer.status_code == 200, path
        assert answer.content == (STATIC / Path(path).name).read_bytes(), path
    assert unsigned.status_code == 401
    assert report.status_code == 200
    assert report.json()["figures"]["aid_actions"] == 0
    assert metrics.status_code == 200 and "kapok_" in metrics.text
    assert code == 0, log.read_text()
    assert len(started) >= 5  # nats-server and the four services
    assert await until_gone(started), log.read_text()
