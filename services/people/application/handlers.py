"""One handler per command: the aggregate decides, the vault writes the sealed details in the
commit's transaction (`Decision.in_transaction`), so an event and its details are stored
together or not at all."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy.ext.asyncio import AsyncConnection

from services.people.adapters.contacts import contacted
from services.people.application.commands import (
    ChangeContactDetails,
    ForgetPeople,
    ForgetPerson,
    RecordPeople,
    RecordPerson,
)
from services.people.application.vault import Vault
from services.people.domain import Person
from services.people.domain.sealing import Details
from shared.contracts.refs import person_ref
from shared.domain.aggregate import Aggregate
from shared.domain.errors import RuleBroken
from shared.service.application import Decision, Handler, Loader, batch_item
from shared.service.commands import Command
from shared.service.commit import Guard


def _details(cmd: RecordPerson | ChangeContactDetails) -> Details:
    return Details(cmd.full_name, cmd.phone, cmd.address)


def _epoch(at: datetime) -> int:
    return int(at.astimezone(UTC).timestamp())


def handlers(vault: Vault) -> dict[type[Command], Handler]:
    async def decide_one(cmd: RecordPerson, load: Loader) -> Person:
        person = await load.one(Person, cmd.person or person_ref())
        if person.exists:
            raise RuleBroken(
                "person_already_recorded",
                f"{person.id} is recorded already: change their details instead",
            )
        return Person.recorded(person.id, cmd.place, cmd.recorded_at)

    def keep_all(people: list[tuple[Person, RecordPerson]]) -> Guard:
        async def keep(conn: AsyncConnection) -> None:
            await vault.keep(conn, [(person.id, _details(cmd)) for person, cmd in people])
            await contacted(conn, {p.id: _epoch(c.recorded_at) for p, c in people})

        return keep

    async def record_person(cmd: RecordPerson, load: Loader) -> Decision:
        person = await decide_one(cmd, load)
        return Decision.created(person, keep_all([(person, cmd)]))

    async def record_people(cmd: RecordPeople, load: Loader) -> Decision:
        # One read for the batch: a person at a time was most of a day's batch's cost.
        ids = [item.person or person_ref() for item in cmd.items]
        known = await load.many(Person, ids)
        decided: list[tuple[Person, RecordPerson]] = []
        seen: set[str] = set()
        for index, (ref, item) in enumerate(zip(ids, cmd.items, strict=True)):
            with batch_item(index):
                if known[ref].exists:
                    raise RuleBroken("person_already_recorded", f"{ref} is recorded already")
                if ref in seen:
                    raise RuleBroken("person_twice", f"{ref} is named twice in the batch")
                seen.add(ref)
                decided.append((Person.recorded(ref, item.place, item.recorded_at), item))
        changed: list[Aggregate] = [p for p, _ in decided]
        body = {"count": len(decided), "people": [p.id for p, _ in decided]}
        return Decision(changed, 201, body, keep_all(decided))

    async def change_details(cmd: ChangeContactDetails, load: Loader) -> Decision:
        person = await load.one(Person, cmd.person)
        person.change_details(cmd.changed_at)

        async def replace(conn: AsyncConnection) -> None:
            await vault.replace(conn, person.id, _details(cmd))
            await contacted(conn, {person.id: _epoch(cmd.changed_at)})  # a contact too

        return Decision.changed_one(person, replace)

    async def forget(cmd: ForgetPerson, load: Loader) -> Decision:
        person = await load.one(Person, cmd.person)
        person.forget(cmd.reason, datetime.now(UTC))

        async def destroy(conn: AsyncConnection) -> None:
            await vault.destroy(conn, [person.id])

        return Decision.changed_one(person, destroy)

    async def forget_many(cmd: ForgetPeople, load: Loader) -> Decision:
        people = await load.many(Person, cmd.people)
        now = datetime.now(UTC)
        for person in people.values():
            person.forget(cmd.reason, now)

        async def destroy(conn: AsyncConnection) -> None:
            await vault.destroy(conn, people)

        changed: list[Aggregate] = list(people.values())
        return Decision(changed, 200, {"count": len(changed), "people": sorted(people)}, destroy)

    return {
        ForgetPeople: forget_many,
        RecordPerson: record_person,
        RecordPeople: record_people,
        ChangeContactDetails: change_details,
        ForgetPerson: forget,
    }
