"""Every event type by name, decoding from the bus, and upcasters for old schema versions.

Decoding is one pydantic-core call on a union discriminated by ``type`` (the hot path of every
consumer). An event written under an older ``schema_version`` fails that call, is lifted by its
upcasters one version at a time, and then decoded as the current version.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any, Literal, Union

import orjson
from pydantic import Field, TypeAdapter, ValidationError, create_model

from shared.contracts.envelope import Envelope, Event, hash_of, hashes_to

Upcaster = Callable[[dict[str, Any]], dict[str, Any]]


class UndecodableEvent(ValueError):
    """Bytes that are not a valid event of a known type: the reason names the field."""


class MisplacedEvent(UndecodableEvent):
    """A valid event, but not where its source's outbox put it (`EventRegistry.decode_at`)."""


class AlteredEvent(UndecodableEvent):
    """A valid event whose bytes are not those its hash was made of: changed after sealing,
    or made by hand (`EventRegistry.decode_at`)."""


class EventRegistry:
    def __init__(self) -> None:
        self._types: dict[str, type[Event]] = {}
        self._upcasters: dict[tuple[str, int], Upcaster] = {}
        self._adapter: TypeAdapter[Envelope[Any]] | None = None
        # The union's pydantic-core validator, called directly: TypeAdapter.validate_json's
        # Python wrapper cost a tenth of a decode.
        self._validate: Callable[[bytes | str], Envelope[Any]] | None = None

    def register(self, event_type: type[Event]) -> type[Event]:
        name = event_type.type_name()
        known = self._types.get(name)
        if known is not None and known is not event_type:
            raise ValueError(f"two event types are named {name}")
        self._types[name] = event_type
        self._adapter = None
        self._validate = None
        return event_type

    def upcaster(self, type_name: str, from_version: int) -> Callable[[Upcaster], Upcaster]:
        """Register a function lifting ``type_name``'s data from ``from_version`` to the next."""

        def decorate(fn: Upcaster) -> Upcaster:
            self._upcasters[(type_name, from_version)] = fn
            return fn

        return decorate

    def __getitem__(self, type_name: str) -> type[Event]:
        return self._types[type_name]

    def __contains__(self, type_name: object) -> bool:
        return type_name in self._types

    def types(self) -> list[type[Event]]:
        return list(self._types.values())

    def envelope_model(self, event_type: type[Event]) -> type[Envelope[Any]]:
        return create_model(  # type: ignore[no-any-return, call-overload]
            f"{event_type.type_name()}Envelope",
            __base__=Envelope[event_type],  # type: ignore[valid-type]
            type=(Literal[event_type.type_name()], ...),
            schema_version=(Literal[event_type.schema_version], ...),
        )

    @property
    def adapter(self) -> TypeAdapter[Envelope[Any]]:
        if self._adapter is None:
            models = tuple(self.envelope_model(t) for t in self._types.values())
            union: Any = Union[models] if len(models) > 1 else models[0]  # noqa: UP007
            self._adapter = TypeAdapter(Annotated[union, Field(discriminator="type")])
        return self._adapter

    def decode(self, raw: bytes | str) -> Envelope[Any]:
        validate = self._validate
        if validate is None:
            validate = self._validate = self.adapter.validator.validate_json
        try:
            return validate(raw)
        except ValidationError as error:
            first = error
        try:
            body = orjson.loads(raw)
        except orjson.JSONDecodeError as error:
            raise UndecodableEvent(f"not JSON: {error}") from None
        if not isinstance(body, dict):
            raise UndecodableEvent("not a JSON object")
        type_name, version = body.get("type"), body.get("schema_version")
        if type_name not in self._types:
            raise UndecodableEvent(f"type: unknown event type {type_name!r}")
        current = self._types[type_name].schema_version
        if isinstance(version, int) and version < current:
            return self._decode_upcast(body, type_name, version)
        raise UndecodableEvent(_describe(first)) from None

    def decode_at(self, raw: bytes | str, source: str, position: int) -> Envelope[Any]:
        """`decode`, for an event that must be ``source``'s at ``position`` of its outbox (the
        stream sequence it was delivered at), sealed by it: one published by hand onto the
        stream, anywhere else than its place, or whose bytes are not those it was hashed
        from, is refused like bytes that do not decode. (Its link to the event before it is
        the consumer's to check: `shared.consumer`.)"""
        envelope = self.decode(raw)
        if envelope.position != position or envelope.source != source:
            raise MisplacedEvent(
                f"not from the {source} outbox: {envelope.source} position "
                f"{envelope.position} at stream sequence {position}"
            )
        # Fast on the bytes as the source published them; bytes made otherwise (the same
        # content re-serialised) are judged on their content, as the audit judges them.
        data = raw if isinstance(raw, bytes) else raw.encode()
        if not hashes_to(data, envelope.hash) and hash_of(orjson.loads(data)) != envelope.hash:
            raise AlteredEvent(
                f"altered: {envelope.type} {envelope.event_id} at stream sequence {position} "
                "is not the bytes its hash was made of"
            )
        return envelope

    def _decode_upcast(self, body: dict[str, Any], type_name: str, version: int) -> Envelope[Any]:
        data = body["data"]
        current = self._types[type_name].schema_version
        while version < current:
            step = self._upcasters.get((type_name, version))
            if step is None:
                raise UndecodableEvent(
                    f"schema_version: no upcaster for {type_name} v{version} to v{version + 1}"
                )
            data = step(dict(data))
            version += 1
        # The hash stays the one computed over the stored (old) bytes: upcasting changes the
        # reader's view, never the record.
        lifted = {**body, "data": data, "schema_version": current}
        try:
            return self.adapter.validate_json(orjson.dumps(lifted))
        except ValidationError as error:
            raise UndecodableEvent(_describe(error)) from None


def _describe(error: ValidationError) -> str:
    parts = []
    for item in error.errors()[:5]:
        loc = ".".join(str(p) for p in item["loc"] if not str(p).endswith("Envelope"))
        parts.append(f"{loc}: {item['msg']}")
    return "; ".join(parts)


REGISTRY = EventRegistry()


def event(cls: type[Event]) -> type[Event]:
    """Class decorator: register an event type in the one registry."""
    return REGISTRY.register(cls)
