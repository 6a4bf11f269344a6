"""The pure fold: events in, counter increments out. No I/O, shared by live and replay."""
