"""Subjects and stream names: the only place they are spelled out."""

from __future__ import annotations

from dataclasses import dataclass

from shared.settings import Settings


@dataclass(frozen=True, slots=True)
class Naming:
    root: str = "kapok"
    stream_prefix: str = ""

    @classmethod
    def of(cls, settings: Settings) -> Naming:
        return cls(settings.subject_root, settings.stream_prefix)

    def event_subject(self, source: str, event_type: str) -> str:
        """``kapok.<service>.<EventType>``: one token after the service, so commands on
        ``kapok.<service>.cmd.<Command>`` never land in the event stream."""
        return f"{self.root}.{source}.{event_type}"

    def event_subjects(self, source: str) -> str:
        return f"{self.root}.{source}.*"

    def command_subject(self, service: str, command: str) -> str:
        return f"{self.root}.{service}.cmd.{command}"

    def stream(self, source: str) -> str:
        return f"{self.stream_prefix}{source.upper()}"

    def dead_letter_subject(self, consumer: str) -> str:
        return f"{self.root}.deadletter.{consumer}"

    @property
    def dead_letter_stream(self) -> str:
        return f"{self.stream_prefix}DEADLETTER"
