"""The audit's per-event check without a bus: the fast path (decode once, re-hash the bytes
minus their hash) and the exact path (re-canonicalise) agree on every finding, and the
replay keeps per-day totals only, not one counter per dimension."""

from __future__ import annotations

import orjson
from reporting_stories import at, call, chain, funds_received

from services.reporting.audit import (
    DayKey,
    Replay,
    SourceAudit,
    _check_and_fold,
)
from services.reporting.domain.fold import totals
from services.reporting.domain.report import figures
from shared.contracts.envelope import hashes_to


def audit_of(source: str, messages: list[bytes]) -> tuple[SourceAudit, Replay]:
    audit, result = SourceAudit(source), Replay()
    for seq, data in enumerate(messages, start=1):
        if audit.broken is None:
            _check_and_fold(audit, result.fold, seq, data)
        result.merge()
    return audit, result


def test_canonical_bytes_pass_the_fast_check_and_reformatted_ones_do_not() -> None:
    [raw] = chain("hotline", [call(1, at(1))])
    body = orjson.loads(raw)
    assert hashes_to(raw, body["hash"])
    assert not hashes_to(orjson.dumps(body, option=orjson.OPT_INDENT_2), body["hash"])
    assert not hashes_to(raw.replace(b"call:1", b"call:2"), body["hash"])


def test_an_intact_event_in_other_bytes_than_canonical_still_counts() -> None:
    """Re-serialised (same content, indented): the exact check re-canonicalises and
    accepts it, as the audit always did; the fast path only saves work."""
    honest = chain("hotline", [call(i, at(1)) for i in range(3)])
    pretty = orjson.dumps(
        orjson.loads(honest[1]), option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS
    )
    audit, result = audit_of("hotline", [honest[0], pretty, honest[2]])
    assert audit.broken is None and audit.folded == 3
    assert figures(totals(result.days))["services_given"] == 3


def test_an_altered_event_is_named_by_the_exact_check_and_stops_the_fold() -> None:
    honest = chain("donation", [funds_received(i, at(i), "1.00") for i in range(1, 5)])
    body = orjson.loads(honest[2])
    body["data"]["amount_yuan"] = "9999.00"
    forged = orjson.dumps(body, option=orjson.OPT_SORT_KEYS)
    audit, result = audit_of("donation", [*honest[:2], forged, honest[3]])
    assert audit.broken is not None and "donation position 3" in audit.broken
    assert "altered" in audit.broken
    assert audit.folded == 2
    assert figures(totals(result.days))["funds_raised_yuan"] == "2.00"


def test_an_event_at_the_wrong_position_is_a_broken_chain() -> None:
    honest = chain("hotline", [call(i, at(1)) for i in range(3)])
    audit = SourceAudit("hotline")
    _check_and_fold(audit, Replay().fold, 2, honest[0])  # position 1 at sequence 2
    assert audit.broken is not None and "holds position 1" in audit.broken


def test_the_replay_keeps_one_total_per_metric_and_day() -> None:
    honest = chain("hotline", [call(i, at(1 + i % 3), group=("child", "disabled")[i % 2])
                               for i in range(12)])  # fmt: skip
    _, result = audit_of("hotline", honest)
    assert not result.fold.increments and not result.increments  # merged away, batch by batch
    assert {k for k in result.days if k.metric == "calls_received"} == {
        DayKey("calls_received", at(d).date()) for d in (1, 2, 3)
    }
    assert sum(v for k, v in result.days.items() if k.metric == "calls_received") == 12
