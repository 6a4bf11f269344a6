"""The people service: the toolkit's command service, with the vault. Its replies never hold
details (the Idempotency-Key table keeps them), and the fingerprint of a request is keyed."""

from __future__ import annotations

from typing import TypeVar

from services.people.adapters import tables
from services.people.application.commands import ForgetPeople, ForgetPerson
from services.people.application.handlers import handlers
from services.people.application.vault import Vault
from shared.auth.principal import Principal, Role
from shared.contracts.envelope import Context
from shared.domain.aggregate import Aggregate
from shared.eventstore import EventStore
from shared.service.application import CommandService
from shared.service.commands import Command
from shared.service.idempotency import fingerprint as of_command
from shared.service.replies import Refused, Reply

SERVICE = "people"
A = TypeVar("A", bound=Aggregate)
# Who may have a person forgotten (DELETE /people/{ref}): within their scope, as any command.
FORGETTERS = {Role.ADMINISTRATOR, Role.COORDINATOR}


class PeopleService:
    def __init__(self, store: EventStore, vault: Vault) -> None:
        self.vault = vault
        self.commands = CommandService(store, handlers(vault), tables.idempotency)
        self.store = store
        self.db = store.db
        self.name = store.source
        self.load = self.commands.load

    async def setup(self) -> None:
        await self.commands.setup()
        await self.vault.settle(self.db)

    async def execute(
        self,
        command: Command,
        ctx: Context,
        key: str | None = None,
        fingerprint: str | None = None,
        principal: Principal | None = None,
    ) -> Reply:
        forgets = isinstance(command, ForgetPerson | ForgetPeople)
        if forgets and principal is not None and principal.role not in FORGETTERS:
            message = f"the {principal.role} role may not forget a person's details"
            return Refused(403, message, rule="role_may_not_forget").reply
        if key is not None and fingerprint is None:
            fingerprint = of_command(command)
        # Both keyed: a client may derive its Idempotency-Key from the body (the simulator
        # does), and a plain hash of a name and a phone lets a guess be confirmed.
        keyed = self.vault.fingerprint(fingerprint) if fingerprint is not None else None
        key = self.vault.fingerprint(key)[:64] if key is not None else None
        reply = await self.commands.execute(command, ctx, key, keyed, principal)
        if isinstance(command, ForgetPerson | ForgetPeople):
            # Committed or not: the keyring keeps only the master keys rows still use.
            await self.vault.settle(self.db)
        return reply

    async def view(self, kind: type[A], id: str, principal: Principal | None = None) -> Reply:
        return await self.commands.view(kind, id, principal)


def people_service(store: EventStore, vault: Vault) -> PeopleService:
    return PeopleService(store, vault)
