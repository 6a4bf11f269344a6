"""The aid service's aggregates and their rules."""

from services.aid.domain.emergency import EmergencyCase
from services.aid.domain.request import AidRequest, request_id_for_referral

__all__ = ["AidRequest", "EmergencyCase", "request_id_for_referral"]
