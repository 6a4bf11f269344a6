"""Real parts for tests: a NATS server per session, fresh databases per test."""
