"""The people service's tables beside its events. The details and the data keys are in
tables of their own, so that forgetting is a delete of one row in each; what the service
learns from the other services' events (a person's last contact, who is assigned to serve
them) only ever holds references and times."""

from __future__ import annotations

from sqlalchemy import BigInteger, Column, LargeBinary, MetaData, String, Table

from shared.service.idempotency import idempotency_table

metadata = MetaData()
idempotency = idempotency_table(metadata, "people")

# A person's data key, wrapped by the master key ``master`` names (adapters/keyring.py).
keys = Table(
    "people_keys",
    metadata,
    Column("person", String(64), primary_key=True),
    Column("master", String(32), nullable=False),
    Column("wrapped", LargeBinary, nullable=False),
)

# Their name, phone and address, sealed with their data key (domain/sealing.py).
details = Table(
    "people_details",
    metadata,
    Column("person", String(64), primary_key=True),
    Column("box", LargeBinary, nullable=False),
)

# The latest business time an event named the person (a call, a follow-up, a referral, an
# aid request or delivery), or their recording: retention counts from it. Epoch seconds.
contacts = Table(
    "people_contacts",
    metadata,
    Column("person", String(64), primary_key=True),
    Column("last_contact", BigInteger, nullable=False),
)

# From the aid stream: which person each request serves, and who is assigned to serve them.
requests = Table(
    "people_requests",
    metadata,
    Column("request", String(64), primary_key=True),
    Column("person", String(64), nullable=False),
)
assignees = Table(
    "people_assignees",
    metadata,
    Column("person", String(64), primary_key=True),
    Column("assignee", String(64), primary_key=True),
)
