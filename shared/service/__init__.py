"""The toolkit every command-handling service is built on (hotline, aid, donation).

Small on purpose: one error shape, Idempotency-Key storage, a commit loop, and the plumbing
that puts one application layer behind HTTP (FastAPI) and NATS request-reply (FastStream)
in one process. A service writes its aggregates, commands and handlers; nothing here knows
any service.
"""
