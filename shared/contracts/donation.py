"""Events of the donation service. Being written."""
