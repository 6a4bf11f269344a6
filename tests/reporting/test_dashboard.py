"""The staff dashboard at ``GET /``, in a real headless Chromium: it shows the four nets'
figures and charts, follows the as-of picker, and a call recorded on the bus appears on the
open page without a reload (server-sent events from ``/api/stream``).

Needs the Debian packages chromium and chromium-driver (./test.sh installs them as root).
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import shutil
import tempfile
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn
from harness import waits
from harness.waits import free_port
from reporting_parts import Producers, caught_up, producers
from reporting_stories import HUALIN, at, call, follow_up_done
from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.remote.webdriver import WebDriver

from services.reporting.entrypoints.http import build_app
from services.reporting.main import Running, running
from shared.bus.naming import Naming
from shared.settings import Settings

CHROMIUM_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
    "--window-size=1280,1600",
)


class _Server(uvicorn.Server):
    """uvicorn without its signal handlers: pytest keeps Ctrl-C."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


@contextlib.asynccontextmanager
async def served(parts: Running) -> AsyncIterator[str]:
    """The reporting HTTP API on a free loopback port, in this event loop."""
    port = free_port()
    config = uvicorn.Config(
        build_app(parts.reporting), host="127.0.0.1", port=port, log_level="warning",
        lifespan="off", timeout_graceful_shutdown=1,
    )  # fmt: skip
    server = _Server(config)
    task = asyncio.create_task(server.serve())
    try:
        await waits.until("uvicorn started", lambda: server.started or task.done(), 10)
        assert not task.done(), "uvicorn stopped before it started"
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await asyncio.wait({task}, timeout=10)
        task.cancel()


@contextlib.asynccontextmanager
async def dashboard_open(
    settings: Settings, tmp_path: Path, bus: Producers
) -> AsyncIterator[tuple[Running, WebDriver]]:
    """Reporting caught up with what ``bus`` published, served, and its dashboard open in
    Chromium."""
    async with running(settings, f"sqlite+aiosqlite:///{tmp_path}/reporting.db") as parts:
        await caught_up(parts, await bus.heads())
        async with served(parts) as base:
            with chromium() as page:
                await asyncio.to_thread(page.get, base + "/")
                yield parts, page


@contextlib.contextmanager
def chromium() -> Iterator[WebDriver]:
    browser, driver = shutil.which("chromium"), shutil.which("chromedriver")
    if not (browser and driver):
        pytest.fail(
            "the dashboard test needs Chromium and its driver: apt-get install -y chromium "
            "chromium-driver (./test.sh does this where it runs as root)"
        )
    options = webdriver.ChromeOptions()
    options.binary_location = browser
    with tempfile.TemporaryDirectory(prefix="kapok-chromium-") as profile:
        for flag in (*CHROMIUM_FLAGS, f"--user-data-dir={profile}"):
            options.add_argument(flag)
        browser_driver = webdriver.Chrome(options=options, service=Service(driver))
        try:
            yield browser_driver
        finally:
            browser_driver.quit()


async def until(what: str, check: Callable[[], Any], within: float = 15.0) -> Any:
    """A look at the page (blocking: in a thread, the service runs in this loop) until truthy."""
    return await waits.until(what, check, within, in_thread=True)


# Counts the page's loads of /api/dashboard asked for and drawn (#nets is redrawn once a
# load): what shows that the page has taken in the figures there are.
COUNT_LOADS = """
window.kapokAsked = 0; window.kapokDrawn = 0;
const fetched = window.fetch;
window.fetch = (url, ...rest) => {
  if (String(url).startsWith('/api/dashboard')) window.kapokAsked++;
  return fetched(url, ...rest);
};
new MutationObserver(() => window.kapokDrawn++)
  .observe(document.getElementById('nets'), {childList: true});
"""


def text(page: WebDriver, element_id: str) -> str:
    return str(page.execute_script(f"return document.getElementById('{element_id}')?.textContent"))


async def test_a_call_recorded_on_the_bus_appears_on_the_open_dashboard(
    settings: Settings, tmp_path: Path
) -> None:
    async with producers(settings, tmp_path) as bus:
        await bus.record("hotline", [call(i, at(1 + i)) for i in range(3)])
        await bus.record("hotline", [call(3, at(2), group="child", place=HUALIN)])
        await bus.record("hotline", [follow_up_done(1, at(3))])
        async with dashboard_open(settings, tmp_path, bus) as (parts, page):
            # 3 + 1 calls and a follow-up: five services, one of them tracked
            await until("services given 5", lambda: text(page, "fig-services_given") == "5")
            assert text(page, "fig-tracked_services") == "1"
            await until("live", lambda: "Live" in text(page, "status"))
            district = await until("district chart", lambda: text(page, "by-district"))
            assert "海珠 Haizhu" in district and "荔湾 Liwan" in district
            group = text(page, "by-group")
            assert "独居长者" in group and "困境儿童 Children" in group
            # three days of services drawn as bars: 1, 2+1 and 1+1 on 1-3 March
            bars = page.execute_script(
                "return [...document.querySelectorAll('#per-day rect title')]"
                ".map(t => t.textContent)"
            )
            assert bars == ["2020-03-01: 1", "2020-03-02: 2", "2020-03-03: 2"]
            assert "2020-03-03: 5" in text(page, "cumulative")

            # A mark that a reload would wipe out.
            await asyncio.to_thread(page.execute_script, "window.kapokMark = 42")
            await bus.record("hotline", [call(10, at(4)), call(11, at(4))])
            await until("services given 7", lambda: text(page, "fig-services_given") == "7")
            assert page.execute_script("return window.kapokMark") == 42, "page reloaded"
            await until(
                "the new day in the chart",
                lambda: "2020-03-04: 7" in text(page, "cumulative"),
            )

            # The as-of picker: the figures as of 2 March.
            await asyncio.to_thread(
                page.execute_script,
                "const i = document.getElementById('as-of'); i.value = '2020-03-02';"
                "i.dispatchEvent(new Event('change'));",
            )
            await until("as of 2 March", lambda: text(page, "fig-services_given") == "3")
            assert text(page, "shown-as-of") == "2020-03-02"
            # A call of 5 March moves nothing as of 2 March: once the page has
            # loaded and drawn the figures again for it …
            await asyncio.to_thread(page.execute_script, COUNT_LOADS)
            await bus.record("hotline", [call(12, at(5))])
            await caught_up(parts, await bus.heads())
            await until(
                "the page drew the figures again after the call",
                lambda: page.execute_script(
                    "return window.kapokAsked > 0 && window.kapokDrawn >= window.kapokAsked"
                ),
            )
            assert text(page, "fig-services_given") == "3"
            # … and back to live it counts.
            await asyncio.to_thread(page.find_element("id", "live").click)
            await until("live again", lambda: text(page, "fig-services_given") == "8")


async def test_the_dashboard_says_so_above_the_figures_when_reporting_is_degraded(
    settings: Settings, tmp_path: Path
) -> None:
    async with producers(settings, tmp_path) as bus:
        await bus.record("hotline", [call(1, at(1))])
        async with dashboard_open(settings, tmp_path, bus) as (_, page):
            await until("services given 1", lambda: text(page, "fig-services_given") == "1")
            # Given all is well, no banner;
            assert page.execute_script("return document.getElementById('health').hidden")
            # when a stranger's message on the hotline's subjects is dead-lettered,
            stray = Naming.of(settings).event_subject("hotline", "Oops")
            await bus.nc.publish(stray, b"hello")
            # then the open page says the figures may be incomplete, and why.
            banner = await until(
                "the degraded banner",
                lambda: page.execute_script(
                    "const b = document.getElementById('health');"
                    "return b.hidden ? '' : b.textContent"
                ),
            )
            assert "may be incomplete" in banner and "1 dead letter," in banner, banner
            assert text(page, "fig-services_given") == "1"  # the figures stay shown


async def test_the_dashboard_is_served_whole_by_kapok_with_no_outside_asset(
    settings: Settings, tmp_path: Path
) -> None:
    """No CDN: every script, style and link the page names is on the service itself."""
    async with running(settings, f"sqlite+aiosqlite:///{tmp_path}/reporting.db") as parts:
        transport = httpx.ASGITransport(app=build_app(parts.reporting))
        async with httpx.AsyncClient(transport=transport, base_url="http://reporting") as http:
            page = await http.get("/")
            assert page.status_code == 200
            assert page.headers["content-type"].startswith("text/html")
            refs = re.findall(r'(?:src|href)="([^"]+)"', page.text)
            assert "/static/dashboard.js" in refs and "/static/dashboard.css" in refs
            for ref in refs:
                assert ref.startswith("/"), f"{ref}: not served by Kapok"
                assert (await http.get(ref)).status_code == 200, ref
            script = (await http.get("/static/dashboard.js")).text
            outside = set(re.findall(r"https?://[^\s\"'`]+", script))
            assert outside <= {"http://www.w3.org/2000/svg"}, outside
            data = (await http.get("/api/dashboard", params={"as_of": "2020-03-02"})).json()
            assert data["report"]["as_of"] == "2020-03-02"
            assert data["per_day"] == [] and data["by_district"] == []
            assert (await http.get("/api/dashboard", params={"as_of": "nope"})).status_code == 422
