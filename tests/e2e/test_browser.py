"""In a real browser: Debian's headless chromium, driven by Playwright, against the whole stack
started as processes the way a user starts it.

Every wait has a deadline (the context's default timeout, or an explicit one). Screenshots go to
``test-artifacts/`` at the repository root.
"""

from __future__ import annotations

import os
import re
import signal
import sqlite3
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest
from playwright.sync_api import Browser, ConsoleMessage, Dialog, Page, expect, sync_playwright

from tests.support import images as sample_images
from tests.support.operators import OPERATOR_HASH, OPERATOR_PASSWORD
from tests.support.stack import RunningStack, free_port_base

pytestmark = pytest.mark.e2e

CHROMIUM = Path("/usr/bin/chromium")
# Headless, and quiet: the machine has no internet, and without the background-networking
# switches chromium keeps trying to reach Google's services.
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"
WAIT_MS = 10_000
expect.set_options(timeout=WAIT_MS)
PHONE = {"width": 375, "height": 740}
DESKTOP = {"width": 1200, "height": 900}


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningStack]:
    running = RunningStack(
        tmp_path_factory.mktemp("browser") / "data",
        free_port_base(),
        env={"STOCKDAY_OPERATOR_PASSWORD_HASH": OPERATOR_HASH},
    )
    running.start()
    yield running
    if running.process and running.process.poll() is None:
        running.stop()


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    if not CHROMIUM.exists():
        pytest.fail("chromium is not installed (Debian package chromium; .ci/run installs it)")
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(
            executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, timeout=30_000
        )
        yield launched
        launched.close()


class Watched:
    """A page whose console errors, script errors and dialogs are recorded."""

    def __init__(self, page: Page) -> None:
        self.page = page
        self.errors: list[str] = []
        self.dialogs: list[str] = []
        page.on("console", self._console)
        page.on("pageerror", lambda error: self.errors.append(f"script error: {error}"))
        page.on("dialog", self._dialog)

    def _console(self, message: ConsoleMessage) -> None:
        # Content-Security-Policy violations are reported here too.
        if message.type == "error":
            self.errors.append(message.text)

    def _dialog(self, dialog: Dialog) -> None:
        self.dialogs.append(dialog.message)
        dialog.dismiss()


@contextmanager
def watched_page(browser: Browser) -> Iterator[Watched]:
    context = browser.new_context(viewport=DESKTOP)
    context.set_default_timeout(WAIT_MS)
    try:
        yield Watched(context.new_page())
    finally:
        context.close()


def resizer_pids(stack: RunningStack) -> list[int]:
    pids = []
    with httpx.Client(timeout=5) as client:
        for replica in stack.replicas_of("logo-resizer"):
            pids.append(int(client.get(f"{stack.replica_url(replica)}/api/ping").json()["pid"]))
    return pids


def queue_is_free(queue_file: Path) -> bool:
    """No process holds the queue's write lock (a stopped holder would block every sender)."""
    db = sqlite3.connect(queue_file, timeout=0)
    try:
        db.execute("BEGIN IMMEDIATE")
        db.rollback()
        return True
    except sqlite3.OperationalError:
        return False
    finally:
        db.close()


@contextmanager
def logo_resizers_paused(stack: RunningStack) -> Iterator[None]:
    """SIGSTOP the logo-resizer replicas, so a page surely sees its logo before it is ready.

    A replica stopped inside a queue transaction is let go and stopped again a moment later.
    """
    pids = resizer_pids(stack)
    queue_file = stack.data_dir / "queues.sqlite3"
    deadline = time.monotonic() + 10
    try:
        while True:
            for pid in pids:
                os.kill(pid, signal.SIGSTOP)
            if queue_is_free(queue_file):
                break
            for pid in pids:
                os.kill(pid, signal.SIGCONT)
            assert time.monotonic() < deadline, "the queue stayed locked"
            time.sleep(0.02)
        yield
    finally:
        for pid in pids:
            os.kill(pid, signal.SIGCONT)


def logo_png(path: Path) -> Path:
    path.write_bytes(sample_images.png(480, 240, (11, 87, 208, 255)))
    return path


def test_add_a_stock_watch_its_logo_arrive_switch_the_chart_and_delete_it(
    stack: RunningStack, browser: Browser, tmp_path: Path
) -> None:
    ARTIFACTS.mkdir(exist_ok=True)
    symbol = "BRWS"
    with watched_page(browser) as watched:
        page = watched.page
        page.goto(f"{stack.frontend}/stocks/new")

        # The first Tab reaches the skip link: the page is usable from the keyboard.
        page.keyboard.press("Tab")
        assert page.evaluate("document.activeElement.textContent") == "Skip to content"

        # Pick a real PNG: the upload starts at once, with a preview and a progress bar.
        page.evaluate(
            """() => {
                window.uploadStatuses = [];
                const status = document.getElementById("file-status");
                new MutationObserver(() => window.uploadStatuses.push(status.textContent))
                    .observe(status, {childList: true, characterData: true, subtree: true});
            }"""
        )
        page.set_input_files("#file", str(logo_png(tmp_path / "brws-logo.png")))
        expect(page.locator("#file-progress")).to_have_attribute("data-state", "done")
        assert page.eval_on_selector("#file-progress", "bar => bar.value") == 100
        statuses = page.evaluate("window.uploadStatuses")
        assert any(s.startswith("uploading") for s in statuses), statuses
        expect(page.locator("#file-status")).to_have_text("uploaded")
        page.wait_for_function(
            "() => { const i = document.getElementById('file-preview-image');"
            " return i !== null && i.complete && i.naturalWidth === 480; }"
        )
        assert re.fullmatch(r"[0-9a-f]{32}", page.input_value("#upload_id"))

        page.get_by_label("Symbol").fill(symbol.lower())
        page.get_by_label("Company name").fill("Browser Tested Inc.")
        page.screenshot(path=str(ARTIFACTS / "add-stock.png"), full_page=True)

        with logo_resizers_paused(stack):
            page.get_by_role("button", name="Add stock").click()
            page.wait_for_url(f"**/stocks/{symbol}")
            expect(page.get_by_role("status").first).to_have_text(
                f"{symbol} was added to the watchlist."
            )
            expect(page.locator("#stock-logo.logo-placeholder")).to_be_visible()
            page.evaluate("window.sameDocument = true")  # gone if the page reloads

        # The logo appears by itself once processed: no reload, no click.
        page.wait_for_function(
            "() => { const i = document.querySelector('img#stock-logo');"
            " return i !== null && i.complete && i.naturalWidth > 0; }",
            timeout=15_000,
        )
        assert page.evaluate("window.sameDocument") is True
        expect(page.locator("img#stock-logo")).to_have_attribute("alt", "Browser Tested Inc. logo")
        expect(page.locator("#logo-note")).to_have_text("Logo ready.")

        # Switch the chart to weekly, then monthly.
        expect(page.locator(".chart-figure")).to_have_attribute("data-interval", "daily")
        for label, interval in (("Weekly", "weekly"), ("Monthly", "monthly")):
            page.get_by_role("link", name=label, exact=True).click()
            page.wait_for_url(f"**/stocks/{symbol}?interval={interval}#chart")
            expect(page.locator(".chart-figure")).to_have_attribute("data-interval", interval)
            expect(page.get_by_role("link", name=label, exact=True)).to_have_attribute(
                "aria-current", "true"
            )
            expect(
                page.get_by_role("img", name=f"{symbol} closing prices, {interval}")
            ).to_be_visible()

        # The home page, kept on this stock: logo, price, badge, chart.
        page.goto(f"{stack.frontend}/?symbol={symbol}")
        expect(page.locator("h1.symbol")).to_have_text(symbol)
        expect(page.get_by_role("img", name="Browser Tested Inc. logo")).to_be_visible()
        expect(page.locator(".price-value")).to_have_text(re.compile(r"^\d[\d,]*\.\d\d$"))
        expect(page.locator(".change-pct").first).to_have_text(re.compile(r"^\([+-]\d+\.\d\d%\)$"))
        expect(page.locator(".badge-simulated").first).to_be_visible()
        expect(page.locator("svg.chart-svg")).to_be_visible()
        page.screenshot(path=str(ARTIFACTS / "home.png"), full_page=True)

        # A phone-width screen: nothing wider than the screen.
        page.set_viewport_size(PHONE)
        assert page.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]
        page.screenshot(path=str(ARTIFACTS / "home-phone.png"), full_page=True)
        page.set_viewport_size(DESKTOP)

        # The "show me another" action answers a (random) stock page.
        page.get_by_role("link", name="Show me another").click()
        expect(page.locator("h1.symbol")).to_be_visible()

        # Deleting is for operators: log in from the footer's link, then find the stock in the
        # watchlist and delete it.
        page.get_by_role("link", name="Operators").click()
        page.wait_for_url("**/operator/login")
        page.get_by_label("Password").fill(OPERATOR_PASSWORD)
        page.get_by_role("button", name="Log in").click()
        page.wait_for_url("**/operator")
        expect(page.get_by_role("heading", name="Moderation")).to_be_visible()
        page.get_by_role("navigation", name="Main").get_by_role("link", name="Watchlist").click()
        row = page.locator(f'tr[data-symbol="{symbol}"]')
        expect(row).to_be_visible()
        expect(row.locator("img.logo-small")).to_be_visible()
        page.set_viewport_size(PHONE)
        assert page.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]
        page.screenshot(path=str(ARTIFACTS / "watchlist-phone.png"), full_page=True)
        page.set_viewport_size(DESKTOP)
        row.get_by_role("link", name=f"Delete {symbol}").click()
        page.wait_for_url(f"**/stocks/{symbol}/delete")
        page.get_by_role("button", name=f"Delete {symbol}").click()
        page.wait_for_url("**/watchlist")
        expect(page.get_by_role("status").first).to_have_text(
            f"{symbol} is no longer on the watchlist."
        )
        expect(row).to_have_count(0)

        assert watched.errors == []
        assert watched.dialogs == []


def test_a_hostile_name_is_shown_as_text_and_never_runs(
    stack: RunningStack, browser: Browser
) -> None:
    hostile = "<script>alert(1)</script>"
    with watched_page(browser) as watched:
        page = watched.page
        page.goto(f"{stack.frontend}/stocks/new")
        page.get_by_label("Symbol").fill("XSSB")
        page.get_by_label("Company name").fill(hostile)
        page.get_by_role("button", name="Add stock").click()
        page.wait_for_url("**/stocks/XSSB")
        expect(page.locator("p.name")).to_have_text(hostile)
        page.goto(f"{stack.frontend}/watchlist")
        expect(page.locator('tr[data-symbol="XSSB"] td').nth(1)).to_have_text(hostile)
        assert watched.dialogs == []
        assert watched.errors == []


def test_a_form_on_another_site_cannot_add_a_stock(stack: RunningStack, browser: Browser) -> None:
    """Cross-site request forgery, as a browser does it: even with a real token it fails."""
    with watched_page(browser) as watched:
        page = watched.page
        page.goto(f"{stack.frontend}/stocks/new")
        token = page.input_value("#csrf_token")
        attacker = (
            f'<form method="post" action="{stack.frontend}/stocks">'
            f'<input name="csrf_token" value="{token}">'
            '<input name="symbol" value="EVIL"><input name="name" value="Forged">'
            '<button type="submit">Win a prize</button></form>'
        )
        page.route(
            "http://attacker.test/**",
            lambda route: route.fulfill(content_type="text/html", body=attacker),
        )
        page.goto("http://attacker.test/prize")
        page.get_by_role("button", name="Win a prize").click()
        page.wait_for_url(f"{stack.frontend}/stocks")
        expect(page.locator(".form-error")).to_contain_text("nothing was saved")
    with httpx.Client(base_url=stack.symbol, timeout=5) as api:
        assert api.get("/api/stocks/EVIL").status_code == 404
