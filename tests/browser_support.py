"""Browser tests: Playwright's Python package driving Debian's Chromium.

No browser is downloaded (no ``playwright install``): the tests launch
``/usr/bin/chromium`` (``apt-get install chromium``; another path with
``$PANELFAST_CHROMIUM``) headless, with the flags a root user in a container
needs. The pages under test are served over HTTPS with certificates of their
own CA; rather than turning verification off, the browser is told to accept
exactly those certificates' keys (``trusted_certificates``).

Every screenshot is kept as a test artefact under ONE folder,
``tests/artifacts/screenshots/`` (git-ignored), named
``<test module>--<test>--<label>.png``; CI keeps that folder.

Use in a test module (fixtures are imported by name, as elsewhere in tests/)::

    from browser_support import browser, page, playwright_driver, screenshots
    __all__ = ["browser", "page", "playwright_driver", "screenshots"]

    @pytest.fixture(scope="module")
    def trusted_certificates(cloud) -> list[Path]:   # overrides the empty default
        return [cloud.server_cert]

    def test_something(page: Page, screenshots: Screenshots) -> None:
        page.goto(url)
        screenshots.take(page, "after-login")

``phone_page`` opens a page the size of a phone (390 x 844, touch, 2x pixels).
"""

from __future__ import annotations

import base64
import hashlib
import os
import re
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from playwright.sync_api import (
    Browser,
    BrowserContext,
    Locator,
    Page,
    Playwright,
    expect,
    sync_playwright,
)

__all__ = [
    "DESKTOP",
    "PHONE",
    "SCREENSHOTS",
    "Screenshots",
    "browser",
    "launch_chromium",
    "new_page",
    "page",
    "phone_page",
    "playwright_driver",
    "screenshots",
    "spki_sha256",
    "trusted_certificates",
    "wait_for",
]

CHROMIUM = Path(os.environ.get("PANELFAST_CHROMIUM", "/usr/bin/chromium"))
SCREENSHOTS = Path(__file__).resolve().parent / "artifacts" / "screenshots"
DESKTOP = {"width": 1280, "height": 800}
PHONE = {"width": 390, "height": 844}
#: How long a page, an element or an expectation may take (the test machines are loaded).
TIMEOUT_MS = 20_000
expect.set_options(timeout=TIMEOUT_MS)

# --no-sandbox: Chromium's sandbox cannot start as root (nor without user
# namespaces, as in most containers); --disable-dev-shm-usage: containers often
# have a tiny /dev/shm, where Chromium would crash writing shared memory.
_FLAGS = (
    "--no-sandbox",
    "--disable-dev-shm-usage",
    "--disable-gpu",
    "--no-first-run",
    "--no-default-browser-check",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--password-store=basic",
    "--lang=en-US",
)


def spki_sha256(certificate: Path) -> str:
    """The base64 SHA-256 of a PEM certificate's public key, as Chromium's SPKI list wants."""
    cert = x509.load_pem_x509_certificate(certificate.read_bytes())
    spki = cert.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return base64.b64encode(hashlib.sha256(spki).digest()).decode()


def launch_chromium(driver: Playwright, *, trust: Sequence[Path] = ()) -> Browser:
    """A headless Chromium accepting the server certificates ``trust`` (and no others)."""
    if not CHROMIUM.exists():
        pytest.fail(
            f"Chromium is not at {CHROMIUM}: apt-get install chromium, "
            "or set PANELFAST_CHROMIUM to its path"
        )
    flags = list(_FLAGS)
    if trust:
        pins = ",".join(spki_sha256(path) for path in trust)
        flags.append(f"--ignore-certificate-errors-spki-list={pins}")
    return driver.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=flags)


def new_page(browser: Browser, *, phone: bool = False) -> Page:
    """A page in a fresh context (no cookies), desktop-sized or phone-sized, UTC, English."""
    options: dict[str, object] = {"locale": "en-US", "timezone_id": "UTC"}
    if phone:
        options.update(viewport=PHONE, device_scale_factor=2, is_mobile=True, has_touch=True)
    else:
        options.update(viewport=DESKTOP)
    context: BrowserContext = browser.new_context(**options)  # type: ignore[arg-type]
    context.set_default_timeout(TIMEOUT_MS)
    return context.new_page()


def wait_for(check: Callable[[], bool], *, what: str, timeout: float = 30.0) -> None:
    """Poll ``check`` until it holds (never sleep-then-assert)."""
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.2)


class Screenshots:
    """Screenshots of one test, saved under :data:`SCREENSHOTS`."""

    def __init__(self, prefix: str) -> None:
        self.prefix = prefix
        self.taken: list[Path] = []
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        for old in SCREENSHOTS.glob(f"{prefix}--*.png"):
            old.unlink()  # a previous run's: never mistaken for this run's

    def take(self, page: Page | Locator, label: str, *, full_page: bool = True) -> Path:
        """The page (the whole page, or what the window shows), or one element of it."""
        path = SCREENSHOTS / f"{self.prefix}--{re.sub(r'[^A-Za-z0-9_.-]+', '-', label)}.png"
        # Written here: given a path, Playwright writes it from a thread of its own
        # event loop's executor, which then outlives the test that started it.
        if isinstance(page, Locator):
            path.write_bytes(page.screenshot())
        else:
            path.write_bytes(page.screenshot(full_page=full_page))
        self.taken.append(path)
        return path


# -- fixtures --------------------------------------------------------------------------


@pytest.fixture(scope="module")
def playwright_driver() -> Iterator[Playwright]:
    # Module scope: the sync API runs its own event loop, kept away from the
    # asyncio tests of other modules.
    with sync_playwright() as driver:
        yield driver


@pytest.fixture(scope="module")
def trusted_certificates() -> list[Path]:
    """The server certificates the browser accepts; a module overrides this."""
    return []


@pytest.fixture(scope="module")
def browser(playwright_driver: Playwright, trusted_certificates: list[Path]) -> Iterator[Browser]:
    launched = launch_chromium(playwright_driver, trust=trusted_certificates)
    # Chromium starts its network and storage services with the first page it
    # loads, and keeps them: start them here, or the first test is blamed for them.
    warm = new_page(launched)
    warm.goto("data:text/html,<p>ready</p>")
    warm.context.close()
    yield launched
    launched.close()


@pytest.fixture
def page(browser: Browser) -> Iterator[Page]:
    opened = new_page(browser)
    yield opened
    opened.context.close()


@pytest.fixture
def phone_page(browser: Browser) -> Iterator[Page]:
    opened = new_page(browser, phone=True)
    yield opened
    opened.context.close()


@pytest.fixture
def screenshots(request: pytest.FixtureRequest) -> Screenshots:
    module = Path(str(request.node.path)).stem
    test = re.sub(r"[^A-Za-z0-9_.-]+", "-", request.node.name)
    return Screenshots(f"{module}--{test}")
