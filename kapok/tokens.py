"""`kapok token create | list | revoke`: the bearer tokens people sign in with (README,
"Signing in"). Written to the token bucket on the bus as the administrator's identity (that
of the `kapok up` on --data-dir, or ``KAPOK_NATS_NKEY_SEED``/``KAPOK_NATS_CREDS``); every
service instance watches the bucket, so a revocation holds everywhere within milliseconds."""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import sys
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import nats

from shared.auth import registry
from shared.auth.principal import Role
from shared.auth.tokens import TokenRecord, issue, split
from shared.bus.naming import Naming
from shared.bus.servers import servers
from shared.runtime import connect_options
from shared.settings import Settings

ADMIN_TOKEN = "admin.token"  # under Settings.auth_path: the first `kapok up` makes it
OPS_TOKEN = "ops.token"  # Prometheus's (its `authorization: credentials_file`)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    commands = parser.add_subparsers(dest="token_command", required=True)
    create = commands.add_parser("create", help="issue a token (printed once; only its hash kept)")
    create.add_argument("--role", required=True, choices=[r.value for r in Role])
    create.add_argument("--station", help="a station worker's station, e.g. station:nanzhou")
    create.add_argument("--district", help="a coordinator's district, e.g. haizhu")
    create.add_argument(
        "--actor",
        help="written on the events it records (default user:<token id>), "
        "e.g. worker:w-0231: an opaque reference, never a name",
    )
    create.add_argument("--expires", help="in 30d, 12h, or at an ISO 8601 instant")
    create.add_argument("--note", default="", help="what it is for (no personal data)")
    create.add_argument(
        "--file",
        type=Path,
        help="write the token there (mode 0600) instead of printing it; if the file holds a "
        "token already, register that one (a deployment's secret)",
    )
    commands.add_parser("list", help="every token: id, role, scope, actor, dates; never secrets")
    revoke = commands.add_parser("revoke", help="refused everywhere from now on")
    revoke.add_argument("id", help="the token's id (the part after kapok_, before the next _)")
    for sub in commands.choices.values():
        sub.add_argument("--data-dir", type=Path, default=None, help="default: $KAPOK_DATA_DIR")
        sub.add_argument("--nats", default=None, metavar="URL", help="default: as `kapok audit`")


def expiry(text: str | None, now: datetime) -> datetime | None:
    if text is None:
        return None
    if match := re.fullmatch(r"(\d+)([dh])", text):
        amount, unit = int(match[1]), match[2]
        return now + (timedelta(days=amount) if unit == "d" else timedelta(hours=amount))
    moment = datetime.fromisoformat(text)
    if moment.tzinfo is None:
        raise ValueError("--expires: give the instant's offset, e.g. 2026-12-31T00:00+08:00")
    return moment


def write_secret(path: Path, token: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "w") as file:
        file.write(token + "\n")
    os.chmod(path, 0o600)


async def create(
    settings: Settings,
    role: Role,
    *,
    station: str | None = None,
    district: str | None = None,
    actor: str | None = None,
    expires_at: datetime | None = None,
    note: str = "",
    file: Path | None = None,
) -> tuple[str, TokenRecord]:
    given = None
    # A few bytes, once, in a command: not worth a thread.
    if file is not None and file.is_file():  # noqa: ASYNC240
        given = file.read_text().strip()  # noqa: ASYNC240
    token, record = issue(
        role,
        station=station,
        district=district,
        actor=actor,
        note=note,
        expires_at=expires_at,
        token=given,
    )
    nc = await _connect(settings)
    try:
        kv = await registry.open_bucket(nc, Naming.of(settings), replicas=settings.stream_replicas)
        await registry.put(kv, record)
    finally:
        await nc.close()
    if file is not None and given is None:
        write_secret(file, token)
    return token, record


async def register(env: dict[str, str], token: str, note: str) -> None:
    """``token`` as an administrator's, in the token bucket of the bus that ``env`` (a
    process's ``KAPOK_*`` environment) names, unsigned: for a test's or a bench's own
    nats-server, so the processes it starts sign it in."""
    _, record = issue(Role.ADMINISTRATOR, token=token, note=note)
    nc = await nats.connect(servers(env["KAPOK_NATS_URL"]))
    try:
        naming = Naming(env["KAPOK_SUBJECT_ROOT"], env["KAPOK_STREAM_PREFIX"])
        await registry.put(await registry.open_bucket(nc, naming), record)
    finally:
        await nc.close()


async def _connect(settings: Settings) -> nats.NATS:
    return await nats.connect(
        servers(settings.nats_url),
        name="kapok-token",
        allow_reconnect=False,
        connect_timeout=5,
        **connect_options(settings, "admin"),
    )


def run(args: argparse.Namespace) -> int:
    from kapok.cli import audit_target

    args.url = None
    audit_target(args)  # the bus of the `kapok up` on --data-dir, as the administrator
    settings = Settings()
    if args.data_dir is not None:
        settings = settings.model_copy(update={"data_dir": args.data_dir})
    if args.token_command == "create":
        token, record = asyncio.run(
            create(
                settings,
                Role(args.role),
                station=args.station,
                district=args.district,
                actor=args.actor,
                expires_at=expiry(args.expires, datetime.now(UTC)),
                note=args.note,
                file=args.file,
            )
        )
        where = f" in {args.file}" if args.file else ""
        print(
            f"token {record.id}: {record.role}, {record.principal().scope}{where}", file=sys.stderr
        )
        if args.file is None:
            print(token)
        return 0
    if args.token_command == "list":
        for record in asyncio.run(_list(settings)):
            print(_line(record))
        return 0
    record = asyncio.run(_revoke(settings, args.id))
    print(f"token {record.id} revoked at {record.revoked_at:%Y-%m-%d %H:%M:%S} UTC")
    return 0


async def _list(settings: Settings) -> list[TokenRecord]:
    nc = await _connect(settings)
    try:
        return await registry.records(
            await registry.open_bucket(nc, Naming.of(settings), replicas=settings.stream_replicas)
        )
    finally:
        await nc.close()


async def _revoke(settings: Settings, token_id: str) -> TokenRecord:
    parts = split(token_id)  # a whole token pasted: its id
    nc = await _connect(settings)
    try:
        kv = await registry.open_bucket(nc, Naming.of(settings), replicas=settings.stream_replicas)
        return await registry.revoke(kv, parts[0] if parts else token_id)
    finally:
        await nc.close()


def _line(record: TokenRecord) -> str:
    state = (
        f"revoked {record.revoked_at:%Y-%m-%d %H:%M}"
        if record.revoked_at
        else f"expires {record.expires_at:%Y-%m-%d %H:%M}"
        if record.expires_at
        else "no expiry"
    )
    return (
        f"{record.id}  {record.role:<14} {record.principal().scope:<28} {record.actor:<28} "
        f"created {record.created_at:%Y-%m-%d %H:%M}  {state}  {record.note}"
    )


async def first_tokens(settings: Settings, say: Callable[[str], None]) -> None:
    """On a `kapok up`'s first start: an administrator's token (and ops' for Prometheus)
    under the data directory, 0600, and how to use it. Never made again once the file is
    there (a revoked token stays revoked)."""
    for role, name in ((Role.ADMINISTRATOR, ADMIN_TOKEN), (Role.OPS, OPS_TOKEN)):
        path = settings.auth_path / name
        if path.is_file():
            continue
        _, record = await create(settings, role, note="made by the first kapok up", file=path)
        say(f"{role} token {record.id} written to {path} (mode 0600)")
        if role is Role.ADMINISTRATOR:
            say(
                f'  sign in: curl -H "Authorization: Bearer $(cat {path})" …; the dashboard '
                "asks for it once; `kapok token create --role …` issues more"
            )


def admin_token(settings: Settings) -> str | None:
    """The `kapok up` administrator's token on the data directory (``KAPOK_TOKEN`` first)."""
    if given := os.environ.get("KAPOK_TOKEN"):
        return given
    path = settings.auth_path / ADMIN_TOKEN
    return path.read_text().strip() if path.is_file() else None
