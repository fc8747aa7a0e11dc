"""`mcp-core tools|call|resources|prompts`: the client role from the command line.

```
mcp-core tools     TARGET [options]
mcp-core call      TARGET TOOL [--arg NAME=VALUE ...] [--json OBJECT] [--no-validate] [options]
mcp-core resources TARGET [--read URI] [options]
mcp-core prompts   TARGET [--get NAME [--arg NAME=VALUE ...]] [options]

TARGET:  http(s)://HOST[:PORT]/PATH          a Streamable HTTP endpoint
         --stdio COMMAND [ARGS...]           launch a stdio server (must come last)
options: [-o|--output text|json] [--timeout S] [--token TOKEN | --no-oauth] [--verbose]
```

Spec context: issue 5 "a session" (the CLI part); MCP 2025-11-25 "Lifecycle" (one
`initialize` per command), "Server Features" > "Tools" (`tools/list` with pagination,
`tools/call`, `inputSchema`, `isError`, `structuredContent`), "Resources" and "Prompts";
"Transports" > "Streamable HTTP" and "stdio"; "Authorization" (the bearer token).

Theory of operation: each command opens one session with `connect` (an `HttpClientTransport`
or a `StdioClientTransport` under a `ClientSession`), initializes it, does its one job, and
closes it (DELETE over HTTP; stdin closed, then SIGTERM, over stdio). `connect(target, *,
auth=..., oauth=...)` is where authorization is chosen. A static bearer token (`--token`, else
`MCP_CORE_TOKEN`) is an `httpx.Auth` applied to every HTTP request. Otherwise an HTTP target is
reached through the OAuth client (`mcp_core.adapters.oauth_client.open_session`, issue 5): a
server that needs no authorization never notices; one that answers 401 gets the MCP
authorization flow (discovery, registration, PKCE), with the user's browser opened on the
authorization page and the redirect received on a one-time 127.0.0.1 port (without a browser
the URL is printed on stderr to open by hand). Tokens are kept sealed in the vault
(`VaultTokenStorage`: the vault store and `KEYRING_SECRET` the other commands use), so the
next command reuses or refreshes them without the browser; without a `KEYRING_SECRET` they
last for this one command, and stderr says so. `--no-oauth` turns the flow off.

`call` turns `--arg NAME=VALUE` into the tool's arguments by its `inputSchema` (fetched with
`tools/list` first): a property typed only `string` takes VALUE as is; a property that admits
integer, number, boolean, null, array or object takes VALUE as JSON text, falling back to the
string when the schema also admits one. `--json OBJECT` (or `--json -` for stdin) gives the
arguments as one JSON object, which `--arg`s then extend or override. Before anything is sent
the arguments are checked: every required one present, no name the schema does not know
(unless it admits additional properties), and the whole object valid against the schema
(jsonschema-rs), each problem naming its argument. `--no-validate` skips the check (and the
`tools/list`), sending VALUEs that parse as JSON as JSON and the rest as strings.

Output contract, for scripts: text for people on stdout by default; `--output json` prints the
raw result as one JSON document (`{"tools": [...]}`, the `CallToolResult`, `{"resources":
[...], "resourceTemplates": [...]}`, the `ReadResourceResult`, `{"prompts": [...]}`, the
`GetPromptResult`). A tool result with `isError: true` exits with status 1 (its text on
stderr, or the JSON on stdout with `--output json`). Any failure (unreachable server, HTTP
4xx/5xx, a JSON-RPC error, a timeout, a server process that exits) is one line on stderr,
`mcp-core: error: ...`, and exit status 1, never a traceback. Progress of a tool call is shown
on stderr when stderr is a terminal.
"""

from __future__ import annotations

import argparse
import base64
import collections
import contextlib
import importlib.metadata
import json
import os
import shlex
import sys
from collections.abc import (
    AsyncIterator,
    Awaitable,
    Callable,
    Generator,
    Iterator,
    Mapping,
    Sequence,
)
from typing import TYPE_CHECKING, Any, Final

import attrs

from ._target import CliError

if TYPE_CHECKING:
    import httpx

    from mcp_core.core.services.client import ClientSession
    from mcp_core.ports.oauth_client import StoredGrant, TokenStorage

__all__ = [
    "TOKEN_VARIABLE",
    "ServerTarget",
    "add_client_commands",
    "arguments_for",
    "bearer_token_auth",
    "connect",
    "parse_target",
]

TOKEN_VARIABLE: Final = "MCP_CORE_TOKEN"
DEFAULT_TIMEOUT: Final = 30.0
# Lines of a stdio server's stderr kept to explain a failure.
_STDERR_TAIL: Final = 20

_JSON_TYPES: Final = ("integer", "number", "boolean", "null", "array", "object")


# ---- the target -----------------------------------------------------------------------------


@attrs.frozen(kw_only=True)
class ServerTarget:
    """Where the server is: exactly one of `url` (Streamable HTTP) and `command` (stdio)."""

    url: str | None = None
    command: tuple[str, ...] | None = None

    @property
    def label(self) -> str:
        if self.url is not None:
            return self.url
        assert self.command is not None
        return shlex.join(self.command)


def parse_target(url: str | None, command: Sequence[str] | None) -> ServerTarget:
    """The target of a command line: a URL, or the `--stdio` command (never both)."""
    if command is not None:
        words = list(command)
        if words[:1] == ["--"]:
            words = words[1:]
        if url is not None:
            raise CliError(f"give either a URL or --stdio COMMAND, not both (got {url!r})")
        if not words:
            raise CliError("--stdio needs the command that starts the server, as its last option")
        return ServerTarget(command=tuple(words))
    if url is None:
        raise CliError("no server given: a URL (http://HOST:PORT/mcp) or --stdio COMMAND ...")
    scheme = url.partition("://")[0].lower()
    if scheme not in ("http", "https") or "://" not in url:
        raise CliError(
            f"{url!r} is not an http(s) URL; to launch a server over stdio, end the command "
            "line with --stdio COMMAND ARGS..."
        )
    return ServerTarget(url=url)


# ---- authorization --------------------------------------------------------------------------


def bearer_token_auth(token: str) -> httpx.Auth:
    """An `httpx.Auth` that sends `Authorization: Bearer <token>` on every request (RFC 6750
    2.1). A token that is not a b64token is refused here rather than sent malformed."""
    import httpx

    if not token or any(c.isspace() or not c.isprintable() for c in token):
        raise CliError("the bearer token is empty or contains spaces or control characters")

    class _Bearer(httpx.Auth):
        def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, Any, None]:
            request.headers["Authorization"] = f"Bearer {token}"
            yield request

    return _Bearer()


def _auth_for(args: argparse.Namespace, target: ServerTarget) -> httpx.Auth | None:
    """The authorization to use for `target`. The OAuth client (browser flow, cached tokens)
    will be chosen here when no static token is given."""
    if target.url is None:
        if args.token is not None:
            raise CliError("--token applies to HTTP servers; a stdio server is not authorized")
        return None
    token = args.token if args.token is not None else os.environ.get(TOKEN_VARIABLE) or None
    return bearer_token_auth(token) if token is not None else None


# ---- connecting -----------------------------------------------------------------------------


def _version() -> str:
    try:
        return importlib.metadata.version("mcp-core")
    except importlib.metadata.PackageNotFoundError:
        return "0.0.0"


@contextlib.asynccontextmanager
async def connect(
    target: ServerTarget,
    *,
    auth: httpx.Auth | None = None,
    oauth: TokenStorage | None = None,
    timeout: float | None = DEFAULT_TIMEOUT,
    stderr_callback: Callable[[str], Awaitable[None]] | None = None,
) -> AsyncIterator[ClientSession]:
    """An initialized `ClientSession` with `target`, closed on exit.

    `auth` is applied to every HTTP request (a static token); `oauth`, when given (and no
    `auth`), runs the OAuth client with that token storage; `timeout` bounds connecting and
    every request (None: no limit);
    `stderr_callback` receives a stdio server's stderr, line by line.
    """
    from mcp_core.core.services.client import ClientSession

    if target.url is not None and oauth is not None and auth is None:
        from mcp_core.adapters.oauth_client import open_session

        options = {"client_name": "mcp-core", "client_version": _version(), "timeout": timeout}
        async with open_session(
            target.url, storage=oauth, client_name="mcp-core CLI", session_options=options
        ) as session:
            yield session
        return
    if target.url is not None:
        try:
            import httpx

            from mcp_core.adapters.client_http import HttpClientTransport
        except ModuleNotFoundError as exc:
            raise CliError(
                f"talking to an HTTP server needs {exc.name}: pip install 'mcp-core[http]'"
            ) from None
        # No read timeout on the connection: event streams stay quiet while a tool runs; the
        # session's own timeout bounds each request.
        async with (
            httpx.AsyncClient(auth=auth, timeout=httpx.Timeout(timeout, read=None)) as client,
            HttpClientTransport(target.url, client=client) as transport,
            ClientSession(
                transport, client_name="mcp-core", client_version=_version(), timeout=timeout
            ) as session,
        ):
            await session.initialize()
            yield session
        return

    from mcp_core.adapters.stdio.client import StdioClientTransport

    assert target.command is not None
    stdio = StdioClientTransport(target.command, stderr_callback=stderr_callback)
    try:
        await stdio.__aenter__()
    except OSError as exc:
        reason = exc.strerror or str(exc)
        raise CliError(f"cannot start {target.command[0]!r}: {reason}") from None
    try:
        async with ClientSession(
            stdio, client_name="mcp-core", client_version=_version(), timeout=timeout
        ) as session:
            await session.initialize()
            yield session
    finally:
        await stdio.__aexit__(None, None, None)


# ---- running a command ----------------------------------------------------------------------

Work = Callable[["ClientSession", argparse.Namespace], Awaitable[int]]


def _leaf(exc: BaseException) -> BaseException:
    """The exception that explains a failure, out of nested exception groups."""
    while isinstance(exc, BaseExceptionGroup):
        for inner in exc.exceptions:
            if isinstance(inner, CliError):
                return inner
        exc = exc.exceptions[0]
    return exc


def _explain(exc: BaseException, target: ServerTarget, timeout: float | None) -> str:
    from mcp_core.core.protocol.errors import McpError
    from mcp_core.core.services.client import ClientError

    if isinstance(exc, McpError):
        return f"the server answered with error {exc.code}: {exc.message}"
    if isinstance(exc, TimeoutError):
        return f"{target.label}: no answer within {timeout:g} s (see --timeout)"
    if isinstance(exc, ClientError):
        return f"{target.label}: {exc}"
    if isinstance(exc, OSError):
        return f"{target.label}: {exc.strerror or exc}"
    text = str(exc).strip().splitlines()
    return f"{target.label}: {type(exc).__name__}" + (f": {text[0]}" if text else "")


@contextlib.contextmanager
def _client_logging(*, verbose: bool) -> Iterator[None]:
    """The client's log records on stderr with `--verbose`; otherwise none of them (a failure
    is reported once, as the error line). Records still reach handlers the host installed."""
    import logging

    logger = logging.getLogger("mcp_core.client")
    handler: logging.Handler
    if verbose:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("mcp-core: %(levelname)s %(message)s"))
    else:
        # A handler, so that logging's last resort does not print warnings on its own.
        handler = logging.NullHandler()
    level = logger.level
    logger.addHandler(handler)
    if verbose:
        logger.setLevel(logging.INFO)
    try:
        yield
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)


async def _token_storage(stack: contextlib.AsyncExitStack) -> TokenStorage:
    """Where the OAuth client keeps tokens: sealed in the vault when `KEYRING_SECRET` is set
    (the store `mcp-core vault` uses), else in memory for this one command."""
    from mcp_core.adapters.oauth_client_storage import InMemoryTokenStorage

    if not os.environ.get("KEYRING_SECRET"):

        class ForThisCommand(InMemoryTokenStorage):
            """Tokens for one command; says so when it first gets some (a server that needs
            no authorization never does, and then nothing is printed)."""

            async def save(self, grant: StoredGrant) -> None:
                if not self._told:
                    self._told = True
                    print(
                        "mcp-core: note: KEYRING_SECRET is not set, so OAuth tokens are not "
                        "kept between commands (mcp-core keys generate makes one)",
                        file=sys.stderr,
                        flush=True,
                    )
                await super().save(grant)

            _told = False

        return ForThisCommand()
    from mcp_core.adapters.oauth_client_storage import VaultTokenStorage
    from mcp_core.core.vault.keys import KeyringError, keyring_from_environ

    from .vault_cmds import (
        STORE_VARIABLE,
        _close,
        _vault,
        default_store_path,
        open_credential_store,
    )

    try:
        keyring = keyring_from_environ(os.environ)
    except KeyringError as exc:
        raise CliError(f"cannot keep OAuth tokens sealed: {exc}") from None
    store = open_credential_store(os.environ.get(STORE_VARIABLE) or default_store_path())
    stack.push_async_callback(_close, store)
    return VaultTokenStorage(_vault(store, keyring))


def _run(args: argparse.Namespace, work: Work) -> int:
    import anyio

    target = parse_target(args.target, args.stdio)
    auth = _auth_for(args, target)
    tail: collections.deque[str] = collections.deque(maxlen=_STDERR_TAIL)
    use_oauth = target.url is not None and auth is None and not args.no_oauth

    async def remember(line: str) -> None:
        if line.strip():
            tail.append(line.strip())
        if args.verbose:
            print(f"mcp-core: server: {line}", file=sys.stderr, flush=True)

    async def session_then_work() -> int:
        async with contextlib.AsyncExitStack() as stack:
            storage = await _token_storage(stack) if use_oauth else None
            session = await stack.enter_async_context(
                connect(
                    target,
                    auth=auth,
                    oauth=storage,
                    timeout=args.timeout,
                    stderr_callback=remember,
                )
            )
            return await work(session, args)

    try:
        with _client_logging(verbose=args.verbose):
            return anyio.run(session_then_work)
    except (KeyboardInterrupt, SystemExit):
        raise
    except BaseException as exc:
        cause = _leaf(exc)
        if isinstance(cause, (CliError, KeyboardInterrupt)):
            raise cause from None
        message = _explain(cause, target, args.timeout)
        if target.command is not None and tail:
            message += f" (the server's last words: {tail[-1]})"
        raise CliError(message) from None


# ---- printing -------------------------------------------------------------------------------


def _print_json(document: Any) -> None:
    print(json.dumps(document, ensure_ascii=False, indent=2))


def _type_of(schema: Any) -> str:
    """A short human name for a JSON Schema's type: `string`, `array of number`, ..."""
    if not isinstance(schema, Mapping):
        return "any"
    if "enum" in schema and isinstance(schema["enum"], list):
        return "one of " + ", ".join(json.dumps(v) for v in schema["enum"])
    if "const" in schema:
        return json.dumps(schema["const"])
    kind = schema.get("type")
    if isinstance(kind, list):
        return " or ".join(str(k) for k in kind)
    if kind == "array":
        items = schema.get("items")
        return f"array of {_type_of(items)}" if isinstance(items, Mapping) else "array"
    if isinstance(kind, str):
        return kind
    for key in ("anyOf", "oneOf"):
        options = schema.get(key)
        if isinstance(options, list):
            return " or ".join(_type_of(option) for option in options)
    if "$ref" in schema:
        return str(schema["$ref"]).rsplit("/", 1)[-1]
    return "any"


def _indented(text: str, prefix: str) -> str:
    return "\n".join(prefix + line if line.strip() else "" for line in text.strip().splitlines())


def _print_tool(tool: Mapping[str, Any]) -> None:
    title = tool.get("title") or (tool.get("annotations") or {}).get("title")
    print(f"{tool.get('name')}" + (f"  ({title})" if title else ""))
    description = tool.get("description")
    if isinstance(description, str) and description.strip():
        print(_indented(description, "    "))
    schema = tool.get("inputSchema")
    properties = schema.get("properties") if isinstance(schema, Mapping) else None
    if isinstance(properties, Mapping) and properties:
        required = set(schema.get("required") or ()) if isinstance(schema, Mapping) else set()
        for name, prop in properties.items():
            facts = [_type_of(prop)]
            if name in required:
                facts.append("required")
            if isinstance(prop, Mapping) and "default" in prop:
                facts.append(f"default {json.dumps(prop['default'], ensure_ascii=False)}")
            line = f"    --arg {name}=...  ({', '.join(facts)})"
            about = prop.get("description") if isinstance(prop, Mapping) else None
            if isinstance(about, str) and about.strip():
                line += f"  {about.strip().splitlines()[0]}"
            print(line)


def _content_text(block: Mapping[str, Any]) -> str:
    kind = block.get("type")
    if kind == "text":
        return str(block.get("text", ""))
    if kind in ("image", "audio"):
        size = len(base64.b64decode(str(block.get("data", "")), validate=False))
        return f"[{kind} {block.get('mimeType', '')}, {size} bytes]"
    if kind == "resource_link":
        name = block.get("name")
        return f"[resource link {block.get('uri')}" + (f" ({name})]" if name else "]")
    if kind == "resource":
        resource = block.get("resource") or {}
        if isinstance(resource, Mapping) and "text" in resource:
            return str(resource["text"])
        return f"[resource {resource.get('uri') if isinstance(resource, Mapping) else ''}]"
    return json.dumps(block, ensure_ascii=False)


def _is_structured_copy(text: str, structured: Any) -> bool:
    """Whether a text block only repeats `structuredContent` as JSON (spec: "Structured
    Content": a tool returning structured content SHOULD also return it serialized as text)."""
    try:
        return bool(json.loads(text) == structured)
    except ValueError:
        return False


def _print_result(result: Mapping[str, Any]) -> list[str]:
    """Print a tool result for people; returns the text lines of an error result instead."""
    structured = result.get("structuredContent")
    texts: list[str] = []
    for block in result.get("content") or ():
        if not isinstance(block, Mapping):
            continue
        text = _content_text(block)
        is_copy = block.get("type") == "text" and _is_structured_copy(text, structured)
        if structured is not None and is_copy:
            continue
        texts.append(text)
    if result.get("isError"):
        return texts
    for text in texts:
        print(text)
    if structured is not None:
        _print_json(structured)
    return []


# ---- arguments ------------------------------------------------------------------------------


def _name_value(text: str) -> tuple[str, str]:
    name, sep, value = text.partition("=")
    if not sep or not name:
        raise argparse.ArgumentTypeError(f"expected NAME=VALUE, got {text!r}")
    return name, value


def _types_of(schema: Any, root: Mapping[str, Any], depth: int = 0) -> set[str] | None:
    """The JSON types a property admits; None when the schema does not say."""
    if not isinstance(schema, Mapping) or depth > 8:
        return None
    ref = schema.get("$ref")
    if isinstance(ref, str) and ref.startswith("#/"):
        node: Any = root
        for part in ref[2:].split("/"):
            node = node.get(part) if isinstance(node, Mapping) else None
        return _types_of(node, root, depth + 1)
    kind = schema.get("type")
    if isinstance(kind, str):
        return {kind}
    if isinstance(kind, list):
        return {k for k in kind if isinstance(k, str)}
    for key in ("enum", "const"):
        if key in schema:
            values = (
                schema[key] if key == "enum" and isinstance(schema[key], list) else [schema[key]]
            )
            return {_json_type(v) for v in values}
    found: set[str] = set()
    for key in ("anyOf", "oneOf"):
        options = schema.get(key)
        if isinstance(options, list):
            for option in options:
                types = _types_of(option, root, depth + 1)
                if types is None:
                    return None
                found |= types
    return found or None


def _json_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    return "object"


def _fits(value: Any, types: set[str]) -> bool:
    kind = _json_type(value)
    if kind in types:
        return True
    if kind == "integer" and "number" in types:
        return True
    # JSON Schema: 3.0 is an integer.
    return kind == "number" and "integer" in types and float(value).is_integer()


def _convert(name: str, text: str, types: set[str] | None) -> Any:
    """One `--arg` VALUE as its JSON value, by the types its schema admits."""
    if types is not None and types <= {"string"}:
        return text
    try:
        value = json.loads(text)
    except ValueError:
        value = _no_json
    if types is None:  # the schema does not say: JSON when it is JSON
        return text if value is _no_json else value
    if value is not _no_json and _fits(value, types):
        if isinstance(value, float) and "number" not in types and value.is_integer():
            return int(value)
        return value
    if "boolean" in types and text.strip().lower() in ("true", "false"):
        return text.strip().lower() == "true"
    if "string" in types:
        return text
    wanted = " or ".join(_article(t) for t in sorted(types))
    raise CliError(f"argument {name!r}: expected {wanted}, got {text!r}")


_no_json: Final = object()


def _article(kind: str) -> str:
    return ("an " if kind[:1] in "aeiou" else "a ") + kind


def _schema_errors(schema: Mapping[str, Any], arguments: Mapping[str, Any]) -> list[str]:
    import jsonschema_rs

    try:
        validator = jsonschema_rs.validator_for(dict(schema))
    except Exception as exc:  # a server that advertises a broken schema
        return [f"the tool's inputSchema cannot be used ({exc}); use --no-validate"]
    problems = []
    for error in validator.iter_errors(dict(arguments)):
        path = list(error.instance_path)
        where = f"argument {path[0]!r}" if path else "arguments"
        if len(path) > 1:
            where += " at " + "/".join(str(p) for p in path[1:])
        problems.append(f"{where}: {error.message}")
    return problems


def arguments_for(
    tool: Mapping[str, Any] | None,
    given: Sequence[tuple[str, str]],
    base: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """The arguments of a `tools/call`: `base` (from `--json`) extended by the `--arg` pairs,
    converted and checked against `tool`'s `inputSchema` (None: no checks, JSON-or-string).
    Raises `CliError` naming the argument that does not fit."""
    schema = tool.get("inputSchema") if tool is not None else None
    if tool is not None and not isinstance(schema, Mapping):
        schema = {"type": "object"}
    properties = schema.get("properties") if isinstance(schema, Mapping) else None
    if not isinstance(properties, Mapping):
        properties = {}
    arguments = dict(base or {})
    seen: set[str] = set()
    for name, text in given:
        if name in seen:
            raise CliError(f"argument {name!r} is given twice")
        seen.add(name)
        if tool is None:
            arguments[name] = _convert(name, text, None)
            continue
        assert isinstance(schema, Mapping)
        if name not in properties and not _admits_others(schema):
            known = ", ".join(properties) or "none"
            raise CliError(
                f"tool {tool.get('name')!r} has no argument {name!r} (it takes: {known})"
            )
        arguments[name] = _convert(name, text, _types_of(properties.get(name), schema))
    if tool is None:
        return arguments
    assert isinstance(schema, Mapping)
    missing = [n for n in schema.get("required") or () if isinstance(n, str) and n not in arguments]
    if missing:
        needed = ", ".join(f"{n} ({_type_of(properties.get(n))})" for n in missing)
        raise CliError(f"tool {tool.get('name')!r}: missing required argument(s): {needed}")
    problems = _schema_errors(schema, arguments)
    if problems:
        raise CliError(f"tool {tool.get('name')!r}: " + "; ".join(problems))
    return arguments


def _admits_others(schema: Mapping[str, Any]) -> bool:
    """Whether names outside `properties` are meant to be accepted: only when the schema says
    so (a typo in an argument name is a far more common cause than an open schema)."""
    extra = schema.get("additionalProperties")
    return (
        extra is True
        or isinstance(extra, Mapping)
        or bool(schema.get("patternProperties"))
        or "properties" not in schema
    )


def _json_object(text: str) -> dict[str, Any]:
    if text == "-":
        text = sys.stdin.read()
    try:
        value = json.loads(text)
    except ValueError as exc:
        raise CliError(f"--json is not valid JSON: {exc}") from None
    if not isinstance(value, dict):
        raise CliError(f"--json must be a JSON object, not {_article(_json_type(value))}")
    return value


# ---- the commands ---------------------------------------------------------------------------


async def _tools(session: ClientSession, args: argparse.Namespace) -> int:
    tools = await session.list_tools()
    if args.output == "json":
        _print_json({"tools": tools})
        return 0
    if not tools:
        print("(no tools)", file=sys.stderr)
    for tool in tools:
        _print_tool(tool)
    return 0


async def _progress(done: float, total: float | None, message: str | None) -> None:
    if sys.stderr.isatty():
        amount = f"{done:g}/{total:g}" if total is not None else f"{done:g}"
        print(f"mcp-core: progress {amount}" + (f": {message}" if message else ""), file=sys.stderr)


async def _call(session: ClientSession, args: argparse.Namespace) -> int:
    base = _json_object(args.json) if args.json is not None else None
    tool: Mapping[str, Any] | None = None
    if not args.no_validate:
        tools = {t.get("name"): t for t in await session.list_tools()}
        tool = tools.get(args.tool)
        if tool is None:
            offered = ", ".join(sorted(str(n) for n in tools)) or "none"
            raise CliError(f"the server has no tool {args.tool!r} (it offers: {offered})")
    arguments = arguments_for(tool, args.arg, base)
    result = await session.call_tool(args.tool, arguments, timeout="default", progress=_progress)
    failed = bool(result.get("isError"))
    if args.output == "json":
        _print_json(result)
        return 1 if failed else 0
    errors = _print_result(result)
    if failed:
        text = "\n".join(errors).strip() or "(no message)"
        print(f"mcp-core: tool {args.tool} failed: {text}", file=sys.stderr)
        return 1
    return 0


async def _resources(session: ClientSession, args: argparse.Namespace) -> int:
    if args.read is not None:
        result = await session.read_resource(args.read)
        if args.output == "json":
            _print_json(result)
            return 0
        for item in result.get("contents") or ():
            if not isinstance(item, Mapping):
                continue
            if "text" in item:
                text = str(item["text"])
                print(text, end="" if text.endswith("\n") else "\n")
            elif "blob" in item:
                data = base64.b64decode(str(item["blob"]))
                if sys.stdout.isatty():
                    print(
                        f"mcp-core: {item.get('uri')} is {len(data)} bytes of "
                        f"{item.get('mimeType', 'binary data')}; redirect stdout to save it",
                        file=sys.stderr,
                    )
                else:
                    sys.stdout.flush()
                    sys.stdout.buffer.write(data)
                    sys.stdout.buffer.flush()
        return 0
    # A server without the capability answers neither list (Server Features > Resources).
    offered = "resources" in (session.server.capabilities if session.server else {})
    resources = await session.list_resources() if offered else []
    templates = await session.list_resource_templates() if offered else []
    if args.output == "json":
        _print_json({"resources": resources, "resourceTemplates": templates})
        return 0
    if not resources and not templates:
        print("(no resources)", file=sys.stderr)
    for resource in resources:
        _print_resource(resource, str(resource.get("uri")))
    if templates:
        print("templates:")
        for template in templates:
            _print_resource(template, str(template.get("uriTemplate")))
    return 0


def _print_resource(item: Mapping[str, Any], uri: str) -> None:
    facts = [str(f) for f in (item.get("title") or item.get("name"), item.get("mimeType")) if f]
    print(uri + (f"  ({', '.join(facts)})" if facts else ""))
    description = item.get("description")
    if isinstance(description, str) and description.strip():
        print(_indented(description, "    "))


async def _prompts(session: ClientSession, args: argparse.Namespace) -> int:
    if args.get is None:
        if args.arg:
            raise CliError("--arg goes with --get NAME")
        prompts = await session.list_prompts()
        if args.output == "json":
            _print_json({"prompts": prompts})
            return 0
        if not prompts:
            print("(no prompts)", file=sys.stderr)
        for prompt in prompts:
            title = prompt.get("title")
            print(f"{prompt.get('name')}" + (f"  ({title})" if title else ""))
            description = prompt.get("description")
            if isinstance(description, str) and description.strip():
                print(_indented(description, "    "))
            for argument in prompt.get("arguments") or ():
                if isinstance(argument, Mapping):
                    need = "required" if argument.get("required") else "optional"
                    about = argument.get("description") or ""
                    print(f"    --arg {argument.get('name')}=...  ({need})  {about}".rstrip())
        return 0
    arguments: dict[str, str] = {}
    for name, value in args.arg:
        if name in arguments:
            raise CliError(f"argument {name!r} is given twice")
        arguments[name] = value
    by_name = {p.get("name"): p for p in await session.list_prompts()}
    chosen = by_name.get(args.get)
    if chosen is None:
        raise CliError(f"the server has no prompt {args.get!r}")
    declared = [a for a in chosen.get("arguments") or () if isinstance(a, Mapping)]
    missing = [
        str(a.get("name")) for a in declared if a.get("required") and a.get("name") not in arguments
    ]
    if missing:
        raise CliError(f"prompt {args.get!r}: missing required argument(s): {', '.join(missing)}")
    known = {a.get("name") for a in declared}
    unknown = [name for name in arguments if name not in known]
    if unknown:
        raise CliError(f"prompt {args.get!r} has no argument {unknown[0]!r}")
    result = await session.get_prompt(args.get, arguments)
    if args.output == "json":
        _print_json(result)
        return 0
    for message in result.get("messages") or ():
        if isinstance(message, Mapping):
            content = message.get("content")
            text = _content_text(content) if isinstance(content, Mapping) else ""
            print(f"[{message.get('role')}]")
            print(text)
    return 0


# ---- the parsers ----------------------------------------------------------------------------


def _timeout(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number of seconds: {text!r}") from None
    if not value > 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"a timeout is a positive number of seconds, not {text}")
    return value


def _with(work: Work) -> Callable[[argparse.Namespace], int]:
    def run(args: argparse.Namespace) -> int:
        return _run(args, work)

    return run


_TARGET_HELP = "the server's Streamable HTTP endpoint, http(s)://HOST[:PORT]/PATH"
_EPILOG = (
    "Instead of a URL, end the command line with --stdio COMMAND [ARGS...] to launch a "
    "server over stdio, e.g. `mcp-core tools --stdio mcp-core serve --stdio`."
)


def _add_common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "-o",
        "--output",
        choices=("text", "json"),
        default="text",
        help="text for people (default) or the raw result as JSON",
    )
    parser.add_argument(
        "--timeout",
        type=_timeout,
        default=DEFAULT_TIMEOUT,
        metavar="S",
        help=f"seconds to wait for connecting and for each answer (default: {DEFAULT_TIMEOUT:g})",
    )
    parser.add_argument(
        "--token",
        default=None,
        help=f"a bearer token for an HTTP server (default: ${TOKEN_VARIABLE})",
    )
    parser.add_argument(
        "--no-oauth",
        action="store_true",
        help="never run the OAuth flow (an HTTP server that answers 401 is an error)",
    )
    parser.add_argument(
        "-v",
        "--verbose",
        action="store_true",
        help="show the client's log and a stdio server's stderr on stderr",
    )
    # REMAINDER: everything after --stdio is the server's command line, options and all.
    parser.add_argument(
        "--stdio",
        nargs=argparse.REMAINDER,
        default=None,
        metavar="COMMAND",
        help="launch this command as a stdio server (must be the last option)",
    )


def add_client_commands(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Register `tools`, `call`, `resources` and `prompts`; each sets `run(args) -> int`."""
    tools = commands.add_parser(
        "tools",
        help="list a server's tools",
        description="List the tools an MCP server offers, with their arguments.",
        epilog=_EPILOG,
    )
    tools.add_argument("target", nargs="?", metavar="URL", help=_TARGET_HELP)
    _add_common(tools)
    tools.set_defaults(run=_with(_tools))

    call = commands.add_parser(
        "call",
        help="call a tool",
        description=(
            "Call a tool. --arg NAME=VALUE values are converted by the tool's inputSchema "
            "(JSON for integer, number, boolean, array and object; strings as given) and "
            "checked before anything is sent. A result with isError exits with status 1."
        ),
        epilog=_EPILOG,
    )
    call.add_argument("target", nargs="?", metavar="URL", help=_TARGET_HELP)
    call.add_argument("tool", metavar="TOOL", help="the tool's name")
    call.add_argument(
        "--arg",
        type=_name_value,
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="one argument (repeat for more)",
    )
    call.add_argument(
        "--json",
        default=None,
        metavar="OBJECT",
        help="all arguments as one JSON object (- reads it from stdin); --arg adds to it",
    )
    call.add_argument(
        "--no-validate",
        action="store_true",
        help="send the arguments without checking them against the tool's inputSchema",
    )
    _add_common(call)
    call.set_defaults(run=_with(_call))

    resources = commands.add_parser(
        "resources",
        help="list or read a server's resources",
        description="List the resources and resource templates of a server, or read one.",
        epilog=_EPILOG,
    )
    resources.add_argument("target", nargs="?", metavar="URL", help=_TARGET_HELP)
    resources.add_argument("--read", default=None, metavar="URI", help="print this resource")
    _add_common(resources)
    resources.set_defaults(run=_with(_resources))

    prompts = commands.add_parser(
        "prompts",
        help="list a server's prompts or get one",
        description="List the prompts of a server, or get one with --get NAME --arg NAME=VALUE.",
        epilog=_EPILOG,
    )
    prompts.add_argument("target", nargs="?", metavar="URL", help=_TARGET_HELP)
    prompts.add_argument("--get", default=None, metavar="NAME", help="get this prompt")
    prompts.add_argument(
        "--arg",
        type=_name_value,
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="a prompt argument (repeat for more)",
    )
    _add_common(prompts)
    prompts.set_defaults(run=_with(_prompts))
