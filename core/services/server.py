"""`McpServer`: features composed into one server, and the dispatcher that serves them.

Spec: MCP 2025-11-25 "Lifecycle", "Server Features", "Utilities".

A server is a set of features (tools, resources, prompts, completions, logging), each adding
capabilities and methods. A feature is advertised in `initialize` once it has something in it
(or when enabled explicitly), and its methods answer "method not found" on sessions it was not
advertised to, so a session only ever uses what it negotiated.

The dispatcher knows nothing of transports: a transport hands it a session, a parsed message
and an `Outbound` for the request's stream, and gets back the response in wire form. Each
request runs in its own cancel scope; `notifications/cancelled` cancels it, and a cancelled
request gets no response (2025-11-25 Utilities > Cancellation). A handler that never suspends
(`runs_inline`) cannot be reached by a cancellation, so it runs without a scope.
"""

from __future__ import annotations

import base64
import binascii
import inspect
import logging
from collections.abc import Awaitable, Callable, Iterable, Mapping
from typing import Any, TypeVar

import anyio
import cattrs
import orjson

from ..machines.session import (
    LocalProtocolError,
    PingReceived,
    RequestReceived,
    SessionState,
)
from ..protocol import errors
from ..protocol.errors import McpError
from ..protocol.jsonrpc import ErrorResponse, Notification, Request, Response, error_payload
from ..protocol.types import LOGGING_LEVELS, Completion, Icon, ToolAnnotations
from ..protocol.versions import LEGACY_VERSIONS
from .context import Context
from .outbound import Outbound
from .prompts import Prompt, PromptArgument, PromptRegistry
from .resources import Resource, ResourceRegistry, ResourceTemplate
from .session import ServerSession
from .signature import docstring_summary
from .tools import Tool, ToolRegistry

__all__ = ["McpServer"]

log = logging.getLogger("mcp_core.server")

F = TypeVar("F", bound=Callable[..., Any])
Handler = Callable[[ServerSession, dict[str, Any], Context], Awaitable[dict[str, Any]]]
CompletionHandler = Callable[..., Any]

MAX_COMPLETION_VALUES = 100

# Methods whose handlers (below) never await anything: see `McpServer.runs_inline`.
_INLINE_METHODS = frozenset(
    {
        "tools/list",
        "resources/list",
        "resources/templates/list",
        "resources/subscribe",
        "resources/unsubscribe",
        "prompts/list",
        "logging/setLevel",
    }
)


class McpServer:
    """An MCP server definition: its identity and its features.

    ```python
    server = McpServer("weather", version="1.0")

    @server.tool()
    def forecast(city: str, days: int = 3) -> str:
        "The forecast for a city."
        ...
    ```

    Serve it with `mcp_core.adapters.asgi.create_app(server)` (Streamable HTTP) or
    `mcp_core.adapters.stdio.run_stdio(server)`.
    """

    def __init__(
        self,
        name: str,
        version: str = "0.1.0",
        *,
        title: str | None = None,
        description: str | None = None,
        instructions: str | None = None,
        website_url: str | None = None,
        icons: list[Icon] | None = None,
        page_size: int | None = 100,
        logging_enabled: bool = True,
    ) -> None:
        if page_size is not None and page_size < 1:
            raise ValueError("page_size must be at least 1 (or None for no pagination)")
        self.name = name
        self.version = version
        self.title = title
        self.description = description
        self.instructions = instructions
        self.website_url = website_url
        self.icons = icons
        self.page_size = page_size
        self.tools = ToolRegistry(lambda: self._changed("tools"))
        self.resources = ResourceRegistry(lambda: self._changed("resources"))
        self.prompts = PromptRegistry(lambda: self._changed("prompts"))
        self._completions: dict[tuple[str, str], CompletionHandler] = {}
        self._enabled: set[str] = {"logging"} if logging_enabled else set()
        self._capabilities: dict[str, Any] | None = None
        self._sessions: set[ServerSession] = set()
        self._converter = cattrs.Converter()
        self._roots_changed: list[Callable[[ServerSession], Any]] = []
        self._methods: dict[str, tuple[str | None, Handler]] = {
            "tools/list": ("tools", self._tools_list),
            "tools/call": ("tools", self._tools_call),
            "resources/list": ("resources", self._resources_list),
            "resources/templates/list": ("resources", self._templates_list),
            "resources/read": ("resources", self._resources_read),
            "resources/subscribe": ("resources", self._subscribe),
            "resources/unsubscribe": ("resources", self._unsubscribe),
            "prompts/list": ("prompts", self._prompts_list),
            "prompts/get": ("prompts", self._prompts_get),
            "completion/complete": ("completions", self._complete),
            "logging/setLevel": ("logging", self._set_level),
        }

    # ---- registration ---------------------------------------------------------------------

    def tool(
        self,
        name: str | None = None,
        *,
        title: str | None = None,
        description: str | None = None,
        input_schema: Mapping[str, Any] | None = None,
        output_schema: Mapping[str, Any] | None = None,
        annotations: ToolAnnotations | None = None,
        icons: list[Icon] | None = None,
        meta: dict[str, Any] | None = None,
        run_in_thread: bool = False,
        scopes: Iterable[str] = (),
    ) -> Callable[[F], F]:
        """Register a function as a tool. See `ToolRegistry.add` for the options."""

        def register(fn: F) -> F:
            self.tools.add(
                fn,
                name=name,
                title=title,
                description=description,
                input_schema=input_schema,
                output_schema=output_schema,
                annotations=annotations,
                icons=icons,
                meta=meta,
                run_in_thread=run_in_thread,
                scopes=scopes,
            )
            return fn

        return register

    def add_tool(self, fn: Callable[..., Any], **options: Any) -> Tool:
        return self.tools.add(fn, **options)

    def resource(
        self,
        uri: str,
        *,
        name: str | None = None,
        title: str | None = None,
        description: str | None = None,
        mime_type: str | None = None,
        size: int | None = None,
        icons: list[Icon] | None = None,
        meta: dict[str, Any] | None = None,
        run_in_thread: bool = False,
    ) -> Callable[[F], F]:
        """Register a function as the resource at `uri`; a `{var}` in it makes a template."""

        def register(fn: F) -> F:
            summary = description or docstring_summary(fn)
            if "{" in uri:
                self.resources.add_template(
                    ResourceTemplate(
                        uri_template=uri,
                        name=name or fn.__name__,
                        fn=fn,
                        title=title,
                        description=summary,
                        mime_type=mime_type,
                        icons=icons,
                        meta=meta,
                        run_in_thread=run_in_thread,
                    )
                )
            else:
                self.resources.add(
                    Resource(
                        uri=uri,
                        name=name or fn.__name__,
                        fn=fn,
                        title=title,
                        description=summary,
                        mime_type=mime_type,
                        size=size,
                        icons=icons,
                        meta=meta,
                        run_in_thread=run_in_thread,
                    )
                )
            return fn

        return register

    def prompt(
        self,
        name: str | None = None,
        *,
        title: str | None = None,
        description: str | None = None,
        arguments: list[PromptArgument] | None = None,
        icons: list[Icon] | None = None,
        meta: dict[str, Any] | None = None,
    ) -> Callable[[F], F]:
        def register(fn: F) -> F:
            self.prompts.add(
                fn,
                name=name,
                title=title,
                description=description,
                arguments=arguments,
                icons=icons,
                meta=meta,
            )
            return fn

        return register

    def add_prompt(self, fn: Callable[..., Any], **options: Any) -> Prompt:
        return self.prompts.add(fn, **options)

    def completion(self, ref_type: str, name: str) -> Callable[[F], F]:
        """Register argument completion for a prompt (`"ref/prompt", name`) or a resource
        template (`"ref/resource", uri_template`). The function takes
        `(argument: str, value: str, context: dict[str, str])` and returns a list of strings
        or a `Completion`."""
        if ref_type not in ("ref/prompt", "ref/resource"):
            raise ValueError("ref_type must be 'ref/prompt' or 'ref/resource'")

        def register(fn: F) -> F:
            self._completions[(ref_type, name)] = fn
            self._changed("completions")
            return fn

        return register

    def on_roots_changed(self, fn: F) -> F:
        """Call `fn(session)` when a client says its roots changed."""
        self._roots_changed.append(fn)
        return fn

    def enable(self, *features: str) -> None:
        """Advertise features even while empty (for servers that add items later)."""
        unknown = set(features) - {"tools", "resources", "prompts", "completions", "logging"}
        if unknown:
            raise ValueError(f"unknown features: {sorted(unknown)}")
        self._enabled.update(features)
        self._capabilities = None

    # ---- capabilities and broadcasts ------------------------------------------------------

    def capabilities(self) -> dict[str, Any]:
        if self._capabilities is None:
            caps: dict[str, Any] = {}
            if len(self.tools) or "tools" in self._enabled:
                caps["tools"] = {"listChanged": True}
            if len(self.resources) or "resources" in self._enabled:
                caps["resources"] = {"subscribe": True, "listChanged": True}
            if len(self.prompts) or "prompts" in self._enabled:
                caps["prompts"] = {"listChanged": True}
            if self._completions or "completions" in self._enabled:
                caps["completions"] = {}
            if "logging" in self._enabled:
                caps["logging"] = {}
            self._capabilities = caps
        return self._capabilities

    def _changed(self, feature: str) -> None:
        self._capabilities = None
        if feature in ("tools", "resources", "prompts"):
            self.notify_list_changed(feature)

    def attach(self, session: ServerSession) -> None:
        self._sessions.add(session)

    def detach(self, session: ServerSession) -> None:
        self._sessions.discard(session)

    @property
    def sessions(self) -> frozenset[ServerSession]:
        return frozenset(self._sessions)

    def _broadcast(
        self,
        feature: str,
        flag: str,
        message: dict[str, Any],
        uri: str = "",
        sessions: Iterable[ServerSession] | None = None,
    ) -> int:
        sent = 0
        for session in self._sessions if sessions is None else sessions:
            if session.state is not SessionState.READY:
                continue
            advertised = session.server_capabilities.get(feature)
            if not isinstance(advertised, dict) or not advertised.get(flag):
                continue
            if uri and uri not in session.subscriptions:
                continue
            session.standalone.post(message)
            sent += 1
        return sent

    def notify_list_changed(self, feature: str) -> int:
        """Tell every session that advertised `listChanged` for a feature; returns how many."""
        method = f"notifications/{feature}/list_changed"
        return self._broadcast(feature, "listChanged", {"jsonrpc": "2.0", "method": method})

    def notify_subject_list_changed(self, subject: str | None, feature: str) -> int:
        """`notify_list_changed` for the sessions bound to `subject` only (None: the sessions
        without one, e.g. stdio); returns how many. Issue 3: a subject whose credentials
        were stored or revoked."""
        method = f"notifications/{feature}/list_changed"
        mine = [session for session in self._sessions if session.subject == subject]
        return self._broadcast(
            feature, "listChanged", {"jsonrpc": "2.0", "method": method}, sessions=mine
        )

    def notify_resource_updated(self, uri: str) -> int:
        """Tell the sessions subscribed to `uri` that it changed; returns how many."""
        message = {
            "jsonrpc": "2.0",
            "method": "notifications/resources/updated",
            "params": {"uri": uri},
        }
        return self._broadcast("resources", "subscribe", message, uri=uri)

    # ---- the dispatcher -------------------------------------------------------------------

    def server_info(self) -> dict[str, Any]:
        info: dict[str, Any] = {"name": self.name, "version": self.version}
        for key, value in (
            ("title", self.title),
            ("description", self.description),
            ("websiteUrl", self.website_url),
        ):
            if value is not None:
                info[key] = value
        if self.icons:
            from ..protocol.wire import to_wire

            info["icons"] = to_wire(self.icons)
        return info

    def initialize(self, session: ServerSession, params: dict[str, Any]) -> dict[str, Any]:
        """Apply an `initialize` request to a new session; return the result."""
        version = session.initialize(params)
        caps = self.capabilities()
        session.server_capabilities = caps
        result: dict[str, Any] = {
            "protocolVersion": version,
            "capabilities": caps,
            "serverInfo": self.server_info(),
        }
        if self.instructions is not None:
            result["instructions"] = self.instructions
        return result

    def refuse_modern(self, request: Request, header_version: str | None = None) -> dict[str, Any]:
        """The answer to a 2026-07-28 (stateless) request, which this release does not serve.

        A JSON-RPC error that is not one of the modern codes and names the versions we speak,
        with the one requested: a dual-era client probing with `server/discover` reads it as
        "legacy server" and falls back to `initialize` (2026-07-28 "Versioning" >
        "Backward compatibility"). Transports send it as they send any error (over HTTP with
        status 400, as 2025-11-25 requires for an unsupported protocol version).
        """
        params = request.params or {}
        meta = params.get("_meta")
        requested = (
            meta.get("io.modelcontextprotocol/protocolVersion") if isinstance(meta, dict) else None
        )
        requested = requested if isinstance(requested, str) else header_version
        return error_payload(
            request.id,
            errors.INVALID_REQUEST,
            f"Unsupported protocol version {requested}: this server speaks "
            f"{', '.join(LEGACY_VERSIONS)} and needs the initialize handshake",
            {"supported": list(LEGACY_VERSIONS), "requested": requested},
        )

    async def handle_request(
        self, session: ServerSession, request: Request, outbound: Outbound
    ) -> dict[str, Any] | None:
        """Serve one request; the response in wire form, or None when it was cancelled."""
        request_id = request.id
        method = request.method
        params = request.params or {}
        try:
            if method == "initialize":
                return {
                    "jsonrpc": "2.0",
                    "id": request_id,
                    "result": self.initialize(session, params),
                }
            if method == "ping":
                session.machine.handle(PingReceived())
                return {"jsonrpc": "2.0", "id": request_id, "result": {}}
            entry = self._methods.get(method)
            if entry is None:
                raise McpError(errors.METHOD_NOT_FOUND, f"Method not found: {method}")
            feature, handler = entry
            machine = session.machine
            if not machine.inert(RequestReceived):
                # The table's rows that change nothing (a request in `ready`) skip the event.
                machine.handle(RequestReceived(method=method))
            if feature is not None and feature not in session.server_capabilities:
                raise McpError(errors.METHOD_NOT_FOUND, f"Method not found: {method}")
            meta = params.get("_meta")
            ctx = Context(session, request_id, meta if isinstance(meta, dict) else None, outbound)
            if self.runs_inline(method, params):
                # Nothing can cancel a handler that never suspends: no scope, nothing tracked.
                result = await handler(session, params, ctx)
                return {"jsonrpc": "2.0", "id": request_id, "result": result}
            with anyio.CancelScope() as scope:
                session.track(request_id, scope)
                try:
                    result = await handler(session, params, ctx)
                finally:
                    session.untrack(request_id)
            if scope.cancelled_caught:
                return None
            return {"jsonrpc": "2.0", "id": request_id, "result": result}
        except McpError as exc:
            return error_payload(request_id, exc.code, exc.message, exc.data)
        except LocalProtocolError:
            state = session.state.value
            return error_payload(
                request_id,
                errors.INVALID_REQUEST,
                f"Invalid request: {method} is not allowed while the session is {state}",
            )
        except Exception:
            log.exception("request %s (%s) failed", request_id, method)
            return error_payload(request_id, errors.INTERNAL_ERROR, "Internal error")

    def runs_inline(self, method: str, params: dict[str, Any] | None) -> bool:
        """Whether a request's handler runs to its end without ever suspending.

        Cancellation (`notifications/cancelled`, a closing session) can only reach a handler at
        an await that suspends, so such a handler needs no cancel scope and need not be
        tracked: entering an anyio `CancelScope` is a good part of a small request's cost.
        True for the listing and subscription methods, whose handlers never await, and for
        `tools/call` of a plain `def` tool called inline (not `async def`, not run in a thread).
        Transports use it too: such a handler has sent everything it will send by the time
        `handle_request` returns, so it needs no task of its own.
        """
        if method == "tools/call":
            name = params.get("name") if params else None
            tool = self.tools.get(name) if isinstance(name, str) else None
            return tool is not None and not tool.is_async and not tool.run_in_thread
        return method in _INLINE_METHODS

    async def handle_notification(self, session: ServerSession, note: Notification) -> None:
        method = note.method
        params = note.params or {}
        if method == "notifications/initialized":
            if not session.initialized():
                log.debug("ignored notifications/initialized in state %s", session.state.value)
        elif method == "notifications/cancelled":
            session.cancel(params.get("requestId"))
        elif method == "notifications/roots/list_changed":
            for callback in self._roots_changed:
                try:
                    outcome = callback(session)
                    if inspect.isawaitable(outcome):
                        await outcome
                except Exception:
                    log.exception("roots-changed callback failed")
        # Anything else (progress on our requests, unknown notifications) needs no action.

    def handle_response(self, session: ServerSession, response: Response | ErrorResponse) -> None:
        if not session.resolve(response):
            log.debug("dropped a response to unknown request %r", response.id)

    # ---- pagination -----------------------------------------------------------------------

    def _page(self, items: list[Any], params: dict[str, Any], key: str) -> dict[str, Any]:
        start = 0
        cursor = params.get("cursor")
        if cursor is not None:
            start = _decode_cursor(cursor, len(items))
        if self.page_size is None:
            page, next_start = items[start:], None
        else:
            end = start + self.page_size
            page, next_start = items[start:end], (end if end < len(items) else None)
        out: dict[str, Any] = {key: [item.definition() for item in page]}
        if next_start is not None:
            out["nextCursor"] = _encode_cursor(next_start)
        return out

    # ---- method handlers ------------------------------------------------------------------

    async def _tools_list(
        self, s: ServerSession, params: dict[str, Any], c: Context
    ) -> dict[str, Any]:
        return self._page(self.tools.all(), params, "tools")

    async def _tools_call(
        self, s: ServerSession, params: dict[str, Any], c: Context
    ) -> dict[str, Any]:
        name = params.get("name")
        if not isinstance(name, str):
            raise McpError(errors.INVALID_PARAMS, "tools/call needs a string 'name'")
        tool = self.tools.get(name)
        if tool is None:
            raise McpError(errors.INVALID_PARAMS, f"Unknown tool: {name}")
        arguments = params.get("arguments")
        if arguments is None:
            arguments = {}
        elif not isinstance(arguments, dict):
            raise McpError(errors.INVALID_PARAMS, "tools/call 'arguments' must be an object")
        return await tool.call(arguments, c, self._converter)

    async def _resources_list(
        self, s: ServerSession, params: dict[str, Any], c: Context
    ) -> dict[str, Any]:
        return self._page(self.resources.resources(), params, "resources")

    async def _templates_list(
        self, s: ServerSession, params: dict[str, Any], c: Context
    ) -> dict[str, Any]:
        return self._page(self.resources.templates(), params, "resourceTemplates")

    async def _resources_read(
        self, s: ServerSession, params: dict[str, Any], c: Context
    ) -> dict[str, Any]:
        uri = _require_str(params, "uri", "resources/read")
        return {"contents": await self.resources.read(uri, c)}

    async def _subscribe(
        self, s: ServerSession, params: dict[str, Any], c: Context
    ) -> dict[str, Any]:
        uri = _require_str(params, "uri", "resources/subscribe")
        if not self.resources.knows(uri):
            raise McpError(errors.RESOURCE_NOT_FOUND, "Resource not found", {"uri": uri})
        s.subscriptions.add(uri)
        return {}

    async def _unsubscribe(
        self, s: ServerSession, params: dict[str, Any], c: Context
    ) -> dict[str, Any]:
        uri = _require_str(params, "uri", "resources/unsubscribe")
        s.subscriptions.discard(uri)
        return {}

    async def _prompts_list(
        self, s: ServerSession, params: dict[str, Any], c: Context
    ) -> dict[str, Any]:
        return self._page(self.prompts.all(), params, "prompts")

    async def _prompts_get(
        self, s: ServerSession, params: dict[str, Any], c: Context
    ) -> dict[str, Any]:
        name = _require_str(params, "name", "prompts/get")
        prompt = self.prompts.get(name)
        if prompt is None:
            raise McpError(errors.INVALID_PARAMS, f"Unknown prompt: {name}")
        arguments = params.get("arguments") or {}
        if not isinstance(arguments, dict):
            raise McpError(errors.INVALID_PARAMS, "prompts/get 'arguments' must be an object")
        return await prompt.get(arguments, c)

    async def _complete(
        self, s: ServerSession, params: dict[str, Any], c: Context
    ) -> dict[str, Any]:
        ref = params.get("ref")
        argument = params.get("argument")
        if not isinstance(ref, dict) or not isinstance(argument, dict):
            raise McpError(errors.INVALID_PARAMS, "completion/complete needs 'ref' and 'argument'")
        ref_type = ref.get("type")
        key = ref.get("name") if ref_type == "ref/prompt" else ref.get("uri")
        if ref_type not in ("ref/prompt", "ref/resource") or not isinstance(key, str):
            raise McpError(errors.INVALID_PARAMS, "completion/complete: unknown 'ref'")
        if ref_type == "ref/prompt" and self.prompts.get(key) is None:
            raise McpError(errors.INVALID_PARAMS, f"Unknown prompt: {key}")
        arg_name = argument.get("name")
        value = argument.get("value", "")
        if not isinstance(arg_name, str) or not isinstance(value, str):
            raise McpError(errors.INVALID_PARAMS, "completion/complete: bad 'argument'")
        context = params.get("context")
        context_args = context.get("arguments") if isinstance(context, dict) else None
        handler = self._completions.get((ref_type, key))
        if handler is None:
            return {"completion": {"values": [], "hasMore": False}}
        outcome = handler(arg_name, value, context_args if isinstance(context_args, dict) else {})
        if inspect.isawaitable(outcome):
            outcome = await outcome
        return {"completion": _completion_wire(outcome)}

    async def _set_level(
        self, s: ServerSession, params: dict[str, Any], c: Context
    ) -> dict[str, Any]:
        level = params.get("level")
        if level not in LOGGING_LEVELS:
            raise McpError(
                errors.INVALID_PARAMS,
                f"logging/setLevel: level must be one of {', '.join(LOGGING_LEVELS)}",
            )
        s.set_log_level(level)
        return {}


def _require_str(params: dict[str, Any], key: str, method: str) -> str:
    value = params.get(key)
    if not isinstance(value, str):
        raise McpError(errors.INVALID_PARAMS, f"{method} needs a string {key!r}")
    return value


def _completion_wire(outcome: Any) -> dict[str, Any]:
    if outcome is None:
        return {"values": [], "hasMore": False}
    if isinstance(outcome, Completion):
        values, total, has_more = list(outcome.values), outcome.total, outcome.has_more
    else:
        values, total, has_more = [str(v) for v in outcome], None, None
    if len(values) > MAX_COMPLETION_VALUES:
        total = total if total is not None else len(values)
        values, has_more = values[:MAX_COMPLETION_VALUES], True
    out: dict[str, Any] = {"values": values, "hasMore": bool(has_more)}
    if total is not None:
        out["total"] = total
    return out


def _encode_cursor(offset: int) -> str:
    return base64.urlsafe_b64encode(orjson.dumps({"o": offset})).decode().rstrip("=")


def _decode_cursor(cursor: object, size: int) -> int:
    if isinstance(cursor, str):
        try:
            padded = cursor + "=" * (-len(cursor) % 4)
            data = orjson.loads(base64.urlsafe_b64decode(padded.encode()))
            offset = data.get("o") if isinstance(data, dict) else None
            if isinstance(offset, int) and not isinstance(offset, bool) and 0 <= offset <= size:
                return offset
        except (binascii.Error, orjson.JSONDecodeError, ValueError):
            pass
    raise McpError(errors.INVALID_PARAMS, "Invalid cursor")
