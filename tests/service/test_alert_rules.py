# ruff: noqa: E501 (the rules' test cases: one series a line, as promtool reads them)
"""docs/alerts.yml's rules for the command services' /metrics (shared/service/metrics.py)
fire through promtool when they should, and only then: a stopped relay, a lease held by no
instance or by two, a consumer far behind, dead letters. Series as two instances of a
service expose them under compose (a job per service, an instance per target)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

ALERTS = Path(__file__).resolve().parents[2] / "docs" / "alerts.yml"

CASES = """\
rule_files: [{rules}]
evaluation_interval: 1m
tests:
  - interval: 1m
    input_series:
      # aid: aid-1 relays and consumes; aid-2 stands by. Its relay stops at minute 3.
      - series: 'kapok_relay_stopped{{job="kapok_aid",instance="aid-1:8002",service="aid",kapok_instance="aid-1",stream="AID"}}'
        values: "0 0 0 1x10"
      - series: 'kapok_relay_lag{{job="kapok_aid",instance="aid-1:8002",service="aid",kapok_instance="aid-1",stream="AID"}}'
        values: "0x15"
      - series: 'kapok_relay_standing_by{{job="kapok_aid",instance="aid-1:8002",service="aid",kapok_instance="aid-1",stream="AID"}}'
        values: "0x15"
      # A stand-by's lag is as it last held the lease: no alert of it.
      - series: 'kapok_relay_lag{{job="kapok_aid",instance="aid-2:8002",service="aid",kapok_instance="aid-2",stream="AID"}}'
        values: "5000x15"
      - series: 'kapok_relay_standing_by{{job="kapok_aid",instance="aid-2:8002",service="aid",kapok_instance="aid-2",stream="AID"}}'
        values: "1x15"
      - series: 'kapok_lease_held{{job="kapok_aid",instance="aid-1:8002",service="aid",kapok_instance="aid-1",lease="relay"}}'
        values: "1x15"
      - series: 'kapok_lease_held{{job="kapok_aid",instance="aid-2:8002",service="aid",kapok_instance="aid-2",lease="relay"}}'
        values: "0x15"
      # The consumer's lease: held by nobody from minute 2 (both lost their database).
      - series: 'kapok_lease_held{{job="kapok_aid",instance="aid-1:8002",service="aid",kapok_instance="aid-1",lease="aid-referrals"}}'
        values: "1 1 0x13"
      - series: 'kapok_lease_held{{job="kapok_aid",instance="aid-2:8002",service="aid",kapok_instance="aid-2",lease="aid-referrals"}}'
        values: "0x15"
      # The durable's lag, as both instances see it.
      - series: 'kapok_consumer_lag{{job="kapok_aid",instance="aid-1:8002",service="aid",kapok_instance="aid-1",consumer="aid-referrals",stream="hotline"}}'
        values: "5000x15"
      - series: 'kapok_consumer_lag{{job="kapok_aid",instance="aid-2:8002",service="aid",kapok_instance="aid-2",consumer="aid-referrals",stream="hotline"}}'
        values: "5000x15"
      - series: 'kapok_consumer_dead_letters_total{{job="kapok_aid",instance="aid-1:8002",service="aid",kapok_instance="aid-1",consumer="aid-referrals",stream="hotline"}}'
        values: "0x15"
      # hotline: both instances say they hold the relay's lease from minute 1.
      - series: 'kapok_lease_held{{job="kapok_hotline",instance="hotline-1:8001",service="hotline",kapok_instance="hotline-1",lease="relay"}}'
        values: "1x15"
      - series: 'kapok_lease_held{{job="kapok_hotline",instance="hotline-2:8001",service="hotline",kapok_instance="hotline-2",lease="relay"}}'
        values: "0 1x14"
      - series: 'kapok_consumer_dead_letters_total{{job="kapok_donation",instance="donation-1:8003",service="donation",kapok_instance="donation-1",consumer="donation-aid",stream="aid"}}'
        values: "0 2x14"
    alert_rule_test:
      - eval_time: 2m
        alertname: KapokRelayStopped
        exp_alerts: []
      - eval_time: 4m
        alertname: KapokRelayStopped
        exp_alerts:
          - exp_labels: {{severity: page, job: kapok_aid, instance: "aid-1:8002", service: aid, kapok_instance: aid-1, stream: AID}}
            exp_annotations:
              summary: "aid's relay stopped on AID (aid-1)"
              description: "/api/health says why (relay.stopped). README, 'When a relay stops': find the stranger, `kapok bus repair`, restart the service."
      - eval_time: 10m
        alertname: KapokRelayLagHigh
        exp_alerts: []
      - eval_time: 2m
        alertname: KapokLeaseHeldByNobody
        exp_alerts: []
      - eval_time: 4m
        alertname: KapokLeaseHeldByNobody
        exp_alerts:
          - exp_labels: {{severity: page, job: kapok_aid, service: aid, lease: aid-referrals}}
            exp_annotations:
              summary: "no instance of aid holds its aid-referrals lease"
              description: "Each instance's /api/health names its leases, who holds each and the last error taking it (the database away?); `kapok status` too."
      - eval_time: 4m
        alertname: KapokLeaseHeldTwice
        exp_alerts:
          - exp_labels: {{severity: page, job: kapok_hotline, service: hotline, lease: relay}}
            exp_annotations:
              summary: "2 instances of hotline hold its relay lease"
      - eval_time: 4m
        alertname: KapokServiceConsumerLagHigh
        exp_alerts: []
      - eval_time: 6m
        alertname: KapokServiceConsumerLagHigh
        exp_alerts:
          - exp_labels: {{severity: ticket, job: kapok_aid, service: aid, consumer: aid-referrals, stream: hotline}}
            exp_annotations:
              summary: "aid-referrals is 5000 events behind on hotline"
      - eval_time: 3m
        alertname: KapokServiceDeadLetters
        exp_alerts:
          - exp_labels: {{severity: ticket, job: kapok_donation, service: donation, consumer: donation-aid, stream: aid}}
            exp_annotations:
              summary: "donation-aid: 2 events from aid dead-lettered"
              description: "/api/health names the last reason; the DEADLETTER stream holds each."
"""


def test_the_command_services_alerts_fire_on_a_stopped_relay_a_lost_or_doubled_lease_and_lag(
    tmp_path: Path,
) -> None:
    promtool = shutil.which("promtool")
    if promtool is None:
        pytest.fail("promtool not found: install the Debian package prometheus")
    checked = subprocess.run(
        [promtool, "check", "rules", str(ALERTS)], capture_output=True, text=True, timeout=60
    )
    assert checked.returncode == 0, checked.stdout + checked.stderr
    cases = tmp_path / "alerts_test.yml"
    cases.write_text(CASES.format(rules=ALERTS))
    tested = subprocess.run(
        [promtool, "test", "rules", str(cases)], capture_output=True, text=True, timeout=60
    )
    assert tested.returncode == 0, tested.stdout + tested.stderr
