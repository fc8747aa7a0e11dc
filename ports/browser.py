"""The `BrowserOpener` port: show a page to the user in their web browser.

Issue 3 ("Credential bootstrap"): in local-relay mode the server opens the user's browser on a
one-time loopback page. DESIGN.md "Ports and adapters" lists `BrowserOpener`; the adapter is
`mcp_core.adapters.browser.WebBrowserOpener`, and tests use a fake that records the URL.
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

__all__ = ["BrowserOpener"]


@runtime_checkable
class BrowserOpener(Protocol):
    """Opens an http(s) URL for the user to see.

    - `open(url)` returns whether a browser was asked to show it; False means the user must
      be told the URL some other way (the adapter prints it to stderr).
    - A URL that is not an absolute http(s) URL raises `ValueError`; nothing is run.
    - It may block briefly (it starts a program): async callers run it in a worker thread.
    """

    def open(self, url: str) -> bool: ...
