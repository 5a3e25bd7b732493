"""The web console (``GET /console``, issue 15) in a real browser: Debian's chromium driven by Playwright,
against a real gateway on Hypercorn. Marker ``browser`` (out of ``just test-fast``); chromium comes from
``scripts/toolchains/chromium.sh`` (``just toolchains``): without it these tests fail, naming the script.

Screenshots of what the tests see are written to ``$CONSOLE_SCREENSHOTS`` when set (docs/console.md's come
from ``CONSOLE_SCREENSHOTS=docs/console python -m pytest -m browser tests/gateway/http/console``).
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from gateway.http.config_api.tail import hub_of
from gateway.observe.record import CallRecord, EventRecord, PluginVerdict, StageRecord
from tests.wat import TRAP_ON_BOOM, example, kit_module

pytestmark = pytest.mark.browser

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--no-first-run"]
CE = "application/cloudevents+json"


@pytest.fixture(scope="session")
async def browser() -> AsyncIterator[Any]:
    if not os.path.exists(CHROMIUM) or shutil.which("chromium") is None:
        pytest.fail(f"{CHROMIUM} is missing: install it with `bash scripts/toolchains/chromium.sh` (just toolchains)")
    from playwright.async_api import async_playwright
    async with async_playwright() as playwright:
        chromium = await playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield chromium
        await chromium.close()


@pytest.fixture
async def page(browser: Any) -> AsyncIterator[Any]:
    context = await browser.new_context(viewport={"width": 1400, "height": 900})
    page = await context.new_page()
    problems: list[str] = []
    page.on("console", lambda m: problems.append(f"console {m.type}: {m.text}") if m.type in ("error", "warning") else None)
    page.on("pageerror", lambda e: problems.append(f"page error: {e}"))
    page.problems = problems
    yield page
    await context.close()


def shot_path(name: str) -> Path | None:
    folder = os.environ.get("CONSOLE_SCREENSHOTS")
    if not folder:
        return None
    Path(folder).mkdir(parents=True, exist_ok=True)
    return Path(folder) / f"{name}.png"


async def screenshot(page: Any, name: str) -> None:
    path = shot_path(name)
    if path is not None:
        await page.screenshot(path=str(path), full_page=False)


def cloudevent(event_type: str, n: int = 1) -> str:
    return json.dumps({"specversion": "1.0", "type": event_type, "source": "/console-test", "id": f"e{n}",
                       "data": {"n": n}})


async def upload(config_url: str, name: str, wasm: bytes, settings: dict[str, Any]) -> None:
    async with httpx.AsyncClient(timeout=30) as client:
        response = await client.post(f"{config_url}/v1/plugins", params={"name": name, "settings": json.dumps(settings)},
                                     content=wasm, headers={"Content-Type": "application/wasm"})
        assert response.status_code == 201, response.text


@pytest.fixture
async def console_gateway(gateway_server: Any) -> Any:
    """A gateway with a guard plugin (active) and a plugin that traps on "boom", quarantined by one event."""
    gw = await gateway_server()
    await upload(gw.config_url, "guard", example("guard"), {"config": {"denyTypes": ["blocked"]}})
    await upload(gw.config_url, "trapper", kit_module(TRAP_ON_BOOM),
                 {"order": 5, "policy": "open", "limits": {"quarantine_after": 1, "quarantine_backoff": 600}})
    async with httpx.AsyncClient(timeout=10) as client:
        await client.post(f"{gw.config_url}/v1/spaces/default/eventtypes", json={"name": "user.created"})
        await client.post(f"{gw.config_url}/v1/spaces/default/functions",
                          json={"functionId": "hello", "type": "http", "provider": {"url": "http://127.0.0.1:9/"}})
        for n, event_type in enumerate(("boom", "user.created", "blocked")):
            await client.post(f"{gw.events_url}/", content=cloudevent(event_type, n), headers={"Content-Type": CE})
        listed = (await client.get(f"{gw.config_url}/v1/plugins")).json()["plugins"]
    states = {p["name"]: p["state"] for p in listed}
    assert states == {"guard": "active", "trapper": "quarantined"}, states
    return gw


def published_record(n: int, *, message: str = "denied") -> EventRecord:
    return EventRecord(
        id=f"rec-{n}", type="order.paid", space="default", source="/shop", status=403, duration_ms=0.8,
        stages=[StageRecord("eventgateway.event.received", 0.4, [
            PluginVerdict("guard", "sync", "reject", 0.031, status=403, message=message, fuel=5120),
            PluginVerdict("trapper", "sync", "fault", 0.002, fault_kind="quarantined")])],
        calls=[CallRecord("hello", "http", "sync", False, 12.5, status=500, error="function answered 500")])


async def test_the_console_loads_lists_plugins_and_shows_the_quarantined_one(console_gateway: Any, page: Any) -> None:
    gw = console_gateway
    response = await page.goto(f"{gw.config_url}/console#plugins")
    assert response.status == 200
    csp = response.headers["content-security-policy"]
    assert "script-src 'self'" in csp and "unsafe-inline" not in csp and "unsafe-eval" not in csp
    row = page.locator('#plugins tr[data-plugin="trapper"]')
    await row.wait_for(timeout=5000)
    assert await row.locator(".badge").inner_text() == "quarantined"
    assert "trap" in await row.inner_text()
    guard = page.locator('#plugins tr[data-plugin="guard"]')
    assert await guard.locator(".badge").inner_text() == "active"
    assert "denyTypes" in (await guard.text_content() or "")  # its settings (folded)
    await screenshot(page, "plugins")
    await page.click("#tab-spaces")
    await page.locator("#eventtypes td", has_text="user.created").wait_for(timeout=5000)
    await page.locator("#functions td", has_text="hello").wait_for(timeout=5000)
    await screenshot(page, "spaces")
    await page.click("#tab-metrics")
    await page.locator("#chart-rate canvas").wait_for(timeout=5000)
    async with httpx.AsyncClient(timeout=10) as client:  # events between readings: the charts have points
        for n in range(45):
            await client.post(f"{gw.events_url}/", content=cloudevent("blocked" if n % 5 == 0 else "user.created", n),
                              headers={"Content-Type": CE})
            await asyncio.sleep(0.1)
    await page.locator("#metrics-totals", has_text="events received 48").wait_for(timeout=5000)
    await screenshot(page, "metrics")
    assert page.problems == [], page.problems


async def test_a_published_record_appears_in_the_live_stream_within_2s(console_gateway: Any, page: Any) -> None:
    gw = console_gateway
    hub = hub_of(gw.gateway.config_app)
    await page.goto(f"{gw.config_url}/console")
    await page.locator("#tail-status", has_text="live").wait_for(timeout=5000)
    assert hub.listening
    hostile = '<img src=x onerror="window.__pwned=1"><script>window.__pwned=2</script>'
    loop = asyncio.get_running_loop()
    started = loop.time()
    hub.publish(published_record(1, message=hostile))
    row = page.locator("#events tr.event", has_text="rec-1")
    await row.wait_for(timeout=2000)
    assert loop.time() - started < 2.0
    text = await row.inner_text()
    assert "guard:reject 403" in text and "trapper:fault quarantined" in text and "hello 500 failed" in text
    await row.click()
    detail = page.locator("#event-detail")
    await detail.locator("td", has_text="5120").wait_for(timeout=2000)
    detail_text = await detail.inner_text()
    assert "eventgateway.event.received" in detail_text and "function answered 500" in detail_text
    assert hostile in detail_text  # shown as text ...
    assert await page.evaluate("window.__pwned") is None  # ... never run
    assert await page.locator("#event-detail img").count() == 0
    for n in range(2, 6):
        hub.publish(published_record(n))
    await page.locator("#events tr.event", has_text="rec-5").wait_for(timeout=2000)
    await screenshot(page, "live")
    assert page.problems == [], page.problems


async def test_writes_ask_for_the_config_token(gateway_server: Any, page: Any) -> None:
    gw = await gateway_server(config_token="s3cret")
    await page.goto(f"{gw.config_url}/console#spaces")
    # The tail needs the token too: the live view says so (the spaces view is open).
    await page.fill('input[placeholder="user.created"]', "order.paid")
    await page.click("text=Create event type")
    dialog = page.locator("#token-dialog")
    await dialog.wait_for(state="visible", timeout=5000)
    await dialog.locator('input[name="token"]').fill("s3cret")
    await dialog.locator("text=Use token").click()
    await page.locator("#eventtypes td", has_text="order.paid").wait_for(timeout=5000)
    assert await page.evaluate("sessionStorage.getItem('eventgateway.configToken')") == "s3cret"
    async with httpx.AsyncClient(timeout=5) as client:
        names = [t["name"] for t in (await client.get(f"{gw.config_url}/v1/spaces/default/eventtypes")).json()["eventTypes"]]
    assert names == ["order.paid"]
    # Deleting with the token kept in the tab.
    page.once("dialog", lambda d: asyncio.ensure_future(d.accept()))
    await page.locator("#eventtypes tr", has_text="order.paid").locator("text=Delete").click()
    await page.locator("#eventtypes td", has_text="order.paid").wait_for(state="detached", timeout=5000)
    problems = [p for p in page.problems if "401" not in p]  # the refused write before the token was given
    assert problems == [], problems


async def test_a_real_event_appears_in_the_live_stream_within_2s_with_its_plugin_verdict(
        console_gateway: Any, page: Any) -> None:
    """End to end: an event sent to the Events API during the test is recorded by the event path (the
    pipeline publishes its record to the tail) and shown by the console with the guard plugin's verdict."""
    gw = console_gateway
    await page.goto(f"{gw.config_url}/console")
    await page.locator("#tail-status", has_text="live").wait_for(timeout=5000)
    loop = asyncio.get_running_loop()
    started = loop.time()
    async with httpx.AsyncClient(timeout=10) as client:
        response = await client.post(f"{gw.events_url}/", content=cloudevent("blocked", 777),
                                     headers={"Content-Type": CE})
    assert response.status_code == 403, response.text
    row = page.locator("#events tr.event", has_text="e777")
    await row.wait_for(timeout=2000)
    assert loop.time() - started < 2.0
    text = await row.inner_text()
    assert "blocked" in text and "guard:reject 403" in text, text
    assert page.problems == [], page.problems
