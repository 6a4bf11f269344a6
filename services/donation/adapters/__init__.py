"""What the donation service keeps beside its events."""
