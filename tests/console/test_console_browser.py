"""The console in a real browser against a real service: generated audio on loopback, a random tiny
model, the detectors, the log, and headless Chromium.

The service runs for the whole module: ``pump-1`` (enrolled on its first windows) hums normally, then
a fault starts and stays; ``press-2`` is steady noise with no profile (the enrollment test's stream);
``desk-1`` carries the emotion task. (With no profile, ``press-2``'s score is the random model's own
judgement, so it may alarm: no test relies on it staying calm.) Audio is paced at real time, so the page sees it live.
Screenshots go to tests/artifacts/console/; one test reads the pixels of the rendered tile.
"""

from __future__ import annotations

import re

import pytest

from edge_coat.config import validate_config
from edge_coat.service import Service
from tests.service.helpers import machine_wave, save_tiny_model, site_dict, write_wav

from .browser import artifact, launch, png_pixels, reddish, share_of
from .conftest import DESK, OPS, tokens

playwright_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed (pip install playwright)")

NORMAL_S, FAULT_S = 8.0, 120.0  # the fault lasts longer than the module runs
WAIT_MS = 60_000  # generous: one shared CPU; nothing here asserts a time


@pytest.fixture(scope="module")
def service(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("console-service")
    model = save_tiny_model(tmp_path_factory.mktemp("tiny-model"))
    pump = write_wav(tmp / "pump-1.wav", machine_wave(NORMAL_S, FAULT_S, seed=3))
    site = site_dict(tmp, model, {"pump-1": pump}, enroll={"pump-1": 8}, realtime=True, metrics=False)
    site["capture"]["sources"] += [
        {"uri": "gen:noise?amp=0.1", "stream_id": "press-2", "chunk_ms": 100},
        {"uri": "gen:sine?freq=220&amp=0.3", "stream_id": "desk-1", "chunk_ms": 100},
    ]
    site["worker"]["streams"] = {"desk-1": {"window_s": 1.0, "hop_s": 0.5,
                                            "tasks": {"emotion": {"min_rms_dbfs": -60.0}}}}
    site["events"]["tokens_file"] = str(tokens(tmp / "tokens.json"))
    site["console"] = {"enabled": True, "listen": "127.0.0.1:0", "refresh_s": 0.5, "timeline_s": 120}
    svc = Service(validate_config(site)).start()
    yield svc
    svc.stop()


@pytest.fixture(scope="module")
def browser():
    with playwright_api.sync_playwright() as p:
        b = launch(p)
        yield b
        b.close()


def open_console(browser, service, token: str | None, hash_: str = "", width: int = 1100):
    page = browser.new_page(viewport={"width": width, "height": 820})
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.on("console", lambda msg: errors.append(msg.text) if "Content Security Policy" in msg.text else None)
    page.goto(f"http://127.0.0.1:{service.console_port}/{hash_}")
    if token is not None:
        page.fill("#token", token)
        page.click("#login-form button")
        page.wait_for_selector("#login", state="hidden")
    page.errors = errors
    return page


def test_refused_without_a_token_and_a_desk_token_sees_only_desk_streams(browser, service):
    page = open_console(browser, service, None)
    page.wait_for_selector("#login-form")
    assert page.request.get(f"http://127.0.0.1:{service.console_port}/api/streams").status == 401
    page.fill("#token", "not-a-valid-token-0123456789")
    page.click("#login-form button")
    page.wait_for_selector("#login-error:not([hidden])")
    page.fill("#token", DESK)
    page.click("#login-form button")
    page.wait_for_selector(".tile[data-stream='desk-1']", timeout=WAIT_MS)
    shown = page.eval_on_selector_all(".tile", "ts => ts.map(t => t.dataset.stream)")
    assert shown == ["desk-1"]
    page.set_viewport_size({"width": 768, "height": 1024})  # a tablet, portrait
    page.screenshot(path=artifact("overview-tablet-desk-token.png"))
    page.goto(f"http://127.0.0.1:{service.console_port}/#/events")
    page.wait_for_selector("#event-table")
    streams = page.eval_on_selector_all("#f-stream option", "os => os.map(o => o.value)")
    assert all(s in ("", "desk-1") for s in streams)
    assert not page.errors
    page.close()


def test_anomaly_tile_turns_red_and_the_episode_is_on_the_timeline(browser, service):
    page = open_console(browser, service, OPS)
    page.wait_for_selector(".tile[data-stream='pump-1'][data-alarm='1']", timeout=WAIT_MS)
    tile = page.locator(".tile[data-stream='pump-1']")
    page.wait_for_selector(".tile[data-stream='desk-1']")
    page.screenshot(path=artifact("overview.png"))
    pixels = png_pixels(tile.screenshot())  # the rendered tile, not its HTML: mostly alarm red
    assert share_of(pixels, reddish) > 0.5
    calm = page.locator(".tile[data-alarm='0']")  # (a random model may alarm on a profile-less stream)
    if calm.count():
        assert share_of(png_pixels(calm.first.screenshot()), reddish) < 0.05
    tile.click()
    page.wait_for_selector("#stream-title:text('pump-1')")
    page.wait_for_function(
        "() => Number((document.querySelector('#chart-anomaly .uplot') || {dataset: {}}).dataset.episodes) >= 1",
        timeout=WAIT_MS)
    assert "open anomaly episode" in page.inner_text("#stream-state")
    box = page.query_selector("#chart-anomaly .u-over").bounding_box()
    page.mouse.move(box["x"] + box["width"] - 5, box["y"] + box["height"] / 2)  # hover the open episode
    page.wait_for_selector("#tooltip:not([hidden])")
    assert re.search(r"anomaly (start|update)", page.inner_text("#tooltip"))
    page.screenshot(path=artifact("stream.png"), full_page=True)
    assert not page.errors
    page.close()


def test_enrollment_from_the_button(browser, service):
    page = open_console(browser, service, OPS, "#/stream/press-2")
    page.wait_for_selector("#enroll-status[data-state='none']", timeout=WAIT_MS)
    page.fill("#enroll-windows", "8")
    page.click("#enroll-button")
    page.wait_for_selector("#enroll-status[data-state='enrolling'], #enroll-status[data-state='ready']",
                           timeout=WAIT_MS)
    page.wait_for_selector("#enroll-status[data-state='ready']", timeout=WAIT_MS)
    page.wait_for_selector("#stream-state[data-state='live']", timeout=WAIT_MS)
    assert not page.errors
    page.close()


def test_events_page_filters_acknowledges_and_resumes_after_reload(browser, service):
    page = open_console(browser, service, OPS, "#/events?kind=anomaly&stream=pump-1", width=800)  # tablet-sized
    button = page.wait_for_selector("tr[data-kind='anomaly'] button[data-ack]", timeout=WAIT_MS)
    kinds = page.eval_on_selector_all("#event-table tbody tr", "rs => rs.map(r => r.dataset.kind)")
    assert set(kinds) == {"anomaly"}
    button.click()
    page.wait_for_selector("td.ack .acked:text('acknowledged by ops')")
    page.reload()  # the filters live in the URL and the session in its cookie: the same view comes back
    page.wait_for_selector("td.ack .acked:text('acknowledged by ops')", timeout=WAIT_MS)
    assert page.input_value("#f-stream") == "pump-1" and page.input_value("#f-kind") == "anomaly"
    page.screenshot(path=artifact("events.png"), full_page=True)
    assert not page.errors
    page.close()
