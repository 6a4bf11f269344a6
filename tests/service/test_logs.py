"""shared/logs.py's JSON lines: one object a line, the command's correlation id while one is
handled (a context variable: each request's task its own), identifiers passed as ``extra``
and nothing else of the record."""

from __future__ import annotations

import asyncio
import io
import json
import logging

import pytest

from shared import logs

pytestmark = pytest.mark.asyncio(loop_scope="session")


def lines(stream: io.StringIO) -> list[dict[str, object]]:
    return [json.loads(line) for line in stream.getvalue().splitlines()]


async def test_json_lines_carry_the_correlation_id_of_their_own_request_only() -> None:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(logs.JsonFormatter("aid", "aid-1"))
    log = logging.getLogger("kapok.test-logs")
    log.addHandler(handler)
    log.propagate = False
    log.setLevel(logging.INFO)

    async def request(correlation: str) -> None:
        logs.correlation.set(correlation)  # as shared/service/transport.py does
        await asyncio.sleep(0)
        log.info("handled\nover two lines", extra={"event_ids": ["e1", "e2"], "person": "x"})

    try:
        await asyncio.gather(request("c-1"), request("c-2"))
        log.info("outside any request")
        try:
            raise ValueError("boom")
        except ValueError:
            log.exception("failed", extra={"stream": "AID", "position": 7})
    finally:
        log.removeHandler(handler)
    assert len(stream.getvalue().splitlines()) == 4  # the message's newline escaped
    first, second, outside, failed = lines(stream)
    assert {first["correlation_id"], second["correlation_id"]} == {"c-1", "c-2"}
    assert first["message"] == "handled\nover two lines"
    assert first["event_ids"] == ["e1", "e2"] and "person" not in first  # not an identifier
    assert first["service"] == "aid" and first["instance"] == "aid-1"
    assert first["level"] == "info" and first["logger"] == "kapok.test-logs"
    assert "correlation_id" not in outside
    assert failed["stream"] == "AID" and failed["position"] == 7
    assert failed["level"] == "error" and "ValueError: boom" in str(failed["exception"])
