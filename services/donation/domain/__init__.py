"""The donation service's aggregates and their rules."""

from services.donation.domain.campaign import Campaign, distribution_id_for_delivery
from services.donation.domain.volunteers import VolunteerLink

__all__ = ["Campaign", "VolunteerLink", "distribution_id_for_delivery"]
