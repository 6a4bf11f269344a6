"""How the hotline is reached: HTTP (FastAPI) and NATS request-reply (FastStream)."""
