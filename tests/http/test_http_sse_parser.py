"""The SSE parser against the WHATWG "Server-sent events" parsing rules and our own framing."""

from __future__ import annotations

import re

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from mcp_core.core.http import sse_parser
from mcp_core.core.http.sse_parser import (
    EventTooLarge,
    SseError,
    SseEvent,
    SseParser,
    parse_sse,
)
from mcp_core.core.http.streamable import sse_comment, sse_event


def _feed_in_pieces(stream: bytes, cuts: list[int], **kwargs: int) -> tuple[list[SseEvent], str]:
    parser = SseParser(**kwargs)
    events: list[SseEvent] = []
    start = 0
    for cut in sorted(cuts):
        events += parser.feed(stream[start:cut])
        start = cut
    events += parser.feed(stream[start:])
    parser.close()
    return events, parser.last_event_id


# ---- the spec's rules, one by one ---------------------------------------------------------------


def test_data_lines_are_joined_with_lf() -> None:
    assert parse_sse(b"data: a\ndata: b\ndata\n\n") == [SseEvent(data="a\nb\n")]


@pytest.mark.parametrize("ending", [b"\n", b"\r", b"\r\n"])
def test_every_line_ending_is_understood(ending: bytes) -> None:
    stream = ending.join([b"event: x", b"data: 1", b"data: 2", b"", b"data: 3", b"", b""])
    assert parse_sse(stream) == [SseEvent(data="1\n2", event="x"), SseEvent(data="3")]


def test_only_one_space_after_the_colon_is_removed() -> None:
    assert parse_sse(b"data:  two\ndata:none\n\n") == [SseEvent(data=" two\nnone")]


def test_a_field_without_colon_has_an_empty_value() -> None:
    assert parse_sse(b"data\n\n") == [SseEvent(data="")]
    # `event` alone resets the type to the default.
    assert parse_sse(b"event\ndata: x\n\n") == [SseEvent(data="x")]


def test_comments_and_unknown_fields_are_ignored() -> None:
    stream = b": hello\nfoo: bar\nData: no\ndata: yes\n:\n\n"
    assert parse_sse(stream) == [SseEvent(data="yes")]


def test_an_empty_data_buffer_dispatches_nothing() -> None:
    assert parse_sse(b"event: x\n\nid: 1\n\n\n\n") == []


def test_the_event_type_resets_after_each_dispatch() -> None:
    events = parse_sse(b"event: a\ndata: 1\n\ndata: 2\n\nevent: a\n\ndata: 3\n\n")
    assert [e.event for e in events] == ["a", "message", "message"]


def test_the_last_event_id_persists_across_events() -> None:
    events = parse_sse(b"id: 1\ndata: a\n\ndata: b\n\nid\ndata: c\n\n")
    assert [e.id for e in events] == ["1", "1", ""]


def test_the_last_event_id_is_the_stream_s_even_without_a_dispatch() -> None:
    parser = SseParser()
    parser.feed(b"id: 7\n\n")
    assert parser.last_event_id == "7"


def test_an_id_containing_nul_is_ignored() -> None:
    events = parse_sse(b"id: 1\ndata: a\n\nid: 2\x003\ndata: b\n\n")
    assert [e.id for e in events] == ["1", "1"]


def test_an_id_from_an_unterminated_block_is_not_taken() -> None:
    parser = SseParser()
    parser.feed(b"id: 1\ndata: a\n\nid: 2\ndata: cut")
    parser.close()
    assert parser.last_event_id == "1"


def test_an_unterminated_event_is_discarded_at_the_end() -> None:
    assert parse_sse(b"data: a\n\ndata: b\n") == [SseEvent(data="a")]


@pytest.mark.parametrize(
    ("line", "retry"),
    [
        (b"retry: 1500", 1500),
        (b"retry:0", 0),
        (b"retry: 15x", None),
        (b"retry: -1", None),
        (b"retry: 1.5", None),
        (b"retry:", None),
        (b"retry: \xd9\xa3", None),
        (b"retry:  10", None),
    ],
)
def test_retry_takes_ascii_digits_only(line: bytes, retry: int | None) -> None:
    parser = SseParser()
    events = parser.feed(line + b"\ndata: x\n\n")
    assert parser.retry == retry
    assert events == [SseEvent(data="x", retry=retry)]


def test_retry_persists_on_the_stream_but_not_on_later_events() -> None:
    parser = SseParser()
    events = parser.feed(b"retry: 10\n\ndata: a\n\nretry: 20\ndata: b\n\n")
    assert events == [SseEvent(data="a"), SseEvent(data="b", retry=20)]
    assert parser.retry == 20


def test_one_leading_bom_is_ignored() -> None:
    assert parse_sse(b"\xef\xbb\xbfdata: a\n\n") == [SseEvent(data="a")]
    # A second BOM is part of the first line's field name, which is then unknown.
    assert parse_sse(b"\xef\xbb\xbf\xef\xbb\xbfdata: a\n\ndata: b\n\n") == [SseEvent(data="b")]
    # A BOM later in the stream is ordinary text.
    assert parse_sse(b"data: \xef\xbb\xbfa\n\n") == [SseEvent(data="\ufeffa")]


def test_a_bom_split_across_chunks_is_still_ignored() -> None:
    parser = SseParser()
    events = parser.feed(b"\xef") + parser.feed(b"\xbb") + parser.feed(b"\xbfdata: a\n\n")
    assert events == [SseEvent(data="a")]


def test_invalid_utf8_becomes_replacement_characters() -> None:
    assert parse_sse(b"data: a\xffb\n\n") == [SseEvent(data="a\ufffdb")]


def test_a_cr_split_from_its_lf_ends_one_line() -> None:
    parser = SseParser()
    events = parser.feed(b"data: a\r") + parser.feed(b"\n") + parser.feed(b"\r\n")
    assert events == [SseEvent(data="a")]


def test_a_multibyte_character_split_across_chunks_is_kept() -> None:
    encoded = "data: é€😀\n\n".encode()
    parser = SseParser()
    events = [event for byte in encoded for event in parser.feed(bytes([byte]))]
    assert events == [SseEvent(data="é€😀")]


# ---- the size cap -------------------------------------------------------------------------------


def test_an_event_beyond_the_cap_is_refused_with_the_earlier_events_kept() -> None:
    parser = SseParser(max_event_size=20)
    with pytest.raises(EventTooLarge, match="too large: more than 20") as caught:
        parser.feed(b"data: ok\n\ndata: " + b"x" * 30 + b"\n\n")
    assert caught.value.events == [SseEvent(data="ok")]
    with pytest.raises(SseError, match="failed earlier"):
        parser.feed(b"data: more\n\n")


def test_a_long_line_arriving_in_pieces_is_refused_before_it_ends() -> None:
    parser = SseParser(max_event_size=100)
    for _ in range(10):
        parser.feed(b"x" * 10)
    with pytest.raises(EventTooLarge):
        parser.feed(b"x")


def test_the_cap_counts_every_line_of_one_event() -> None:
    parser = SseParser(max_event_size=30)
    with pytest.raises(EventTooLarge):
        parser.feed(b"data: aaaa\n" * 5)


def test_events_up_to_the_cap_pass_and_the_count_restarts_after_each() -> None:
    block = b"data: " + b"x" * 10 + b"\n\n"  # 17 + 1 characters
    assert len(parse_sse(block * 100, max_event_size=len(block))) == 100


def test_a_closed_parser_takes_no_input() -> None:
    parser = SseParser()
    parser.close()
    with pytest.raises(SseError, match="closed"):
        parser.feed(b"data: a\n\n")


def test_the_cap_must_be_positive() -> None:
    with pytest.raises(ValueError, match="positive"):
        SseParser(max_event_size=0)


# ---- cost: each character is scanned for a line end once ---------------------------------------


class _CountingLineEnd:
    """Stands in for the parser's line-end pattern and counts the characters it is given."""

    def __init__(self, pattern: re.Pattern[str]) -> None:
        self._pattern = pattern
        self.scanned = 0

    def split(self, text: str) -> list[str]:
        self.scanned += len(text)
        return self._pattern.split(text)


def test_a_long_event_in_many_chunks_is_scanned_once(monkeypatch: pytest.MonkeyPatch) -> None:
    # A 1 MiB line in 64 chunks: rescanning the pending line per chunk would look at about
    # 32 times the stream's length (and the cost grows with the square of the size).
    counter = _CountingLineEnd(sse_parser._LINE_END)
    monkeypatch.setattr(sse_parser, "_LINE_END", counter)
    stream = b"data: " + b"x" * (1 << 20) + b"\r\n\r\n"
    parser = SseParser()
    events: list[SseEvent] = []
    for start in range(0, len(stream), 1 << 14):
        events += parser.feed(stream[start : start + (1 << 14)])
    assert events == [SseEvent(data="x" * (1 << 20))]
    assert counter.scanned <= len(stream)


def test_a_crlf_split_after_a_long_pending_line_is_one_line_end() -> None:
    parser = SseParser()
    assert parser.feed(b"data: a") == []
    assert parser.feed(b"bc") == []
    assert parser.feed(b"d\r") == []
    # The LF completes the CRLF: only the next CRLF is the blank line that dispatches.
    assert parser.feed(b"\ndata: e\r") == []
    assert parser.feed(b"\n\r") == [SseEvent(data="abcd\ne")]
    assert parser.feed(b"\n") == []


# ---- chunking never changes the result ----------------------------------------------------------

_LINES = st.lists(
    st.sampled_from(
        [
            b"data: x",
            b"data:y",
            b"data",
            b"data: \xc3\xa9\xe2\x82\xac",
            b"event: e",
            b"id: 1",
            b"id: 2\x00",
            b"id",
            b"retry: 5",
            b"retry: x",
            b": c",
            b"",
            b"",
            b"\xef\xbb\xbfdata: b",
            b"data: \xff\xfe",
            b"data: \xf0\x9f\x98",
            b"other: z",
        ]
    ),
    max_size=30,
)


@st.composite
def _streams(draw: st.DrawFn) -> bytes:
    lines = draw(_LINES)
    endings = draw(
        st.lists(st.sampled_from([b"\n", b"\r", b"\r\n"]), min_size=len(lines), max_size=len(lines))
    )
    bom = draw(st.sampled_from([b"", b"\xef\xbb\xbf"]))
    return bom + b"".join(line + end for line, end in zip(lines, endings, strict=True))


@given(stream=_streams(), data=st.data())
def test_any_chunking_yields_the_events_of_one_chunk(stream: bytes, data: st.DataObject) -> None:
    cuts = data.draw(st.lists(st.integers(0, len(stream)), max_size=12))
    assert _feed_in_pieces(stream, cuts) == _feed_in_pieces(stream, [])


@given(stream=st.binary(max_size=200), data=st.data())
def test_any_chunking_of_arbitrary_bytes_agrees(stream: bytes, data: st.DataObject) -> None:
    cuts = data.draw(st.lists(st.integers(0, len(stream)), max_size=12))
    assert _feed_in_pieces(stream, cuts) == _feed_in_pieces(stream, [])


@given(stream=_streams(), data=st.data(), cap=st.integers(1, 60))
def test_any_chunking_agrees_on_whether_an_event_is_too_large(
    stream: bytes, data: st.DataObject, cap: int
) -> None:
    def outcome(cuts: list[int]) -> object:
        try:
            return _feed_in_pieces(stream, cuts, max_event_size=cap)
        except EventTooLarge:
            return "too large"

    cuts = data.draw(st.lists(st.integers(0, len(stream)), max_size=12))
    assert outcome(cuts) == outcome([])


def test_byte_by_byte_agrees_with_one_chunk() -> None:
    stream = b"\xef\xbb\xbfid: a\r\ndata: \xc3\xa9\r\n\r\n: c\rdata: 2\r\rretry: 3\ndata\n\n"
    assert _feed_in_pieces(stream, list(range(len(stream)))) == _feed_in_pieces(stream, [])


# ---- the server's framing round-trips -----------------------------------------------------------


_ID_CHARACTERS = st.characters(blacklist_categories=("Cs",), blacklist_characters="\r\n\x00")


@given(
    payloads=st.lists(
        st.tuples(
            st.recursive(
                st.none() | st.booleans() | st.integers(-(2**63), 2**63 - 1) | st.text(),
                lambda inner: (
                    st.lists(inner, max_size=3) | st.dictionaries(st.text(), inner, max_size=3)
                ),
                max_leaves=8,
            ),
            st.none() | st.text(_ID_CHARACTERS, min_size=1),
            st.none() | st.integers(0, 10**6),
        ),
        max_size=5,
    )
)
def test_the_server_s_sse_events_round_trip(
    payloads: list[tuple[object, str | None, int | None]],
) -> None:
    stream = sse_comment("keep-alive")
    for payload, event_id, retry in payloads:
        stream += sse_event(orjson.dumps(payload), event_id, retry) + sse_comment()
    events = parse_sse(stream)
    assert [orjson.loads(e.data) for e in events] == [p for p, _, _ in payloads]
    assert all(e.event == "message" for e in events)
    last = ""
    for event, (_, event_id, retry) in zip(events, payloads, strict=True):
        # The id persists: an event framed without one carries the previous id.
        last = event_id if event_id is not None else last
        assert event.id == last
        assert event.retry == retry


def test_a_priming_event_carries_its_id_and_retry_with_empty_data() -> None:
    parser = SseParser()
    assert parser.feed(sse_event(b"", "s:1", 1000)) == [SseEvent(data="", id="s:1", retry=1000)]
    assert (parser.last_event_id, parser.retry) == ("s:1", 1000)
