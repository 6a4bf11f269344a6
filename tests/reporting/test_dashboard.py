"""The staff dashboard at ``GET /``, in a real headless Chromium: it asks for a token and
shows nothing without one; signed in, it shows the four nets' figures and charts, follows the
as-of picker, and a call recorded on the bus appears on the open page without a reload (the
server-sent events of ``/api/stream``, read with fetch: EventSource sends no header). A
revoked token returns it to sign-in; the token is in no URL the browser asked for.

Needs the Debian packages chromium and chromium-driver (./test.sh installs them as root).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import re
import shutil
import tempfile
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn
from harness import signin, waits
from harness.waits import free_port
from reporting_parts import Producers, caught_up, producers
from reporting_stories import HUALIN, at, call, follow_up_done
from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.remote.webdriver import WebDriver
from starlette.types import ASGIApp, Receive, Scope, Send

from services.reporting.entrypoints.http import build_app
from services.reporting.main import Running, running
from shared.auth.gate import Gate
from shared.auth.principal import Role
from shared.auth.tokens import issue, split
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


@dataclass
class Site:
    """The served API, and every request it was asked: its target (path and query) and
    whether it carried an Authorization header, as the server saw them."""

    base: str
    requests: list[tuple[str, bool]] = field(default_factory=list)

    def recording(self, app: ASGIApp) -> ASGIApp:
        async def recorded(scope: Scope, receive: Receive, send: Send) -> None:
            if scope["type"] == "http":
                target = scope["path"] + "?" + scope["query_string"].decode("latin-1")
                signed = any(name == b"authorization" for name, _ in scope["headers"])
                self.requests.append((target, signed))
            await app(scope, receive, send)

        return recorded

    def asked(self, path: str) -> list[tuple[str, bool]]:
        return [r for r in self.requests if r[0].startswith(path)]


@contextlib.asynccontextmanager
async def served(parts: Running, gate: Gate) -> AsyncIterator[Site]:
    """The reporting HTTP API, signing in at ``gate``, on a free loopback port, in this
    event loop."""
    port = free_port()
    site = Site(f"http://127.0.0.1:{port}")
    config = uvicorn.Config(
        site.recording(build_app(parts.reporting, gate)), host="127.0.0.1", port=port,
        log_level="warning", lifespan="off", timeout_graceful_shutdown=1,
    )  # fmt: skip
    server = _Server(config)
    task = asyncio.create_task(server.serve())
    try:
        await waits.until("uvicorn started", lambda: server.started or task.done(), 10)
        assert not task.done(), "uvicorn stopped before it started"
        yield site
    finally:
        server.should_exit = True
        await asyncio.wait({task}, timeout=10)
        task.cancel()


@dataclass
class Dashboard:
    parts: Running
    page: WebDriver
    gate: Gate
    site: Site


@contextlib.asynccontextmanager
async def dashboard_open(
    settings: Settings, tmp_path: Path, bus: Producers
) -> AsyncIterator[Dashboard]:
    """Reporting caught up with what ``bus`` published, served, and its dashboard open in
    Chromium (not signed in: `sign_in`)."""
    async with running(settings, f"sqlite+aiosqlite:///{tmp_path}/reporting.db") as parts:
        await caught_up(parts, await bus.heads())
        gate = signin.gate()
        async with served(parts, gate) as site:
            with chromium() as page:
                await asyncio.to_thread(page.get, site.base + "/")
                yield Dashboard(parts, page, gate, site)


async def sign_in(page: WebDriver, token: str) -> None:
    """As someone would: the token pasted into the sign-in form, and the form sent."""

    def paste() -> None:
        box = page.find_element("id", "token")
        box.clear()
        box.send_keys(token)
        page.find_element("id", "sign-in").click()

    await until("the sign-in form", lambda: page.find_element("id", "token").is_displayed())
    await asyncio.to_thread(paste)


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
    # Every request the browser makes (performance: the DevTools network events), and its
    # console: where a token must never show.
    options.set_capability("goog:loggingPrefs", {"performance": "ALL", "browser": "ALL"})
    with tempfile.TemporaryDirectory(prefix="kapok-chromium-") as profile:
        for flag in (*CHROMIUM_FLAGS, f"--user-data-dir={profile}"):
            options.add_argument(flag)
        browser_driver = webdriver.Chrome(options=options, service=Service(driver))
        try:
            yield browser_driver
        finally:
            browser_driver.quit()


def urls_requested(page: WebDriver) -> list[str]:
    """The URLs Chromium asked for since the last look (its performance log)."""
    urls = []
    for entry in page.get_log("performance"):
        message = json.loads(entry["message"])["message"]
        if message["method"] == "Network.requestWillBeSent":
            urls.append(message["params"]["request"]["url"])
        elif message["method"] == "Page.frameNavigated":
            urls.append(message["params"]["frame"]["url"])
    return urls


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


def shown(page: WebDriver, element_id: str) -> bool:
    return bool(page.execute_script(f"return !document.getElementById('{element_id}').hidden"))


def text(page: WebDriver, element_id: str) -> str:
    return str(page.execute_script(f"return document.getElementById('{element_id}')?.textContent"))


async def test_a_call_recorded_on_the_bus_appears_on_the_open_dashboard(
    settings: Settings, tmp_path: Path
) -> None:
    async with producers(settings, tmp_path) as bus:
        await bus.record("hotline", [call(i, at(1 + i)) for i in range(3)])
        await bus.record("hotline", [call(3, at(2), group="child", place=HUALIN)])
        await bus.record("hotline", [follow_up_done(1, at(3))])
        async with dashboard_open(settings, tmp_path, bus) as board:
            parts, page = board.parts, board.page
            await sign_in(page, signin.grant(board.gate, "administrator"))
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
        async with dashboard_open(settings, tmp_path, bus) as board:
            page = board.page
            await sign_in(page, signin.grant(board.gate, "administrator"))
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

            # An auditor does not watch the service: the same banner, without the details.
            await asyncio.to_thread(page.find_element("id", "sign-out").click)
            await sign_in(page, signin.grant(board.gate, "auditor"))
            await until("services given 1", lambda: text(page, "fig-services_given") == "1")
            banner = await until(
                "the degraded banner",
                lambda: page.execute_script(
                    "const b = document.getElementById('health');"
                    "return b.hidden ? '' : b.textContent"
                ),
            )
            assert "may be incomplete" in banner and "ops and administrator" in banner, banner
            assert "dead letter" not in banner, banner


async def test_the_dashboard_is_served_whole_by_kapok_with_no_outside_asset(
    settings: Settings, tmp_path: Path
) -> None:
    """No CDN: every script, style and link the page names is on the service itself. The
    page and its assets are open (they hold no figures); what the links read needs a token."""
    async with running(settings, f"sqlite+aiosqlite:///{tmp_path}/reporting.db") as parts:
        gate = signin.gate()
        transport = httpx.ASGITransport(app=build_app(parts.reporting, gate))
        token = signin.bearer(signin.grant(gate, "auditor"))
        async with httpx.AsyncClient(transport=transport, base_url="http://reporting") as http:
            page = await http.get("/")
            assert page.status_code == 200
            assert page.headers["content-type"].startswith("text/html")
            refs = re.findall(r'(?:src|href)="([^"]+)"', page.text)
            assert "/static/dashboard.js" in refs and "/static/dashboard.css" in refs
            for ref in refs:
                assert ref.startswith("/"), f"{ref}: not served by Kapok"
                if ref.startswith("/api/"):
                    refused = await http.get(ref)
                    assert refused.status_code == 401, ref
                    assert refused.headers["www-authenticate"] == "Bearer"
                    assert (await http.get(ref, headers=token)).status_code == 200, ref
                else:
                    assert (await http.get(ref)).status_code == 200, ref
            script = (await http.get("/static/dashboard.js")).text
            outside = set(re.findall(r"https?://[^\s\"'`]+", script))
            assert outside <= {"http://www.w3.org/2000/svg"}, outside
            assert (await http.get("/api/dashboard")).status_code == 401
            data = (
                await http.get("/api/dashboard", params={"as_of": "2020-03-02"}, headers=token)
            ).json()
            assert data["report"]["as_of"] == "2020-03-02"
            assert data["per_day"] == [] and data["by_district"] == []
            nope = await http.get("/api/dashboard", params={"as_of": "nope"}, headers=token)
            assert nope.status_code == 422


DRIVER = ("selenium", "urllib3")


def figures_shown(page: WebDriver) -> int:
    return int(page.execute_script("return document.querySelectorAll('[id^=fig-]').length"))


async def test_the_dashboard_asks_for_a_token_and_keeps_it_out_of_every_url(
    settings: Settings, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    async with producers(settings, tmp_path) as bus:
        await bus.record("hotline", [call(1, at(1)), call(2, at(2))])
        async with dashboard_open(settings, tmp_path, bus) as board:
            page, site = board.page, board.site
            downloads = tmp_path / "downloads"
            downloads.mkdir()
            await asyncio.to_thread(
                page.execute_cdp_cmd,
                "Browser.setDownloadBehavior",
                {"behavior": "allow", "downloadPath": str(downloads)},
            )
            # Given no token, the page asks for one, and shows and asks for no figure.
            await until("the sign-in form", lambda: shown(page, "signin"))
            assert not shown(page, "board") and not shown(page, "reports")
            assert figures_shown(page) == 0
            assert site.asked("/api/") == []

            # A token Kapok does not know: refused, with the server's reason, still no figure.
            await sign_in(page, issue(Role.AUDITOR)[0])
            message = await until("the refusal", lambda: text(page, "signin-message"))
            assert "unknown token" in message, message
            assert shown(page, "signin") and figures_shown(page) == 0

            # An auditor's token: the figures, live.
            token = signin.grant(board.gate, "auditor")
            await sign_in(page, token)
            await until("services given 2", lambda: text(page, "fig-services_given") == "2")
            assert not shown(page, "signin")
            await until("live", lambda: "Live" in text(page, "status"))
            await bus.record("hotline", [call(3, at(3))])
            await until("services given 3", lambda: text(page, "fig-services_given") == "3")

            # The stream cut (a proxy's timeout, a restart): read again after a pause, live.
            streams = len(site.asked("/api/stream"))
            await asyncio.to_thread(page.execute_script, "stream.abort()")
            await until("reconnected", lambda: len(site.asked("/api/stream")) > streams)
            await until("live again", lambda: "Live" in text(page, "status"))
            await bus.record("hotline", [call(4, at(3))])
            await until("services given 4", lambda: text(page, "fig-services_given") == "4")

            # The report links read with the token too: the printable page in a new tab …
            await asyncio.to_thread(page.find_element("id", "printable").click)
            await until("the printable tab", lambda: len(page.window_handles) == 2)
            dashboard_tab = page.current_window_handle
            printable = next(h for h in page.window_handles if h != dashboard_tab)
            await asyncio.to_thread(page.switch_to.window, printable)
            await until("the printable report", lambda: "Four nets report" in page.title)
            assert page.current_url.startswith("blob:"), page.current_url
            assert "4" in page.find_element("tag name", "body").text
            await asyncio.to_thread(page.close)
            await asyncio.to_thread(page.switch_to.window, dashboard_tab)
            # … the CSV as a download.
            await asyncio.to_thread(page.find_element("id", "csv").click)
            saved = downloads / "kapok-report-today.csv"
            await until("the CSV downloaded", saved.exists)
            assert saved.read_text(encoding="utf-8").startswith("as_of,net,figure,zh,en,value")
            assert ("/api/report?format=csv", True) in site.requests

            # The token went in headers only: in no URL the browser asked for or the server
            # saw, no cookie, no localStorage, no console or server log line.
            urls = await asyncio.to_thread(urls_requested, page)
            assert any("/api/stream" in u for u in urls), urls
            assert [u for u in urls if token in u] == []
            assert [t for t, _ in site.requests if token in t] == []
            api = site.asked("/api/")
            assert api and all(signed for _, signed in api), api
            assert page.execute_script("return document.cookie") == ""
            assert page.execute_script("return localStorage.length") == 0
            assert page.execute_script("return sessionStorage.getItem('kapok.token')") == token
            console = json.dumps(page.get_log("browser"))
            assert token not in console
            # (the browser's driver logs what it types: not the service's log)
            service_log = [r.getMessage() for r in caplog.records if not r.name.startswith(DRIVER)]
            assert service_log and not [line for line in service_log if token in line]

            # Revoked (as the token bucket's watch applies `kapok token revoke`): the live
            # stream ends at its next look, the page's reconnect is refused, and it is back
            # at sign-in, empty, with no new event needed.
            assert board.gate.registry is not None
            token_id = split(token)[0]  # type: ignore[index]
            records = board.gate.registry.records
            records[token_id] = records[token_id].revoked(datetime.now(UTC))
            message = await until("back at sign-in", lambda: text(page, "signin-message"))
            assert f"token {token_id} was revoked" in message, message
            assert shown(page, "signin") and not shown(page, "board")
            await until("no figure left", lambda: figures_shown(page) == 0)
            assert page.execute_script("return sessionStorage.length") == 0
