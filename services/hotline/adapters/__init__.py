"""The hotline's own tables beside the event store, and the queries on them."""
