from services.people.domain.person import Person

__all__ = ["Person"]
