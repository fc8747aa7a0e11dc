"""The "everything" server the official MCP conformance suite plays a client against.

`@modelcontextprotocol/conformance` (server scenarios) connects to a Streamable HTTP endpoint
and calls fixtures by name: 14 tools, the `test://` resources and template, 4 prompts, argument
completion, logging and resource subscriptions. This module exposes exactly those, with the
content the scenarios check, and doubles as a tour of the mcp-core server API:

- tools from plain typed functions (the input schema is derived from the signature), and one
  with a hand-written JSON Schema 2020-12 `inputSchema`, advertised unchanged;
- content values (`ImageContent`, `AudioContent`, `EmbeddedResource`) and `isError` results;
- a `Context` for logging, progress, sampling, elicitation and SSE polling (`close_stream`);
- static resources, a URI template, prompts with arguments, and argument completion.
  Subscriptions (`resources/subscribe`) and `logging/setLevel` are built into the server.

Run it, then point the suite at `http://127.0.0.1:PORT/mcp`:

    mcp-core serve examples/conformance_server.py --port 3001
    # or: uvicorn --app-dir examples conformance_server:app --port 3001
    scripts/conformance.sh server --strict     # starts this server itself and runs the suite

The module-level `server` is the `McpServer`; `app` is the ASGI app serving it at `/mcp`.
"""

from __future__ import annotations

import base64
from typing import Annotated, Any

import anyio
import orjson

from mcp_core.adapters.asgi import create_app
from mcp_core.core import (
    AudioContent,
    Context,
    EmbeddedResource,
    ImageContent,
    McpServer,
    Param,
    TextContent,
    TextResourceContents,
    ToolError,
)

__all__ = ["app", "server"]

# A 1x1 red PNG and a minimal WAV file: the suite checks the base64 and the MIME types.
TEST_IMAGE_BASE64 = (
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR4"
    "2mP8z8DwHwAFBQIAX8jx0gAAAABJRU5ErkJggg=="
)
TEST_AUDIO_BASE64 = "UklGRiYAAABXQVZFZm10IBAAAAABAAEAQB8AAAB9AAACABAAZGF0YQIAAAA="

LOGGER = "conformance-test-server"
STEP_DELAY = 0.05  # seconds between the log and progress notifications of one call

server = McpServer("mcp-conformance-test-server", "1.0.0")


# ---- tools: content types ---------------------------------------------------------------


@server.tool(description="Tests simple text content response")
def test_simple_text() -> str:
    return "This is a simple text response for testing."


@server.tool(description="Tests image content response")
def test_image_content() -> ImageContent:
    return ImageContent(data=TEST_IMAGE_BASE64, mime_type="image/png")


@server.tool(description="Tests audio content response")
def test_audio_content() -> AudioContent:
    return AudioContent(data=TEST_AUDIO_BASE64, mime_type="audio/wav")


@server.tool(description="Tests embedded resource content response")
def test_embedded_resource() -> EmbeddedResource:
    return EmbeddedResource(
        resource=TextResourceContents(
            uri="test://embedded-resource",
            mime_type="text/plain",
            text="This is an embedded resource content.",
        )
    )


@server.tool(description="Tests response with multiple content types (text, image, resource)")
def test_multiple_content_types() -> list[TextContent | ImageContent | EmbeddedResource]:
    return [
        TextContent(text="Multiple content types test:"),
        ImageContent(data=TEST_IMAGE_BASE64, mime_type="image/png"),
        EmbeddedResource(
            resource=TextResourceContents(
                uri="test://mixed-content-resource",
                mime_type="application/json",
                text=orjson.dumps({"test": "data", "value": 123}).decode(),
            )
        ),
    ]


@server.tool(description="Tests error response handling")
def test_error_handling() -> str:
    # ToolError becomes a result with `isError: true`, not a JSON-RPC error.
    raise ToolError("This tool intentionally returns an error for testing")


# ---- tools: talking back through the Context -----------------------------------------------


@server.tool(description="Tests tool that emits log messages during execution")
async def test_tool_with_logging(ctx: Context) -> str:
    # Sent on this request's own SSE stream, before the result.
    for message in ("Tool execution started", "Tool processing data", "Tool execution completed"):
        await ctx.info(message, logger=LOGGER)
        await anyio.sleep(STEP_DELAY)
    return "Tool with logging executed successfully"


@server.tool(description="Tests tool that reports progress notifications")
async def test_tool_with_progress(ctx: Context) -> str:
    # A no-op unless the request carried `_meta.progressToken`, which is echoed as sent.
    for step in (0, 50, 100):
        await ctx.report_progress(step, 100, f"Completed step {step} of 100")
        await anyio.sleep(STEP_DELAY)
    return f"Progress reported on token {ctx.progress_token!r}"


@server.tool(description="Tests server-initiated sampling (LLM completion request)")
async def test_sampling(
    prompt: Annotated[str, Param(description="The prompt to send to the LLM")],
    ctx: Context,
) -> str:
    result = await ctx.sample(prompt, max_tokens=100)
    return f"LLM response: {result.text}"


@server.tool(description="Tests server-initiated elicitation (user input request)")
async def test_elicitation(
    message: Annotated[str, Param(description="The message to show the user")],
    ctx: Context,
) -> str:
    answer = await ctx.elicit(
        message,
        {
            "type": "object",
            "properties": {
                "username": {"type": "string", "description": "User's response"},
                "email": {"type": "string", "description": "User's email address"},
            },
            "required": ["username", "email"],
        },
    )
    return f"User response: action={answer.action}, content={_json(answer.content)}"


@server.tool(description="Tests elicitation with default values per SEP-1034")
async def test_elicitation_sep1034_defaults(ctx: Context) -> str:
    answer = await ctx.elicit(
        "Please review and update the form fields with defaults",
        {
            "type": "object",
            "properties": {
                "name": {"type": "string", "description": "User name", "default": "John Doe"},
                "age": {"type": "integer", "description": "User age", "default": 30},
                "score": {"type": "number", "description": "User score", "default": 95.5},
                "status": {
                    "type": "string",
                    "description": "User status",
                    "enum": ["active", "inactive", "pending"],
                    "default": "active",
                },
                "verified": {
                    "type": "boolean",
                    "description": "Verification status",
                    "default": True,
                },
            },
            "required": [],
        },
    )
    return f"Elicitation completed: action={answer.action}, content={_json(answer.content)}"


def _choices(*pairs: tuple[str, str]) -> list[dict[str, str]]:
    return [{"const": value, "title": title} for value, title in pairs]


@server.tool(description="Tests elicitation with enum schema variants per SEP-1330")
async def test_elicitation_sep1330_enums(ctx: Context) -> str:
    # Every enum shape of SEP-1330. A titled enum carries `oneOf`/`anyOf` and no `enum`.
    answer = await ctx.elicit(
        "Please select options from the enum fields",
        {
            "type": "object",
            "properties": {
                "untitledSingle": {
                    "type": "string",
                    "description": "Select one option",
                    "enum": ["option1", "option2", "option3"],
                },
                "titledSingle": {
                    "type": "string",
                    "description": "Select one option with titles",
                    "oneOf": _choices(
                        ("value1", "First Option"),
                        ("value2", "Second Option"),
                        ("value3", "Third Option"),
                    ),
                },
                "legacyEnum": {
                    "type": "string",
                    "description": "Select one option (legacy)",
                    "enum": ["opt1", "opt2", "opt3"],
                    "enumNames": ["Option One", "Option Two", "Option Three"],
                },
                "untitledMulti": {
                    "type": "array",
                    "description": "Select multiple options",
                    "minItems": 1,
                    "maxItems": 3,
                    "items": {"type": "string", "enum": ["option1", "option2", "option3"]},
                },
                "titledMulti": {
                    "type": "array",
                    "description": "Select multiple options with titles",
                    "minItems": 1,
                    "maxItems": 3,
                    "items": {
                        "anyOf": _choices(
                            ("value1", "First Choice"),
                            ("value2", "Second Choice"),
                            ("value3", "Third Choice"),
                        )
                    },
                },
            },
            "required": [],
        },
    )
    return f"Elicitation completed: action={answer.action}, content={_json(answer.content)}"


# A hand-written schema is advertised exactly as given: `$schema`, `$defs` and all (SEP-1613).
ADDRESS_BOOK_SCHEMA: dict[str, Any] = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "type": "object",
    "$defs": {
        "address": {
            "type": "object",
            "properties": {"street": {"type": "string"}, "city": {"type": "string"}},
        }
    },
    "properties": {"name": {"type": "string"}, "address": {"$ref": "#/$defs/address"}},
    "additionalProperties": False,
}


@server.tool(
    description="Tool with JSON Schema 2020-12 features for conformance testing (SEP-1613)",
    input_schema=ADDRESS_BOOK_SCHEMA,
)
def json_schema_2020_12_tool(name: str | None = None, address: dict[str, Any] | None = None) -> str:
    arguments = {k: v for k, v in (("name", name), ("address", address)) if v is not None}
    return f"JSON Schema 2020-12 tool called with: {_json(arguments)}"


@server.tool(description="Tests SSE stream disconnection and client reconnection (SEP-1699)")
async def test_reconnection(ctx: Context) -> str:
    # SSE polling: end this request's stream now; the call goes on, and the client gets what
    # follows (the log below and the result) by resuming with GET and Last-Event-ID.
    await ctx.close_stream()
    await anyio.sleep(0.1)
    await ctx.info("Resumed after the stream was closed", logger=LOGGER)
    return (
        "Reconnection test completed successfully. If you received this, "
        "the client properly reconnected after stream closure."
    )


def _json(value: Any) -> str:
    return orjson.dumps(value).decode()


# ---- resources --------------------------------------------------------------------------


@server.resource(
    "test://static-text",
    name="static-text",
    title="Static Text Resource",
    description="A static text resource for testing",
    mime_type="text/plain",
)
def static_text() -> str:
    return "This is the content of the static text resource."


@server.resource(
    "test://static-binary",
    name="static-binary",
    title="Static Binary Resource",
    description="A static binary resource (image) for testing",
    mime_type="image/png",
)
def static_binary() -> bytes:
    # Bytes are served as a base64 `blob`.
    return base64.b64decode(TEST_IMAGE_BASE64)


@server.resource(
    "test://watched-resource",
    name="watched-resource",
    title="Watched Resource",
    description="A resource clients can subscribe to (resources/subscribe)",
    mime_type="text/plain",
)
def watched_resource() -> str:
    return "Watched resource content"


@server.resource(
    "test://template/{id}/data",
    name="template",
    title="Template Resource",
    description="A resource template with parameter substitution",
    mime_type="application/json",
)
def template_data(id: str) -> dict[str, Any]:
    # A dict is served as JSON text.
    return {"id": id, "templateTest": True, "data": f"Data for ID: {id}"}


# ---- prompts and completion ---------------------------------------------------------------


@server.prompt(title="Simple Test Prompt", description="A simple prompt without arguments")
def test_simple_prompt() -> str:
    return "This is a simple prompt for testing."


@server.prompt(title="Prompt With Arguments", description="A prompt with required arguments")
def test_prompt_with_arguments(
    arg1: Annotated[str, "First test argument"],
    arg2: Annotated[str, "Second test argument"],
) -> str:
    return f"Prompt with arguments: arg1='{arg1}', arg2='{arg2}'"


@server.prompt(
    title="Prompt With Embedded Resource",
    description="A prompt that includes an embedded resource",
)
def test_prompt_with_embedded_resource(
    resourceUri: Annotated[str, "URI of the resource to embed"],  # the wire name is camelCase
) -> list[EmbeddedResource | str]:
    return [
        EmbeddedResource(
            resource=TextResourceContents(
                uri=resourceUri,
                mime_type="text/plain",
                text="Embedded resource content for testing.",
            )
        ),
        "Please process the embedded resource above.",
    ]


@server.prompt(title="Prompt With Image", description="A prompt that includes image content")
def test_prompt_with_image() -> list[ImageContent | str]:
    return [
        ImageContent(data=TEST_IMAGE_BASE64, mime_type="image/png"),
        "Please analyze the image above.",
    ]


ARG1_SUGGESTIONS = ("test", "testValue1", "testValue2", "example", "sample")


@server.completion("ref/prompt", "test_prompt_with_arguments")
def complete_prompt_argument(argument: str, value: str, context: dict[str, str]) -> list[str]:
    """Suggest values for `arg1` that start with what the user typed so far."""
    if argument != "arg1":
        return []
    return [s for s in ARG1_SUGGESTIONS if s.startswith(value)]


app = create_app(server)
