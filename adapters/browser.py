"""`BrowserOpener` on the standard library's `webbrowser`, with a stderr fallback.

Issue 3 ("Credential bootstrap", local-relay mode); the port is `mcp_core.ports.browser`.

Only absolute http(s) URLs without whitespace or control characters are opened: a `file:` or
`javascript:` URL, or one that a browser's command line could read as an option, is refused
before anything runs. `webbrowser` starts the browser with an argument list (never through a
shell). Console browsers (lynx, w3m, `www-browser`: what `webbrowser` falls back to on a
terminal without a display) are not used: they would take over the terminal, and a stdio
server's stdin and stdout are the MCP channel. When no graphical browser is available, or it
fails to start, the URL is printed to stderr (never stdout, for the same reason) for the user
to open by hand.
"""

from __future__ import annotations

import logging
import sys
import webbrowser
from collections.abc import Callable
from typing import TextIO
from urllib.parse import urlsplit

__all__ = ["WebBrowserOpener", "check_url"]

log = logging.getLogger("mcp_core.browser")


def check_url(url: str) -> str:
    """`url` if it is an absolute http(s) URL a browser may be given, else `ValueError`."""
    if not isinstance(url, str) or any(c.isspace() or ord(c) < 0x20 or ord(c) == 0x7F for c in url):
        raise ValueError("a browser URL is a string without whitespace or control characters")
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError("only absolute http(s) URLs are opened in a browser")
    return url


def _default_browser() -> webbrowser.BaseBrowser | None:
    try:
        return webbrowser.get()
    except webbrowser.Error:
        return None


class WebBrowserOpener:
    """Opens URLs with `webbrowser` (graphical browsers only), else prints them to `stream`."""

    def __init__(
        self,
        *,
        stream: TextIO | None = None,
        browser: Callable[[], webbrowser.BaseBrowser | None] = _default_browser,
    ) -> None:
        self._stream = stream
        self._browser = browser

    def __repr__(self) -> str:
        return "WebBrowserOpener()"

    def open(self, url: str) -> bool:
        check_url(url)
        browser = self._browser()
        # A plain GenericBrowser runs a program in the foreground, attached to our terminal:
        # that is how webbrowser registers console browsers (and a bare $BROWSER command).
        if browser is not None and type(browser) is not webbrowser.GenericBrowser:
            try:
                if browser.open(url, new=2):
                    return True
            except Exception as exc:  # webbrowser.Error, OSError from a missing program
                log.warning("could not start the web browser: %s", type(exc).__name__)
        stream = self._stream if self._stream is not None else sys.stderr
        print(f"Open this page in your web browser to continue: {url}", file=stream, flush=True)
        return False
