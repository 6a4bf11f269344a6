"""Every service serves HTTP the same way: uvicorn's access log off unless asked for."""

from __future__ import annotations

import pytest
from fastapi import FastAPI

from services.reporting import main as reporting
from shared.service.process import HttpServer, http_config


def test_the_access_log_is_off_unless_kapok_access_log_asks_for_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("KAPOK_ACCESS_LOG", raising=False)
    assert http_config(FastAPI(), "127.0.0.1", 8000).access_log is False
    monkeypatch.setenv("KAPOK_ACCESS_LOG", "1")
    assert http_config(FastAPI(), "127.0.0.1", 8000).access_log is True


def test_reporting_serves_http_as_the_other_services_do() -> None:
    # The one server and config, not a copy of its own (whose access log was on).
    assert reporting.HttpServer is HttpServer and reporting.http_config is http_config
