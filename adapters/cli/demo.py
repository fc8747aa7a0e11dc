"""The demo server `mcp-core serve` runs when given no target.

Spec: MCP 2025-11-25 "Server Features" (tools, resources, prompts, completion) and
"Client Features" > "Sampling" (the `ask` tool).

A small server that exercises every feature a client can try, offline: tools with plain,
numeric and structured results, one that reports progress (and can be cancelled), one that
asks the client's model; a static resource and a resource template; a prompt with argument
completion. It lives in the package (not in `examples/`) so the CLI finds it in a wheel too;
`examples/demo_server.py` re-exports it.
"""

from __future__ import annotations

import datetime
import importlib.metadata
from typing import Annotated, TypedDict

import anyio
import orjson

from mcp_core.core import Context, McpError, McpServer, Param, ToolAnnotations
from mcp_core.core.protocol import errors

__all__ = ["DEMO_NAME", "build_demo_server"]

DEMO_NAME = "mcp-core-demo"

_README = """\
# mcp-core demo server

This server shows what an MCP server built on mcp-core offers. Everything runs offline.

Tools:
- `echo`: returns the text it is given.
- `add`: adds a list of numbers.
- `now`: the current time in UTC (ISO 8601).
- `word_count`: words, characters and lines of a text, as structured content.
- `countdown`: counts down, reporting progress each second; cancel it to see cancellation.
- `ask`: asks the client's model a question (needs the client's sampling capability).

Resources:
- `demo://readme`: this text.
- `demo://tools/{name}`: the definition of one of the tools above, as JSON.

Prompts:
- `summarize(text, style)`: asks for a summary; `style` completes to brief, detailed or bullets.
"""

_STYLES = ("brief", "detailed", "bullets")
_STYLE_INSTRUCTIONS = {
    "brief": "Summarize the following text in two or three sentences.",
    "detailed": "Write a detailed summary of the following text, keeping every key point.",
    "bullets": "Summarize the following text as a short list of bullet points.",
}
_READ_ONLY = ToolAnnotations(read_only_hint=True, idempotent_hint=True, open_world_hint=False)


class WordCount(TypedDict):
    words: int
    characters: int
    lines: int
    unique_words: int


def _version() -> str:
    try:
        return importlib.metadata.version("mcp-core")
    except importlib.metadata.PackageNotFoundError:
        return "0.0.0"


def build_demo_server() -> McpServer:
    """A fresh demo server (each call builds a new one: no state is shared)."""
    server = McpServer(
        DEMO_NAME,
        version=_version(),
        title="mcp-core demo",
        description="A demonstration server: a few offline tools, resources and a prompt.",
        instructions="Read demo://readme for what this server offers.",
    )

    @server.tool(annotations=_READ_ONLY)
    def echo(text: Annotated[str, "The text to send back."]) -> str:
        """Return the text unchanged (handy to check a connection)."""
        return text

    @server.tool(annotations=_READ_ONLY)
    def add(numbers: Annotated[list[float], "The numbers to add."]) -> float:
        """Add numbers and return their sum."""
        return sum(numbers)

    @server.tool(annotations=ToolAnnotations(read_only_hint=True, open_world_hint=False))
    def now() -> str:
        """The current date and time in UTC, in ISO 8601 format."""
        return datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds")

    @server.tool(annotations=_READ_ONLY)
    def word_count(text: Annotated[str, "The text to count."]) -> WordCount:
        """Count the words, characters, lines and distinct words of a text."""
        words = text.split()
        return {
            "words": len(words),
            "characters": len(text),
            "lines": len(text.splitlines()),
            "unique_words": len({word.casefold() for word in words}),
        }

    @server.tool(annotations=_READ_ONLY)
    async def countdown(
        seconds: Annotated[
            int,
            Param(
                description="How many seconds to count down.", schema={"minimum": 0, "maximum": 60}
            ),
        ],
        ctx: Context,
    ) -> str:
        """Count down to zero, one second at a time, reporting progress on the way."""
        for done in range(seconds):
            await ctx.report_progress(done, seconds, f"{seconds - done} s left")
            await anyio.sleep(1)
        await ctx.report_progress(seconds, seconds, "done")
        return f"Counted down from {seconds}."

    @server.tool()
    async def ask(
        question: Annotated[str, "What to ask the client's model."],
        ctx: Context,
        max_tokens: Annotated[int, Param(schema={"minimum": 1})] = 200,
    ) -> str:
        """Ask the client's language model a question (sampling) and return its answer."""
        answer = await ctx.sample(question, max_tokens=max_tokens)
        return (
            answer.text if answer.text is not None else f"(a {answer.content.get('type')} answer)"
        )

    @server.resource("demo://readme", title="About this server", mime_type="text/markdown")
    def readme() -> str:
        """What the demo server offers."""
        return _README

    @server.resource("demo://tools/{name}", title="Tool definition", mime_type="application/json")
    def tool_definition(name: str) -> str:
        """The definition of one of this server's tools, as `tools/list` shows it."""
        tool = server.tools.get(name)
        if tool is None:
            raise McpError(
                errors.RESOURCE_NOT_FOUND, "Resource not found", {"uri": f"demo://tools/{name}"}
            )
        return orjson.dumps(tool.definition(), option=orjson.OPT_INDENT_2).decode()

    @server.prompt(title="Summarize a text")
    def summarize(
        text: Annotated[str, "The text to summarize."],
        style: Annotated[str, "brief, detailed or bullets."] = "brief",
    ) -> str:
        """Ask the model for a summary of a text in a given style."""
        instruction = _STYLE_INSTRUCTIONS.get(style)
        if instruction is None:
            raise McpError(
                errors.INVALID_PARAMS, f"unknown style {style!r}: use one of {', '.join(_STYLES)}"
            )
        return f"{instruction}\n\n{text}"

    @server.completion("ref/prompt", "summarize")
    def complete_style(argument: str, value: str, context: dict[str, str]) -> list[str]:
        if argument != "style":
            return []
        return [style for style in _STYLES if style.startswith(value.lower())]

    @server.completion("ref/resource", "demo://tools/{name}")
    def complete_tool_name(argument: str, value: str, context: dict[str, str]) -> list[str]:
        return [tool.name for tool in server.tools.all() if tool.name.startswith(value)]

    return server
