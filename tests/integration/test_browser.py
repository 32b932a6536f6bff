"""The browser check itself: it sees console errors and in-page links that lead nowhere."""

from pathlib import Path

import pytest

from tests.browser import render

pytestmark = pytest.mark.integration


def test_the_browser_check_reports_console_errors_and_broken_links(tmp_path: Path) -> None:
    page = tmp_path / "page.html"
    page.write_text(
        '<!doctype html><html><body><a href="#here">ok</a><a href="#nowhere">broken</a><p id="here">x</p>'
        "<script>console.error('boom'); notDefined();</script></body></html>"
    )
    rendered = render(page)
    assert rendered.broken_links() == ["nowhere"]
    assert len(rendered.console) == 2 and "boom" in rendered.console[0] and "notDefined" in rendered.console[1]
