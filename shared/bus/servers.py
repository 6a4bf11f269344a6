"""``KAPOK_NATS_URL`` as one URL or several, comma-separated (a cluster's nodes): the list
nats-py wants. nats-py and FastStream take a string as one URL and refuse one with commas."""

from __future__ import annotations


def servers(url: str) -> list[str]:
    """``"nats://a:4222, nats://b:4222"`` → ``["nats://a:4222", "nats://b:4222"]``."""
    found = [part.strip() for part in url.split(",") if part.strip()]
    if not found:
        raise ValueError(f"no NATS URL in {url!r}")
    return found
