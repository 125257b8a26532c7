"""The explorer in a real browser: notebooks/04_explorer.ipynb in JupyterLab, in headless Chromium.

JupyterLab runs on 127.0.0.1 (see browser_helpers.JupyterLab); Playwright's Python package drives
Debian's Chromium (/usr/bin/chromium; Playwright's own browsers are never downloaded). The test runs
the explorer's cell (nbval runs every cell of the notebook), moves the sliders, the reference button and
the family toggle, checks that the controls rendered, that the images and numbers changed, and that no
widget failed to display, and times each change from the key press or click to the new numbers on the page. Skipped only when Chromium or
Playwright is missing (CI installs both). A screenshot of the explorer is saved in the test's tmp_path.
"""
from __future__ import annotations

import json
import statistics
import time
from pathlib import Path

import pytest
from browser_helpers import (CHROMIUM, CHROMIUM_ARGS, CLICK_AND_TIME, EXECUTION_STATE, IMAGE_PIXELS, NOTEBOOK_READY,
                             READ_TIMING, RUN_FIRST_CODE_CELL, TIME_NEXT_CHANGE, WIDGET_ERRORS, JupyterLab)

try:
    from playwright.sync_api import sync_playwright
except ImportError:
    sync_playwright = None

REPO = Path(__file__).resolve().parent.parent
NOTEBOOK = "notebooks/04_explorer.ipynb"

pytestmark = [
    pytest.mark.skipif(sync_playwright is None,
                       reason="the Python package playwright is missing (pip install -e '.[dev]')"),
    pytest.mark.skipif(not Path(CHROMIUM).is_file(),
                       reason=f"Chromium is missing at {CHROMIUM} (apt-get install chromium)"),
]


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    server = JupyterLab(REPO, tmp_path_factory.mktemp("jupyterlab"))
    yield server
    server.stop()


@pytest.fixture(scope="module")
def browser():
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


def wait_until(condition, timeout: float, what: str, interval: float = 0.2):
    """Poll ``condition()`` until it returns something truthy; return that, or fail naming ``what``."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(interval)
    pytest.fail(f"timed out after {timeout:.0f} s waiting for {what}")


def widget_errors(page) -> list[str]:
    text = page.locator("body").inner_text()
    return [message for message in WIDGET_ERRORS if message in text] + \
        page.locator(".jupyter-widgets-error-widget").all_inner_texts()


def click_and_time(page, button, target, timeout: float = 10) -> float:
    """Click ``button``; return the milliseconds until the text of ``target`` changed."""
    ms = page.evaluate(CLICK_AND_TIME, [button.element_handle(), target.element_handle(), 1000 * timeout])
    if ms is None:
        pytest.fail(f"clicking {button} did not change {target} within {timeout:.0f} s")
    return ms


def run_the_explorer_cell(page, timeout: float):
    """Clear the saved outputs, run the first code cell (the explorer), wait until it ran; fail on an error output."""
    page.evaluate(RUN_FIRST_CODE_CELL)

    def finished():
        state = page.evaluate(EXECUTION_STATE, 1)
        if state["error"]:
            pytest.fail(f"the explorer cell of {NOTEBOOK} failed: {state['error']}")
        return state["pending"] == 0 and state["status"] == "idle"

    wait_until(finished, timeout, "the explorer cell of the notebook to run", interval=0.5)


def move_and_time(page, target, action, timeout: float = 10) -> float:
    """Do ``action()`` (a key press or a drag) and return the milliseconds from it to ``target``'s next change."""
    page.evaluate(TIME_NEXT_CHANGE, [target.element_handle()])
    action()
    return wait_until(lambda: page.evaluate(READ_TIMING), timeout, f"{target} to change")


def test_explorer_runs_in_jupyterlab_and_redraws_each_grid_setting_at_once(lab, browser, tmp_path):
    page = browser.new_page(viewport={"width": 1500, "height": 1200})
    console_errors = []
    page.on("console", lambda message: message.type == "error" and console_errors.append(message.text))
    page.goto(lab.url(f"lab/tree/{NOTEBOOK}"))
    wait_until(lambda: page.evaluate(NOTEBOOK_READY), 60, f"{NOTEBOOK} to open with an idle kernel\n{lab.log()}")
    # Before anything runs, the saved output shows the plain-text line and the static picture.
    page.locator(".jp-OutputArea-output", has_text="run the notebook's cells to use it").wait_for(timeout=20_000)
    assert page.locator(".jp-OutputArea-output img").count() >= 1
    assert not widget_errors(page), widget_errors(page)
    run_the_explorer_cell(page, timeout=60)
    explorer = page.locator(".sae-explorer")
    explorer.wait_for(state="visible", timeout=10_000)
    # The controls rendered: one slider per hyperparameter, the family toggle, the reference button.
    sliders = explorer.locator(".widget-slider")
    assert sliders.count() == 4
    assert [sliders.nth(i).locator("label").inner_text() for i in range(4)] == \
        ["ρ (KL target)", "β (KL weight)", "λ (L1 weight)", "k (units kept)"]
    assert explorer.locator(".widget-toggle-buttons").first.locator("button").all_inner_texts() == \
        ["KL (sigmoid codes)", "L1 (ReLU codes)", "TOPK (TopK codes)"]
    assert explorer.locator("img.sae-dashboard").evaluate(IMAGE_PIXELS)  # the feature dashboard is drawn
    assert explorer.locator("button", has_text="reference setting").is_visible()
    numbers = explorer.locator(".sae-numbers")  # the HTML widget; its table is replaced on every change
    images = {name: explorer.locator(f"img.sae-{name}") for name in ("reconstructions", "features", "statistics")}
    before = {"numbers": numbers.inner_text(), **{name: img.evaluate(IMAGE_PIXELS) for name, img in images.items()}}
    assert "from the atlas" in before["numbers"] and "β = 0.005" in before["numbers"]

    # One notch right on β with the keyboard: a setting not seen yet, read from the atlas.
    handle = sliders.nth(1).locator(".noUi-handle")
    handle.scroll_into_view_if_needed()
    handle.focus()
    new_ms = [move_and_time(page, numbers, lambda: page.keyboard.press("ArrowRight"))]
    assert sliders.nth(1).locator(".widget-readout").inner_text() == "0.015"
    assert "β = 0.015" in numbers.inner_text() and "from the atlas" in numbers.inner_text()
    after = {"numbers": numbers.inner_text(), **{name: img.evaluate(IMAGE_PIXELS) for name, img in images.items()}}
    assert [name for name in before if before[name] != after[name]] == list(before)
    explorer.screenshot(path=tmp_path / "explorer.png")
    # ρ one notch up (new), back (seen), one more down (new); then β back down (new at this ρ).
    rho = sliders.nth(0).locator(".noUi-handle")
    rho.focus()
    press = {key: (lambda key=key: page.keyboard.press(key)) for key in ("ArrowRight", "ArrowLeft")}
    new_ms.append(move_and_time(page, numbers, press["ArrowRight"]))
    seen_ms = [move_and_time(page, numbers, press["ArrowLeft"])]
    new_ms.append(move_and_time(page, numbers, press["ArrowLeft"]))
    assert "ρ = 0.04, β = 0.015" in numbers.inner_text()
    handle.focus()
    new_ms.append(move_and_time(page, numbers, press["ArrowLeft"]))
    assert "ρ = 0.04, β = 0.005" in numbers.inner_text()
    # The reference button and the family toggle (the first visit to L1 reads its atlas).
    seen_ms.append(click_and_time(page, explorer.locator("button", has_text="reference setting"), numbers))
    wait_until(lambda: numbers.inner_text() == before["numbers"], 10, "the reference setting to come back")
    assert images["reconstructions"].evaluate(IMAGE_PIXELS) == before["reconstructions"]
    toggle = {name: explorer.locator(".widget-toggle-buttons button", has_text=name) for name in ("KL", "L1")}
    new_ms.append(click_and_time(page, toggle["L1"], numbers))
    assert "L1: λ = 4e-05" in numbers.inner_text()
    seen_ms += [click_and_time(page, toggle[name], numbers) for name in ("KL", "L1", "KL")]
    wait_until(lambda: numbers.inner_text() == before["numbers"], 10, "the KL reference to come back")

    assert not widget_errors(page), widget_errors(page)
    widget_console_errors = [text for text in console_errors if "widget" in text.lower()]
    assert not widget_console_errors, widget_console_errors
    timings = {"new_setting_ms": [round(ms) for ms in new_ms], "seen_setting_ms": [round(ms) for ms in seen_ms]}
    (tmp_path / "timings.json").write_text(json.dumps(timings))
    # The goal, 0.3 s from the key press or click to the new numbers on the page, is measured, not asserted
    # (a timed assert fails on a busy machine): run this test with -s and read the line below, as
    # benchmarks/README.md does.
    print(f"browser round trips: {timings}; median {statistics.median(new_ms + seen_ms):.0f} ms; "
          f"screenshot {tmp_path / 'explorer.png'}")
