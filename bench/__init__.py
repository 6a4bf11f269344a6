"""Kapok's benchmark: the hot paths (outbox relay, consumer runner) against the raw limits.

``./bench.sh`` (or ``python -m bench``) starts its own nats-servers, fills a SQLite event
store with real events and prints events/s and ratios as a Markdown table. See
``python -m bench --help``.
"""
