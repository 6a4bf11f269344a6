"""Tables the donation service keeps beside its events, written in the transaction that
appends the events they belong to: only the Idempotency-Key's first responses."""

from __future__ import annotations

from sqlalchemy import MetaData

from shared.service.idempotency import idempotency_table

metadata = MetaData()
idempotency = idempotency_table(metadata, "donation")
