"""The master keyring: made private, and a rotation cut short (a crash between writing the new
master key and re-wrapping the data keys) leaves every person readable and settles to the key
the rows use."""

from __future__ import annotations

from pathlib import Path

import pytest
from people_parts import NAME, People, person_body

from services.people.adapters.keyring import MasterKeys

pytestmark = pytest.mark.asyncio(loop_scope="session")


async def test_the_keyring_is_made_private(tmp_path: Path) -> None:
    path = tmp_path / "people" / "master-keys.json"
    ring = MasterKeys.open(path)
    assert (path.stat().st_mode & 0o777, path.parent.stat().st_mode & 0o777) == (0o600, 0o700)
    again = MasterKeys.open(path)
    assert (again.current, again.keys) == (ring.current, ring.keys)
    assert again.fingerprint == ring.fingerprint


async def test_a_rotation_cut_short_settles_to_the_key_in_use(people: People) -> None:
    ref = (await people.post("/people", person_body())).json()["person"]
    ring = people.service.vault.ring
    used = ring.current
    ring.current = ring.add()  # the new key written beside the old ...
    ring.save()  # ... and the process dies before any data key is re-wrapped
    assert (await people.http.get(f"/people/{ref}")).json()["full_name"] == NAME

    await people.service.vault.settle(people.service.db)
    assert set(MasterKeys.open(ring.path).keys) == {used}
    assert (await people.http.get(f"/people/{ref}")).json()["full_name"] == NAME
