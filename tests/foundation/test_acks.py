"""The ack subject read by `stream_seq_and_time` says what nats-py's own parser says."""

from __future__ import annotations

import pytest
from nats.aio.msg import Msg

from shared.bus.acks import stream_seq_and_time

V1 = "$JS.ACK.KAPOK_HOTLINE.reporting.1.4711.12.1764680000123456789.3"
V2 = "$JS.ACK._.ACCHASH.KAPOK_HOTLINE.reporting.2.4711.12.1764680000123456789.3.rAnD0m"


@pytest.mark.parametrize("reply", [V1, V2, V2.rsplit(".", 1)[0]])
def test_sequence_and_time_are_nats_pys(reply: str) -> None:
    metadata = Msg.Metadata._from_reply(reply)
    seq, stamp = stream_seq_and_time(reply.encode())
    assert seq == metadata.sequence.stream == 4711
    assert stamp == 1764680000123456789
