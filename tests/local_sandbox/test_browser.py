"""A person in a real browser: open the sandbox, send /start, buy a plan, follow the invite,
see themselves in the channel. Debian's chromium driven by Playwright (never a downloaded browser).

Leaves a screenshot in tests/artifacts/ (git-ignored), whether it passes or fails.
"""
from __future__ import annotations

import time
from pathlib import Path

import pytest

CHROMIUM = Path("/usr/bin/chromium")
ARTIFACTS = Path(__file__).resolve().parents[1] / "artifacts"
STEP_TIMEOUT_MS = 20_000

try:
    from playwright.sync_api import expect, sync_playwright
except ImportError:  # the rest of the suite runs without it
    sync_playwright = None

pytestmark = [
    pytest.mark.timeout(180),
    pytest.mark.skipif(sync_playwright is None, reason="playwright is not installed: pip install -r requirements-test.txt"),
    pytest.mark.skipif(not CHROMIUM.exists(), reason=f"no browser at {CHROMIUM}: apt-get install chromium to run this test"),
]


def test_a_person_buys_a_membership_and_joins_the_channel(sandbox_server):
    ARTIFACTS.mkdir(exist_ok=True)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM))
        page = browser.new_page(viewport={"width": 1360, "height": 1100})
        page.set_default_timeout(STEP_TIMEOUT_MS)
        errors: list[str] = []
        page.on("pageerror", lambda error: errors.append(str(error)))
        started = time.monotonic()
        try:
            page.goto(f"{sandbox_server.url}/")
            expect(page.locator("#users li.selected")).to_contain_text("Ada")  # the demo buyer is picked

            page.fill("#text", "/start")
            page.press("#text", "Enter")
            expect(page.locator(".bubble.in").first).to_contain_text("Welcome, Ada!")
            page.locator(".keyboard button", has_text="One month").click()

            page.locator(".invoice button", has_text="Pay").click()
            expect(page.locator("#sheet")).to_be_visible()
            page.click("#sheet-pay")
            expect(page.locator("#sheet-steps")).to_contain_text("The bot accepted the pre-checkout query")
            expect(page.locator("#sheet-steps")).to_contain_text("Paid.")
            page.click("#sheet-cancel")

            expect(page.locator(".bubble.in", has_text="Your payment is received")).to_be_visible()
            page.locator(".keyboard button", has_text="Join the channel").click()
            expect(page.locator("#members li[data-member='1001']")).to_contain_text("Ada")
            bought_in = time.monotonic() - started

            expect(page.locator("#t-payments")).to_contain_text("Ada (1001)")
            expect(page.locator("#t-payments")).to_contain_text("paid")
            expect(page.locator("#t-invites")).to_contain_text("joined")
            expect(page.locator("#t-members")).to_contain_text("active")
            assert errors == []
            assert bought_in < 60, f"from opening the page to being in the channel took {bought_in:.1f}s"
        finally:
            page.screenshot(path=str(ARTIFACTS / "sandbox-browser.png"), full_page=True)
            browser.close()
