"""A JetStream delivery's ack subject, read: where the message sits and when it was stored.

A delivery's reply subject is its ack address and carries its metadata: nats-py's
``Msg.metadata`` parses it too, but only for a `Msg`, which the frame readers never make
(`shared/bus/frames.py`). Two layouts, told apart by their token count:

    $JS.ACK.<stream>.<consumer>.<delivered>.<sseq>.<cseq>.<ns>.<pending>
    $JS.ACK.<domain>.<account>.<stream>.<consumer>.<delivered>.<sseq>.<cseq>.<ns>.<pending>[.<token>]

(``sseq``: the stream sequence; ``ns``: when the stream stored it.)

Stream names hold no dots, so the tokens are counted from the front.
"""

from __future__ import annotations

_V1_TOKENS = 9  # without domain and account hash


def stream_seq_and_time(reply: bytes) -> tuple[int, int]:
    """The stream sequence of a delivery and the server's timestamp (ns since the epoch)
    of when the stream stored it, from its ack subject. Called once per delivery."""
    tokens = reply.split(b".")
    if len(tokens) == _V1_TOKENS:
        return int(tokens[5]), int(tokens[7])
    return int(tokens[7]), int(tokens[9])
