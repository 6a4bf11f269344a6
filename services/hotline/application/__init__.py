"""Commands and their handlers: load, decide, append. Both entrypoints call this layer."""
