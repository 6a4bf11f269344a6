"""Why a command was refused, in terms both transports turn into the same error shape."""

from __future__ import annotations


class DomainError(Exception):
    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class RuleBroken(DomainError):
    """A business rule refused the change (HTTP 409). ``rule`` is a stable code for clients."""

    def __init__(self, rule: str, message: str) -> None:
        super().__init__(message)
        self.rule = rule


class NotFound(DomainError):
    """The command names an aggregate that has no events (HTTP 404)."""

    def __init__(self, resource: str) -> None:
        super().__init__(f"{resource} not found")
        self.resource = resource


class InvalidInput(DomainError):
    """Input that is well-formed but contradicts the aggregate's own times (HTTP 422)."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field
