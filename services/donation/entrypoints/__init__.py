"""How the donation service is reached: HTTP, NATS request-reply, the aid-delivery consumer."""
