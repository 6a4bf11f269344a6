"""How the aid service is reached: HTTP (FastAPI), NATS request-reply, the referral consumer."""
