"""compose.yaml's secrets, made in one directory (default deploy/secrets); what exists is kept.

Run by deploy/make-secrets.sh inside the Kapok image (as root, so that each file can be given
to the user of the container that reads it), or directly with Kapok installed:
``python deploy/make_secrets.py DIR [--owners]``.

    identities/<identity>.nk   each bus identity's NKey seed (hotline, aid, donation,
                               reporting, admin, auditor)
    nkeys.env                  their public keys, KAPOK_<IDENTITY>_NKEY=U… (not secret: the
                               nats-server nodes' environment, read by accounts.conf)
    nats_cluster               the cluster routes' user and password, and the routes
    signing/                   every producer's signing key and the ring (shared/signing.py)
    signing-<service>/         what each service may see of it: its own key, if it signs,
                               and the ring (every service of `kapok serve`)
    postgres_password, pgpass  the database's password: for PostgreSQL, and for asyncpg
                               (PGPASSFILE)
    admin_token, prometheus_token
                               Kapok tokens registered by compose's init service (an
                               administrator's; Prometheus's, role ops)
    grafana_admin_password     Grafana's admin password
"""

from __future__ import annotations

import argparse
import os
import secrets
import shutil
import sys
from pathlib import Path

# Who reads each file in its container: Kapok's image runs as 10001; the official postgres
# image's postgres user is 999, prom/prometheus runs as nobody (65534), grafana/grafana as 472.
KAPOK, POSTGRES, PROMETHEUS, GRAFANA = 10001, 999, 65534, 472
NODES = ("nats-1", "nats-2", "nats-3")


def _write(path: Path, text: str) -> bool:
    """The file, mode 0600, unless it exists (a second run keeps every secret)."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return False
    with os.fdopen(fd, "w") as out:
        out.write(text)
    return True


def _token() -> str:
    # The format of shared/auth/tokens.py (kapok_<id>_<secret>): init registers these files.
    try:
        from shared.auth.tokens import PREFIX, new_id
    except ImportError:  # an image from before sign-in: the same shape
        PREFIX, new_id = "kapok_", lambda: secrets.token_hex(6)
    return f"{PREFIX}{new_id()}_{secrets.token_urlsafe(32)}"


def make(out: Path) -> None:
    from kapok.cli import SERVABLE
    from kapok.identities import kapok_bus
    from shared import signing
    from shared.bus.auth import Keyring, key_variable
    from shared.bus.naming import Naming
    from shared.settings import Settings

    # Every service but reporting records events, and signs them.
    signers = [service for service in SERVABLE if service != "reporting"]

    out.mkdir(parents=True, exist_ok=True, mode=0o700)
    keys = Keyring.of(out).ensure(kapok_bus(Naming.of(Settings())).identities())
    (out / "nkeys.env").write_text("".join(f"{key_variable(i)}={k}\n" for i, k in keys.items()))

    password = secrets.token_urlsafe(24)
    routes = ", ".join(f'"nats-route://route:{password}@{node}:6222"' for node in NODES)
    _write(
        out / "nats_cluster",
        f'authorization {{ user: route, password: "{password}" }}\nroutes: [{routes}]\n',
    )

    signing.ensure_keys(out / "signing", signers)
    ring = signing.read_ring(out / "signing")
    for service in SERVABLE:
        mine = out / f"signing-{service}"
        mine.mkdir(exist_ok=True, mode=0o700)
        shutil.copy2(out / "signing" / signing.RING, mine / signing.RING)
        for entry in ring.get(service, []):
            name = f"{service}.{entry['key_id']}.key"
            if not (mine / name).exists():
                shutil.copy2(out / "signing" / name, mine / name)

    database = secrets.token_urlsafe(24)
    if _write(out / "postgres_password", database):
        (out / "pgpass").unlink(missing_ok=True)
    _write(out / "pgpass", f"*:*:*:kapok:{(out / 'postgres_password').read_text()}\n")
    _write(out / "admin_token", _token())
    _write(out / "prometheus_token", _token())
    _write(out / "grafana_admin_password", secrets.token_urlsafe(18))


def give(out: Path) -> None:
    """Each file to the user of the container that reads it, readable by that user only."""
    readers = {"postgres_password": POSTGRES, "prometheus_token": PROMETHEUS}
    readers["grafana_admin_password"] = GRAFANA
    os.chmod(out, 0o700)  # the engine (root) mounts what is inside; nobody else lists it
    for path in sorted(out.rglob("*")):
        if path.name == "nkeys.env":
            os.chmod(path, 0o644)  # public keys, read by compose itself
            continue
        owner = readers.get(path.name, KAPOK)
        if path.name == "prometheus_token":
            # Prometheus reads it as its owner; compose's init registers it, as Kapok's group.
            os.chown(path, owner, KAPOK)
            os.chmod(path, 0o440)
            continue
        os.chown(path, owner, owner)
        os.chmod(path, 0o500 if path.is_dir() else 0o400)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("directory", type=Path)
    parser.add_argument(
        "--owners", action="store_true", help="give each file to its reader (needs root)"
    )
    args = parser.parse_args(argv)
    make(args.directory)
    if args.owners:
        give(args.directory)
    print(f"secrets in {args.directory}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
