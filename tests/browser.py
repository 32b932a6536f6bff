"""Opening a page in a real headless browser (Debian's chromium): what it rendered and what its console said."""

import os
import shutil
import subprocess
from dataclasses import dataclass, field
from html.parser import HTMLParser
from pathlib import Path

import pytest


@dataclass
class _Anchors(HTMLParser):
    ids: set[str] = field(default_factory=set)
    links: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        super().__init__()

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = dict(attrs)
        if values.get("id"):
            self.ids.add(str(values["id"]))
        if tag == "a" and (values.get("href") or "").startswith("#"):
            self.links.append(str(values["href"])[1:])


@dataclass(frozen=True)
class Rendered:
    """The DOM after the browser loaded the page, and its console messages."""

    dom: str
    console: list[str]

    def broken_links(self) -> list[str]:
        """In-page links (``#id``) whose target is not in the DOM."""
        anchors = _Anchors()
        anchors.feed(self.dom)
        return [link for link in anchors.links if link not in anchors.ids]


# Headless, as root in CI (no sandbox), and every console message logged to stderr as an INFO:CONSOLE line.
_FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--enable-logging=stderr", "--v=0")


# Headless, as root in CI (no sandbox), and every console message logged to stderr as an INFO:CONSOLE line.
_FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--enable-logging=stderr", "--v=0")


def chromium() -> str:
    """The browser; the test is skipped without one, except in CI, whose script installs it."""
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if found is None:
        if os.environ.get("CI"):
            pytest.fail("chromium is not installed; .ci/run installs it with apt-get")
        pytest.skip("chromium is not installed (apt-get install chromium)")
    return found


def render(page: Path) -> Rendered:
    """Load ``page`` in headless chromium; its DOM and every console message (errors included)."""
    done = subprocess.run(
        [chromium(), *_FLAGS, "--dump-dom", page.resolve().as_uri()],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    return Rendered(done.stdout, [line for line in done.stderr.splitlines() if ":CONSOLE" in line])
