"""Events of the aid service. Being written."""
