"""`WebBrowserOpener`, the `BrowserOpener` adapter: http(s) URLs only, graphical browsers only,
and the URL on stderr when there is no browser (issue 3, local-relay mode)."""

from __future__ import annotations

import io
import webbrowser

import pytest

from mcp_core.adapters.browser import WebBrowserOpener, check_url
from mcp_core.ports.browser import BrowserOpener

URL = "http://127.0.0.1:5123/relay/tok"


class FakeBrowser(webbrowser.BackgroundBrowser):
    def __init__(self, *, works: bool = True, raises: bool = False) -> None:
        super().__init__(["fake-browser"])
        self.opened: list[str] = []
        self.works = works
        self.raises = raises

    def open(self, url: str, new: int = 0, autoraise: bool = True) -> bool:
        if self.raises:
            raise OSError("no such program")
        self.opened.append(url)
        return self.works


def test_it_is_a_browser_opener() -> None:
    assert isinstance(WebBrowserOpener(), BrowserOpener)


def test_a_graphical_browser_opens_the_url() -> None:
    browser = FakeBrowser()
    stream = io.StringIO()
    assert WebBrowserOpener(stream=stream, browser=lambda: browser).open(URL) is True
    assert browser.opened == [URL]
    assert stream.getvalue() == ""


@pytest.mark.parametrize(
    "browser",
    [
        None,
        webbrowser.GenericBrowser("lynx"),  # a console browser: it would take over the terminal
        FakeBrowser(works=False),
        FakeBrowser(raises=True),
    ],
    ids=["none", "console", "refuses", "fails"],
)
def test_without_a_usable_browser_the_url_goes_to_stderr(
    browser: webbrowser.BaseBrowser | None,
) -> None:
    stream = io.StringIO()
    assert WebBrowserOpener(stream=stream, browser=lambda: browser).open(URL) is False
    assert stream.getvalue() == f"Open this page in your web browser to continue: {URL}\n"


def test_the_default_stream_is_stderr(capsys: pytest.CaptureFixture[str]) -> None:
    assert WebBrowserOpener(browser=lambda: None).open(URL) is False
    captured = capsys.readouterr()
    assert captured.out == ""
    assert URL in captured.err


@pytest.mark.parametrize(
    "url",
    [
        "file:///etc/passwd",
        "javascript:alert(1)",
        "http://",
        "/relay",
        "http://127.0.0.1/a b",
        "http://127.0.0.1/\n--flag",
        "-new-window http://x",
        "https://x/\x7f",
    ],
)
def test_anything_but_an_http_url_is_refused_before_anything_runs(url: str) -> None:
    browser = FakeBrowser()
    stream = io.StringIO()
    with pytest.raises(ValueError, match="URL"):
        WebBrowserOpener(stream=stream, browser=lambda: browser).open(url)
    assert browser.opened == []
    assert stream.getvalue() == ""


def test_check_url_accepts_http_and_https() -> None:
    assert check_url(URL) == URL
    assert check_url("https://mcp.example/relay") == "https://mcp.example/relay"
