"""A person's details through the people API: kept encrypted, shown only to the roles that
serve them, forgotten on request with their key destroyed."""

from __future__ import annotations

import pytest
from people_parts import ADDRESS, NAME, PHONE, RUIBAO, People, person_body
from sqlalchemy import select

from services.people.adapters import tables
from services.people.domain.sealing import unwrap
from shared.auth.principal import Role
from shared.contracts.refs import person_ref

pytestmark = pytest.mark.asyncio(loop_scope="session")


async def test_details_are_shown_to_the_station_that_serves_the_person(people: People) -> None:
    recorded = await people.post("/people", person_body(), key="weiyi-1")
    assert recorded.status_code == 201, recorded.text
    ref = recorded.json()["person"]
    assert ref.startswith("person:") and NAME not in recorded.text

    station = people.grant(Role.STATION_WORKER, station="station:nanzhou")
    shown = await people.http.get(f"/people/{ref}", headers={"Authorization": f"Bearer {station}"})
    assert shown.status_code == 200, shown.text
    assert (shown.json()["full_name"], shown.json()["phone"], shown.json()["address"]) == (
        NAME,
        PHONE,
        ADDRESS,
    )
    assert shown.headers["cache-control"] == "no-store"

    coordinator = people.grant(Role.COORDINATOR, district="haizhu")
    elsewhere = people.grant(Role.STATION_WORKER, station="station:ruibao")
    other_district = people.grant(Role.COORDINATOR, district="tianhe")
    auditor = people.grant(Role.AUDITOR)
    for token, status in [
        (coordinator, 200),
        (elsewhere, 403),
        (other_district, 403),
        (auditor, 403),
    ]:
        answer = await people.http.get(
            f"/people/{ref}", headers={"Authorization": f"Bearer {token}"}
        )
        assert answer.status_code == status, (token, answer.text)
        assert (NAME in answer.text) == (status == 200)


async def test_a_station_records_only_its_own_people(people: People) -> None:
    station = people.grant(Role.STATION_WORKER, station="station:nanzhou")
    refused = await people.post(
        "/people", person_body(place=RUIBAO), Authorization=f"Bearer {station}"
    )
    assert refused.status_code == 403, refused.text


async def test_the_same_request_sent_again_is_the_same_person(people: People) -> None:
    first = await people.post("/people", person_body(), key="same")
    again = await people.post("/people", person_body(), key="same")
    assert first.json()["person"] == again.json()["person"]
    other = await people.post("/people", person_body(phone="13900000000"), key="same")
    assert other.status_code == 422, other.text
    async with people.service.db.read() as conn:
        rows = (await conn.execute(select(tables.idempotency))).all()
    assert rows and all(NAME.encode() not in repr(row).encode() for row in rows)
    assert all(PHONE not in repr(row) for row in rows)


async def test_details_change_and_the_event_says_only_that(people: People) -> None:
    ref = (await people.post("/people", person_body())).json()["person"]
    changed = await people.post(
        f"/people/{ref}/details",
        {
            "full_name": NAME,
            "phone": "13712340000",
            "address": ADDRESS,
            "changed_at": "2020-02-02T09:00:00+08:00",
        },
    )
    assert changed.status_code == 200, changed.text
    assert (await people.http.get(f"/people/{ref}")).json()["phone"] == "13712340000"
    published = await people.published()
    assert [e["type"] for e in published] == ["PersonRecorded", "ContactDetailsChanged"]
    assert all(NAME not in str(e) and "1371234" not in str(e) for e in published)


async def test_forgetting_destroys_the_key_of_every_copy(people: People) -> None:
    ref = (await people.post("/people", person_body())).json()["person"]
    kept = (await people.post("/people", person_body(full_name="另一人"))).json()["person"]
    async with people.service.db.read() as conn:
        wrapped_before = (
            await conn.execute(select(tables.keys.c.wrapped).where(tables.keys.c.person == ref))
        ).scalar_one()
    # The station may not forget; the coordinator of the district may.
    station = people.grant(Role.STATION_WORKER, station="station:nanzhou")
    refused = await people.http.delete(
        f"/people/{ref}", headers={"Authorization": f"Bearer {station}"}
    )
    assert refused.status_code == 403, refused.text
    coordinator = people.grant(Role.COORDINATOR, district="haizhu")
    forgot = await people.http.delete(
        f"/people/{ref}", headers={"Authorization": f"Bearer {coordinator}"}
    )
    assert forgot.status_code == 200, forgot.text

    gone = await people.http.get(f"/people/{ref}")
    assert gone.status_code == 410, gone.text
    assert (await people.http.get(f"/people/{kept}")).json()["full_name"] == "另一人"
    again = await people.http.delete(f"/people/{ref}")
    assert again.status_code == 409, again.text
    # A copy of the wrapped key taken before (a backup) opens with no key that remains.
    ring = people.service.vault.ring
    assert len(ring.keys) == 1
    for master in ring.keys.values():
        with pytest.raises(Exception):  # noqa: B017  (cryptography's InvalidTag)
            unwrap(master, ref, wrapped_before)
    published = await people.published()
    assert published[-1]["type"] == "PersonForgotten"
    assert published[-1]["data"] == {"person": ref, "reason": "request"}


async def test_forget_over_nats_and_details_never_travel_on_it(people: People) -> None:
    ref = (await people.post("/people", person_body())).json()["person"]
    assert "RecordPerson" not in people.commands
    answer = await people.request("ForgetPerson", {"person": ref})
    assert answer["status"] == 200, answer
    assert answer["result"]["forgotten_because"] == "request", answer


async def test_a_days_people_at_once_all_or_none(people: People) -> None:
    refs = [person_ref(f"batch-{k}") for k in range(3)]
    items = [person_body(person=ref) for ref in refs]
    twice = await people.post("/people:batch", {"items": [*items, items[0]]})
    assert twice.status_code == 409 and "items.3" in twice.json()["error"], twice.text
    kept = await people.post("/people:batch", {"items": items})
    assert kept.status_code == 201, kept.text
    assert kept.json()["people"] == refs
    again = await people.post("/people:batch", {"items": items[:1]})
    assert again.status_code == 409 and again.json()["rule"] == "person_already_recorded"
    typed = await people.post("/people", person_body(person="person:wang-xiaoming-138"))
    assert typed.status_code == 422 and typed.json()["field"] == "person", typed.text
