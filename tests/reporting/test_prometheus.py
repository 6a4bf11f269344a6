"""A real Prometheus (Debian package prometheus) scrapes the reporting service's /metrics
with its own ``ops`` token (its ``authorization`` config, the token in a file): the target
is up, and a call recorded on the bus shows in its query API on a later scrape; the same
target scraped without the token is down, refused with 401. The example alert rules
(docs/alerts.yml) pass promtool's check and fire when they should."""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import subprocess
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from harness import signin
from harness.waits import free_port, until
from reporting_parts import caught_up, producers
from reporting_stories import at, call
from test_dashboard import served

from services.reporting.main import running
from shared.settings import Settings

JOB = "kapok_reporting"
ANONYMOUS = "kapok_reporting_without_token"  # the same target, scraped with no token
ALERTS = Path(__file__).resolve().parents[2] / "docs" / "alerts.yml"
CONFIG = """\
global:
  scrape_interval: 1s
  evaluation_interval: 1s
scrape_configs:
  - job_name: {job}
    scrape_interval: 1s
    scrape_timeout: 1s
    authorization:
      type: Bearer
      credentials_file: {credentials}
    static_configs:
      - targets: ["{target}"]
  - job_name: {anonymous}
    scrape_interval: 1s
    scrape_timeout: 1s
    static_configs:
      - targets: ["{target}"]
"""


@contextlib.asynccontextmanager
async def prometheus(target: str, directory: Path, credentials: Path) -> AsyncIterator[str]:
    """A Prometheus scraping ``target`` (host:port) every second, as `JOB` with the token in
    the file ``credentials`` and as `ANONYMOUS` without; yields its base URL."""
    binary = shutil.which("prometheus")
    if binary is None:
        pytest.fail(
            "prometheus not found: install the Debian package prometheus "
            "(apt-get install -y prometheus; ./test.sh does this as root)"
        )
    config = directory / "prometheus.yml"
    config.write_text(
        CONFIG.format(job=JOB, anonymous=ANONYMOUS, target=target, credentials=credentials)
    )
    listen = f"127.0.0.1:{free_port()}"
    log = (directory / "prometheus.log").open("wb")
    process = await asyncio.create_subprocess_exec(
        binary,
        f"--config.file={config}",
        f"--web.listen-address={listen}",
        f"--storage.tsdb.path={directory / 'tsdb'}",
        stdout=log,
        stderr=log,
    )
    try:
        yield f"http://{listen}"
    finally:
        if process.returncode is None:
            process.terminate()
            try:
                await asyncio.wait_for(process.wait(), 10)
            except TimeoutError:
                process.kill()
                await process.wait()
        log.close()


async def query_until(base: str, query: str, want: float, directory: Path) -> None:
    """Ask Prometheus's query API until ``query`` has the value ``want`` (30 s at most)."""
    seen: object = None
    async with httpx.AsyncClient(timeout=5) as client:

        async def has_it() -> bool:
            nonlocal seen
            response = await client.get(f"{base}/api/v1/query", params={"query": query})
            if response.status_code != 200:  # 503 while it starts
                return False
            answer = response.json()
            assert answer["status"] == "success", answer
            seen = answer["data"]["result"]
            return bool(seen) and float(seen[0]["value"][1]) == want  # type: ignore[index]

        try:
            await until(f"{query} = {want}", has_it, 30, every=0.25)
        except AssertionError:
            log = (directory / "prometheus.log").read_text(errors="replace")[-2000:]
            raise AssertionError(
                f"{query}: not {want} within 30 s; last seen {seen!r}\n{log}"
            ) from None


async def scrape_error(base: str, job: str) -> str:
    """What Prometheus last said of ``job``'s scrape (its targets API)."""
    async with httpx.AsyncClient(timeout=5) as client:
        targets = (await client.get(f"{base}/api/v1/targets")).json()["data"]["activeTargets"]
    return next(t["lastError"] for t in targets if t["labels"]["job"] == job)


async def test_a_real_prometheus_scrapes_the_reporting_metrics_with_its_own_token(
    settings: Settings, tmp_path: Path
) -> None:
    gate = signin.gate()
    # As an operator would give it: an ops token in a file only Prometheus's user reads.
    credentials = tmp_path / "prometheus.token"
    credentials.touch(mode=0o600)
    credentials.write_text(signin.grant(gate, "ops") + "\n")
    async with producers(settings, tmp_path) as bus:
        await bus.record("hotline", [call(i, at(1), group="child") for i in range(3)])
        async with running(settings, f"sqlite+aiosqlite:///{tmp_path}/reporting.db") as parts:
            await caught_up(parts, await bus.heads())
            async with (
                served(parts, gate) as site,
                prometheus(site.base[len("http://") :], tmp_path, credentials) as p,
            ):
                await query_until(p, f'up{{job="{JOB}"}}', 1, tmp_path)
                calls = f'sum(kapok_reporting_calls_received_total{{job="{JOB}"}})'
                await query_until(p, calls, 3, tmp_path)
                await query_until(
                    p, f'kapok_reporting_consumer_lag{{job="{JOB}",stream="hotline"}}', 0, tmp_path
                )
                # Counted after Prometheus started: a later scrape sees the new total.
                await bus.record("hotline", [call(10, at(2)), call(11, at(2))])
                await query_until(p, calls, 5, tmp_path)
                await query_until(
                    p,
                    f'kapok_reporting_calls_received_total{{job="{JOB}",group="child"}}',
                    3,
                    tmp_path,
                )
                # Without the token, the same target is down: its scrapes refused, 401.
                await query_until(p, f'up{{job="{ANONYMOUS}"}}', 0, tmp_path)
                assert "401" in await scrape_error(p, ANONYMOUS)
                assert await scrape_error(p, JOB) == ""
                assert ("/metrics?", False) in site.requests
                assert ("/metrics?", True) in site.requests


def promtool() -> str:
    binary = shutil.which("promtool")
    if binary is None:
        pytest.fail("promtool not found: install the Debian package prometheus")
    return binary


ALERT_CASES = """\
rule_files: [{rules}]
evaluation_interval: 1m
tests:
  - interval: 1m
    input_series:
      - series: 'kapok_reporting_dead_letters_total{{job="{job}",stream="hotline"}}'
        values: "2x10"
      - series: 'kapok_reporting_dead_letters_total{{job="{job}",stream="aid"}}'
        values: "0x10"
      - series: 'kapok_reporting_chain_breaks_total{{job="{job}",stream="aid"}}'
        values: "0x10"
      - series: 'kapok_reporting_forged_total{{job="{job}",stream="hotline"}}'
        values: "0 0 1x10"
      - series: 'kapok_reporting_consumer_lag{{job="{job}",stream="aid"}}'
        values: "50x15"
      - series: 'kapok_reporting_consumer_checkpoint{{job="{job}",stream="aid"}}'
        values: "7x15"
      - series: 'kapok_reporting_consumer_lag{{job="{job}",stream="hotline"}}'
        values: "50+0x4 0x10"
      - series: 'kapok_reporting_consumer_checkpoint{{job="{job}",stream="hotline"}}'
        values: "1+10x15"
    alert_rule_test:
      - eval_time: 2m
        alertname: KapokDeadLetters
        exp_alerts:
          - exp_labels: {{severity: ticket, job: {job}, stream: hotline}}
            exp_annotations:
              summary: "2 events from hotline were dead-lettered, not counted"
              description: "The live figures leave them out. /api/health names the last \\
                reason; the DEADLETTER stream holds each message with its reason."
      - eval_time: 2m
        alertname: KapokChainBreaks
        exp_alerts: []
      - eval_time: 1m
        alertname: KapokForgedEvents
        exp_alerts: []
      - eval_time: 3m
        alertname: KapokForgedEvents
        exp_alerts:
          - exp_labels: {{severity: page, job: {job}, stream: hotline}}
            exp_annotations:
              summary: "hotline: a message not signed by its source's key was refused"
              description: "Someone with access to the bus published as a producer without \\
                its key; it was not folded. The producer's relay has stopped on it: see \\
                README, 'When a relay stops', and run `kapok audit replay`."
      - eval_time: 12m
        alertname: KapokConsumerStalled
        exp_alerts:
          - exp_labels: {{severity: page, job: {job}, stream: aid}}
            exp_annotations:
              summary: "reporting stopped folding aid (50 events waiting)"
"""


def test_the_example_alert_rules_are_valid_and_fire_on_dead_letters_and_a_stalled_source(
    tmp_path: Path,
) -> None:
    checked = subprocess.run(
        [promtool(), "check", "rules", str(ALERTS)], capture_output=True, text=True, timeout=60
    )
    assert checked.returncode == 0, checked.stdout + checked.stderr
    # Given a consumer with dead letters and one whose checkpoint stopped while events wait
    # (and one that kept folding), the alerts that fire are exactly those.
    cases = tmp_path / "alerts_test.yml"
    cases.write_text(ALERT_CASES.format(rules=ALERTS, job=JOB))
    tested = subprocess.run(
        [promtool(), "test", "rules", str(cases)], capture_output=True, text=True, timeout=60
    )
    assert tested.returncode == 0, tested.stdout + tested.stderr
