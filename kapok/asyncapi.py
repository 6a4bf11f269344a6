"""The AsyncAPI document of Kapok's bus: every event subject with its envelope schema, every
command subject (request-reply) with its command schema, and the dead-letter subject.

FastStream builds it from documented publishers: one per event type, whose schema is the
envelope model of that type (so the document shows exactly the bytes on the bus: envelope
fields plus that type's ``data``). The publishers are never connected; they exist only to be
described.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from importlib import import_module
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any
from urllib.parse import unquote

from faststream.nats import NatsBroker
from faststream.specification import AsyncAPI
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

from shared.bus.naming import Naming
from shared.contracts import REGISTRY
from shared.settings import PRODUCERS

ASYNCAPI_VERSION = "3.0.0"
DEFAULT_SERVER = "nats://127.0.0.1:4222"

_NETS = {
    "hotline": "the psychological protection net (抗疫心理防护网), stream {stream}",
    "aid": "the rescue service net (抗疫救援服务网), stream {stream}",
    "donation": "the charity and self-help nets (慈善力量群防网, 社区抗疫自助网), stream {stream}",
}


class Base64Bytes(BaseModel):
    model_config = ConfigDict(extra="forbid")

    base64: str = Field(description="the original bytes, which were not UTF-8")


class DeadLetter(BaseModel):
    """A message a consumer could not decode or apply, set aside with the reason so it never
    blocks its stream (shape published by shared/consumer.py)."""

    model_config = ConfigDict(extra="forbid")

    consumer: str = Field(description="the durable consumer that gave up on the message")
    source: str = Field(description="producing service of the original message")
    stream: str = Field(description="stream the original message came from, e.g. HOTLINE")
    stream_seq: int = Field(ge=1, description="its sequence in that stream")
    subject: str = Field(description="its subject, e.g. kapok.hotline.CallReceived")
    reason: str = Field(description="why it could not be decoded or applied")
    dead_lettered_at: AwareDatetime
    original: str | Base64Bytes = Field(description="the original message, unchanged")


def build_document(naming: Naming | None = None, server: str = DEFAULT_SERVER) -> dict[str, Any]:
    """The AsyncAPI document as a JSON-ready dict."""
    naming = naming or Naming()
    broker = NatsBroker(server, description="Kapok's NATS JetStream: one stream per producer")
    for event_type in sorted(REGISTRY.types(), key=lambda t: (t.source, t.type_name())):
        subject = naming.event_subject(event_type.source, event_type.type_name())
        net = _NETS.get(event_type.source, "stream {stream}")
        broker.publisher(
            subject,
            title=subject,
            description=(
                f"{_first_paragraph(event_type.__doc__)}\n\n"
                f"Published by the {event_type.source} service: "
                + net.format(stream=naming.stream(event_type.source))
                + f"; schema_version {event_type.schema_version}. Nats-Msg-Id is the event_id."
            ),
            schema=REGISTRY.envelope_model(event_type),
        )
    for service in PRODUCERS:
        commands = import_module(f"services.{service}.application.commands").COMMANDS
        for name, model in sorted(commands.items()):
            subject = naming.command_subject(service, name)
            broker.subscriber(
                subject,
                queue=service,
                title=subject,
                description=(
                    f"{_first_paragraph(model.__doc__) or name} Request-reply, queue group "
                    f"{service}; the same command as over HTTP, with an optional "
                    "Idempotency-Key header. Reply: {status: 200|201, result} or "
                    "{status: 422|409|404, error, field|rule|resource}."
                ),
            )(_documented(name, model))
    dead_letters = naming.dead_letter_subject("{consumer}")
    broker.publisher(
        dead_letters,
        title=dead_letters,
        description=(
            f"{_first_paragraph(DeadLetter.__doc__)} Kept in stream "
            f"{naming.dead_letter_stream}. The Kapok-Reason header repeats the reason."
        ),
        schema=DeadLetter,
    )
    spec = AsyncAPI(
        broker,
        title="Kapok",
        version=_version(),
        description=(
            "Events of Guangzhou social workers' four nets (2020). Every event travels in one "
            "envelope; each producing service's events form a hash chain (prev_hash, hash)."
        ),
        schema_version=ASYNCAPI_VERSION,
    ).to_specification()
    document: dict[str, Any] = spec.to_jsonable()
    _complete(document, dead_letters)
    return document


def _documented(name: str, model: type[BaseModel]) -> Callable[..., Awaitable[None]]:
    """A handler that is never run: FastStream reads the command's schema off its signature."""

    async def handler(body: Any) -> None:
        raise NotImplementedError

    handler.__annotations__ = {"body": model, "return": None}
    handler.__name__ = name
    return handler


def _complete(document: dict[str, Any], dead_letters: str) -> None:
    """Say what FastStream cannot express through a publisher."""
    messages = document["components"]["messages"]
    for channel in document["channels"].values():
        if "Message" not in channel["messages"]:
            continue  # a command's request: FastStream's description is the right one
        ref = channel["messages"]["Message"]["$ref"]
        message = messages[unquote(ref.rsplit("/", 1)[-1])]
        if channel["address"] == dead_letters:
            message.pop("correlationId", None)
            channel["parameters"] = {
                "consumer": {"description": "name of the durable consumer, e.g. reporting"}
            }
        else:
            # FastStream assumes a correlation id header; Kapok's is in the envelope.
            message["correlationId"] = {
                "description": "shared by every event of one user action",
                "location": "$message.payload#/correlation_id",
            }
    # FastStream lists publishers in no stable order; sorted, the document diffs cleanly.
    for section in (document["channels"], document["operations"], *document["components"].values()):
        ordered = dict(sorted(section.items()))
        section.clear()
        section.update(ordered)


def _version() -> str:
    try:
        return version("kapok")
    except PackageNotFoundError:  # running from a source tree that was never installed
        return "0.0.0"


def _first_paragraph(doc: str | None) -> str:
    return " ".join((doc or "").strip().split("\n\n")[0].split())


def write_document(path: Path) -> Path:
    """Write the document as JSON to ``path``; return the path."""
    path.parent.mkdir(parents=True, exist_ok=True)
    document = build_document()
    path.write_text(json.dumps(document, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    return path
