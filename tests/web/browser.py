"""Headless Chromium for the browser tests: Playwright's sync API driving Debian's
/usr/bin/chromium (Playwright downloads no browser here). tests/web/conftest.py imports
the fixtures; `browser` marks the modules that use them (`pytest -m "not browser"`).

    browser    one Chromium per test module
    page       a fresh desktop context (1280x800) for one test
    phone      a fresh phone context (390x844, touch, meta viewport honoured)
    artifacts  test-artifacts/<module>/<test>/ for screenshots; a failing test also
               leaves FAILED-<page>.png and .html there

The browser is found in $DIGEST_TEST_CHROMIUM, else `chromium` on the PATH. When there is
none (or Playwright is not installed) the tests skip, saying why; with
DIGEST_TEST_REQUIRE_BROWSER=1 (set by .ci/run) they fail instead. A browser that is found
but does not start always fails.

Why per module and not per session: while Playwright's sync API is running it holds an
asyncio loop in the test thread, so `asyncio.run()` in any later test would fail.
The app under test runs in uvicorn's own thread (`live_url`), which it does not disturb.
"""

from __future__ import annotations

import os
import re
import shutil
from collections.abc import Generator, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

import pytest

from tests.conftest import ROOT

if TYPE_CHECKING:
    from playwright.sync_api import Browser, Page

# What tests/web/conftest.py takes in with `import *`: fixtures, and the hook they need.
__all__ = ["artifacts", "browser", "page", "phone", "pytest_runtest_makereport"]

ARTIFACTS = ROOT / "test-artifacts"
CHROMIUM_ARGS = [
    # Chromium will not sandbox itself as root, and CI containers lack the namespaces.
    "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    # Nothing but the app under test on the network.
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]
DESKTOP: dict[str, Any] = {"viewport": {"width": 1280, "height": 800}}
PHONE: dict[str, Any] = {"viewport": {"width": 390, "height": 844}, "device_scale_factor": 2,
                         "is_mobile": True, "has_touch": True}
# Playwright waits up to 30 s by default; a page of ours that takes 10 s is a failure.
TIMEOUT_MS = 10_000

_REPORT = pytest.StashKey[pytest.TestReport]()


def find_chromium() -> str | None:
    """$DIGEST_TEST_CHROMIUM, else Chromium on the PATH, else None."""
    return os.environ.get("DIGEST_TEST_CHROMIUM") or shutil.which("chromium")


def _unavailable(reason: str) -> NoReturn:
    if os.environ.get("DIGEST_TEST_REQUIRE_BROWSER"):
        pytest.fail(f"{reason}, and DIGEST_TEST_REQUIRE_BROWSER is set", pytrace=False)
    pytest.skip(f"{reason}; install Debian's chromium or set DIGEST_TEST_CHROMIUM")


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    """Headless Chromium, shared by the tests of one module."""
    try:
        from playwright.sync_api import Error, sync_playwright
    except ImportError:
        _unavailable("Playwright is not installed (pip install -e '.[test]')")
    path = find_chromium()
    if path is None:
        _unavailable("no Chromium found")
    elif not os.access(path, os.X_OK):
        _unavailable(f"DIGEST_TEST_CHROMIUM={path} is not an executable")
    with sync_playwright() as playwright:
        try:
            # A fresh temporary profile each launch: no state carried between runs.
            browser = playwright.chromium.launch(executable_path=path, headless=True,
                                                 args=CHROMIUM_ARGS)
        except Error as exc:
            pytest.fail(f"Chromium at {path} did not start: {exc.message}", pytrace=False)
        yield browser
        browser.close()


class Artifacts:
    """The test's folder under test-artifacts/, emptied when the test starts."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def screenshot(self, page: Page, name: str) -> Path:
        """The whole page as <name>.png."""
        target = self.path / f"{name}.png"
        self.path.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=target, full_page=True)
        return target


@pytest.fixture
def artifacts(request: pytest.FixtureRequest) -> Artifacts:
    """test-artifacts/<module>/<test>/, for this test's screenshots."""
    module = request.node.path.stem
    test = re.sub(r"[^\w.\[\]-]+", "_", request.node.name)
    path = ARTIFACTS / module / test
    shutil.rmtree(path, ignore_errors=True)
    return Artifacts(path)


def _open(browser: Browser, request: pytest.FixtureRequest, artifacts: Artifacts,
          name: str, options: dict[str, Any]) -> Iterator[Page]:
    """A page in a context of its own, kept in `artifacts` as FAILED-<name> when the
    test fails."""
    context = browser.new_context(**options)
    context.set_default_timeout(TIMEOUT_MS)
    page = context.new_page()
    try:
        yield page
    finally:
        report = request.node.stash.get(_REPORT, None)
        if report is not None and report.failed and not page.is_closed():
            # What the browser showed when the test failed, to look at after CI.
            artifacts.screenshot(page, f"FAILED-{name}")
            (artifacts.path / f"FAILED-{name}.html").write_text(page.content(),
                                                                encoding="utf-8")
        context.close()


@pytest.fixture
def page(browser: Browser, request: pytest.FixtureRequest,
         artifacts: Artifacts) -> Iterator[Page]:
    """A page in a new desktop-sized context: no cookies from other tests."""
    yield from _open(browser, request, artifacts, "page", DESKTOP)


@pytest.fixture
def phone(browser: Browser, request: pytest.FixtureRequest,
          artifacts: Artifacts) -> Iterator[Page]:
    """A page in a new phone-sized context (390x844 CSS pixels, a mobile viewport)."""
    yield from _open(browser, request, artifacts, "phone", PHONE)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]
                              ) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    # Keeps the test's own outcome where the page fixtures' teardown can read it.
    report = yield
    if report.when == "call":
        item.stash[_REPORT] = report
    return report


def assert_no_horizontal_scroll(page: Page) -> None:
    """The page fits its screen's width: nothing to scroll sideways on a phone.

    Measured on the layout viewport (the root element's client width), which must be
    the screen's width: a phone lays out a page without `<meta name="viewport">` 980 px
    wide, and zooms out of one that overflows, both of which would hide the overflow."""
    screen = page.viewport_size
    assert screen is not None
    seen = page.evaluate("""() => {
        const width = document.documentElement.clientWidth;
        const wide = [...document.body.querySelectorAll('*')]
            .filter(el => el.getBoundingClientRect().right > width + 0.5)
            .slice(-3).map(el => el.outerHTML.slice(0, 160));
        return {width, scroll: document.scrollingElement.scrollWidth, wide};
    }""")
    assert seen["width"] == screen["width"], (
        f"{page.url} is laid out {seen['width']} px wide on a {screen['width']} px screen; "
        'is <meta name="viewport" content="width=device-width"> missing?')
    assert seen["scroll"] <= seen["width"], (
        f"{page.url} scrolls sideways: {seen['scroll']} px of content on a "
        f"{seen['width']} px screen; the innermost elements too wide: {seen['wide']}")
