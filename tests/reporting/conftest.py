"""Reporting stories run on real parts: the session's nats-server and SQLite or PostgreSQL.
The events they fold are built in `reporting_stories`."""
