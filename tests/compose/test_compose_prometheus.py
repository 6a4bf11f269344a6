"""compose's Prometheus: its config and every rule file it loads pass the real promtool, and
the cluster's rules (instances, leases) fire when they should."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PROMETHEUS = ROOT / "deploy" / "prometheus"


def promtool() -> str:
    binary = shutil.which("promtool")
    if binary is None:
        pytest.fail("promtool not found: install the Debian package prometheus")
    return binary


def test_the_config_with_its_rules_and_token_passes_promtool(tmp_path: Path) -> None:
    # As compose mounts them: the rule files beside the config (docs/alerts.yml among them),
    # the token where the secret would be (promtool checks that the file is there).
    token = tmp_path / "prometheus_token"
    token.write_text("kapok_checked_only-by-promtool-here\n")
    config = (PROMETHEUS / "prometheus.yml").read_text()
    assert config.count("/run/secrets/prometheus_token") == 4  # one per job
    (tmp_path / "prometheus.yml").write_text(
        config.replace("/run/secrets/prometheus_token", str(token))
    )
    shutil.copy(PROMETHEUS / "alerts-cluster.yml", tmp_path / "alerts-cluster.yml")
    shutil.copy(ROOT / "docs" / "alerts.yml", tmp_path / "alerts.yml")
    checked = subprocess.run(
        [promtool(), "check", "config", str(tmp_path / "prometheus.yml")],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert "SUCCESS: 2 rule files found" in checked.stdout


def test_the_cluster_rules_fire_when_they_should(tmp_path: Path) -> None:
    shutil.copy(PROMETHEUS / "alerts-cluster.yml", tmp_path / "alerts-cluster.yml")
    shutil.copy(Path(__file__).with_name("alerts_cluster_test.yml"), tmp_path / "test.yml")
    tested = subprocess.run(
        [promtool(), "test", "rules", str(tmp_path / "test.yml")],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert tested.returncode == 0, tested.stdout + tested.stderr
