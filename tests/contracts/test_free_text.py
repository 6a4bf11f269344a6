"""Free text a person types holds no phone or ID-card number: a street's name, a campaign's
title and a void's reason are refused (422, naming the field) when they do, as a trial found
a hotline point's street `王小明 手机13800138000 天河路385号3栋1201` accepted."""

from __future__ import annotations

import json

import pytest
from pydantic import ValidationError

from services.donation.application.commands import LaunchCampaign
from services.hotline.application.commands import OpenHotlinePoint, VoidCall
from shared.contracts.text import personal_number

PLACE = {"district": "haizhu", "street": "南洲街", "station": "station:nanzhou",
         "organisation": "org:haizhu-sw"}  # fmt: skip


@pytest.mark.parametrize(
    ("text", "found"),
    [
        ("王小明 手机13800138000 天河路385号3栋1201", "a phone number"),
        ("138 0013 8000", "a phone number"),
        ("+86 138-0013-8000", "a phone number"),
        ("１３８００１３８０００", "a phone number"),  # full-width digits
        ("家里电话 020-8888-1234", "a phone number"),
        ("44010619800101123X", "an ID-card number"),
        ("身份证 440106 19800101 1234", "an ID-card number"),
        ("南洲街", None),
        ("暖心午餐 2020", None),
        ("logged twice on 2020-02-10 09:05", None),
        ("batch 12345", None),
    ],
)
def test_what_counts_as_a_personal_number(text: str, found: str | None) -> None:
    assert personal_number(text) == found


def test_a_street_with_a_phone_number_is_refused_naming_the_place() -> None:
    typed = {**PLACE, "street": "王小明 手机13800138000 天河路385号3栋1201"}
    with pytest.raises(ValidationError) as refused:
        OpenHotlinePoint.model_validate_json(
            json.dumps({"place": typed, "opened_at": "2020-02-10T08:00:00+08:00"})
        )
    [error] = refused.value.errors()
    assert error["loc"] == ("place",) and "phone number" in error["msg"]


def test_a_title_or_a_reason_with_a_personal_number_is_refused() -> None:
    with pytest.raises(ValidationError, match="title"):
        LaunchCampaign.model_validate_json(
            json.dumps({"campaign_kind": "charity", "organisation": "org:x",
                        "title": "王小明 13800138000", "districts": ["haizhu"],
                        "starts_on": "2020-02-01", "launched_at": "2020-02-01T09:00:00+08:00"})
        )  # fmt: skip
    with pytest.raises(ValidationError, match="reason"):
        VoidCall.model_validate_json(
            json.dumps({"call": "call:x", "reason": "caller 44010619800101123X"})
        )
    assert VoidCall.model_validate_json(json.dumps({"call": "call:x", "reason": "twice"})).reason
