"""Tables and SQL: where the counters live."""
