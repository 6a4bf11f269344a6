"""Tables the aid service keeps beside its events."""
