"""卫秀珍's details from her call to her door and forgotten, on `kapok up`'s real processes
(embedded nats-server, the five services, SQLite or PostgreSQL): the plaintext is in no file
under the data directory (databases, their WAL, the JetStream store), in none of
PostgreSQL's files (its tables and WAL, where they can be read) and in no log line; the people API
shows it to the station, and to the aid worker once assigned, and to no other station; once
forgotten, the API says so, the report and the audit replay are unchanged, and a backup of
the people database taken before does not open with any key that remains."""

from __future__ import annotations

import asyncio
import base64
import json
import sqlite3
import subprocess
import sys
from collections.abc import AsyncIterator
from datetime import datetime
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest
from harness.databases import asyncpg_dsn, for_kapok_up
from people_parts import ADDRESS, NAME, NANZHOU, PHONE, RUIBAO
from sqlalchemy.engine import make_url

from services.people.domain.sealing import unwrap

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "up"))
from up_parts import Up, free_port, wait_until

from kapok.cli import SERVABLE

KAPOK = [sys.executable, "-m", "kapok.cli"]
DAY = "2020-02-10"


def kapok(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*KAPOK, *args], capture_output=True, text=True, timeout=120)


def token(data_dir: Path, tmp: Path, *flags: str) -> dict[str, str]:
    path = tmp / f"token-{len(list(tmp.glob('token-*')))}"
    made = kapok("token", "create", "--data-dir", str(data_dir), "--file", str(path), *flags)
    assert made.returncode == 0, made.stderr
    return {"Authorization": f"Bearer {path.read_text().strip()}"}


def plaintext_in(root: Path, *more: Path) -> list[str]:
    """Every file under ``root`` (and ``more``) that holds the name, the phone or the address
    as bytes (UTF-8; the phone also as UTF-16, as a Windows tool might write it)."""
    needles = [NAME.encode(), PHONE.encode(), ADDRESS.encode(), PHONE.encode("utf-16-le")]
    found = []
    for path in [*root.rglob("*"), *more]:
        try:
            data = path.read_bytes() if path.is_file() else b""
        except FileNotFoundError:  # PostgreSQL removed it meanwhile (another test's database)
            continue
        found += [f"{path}: {n!r}" for n in needles if n in data]
    return found


class People:
    """The people service's database, as an operator (or a thief with a backup) reads it."""

    def __init__(self, up: Up, postgres: str | None) -> None:
        self.up, self.postgres = up, postgres

    def rows(self, sql: str, *args: Any) -> list[tuple[Any, ...]]:
        if self.postgres is None:
            with sqlite3.connect(self.up.data_dir / "people.db") as db:
                return db.execute(sql.replace("$1", "?"), args).fetchall()
        return asyncio.run(self._pg_rows(sql, *args))

    async def _pg_rows(self, sql: str, *args: Any) -> list[tuple[Any, ...]]:
        assert self.postgres is not None
        base = make_url(self.postgres)
        conn = await asyncpg.connect(asyncpg_dsn(base.set(database=f"{base.database}_people")))
        try:
            return [tuple(r) for r in await conn.fetch(sql, *args)]
        finally:
            await conn.close()

    def files(self) -> list[Path]:
        """PostgreSQL's own files (tables, WAL), where this user can read them."""
        if self.postgres is None:
            return []
        base = make_url(self.postgres)

        async def where() -> str:
            conn = await asyncpg.connect(asyncpg_dsn(base))
            try:
                return str(await conn.fetchval("SHOW data_directory"))
            finally:
                await conn.close()

        try:
            return [p for p in Path(asyncio.run(where())).rglob("*") if p.is_file()]
        except (OSError, asyncpg.PostgresError):
            return []  # another user's server, or another machine's


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
async def database(request: pytest.FixtureRequest) -> AsyncIterator[str | None]:
    """`kapok up` on SQLite files (None), or with `--postgres URL` (a database per service,
    dropped after)."""
    async with for_kapok_up(request.param, SERVABLE) as url:
        yield url


def test_a_person_from_call_to_door_then_forgotten(tmp_path: Path, database: str | None) -> None:
    data_dir = tmp_path / "kapok"
    flags = [] if database is None else ["--postgres", database]
    up = Up(data_dir, {name: free_port() for name in SERVABLE}, "up.log", *flags)
    try:
        up.wait_ready()
        run_story(up, tmp_path, People(up, database))
    finally:
        up.ctrl_c()


def run_story(up: Up, tmp: Path, people: People) -> None:
    admin = up.headers
    base = {name: f"http://127.0.0.1:{port}" for name, port in up.ports.items()}

    def post(service: str, path: str, body: Any, headers: dict[str, str] = admin) -> Any:
        answer = httpx.post(f"{base[service]}{path}", json=body, headers=headers, timeout=30)
        assert answer.is_success, answer.text
        return answer.json()

    def get(service: str, path: str, headers: dict[str, str] = admin, **params: str) -> Any:
        return httpx.get(f"{base[service]}{path}", headers=headers, params=params, timeout=30)

    station = token(up.data_dir, tmp, "--role", "station-worker", "--station", NANZHOU["station"])
    courier = token(
        up.data_dir, tmp, "--role", "station-worker", "--station", RUIBAO["station"],
        "--actor", "worker:li",
    )  # fmt: skip
    stranger = token(
        up.data_dir, tmp, "--role", "station-worker", "--station", RUIBAO["station"],
        "--actor", "worker:zhang",
    )  # fmt: skip

    # The station records her, calls and refers her to aid; aid assigns and delivers.
    person = post(
        "people",
        "/people",
        {"place": NANZHOU, "full_name": NAME, "phone": PHONE, "address": ADDRESS,
         "recorded_at": f"{DAY}T09:00:00+08:00"},
        station,
    )["person"]  # fmt: skip
    point = post("hotline", "/points", {"place": NANZHOU, "opened_at": f"{DAY}T08:00:00+08:00"})
    call = post(
        "hotline",
        "/calls",
        {"point": point["point"], "category": "help_request", "group": "elderly_alone",
         "channel": "phone", "caller": person, "received_at": f"{DAY}T09:05:00+08:00"},
    )  # fmt: skip
    referral = post(
        "hotline",
        f"/calls/{call['call']}/referrals",
        {"needs": ["medicine"], "urgency": "today", "referred_at": f"{DAY}T09:20:00+08:00"},
    )["referral"]
    request = wait_until(
        "aid opens the request",
        lambda: (a := get("aid", f"/referrals/{referral}/request")).is_success and a.json(),
        30,
        up,
    )["request"]
    assert get("people", f"/people/{person}", courier).status_code == 403
    post(
        "aid",
        f"/requests/{request}/assign",
        {"assignee": "worker:li", "assigned_at": f"{DAY}T10:00:00+08:00"},
    )
    post(
        "aid",
        f"/requests/{request}/deliveries",
        {"items": [{"kind": "medicine", "quantity": "1", "unit": "box"}],
         "delivered_at": f"{DAY}T15:00:00+08:00"},
    )  # fmt: skip

    # Shown to her station and, once the assignment reached the people service, to the courier.
    shown = get("people", f"/people/{person}", station).json()
    assert (shown["full_name"], shown["phone"], shown["address"]) == (NAME, PHONE, ADDRESS)
    wait_until(
        "the courier may read her details",
        lambda: get("people", f"/people/{person}", courier).status_code == 200,
        30,
        up,
    )
    assert get("people", f"/people/{person}", stranger).status_code == 403

    def figures() -> dict[str, Any]:
        return dict(get("reporting", "/api/report", as_of=DAY).json()["figures"])

    before = wait_until(
        "reporting counts the delivery", lambda: (f := figures())["aid_actions"] == 1 and f, 60, up
    )
    audit_before = audit(up)
    assert audit_before == {k: before[k] for k in audit_before}

    # Her last contact, learnt from the aid stream: the delivery (retention counts from it).
    delivered = int(datetime.fromisoformat(f"{DAY}T15:00:00+08:00").timestamp())

    def last_contact() -> int:
        query = "SELECT last_contact FROM people_contacts WHERE person = $1"
        return int(people.rows(query, person)[0][0])

    wait_until("her last contact is the delivery", lambda: last_contact() == delivered, 30, up)

    # Nowhere in a file: the databases (and WAL), the JetStream store, the keys, the logs.
    pg_files = people.files()
    assert people.postgres is None or pg_files, "PostgreSQL's files could not be read"
    assert not plaintext_in(up.data_dir, up.log_path, *pg_files)
    # A backup of her key's row, as a dump of the people database would hold it.
    query = "SELECT master, wrapped FROM people_keys WHERE person = $1"
    ((master, wrapped),) = people.rows(query, person)

    forgot = httpx.delete(f"{base['people']}/people/{person}", headers=admin, timeout=30)
    assert forgot.status_code == 200, forgot.text
    gone = get("people", f"/people/{person}", station)
    assert gone.status_code == 410, gone.text
    assert NAME not in gone.text and PHONE not in gone.text
    assert get("people", f"/people/{person}", courier).status_code == 410

    assert figures() == before
    assert audit(up) == audit_before
    assert not plaintext_in(up.data_dir, up.log_path, *people.files())
    assert people.rows(query, person) == []

    # The backup holds her wrapped key: no key that remains opens it.
    ring = json.loads((up.data_dir / "people" / "master-keys.json").read_text())
    assert master not in ring["keys"]
    for key in ring["keys"].values():
        with pytest.raises(Exception):  # noqa: B017  (cryptography's InvalidTag)
            unwrap(base64.b64decode(key), person, wrapped)


def audit(up: Up) -> dict[str, Any]:
    replay = kapok("audit", "replay", "--as-of", DAY, "--data-dir", str(up.data_dir))
    assert replay.returncode == 0, replay.stdout + replay.stderr[-3000:]
    return dict(json.loads(replay.stdout)["figures"])
