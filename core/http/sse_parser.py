"""An incremental Server-Sent Events parser: bytes in, events out, no I/O.

Spec: WHATWG HTML "Server-sent events" > "Parsing an event stream" and "Interpreting an event
stream" (section 9.2.5 and 9.2.6). MCP 2025-11-25 "Transports" > "Streamable HTTP" carries
JSON-RPC messages in the `data` of these events and resumes streams with `Last-Event-ID`.

Written by hand because the job is small and the details matter: the maintained Python SSE
libraries either do I/O themselves or reset the last event id per event, and the client needs
the spec's stream-wide last event id to resume.

Theory of operation:
- `SseParser.feed(chunk)` takes bytes split anywhere (inside a CRLF, inside a multi-byte UTF-8
  sequence) and returns the events completed by that chunk. Any chunking of the same bytes
  yields the same events, in time linear in the stream's length: line ends are looked for in
  each new chunk only, and a line split over many chunks is joined once. `close()` marks the
  end of the stream: an event not yet terminated by a blank line is discarded, as the spec says.
- The stream is decoded as UTF-8 with replacement characters for invalid bytes; exactly one
  leading U+FEFF (byte order mark) is ignored.
- Lines end with CRLF, LF or CR. A line is a comment (starts with `:`), a field with a value
  (`name:value`, one space after the colon removed), or a field with an empty value (no colon).
- Fields: `data` appends its value and a LF to the data buffer; `event` sets the event type;
  `id` sets the last event id unless its value contains NUL (an empty value resets it);
  `retry` sets the reconnection time when its value is ASCII digits only; any other field is
  ignored.
- A blank line dispatches: the last event id becomes the stream's (it persists across events
  until another `id` field changes it); when the data buffer is empty nothing is dispatched;
  otherwise an event with the data (its final LF removed) and the type (default "message").
  The data and type buffers are then cleared; the last event id is not.
- `retry` is not an event property in the spec but a property of the stream:
  `SseParser.retry` keeps the latest value, and `SseEvent.retry` also reports one sent in the
  same block as that event, for convenience.
- The characters an event occupies (every line since the previous blank line, plus the line
  being received) are capped by `max_event_size`; beyond it `feed` raises `EventTooLarge` and
  the parser refuses further input.
"""

from __future__ import annotations

import codecs
import re
from typing import Final

import attrs

__all__ = [
    "DEFAULT_MAX_EVENT_SIZE",
    "EventTooLarge",
    "SseError",
    "SseEvent",
    "SseParser",
    "parse_sse",
]

# Generous for JSON-RPC results (a large resource read), small enough to bound memory.
DEFAULT_MAX_EVENT_SIZE: Final = 16 * 1024 * 1024

_LINE_END: Final = re.compile(r"\r\n|\r|\n")
_BOM: Final = "\ufeff"


@attrs.frozen(kw_only=True)
class SseEvent:
    """One dispatched event (WHATWG "Interpreting an event stream", "dispatch the event").

    `id` is the stream's last event id when the event was dispatched ("" when there is none):
    it persists across events, so an event without its own `id` field carries the previous one.
    `retry` is the reconnection time in milliseconds sent in this event's block, if any.
    """

    data: str
    event: str = "message"
    id: str = ""
    retry: int | None = None


class SseError(Exception):
    """The event stream cannot be parsed further."""


class EventTooLarge(SseError):
    """An event grew beyond the parser's cap.

    `events` holds the events completed earlier in the same `feed` call, so none is lost.
    """

    def __init__(self, size: int, limit: int, events: list[SseEvent]) -> None:
        super().__init__(
            f"server-sent event too large: more than {limit} characters "
            f"(at least {size} received before its end)"
        )
        self.size = size
        self.limit = limit
        self.events = events


class SseParser:
    """Incremental SSE parser for one stream. Not thread-safe; one per connection."""

    def __init__(self, *, max_event_size: int = DEFAULT_MAX_EVENT_SIZE) -> None:
        if max_event_size < 1:
            raise ValueError("max_event_size must be positive")
        self.max_event_size = max_event_size
        self._decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        self._at_start = True  # no character decoded yet: a BOM may come
        self._after_cr = False  # the previous chunk ended with CR: skip one leading LF
        # The line being received, without its end, kept as the pieces that brought it and
        # joined once when its end arrives: rebuilding it per chunk would be quadratic.
        self._partial: list[str] = []
        self._partial_size = 0  # characters in `_partial`
        self._event_size = 0  # characters of the complete lines of the pending event
        self._data: list[str] = []
        self._event_type = ""
        self._id_buffer = ""  # the spec's "last event ID buffer"
        self._last_event_id = ""  # the spec's "last event ID string" (set at dispatch)
        self._block_retry: int | None = None
        self._retry: int | None = None
        self._failed: SseError | None = None
        self._closed = False

    @property
    def last_event_id(self) -> str:
        """The stream's last event id ("" for none): what `Last-Event-ID` resumes from.

        Like the spec's, it changes when an event block ends (a blank line), not when the `id`
        line is read, so an id whose block was cut off is not taken.
        """
        return self._last_event_id

    @property
    def retry(self) -> int | None:
        """The latest reconnection time the server asked for, in milliseconds."""
        return self._retry

    def feed(self, chunk: bytes) -> list[SseEvent]:
        """Parse more bytes; return the events they complete, in order."""
        if self._failed is not None:
            raise SseError("the parser failed earlier and takes no more input") from self._failed
        if self._closed:
            raise SseError("the stream was closed")
        text = self._decoder.decode(chunk)
        return self._feed_text(text)

    def close(self) -> None:
        """End of stream. A pending event without its closing blank line is discarded."""
        self._decoder.decode(b"", final=True)
        self._closed = True
        self._partial = []
        self._partial_size = 0
        self._data = []
        self._event_type = ""
        self._event_size = 0
        self._block_retry = None

    def _feed_text(self, text: str) -> list[SseEvent]:
        if not text:
            return []
        if self._at_start:
            self._at_start = False
            if text.startswith(_BOM):
                text = text[1:]
        if self._after_cr:
            self._after_cr = False
            if text.startswith("\n"):
                text = text[1:]
        # Line ends are searched for in the new text only: the pending line has none (a CR
        # that ended the previous chunk already ended its line), so each character is scanned
        # once and a long line arriving in many chunks costs linear time.
        lines = _LINE_END.split(text)
        # The last piece has no line end yet. A final CR ends its line now; an LF that follows
        # in the next chunk belongs to the same CRLF and is skipped.
        tail = lines.pop()
        self._after_cr = text.endswith("\r")
        if lines and self._partial:
            self._partial.append(lines[0])
            lines[0] = "".join(self._partial)
            self._partial = []
            self._partial_size = 0
        if tail:
            self._partial.append(tail)
            self._partial_size += len(tail)
        events: list[SseEvent] = []
        for line in lines:
            self._event_size += len(line) + 1
            self._check_size(self._event_size, events)
            event = self._process_line(line)
            if event is not None:
                events.append(event)
        self._check_size(self._event_size + self._partial_size, events)
        return events

    def _check_size(self, size: int, events: list[SseEvent]) -> None:
        if size > self.max_event_size:
            error = EventTooLarge(size, self.max_event_size, events)
            self._failed = error
            raise error

    def _process_line(self, line: str) -> SseEvent | None:
        if not line:
            return self._dispatch()
        if line[0] == ":":
            return None
        name, colon, value = line.partition(":")
        if colon and value.startswith(" "):
            value = value[1:]
        if name == "data":
            self._data.append(value)
        elif name == "event":
            self._event_type = value
        elif name == "id" and "\0" not in value:
            self._id_buffer = value
        elif name == "retry" and value.isascii() and value.isdigit():
            # ASCII digits only: str.isdigit() alone also accepts other scripts' digits.
            self._block_retry = self._retry = int(value)
        return None

    def _dispatch(self) -> SseEvent | None:
        self._last_event_id = self._id_buffer
        self._event_size = 0
        retry, self._block_retry = self._block_retry, None
        if not self._data:
            self._event_type = ""
            return None
        event = SseEvent(
            data="\n".join(self._data),
            event=self._event_type or "message",
            id=self._last_event_id,
            retry=retry,
        )
        self._data = []
        self._event_type = ""
        return event


def parse_sse(stream: bytes, *, max_event_size: int = DEFAULT_MAX_EVENT_SIZE) -> list[SseEvent]:
    """Parse a whole event stream at once (the events of a complete body)."""
    parser = SseParser(max_event_size=max_event_size)
    events = parser.feed(stream)
    parser.close()
    return events
