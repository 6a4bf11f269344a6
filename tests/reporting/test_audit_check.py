"""The audit's reader of one stream without a bus (services/reporting/audit_chain.py): given
these messages at these sequences, then these findings and these figures. The fast path
(decode once, re-hash the bytes minus their hash) and the exact path (re-canonicalise) agree,
and the replay keeps per-day totals only, not one counter per dimension."""

from __future__ import annotations

from collections.abc import Iterator
from decimal import InvalidOperation
from typing import Any

import orjson
import pytest
from reporting_stories import at, call, chain, funds_received

from services.reporting import audit_chain
from services.reporting.audit import DayKey, Replay, _unshowable
from services.reporting.audit_chain import SourceAudit, check_and_fold, settle
from services.reporting.domain.fold import Fold, totals
from services.reporting.domain.report import figures
from shared.contracts.envelope import Envelope, hashes_to

SUBJECT = b"kapok.hotline.CallReceived"


def audit_of(
    source: str, messages: list[bytes], fold: Fold | None = None
) -> tuple[SourceAudit, Replay]:
    audit, result = SourceAudit(source, source.upper()), Replay()
    if fold is not None:
        result.fold = fold
    for seq, data in enumerate(messages, start=1):
        check_and_fold(audit, result.fold, seq, SUBJECT, data)
        result.merge()
    settle(audit)
    return audit, result


def reasons(audit: SourceAudit) -> dict[int, str]:
    return {f.seq: f.reason for f in audit.findings}


def services_given(result: Replay) -> int:
    return int(figures(totals(result.days))["services_given"])


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
    assert audit.findings == [] and audit.folded == 3
    assert services_given(result) == 3


def test_an_altered_event_is_named_and_not_folded_and_the_chain_goes_on() -> None:
    honest = chain("donation", [funds_received(i, at(i), "1.00") for i in range(1, 5)])
    body = orjson.loads(honest[2])
    body["data"]["amount_yuan"] = "9999.00"
    forged = orjson.dumps(body, option=orjson.OPT_SORT_KEYS)
    audit, result = audit_of("donation", [*honest[:2], forged, honest[3]])
    assert list(reasons(audit)) == [3]
    assert "donation position 3" in reasons(audit)[3] and "altered" in reasons(audit)[3]
    assert audit.folded == 3
    assert figures(totals(result.days))["funds_raised_yuan"] == "3.00"


def test_garbage_and_a_repeat_between_events_are_named_and_the_rest_is_folded() -> None:
    honest = chain("hotline", [call(i, at(1)) for i in range(4)])
    messages = [honest[0], b"hello", honest[1], honest[0], honest[2], b'{"a": 1}', honest[3]]
    audit, result = audit_of("hotline", messages)
    assert reasons(audit)[2].startswith("not a Kapok event: not JSON")
    assert "a repeat of a position already read" in reasons(audit)[4]
    assert reasons(audit)[6].startswith("not a Kapok event")
    assert list(reasons(audit)) == [2, 4, 6]
    assert audit.folded == 4 and services_given(result) == 4


def test_another_sources_event_on_the_stream_is_named_and_not_folded() -> None:
    [stray] = chain("donation", [funds_received(1, at(1), "5.00")])
    honest = chain("hotline", [call(i, at(1)) for i in range(2)])
    audit, result = audit_of("hotline", [honest[0], stray, honest[1]])
    assert "another source's event on the hotline stream" in reasons(audit)[2]
    assert audit.folded == 2 and figures(totals(result.days))["funds_raised_yuan"] == "0.00"


def test_an_envelope_that_does_not_link_is_held_and_named_when_the_next_one_links_past_it() -> None:
    honest = chain("hotline", [call(i, at(1)) for i in range(4)])
    [forged] = chain("hotline", [call(99, at(1))], first=3, prev_hash="f" * 64)
    audit, result = audit_of("hotline", [*honest[:2], forged, *honest[2:]])
    assert list(reasons(audit)) == [3] and "not of the chain" in reasons(audit)[3]
    assert audit.folded == 4 and services_given(result) == 4


def test_a_lost_event_is_named_at_the_one_after_it_and_the_chain_reads_on_from_there() -> None:
    honest = chain("hotline", [call(i, at(1)) for i in range(6)])
    audit, result = audit_of("hotline", [*honest[:2], *honest[3:]])  # position 3 never came
    assert list(reasons(audit)) == [3]
    assert "hotline position 4" in reasons(audit)[3] and "prev_hash" in reasons(audit)[3]
    assert audit.folded == 5 and audit.position == 6 and services_given(result) == 5


def test_an_unlinked_last_message_is_named_when_the_stream_ends() -> None:
    honest = chain("hotline", [call(i, at(1)) for i in range(2)])
    [forged] = chain("hotline", [call(99, at(1))], first=3, prev_hash="f" * 64)
    audit, _ = audit_of("hotline", [*honest, forged])
    assert "no event after it links to it" in reasons(audit)[3] and audit.folded == 2


class FoldThatFailsOnTheSecondCall(Fold):
    """A fold that adds part of an event and then fails on it, as a sum it cannot make."""

    def apply(self, envelope: Envelope[Any]) -> None:
        super().apply(envelope)
        if envelope.data.call == "call:1":
            raise InvalidOperation("[<class 'decimal.InvalidOperation'>]")


def test_an_event_that_cannot_be_folded_is_a_finding_and_none_of_it_is_counted() -> None:
    honest = chain("hotline", [call(i, at(1)) for i in range(3)])
    audit, result = audit_of("hotline", honest, FoldThatFailsOnTheSecondCall())
    assert list(reasons(audit)) == [2]
    assert "CallReceived cannot be folded: InvalidOperation" in reasons(audit)[2]
    assert audit.folded == 2 and services_given(result) == 2


def test_a_sum_no_report_can_show_is_a_finding() -> None:
    [line] = _unshowable({"funds_received_fen": 10**40, "calls_received": 3})
    assert line.startswith("the sum of funds_received_fen is 10,000,000,000")


def test_the_replay_keeps_one_total_per_metric_and_day() -> None:
    honest = chain("hotline", [call(i, at(1 + i % 3), group=("child", "disabled")[i % 2])
                               for i in range(12)])  # fmt: skip
    _, result = audit_of("hotline", honest)
    assert not result.fold.increments and not result.increments  # merged away, batch by batch
    assert {k for k in result.days if k.metric == "calls_received"} == {
        DayKey("calls_received", at(d).date()) for d in (1, 2, 3)
    }
    assert sum(v for k, v in result.days.items() if k.metric == "calls_received") == 12


@pytest.fixture(autouse=True)
def _no_ring_left_behind() -> Iterator[None]:
    """The audit reads its keys once a process: a story that gives it some takes them back."""
    yield
    audit_chain.signing_ring.cache_clear()


def signed_chain(keys, count: int) -> list[bytes]:  # type: ignore[no-untyped-def]
    """The hotline's bytes for ``count`` calls in one append, signed as its store signs."""
    from shared import signing

    signer = signing.signer(keys, "hotline")
    out = []
    for raw in chain("hotline", [call(i, at(1)) for i in range(count)]):
        body = orjson.loads(raw)
        if body["position"] % signer.every == 0 or body["position"] == count:
            raw = signer.sign(raw, body["position"], body["hash"])
        out.append(raw)
    return out


def test_with_the_producers_keys_only_what_a_signature_covers_counts(tmp_path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """Given the hotline's 1,203 signed calls, then a stranger's two that link and hash
    right, one signed with a key of its own and one not signed: the audit counts the 1,203,
    names the first forged and the last covered by no signature, and counts neither."""
    from nacl.signing import SigningKey

    from services.reporting import audit_chain
    from shared.contracts.signatures import Signer

    keys = tmp_path / "signing"
    monkeypatch.setenv("KAPOK_SIGNING_DIR", str(keys))
    audit_chain.signing_ring.cache_clear()
    honest = signed_chain(keys, 1203)
    body = orjson.loads(honest[-1])
    more = chain("hotline", [call(2000, at(1)), call(2001, at(1))], first=1204,
                 prev_hash=body["hash"])  # fmt: skip
    stranger = Signer("hotline", ((1, SigningKey.generate()),))
    first = orjson.loads(more[0])
    forged = stranger.sign(more[0], 1204, first["hash"])

    audit, result = audit_of("hotline", [*honest, forged, more[1]])
    from services.reporting.audit import _part, _put_together
    from shared.bus.naming import Naming
    from shared.settings import Settings

    whole = _put_together(Naming.of(Settings()), {"hotline": [_part(audit, result)]}, False)
    assert services_given(whole) == 1203
    found = [f.reason for f in whole.sources["hotline"].findings]
    assert "forged: signed with a key" in found[0]
    assert "positions 1205 to 1205 (1 events): covered by no signature" in found[1]


def test_a_stretch_whose_last_events_a_later_stretchs_signature_covers_counts_them(
    tmp_path, monkeypatch
) -> None:  # type: ignore[no-untyped-def]
    from services.reporting import audit_chain
    from services.reporting.audit import _part, _put_together
    from services.reporting.audit_chain import open_mid_stream
    from shared.bus.naming import Naming
    from shared.settings import Settings

    keys = tmp_path / "signing"
    monkeypatch.setenv("KAPOK_SIGNING_DIR", str(keys))
    audit_chain.signing_ring.cache_clear()
    honest = signed_chain(keys, 1203)
    first, first_result = audit_of("hotline", honest[:700])  # signed at 500: 200 wait
    assert first.tail_events == 200
    second, second_result = SourceAudit("hotline", "HOTLINE"), Replay()
    open_mid_stream(second, honest[700])
    for seq, data in enumerate(honest[700:], start=701):
        check_and_fold(second, second_result.fold, seq, SUBJECT, data)
    second_result.merge()

    whole = _put_together(
        Naming.of(Settings()),
        {"hotline": [_part(first, first_result), _part(second, second_result)]},
        False,
    )

    assert services_given(whole) == 1203
    assert whole.sources["hotline"].findings == []
