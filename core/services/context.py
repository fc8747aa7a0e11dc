"""What a handler sees of the request it serves, and how it talks back to the client.

A tool, resource or prompt function that declares a parameter annotated `Context` gets one.
Through it the handler logs (`notifications/message`), reports progress
(`notifications/progress`), and calls the client: sampling (`sampling/createMessage`),
elicitation in form and URL modes (`elicitation/create`) and roots (`roots/list`). Each of
those is refused with a clear error when the client did not declare the capability in
`initialize`: a server only uses what was negotiated.

Spec: MCP 2025-11-25 "Utilities" (logging, progress), "Client Features" (sampling, elicitation,
roots).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, Literal

import attrs

from ..protocol import errors
from ..protocol.errors import McpError
from ..protocol.jsonrpc import RequestId
from ..protocol.types import LOGGING_LEVELS, LoggingLevel
from .outbound import Outbound

if TYPE_CHECKING:
    from .session import ServerSession

__all__ = ["Context", "ElicitResult", "Root", "SamplingResult"]


@attrs.frozen(kw_only=True)
class ElicitResult:
    action: Literal["accept", "decline", "cancel"]
    content: dict[str, Any] | None = None


@attrs.frozen(kw_only=True)
class SamplingResult:
    role: str
    content: dict[str, Any]
    model: str
    stop_reason: str | None = None

    @property
    def text(self) -> str | None:
        """The text of a text result (None for images, audio or tool use)."""
        if self.content.get("type") == "text":
            text = self.content.get("text")
            return text if isinstance(text, str) else None
        return None


@attrs.frozen(kw_only=True)
class Root:
    uri: str
    name: str | None = None


class Context:
    """The request a handler is serving. Built by the server; handlers only read and call it."""

    __slots__ = ("_outbound", "meta", "request_id", "session")

    def __init__(
        self,
        session: ServerSession,
        request_id: RequestId,
        meta: Mapping[str, Any] | None,
        outbound: Outbound,
    ) -> None:
        self.session = session
        self.request_id = request_id
        self.meta = meta or {}
        self._outbound = outbound

    # ---- facts ----------------------------------------------------------------------------

    @property
    def subject(self) -> str | None:
        """The authenticated subject the session is bound to, if any."""
        return self.session.subject

    @property
    def progress_token(self) -> str | int | None:
        token = self.meta.get("progressToken")
        if isinstance(token, (str, int)) and not isinstance(token, bool):
            return token
        return None

    @property
    def client_capabilities(self) -> dict[str, Any]:
        return self.session.client.capabilities if self.session.client else {}

    # ---- notifications --------------------------------------------------------------------

    async def send_notification(self, method: str, params: dict[str, Any] | None = None) -> None:
        """Send any notification on this request's stream."""
        message: dict[str, Any] = {"jsonrpc": "2.0", "method": method}
        if params is not None:
            message["params"] = params
        await self._outbound.send(message)

    async def log(self, level: LoggingLevel, data: Any, *, logger: str | None = None) -> None:
        """Send a log message, unless the client asked for a higher level with setLevel."""
        if level not in LOGGING_LEVELS:
            raise ValueError(f"unknown logging level {level!r}")
        if "logging" not in self.session.server_capabilities:
            return
        if not self.session.wants_log(level):
            return
        params: dict[str, Any] = {"level": level, "data": data}
        if logger is not None:
            params["logger"] = logger
        await self.send_notification("notifications/message", params)

    async def debug(self, data: Any, *, logger: str | None = None) -> None:
        await self.log("debug", data, logger=logger)

    async def info(self, data: Any, *, logger: str | None = None) -> None:
        await self.log("info", data, logger=logger)

    async def warning(self, data: Any, *, logger: str | None = None) -> None:
        await self.log("warning", data, logger=logger)

    async def error(self, data: Any, *, logger: str | None = None) -> None:
        await self.log("error", data, logger=logger)

    async def report_progress(
        self, progress: float, total: float | None = None, message: str | None = None
    ) -> None:
        """Report progress on the request's token; a no-op when the client sent none."""
        token = self.progress_token
        if token is None:
            return
        params: dict[str, Any] = {"progressToken": token, "progress": progress}
        if total is not None:
            params["total"] = total
        if message is not None:
            params["message"] = message
        await self.send_notification("notifications/progress", params)

    # ---- the stream -----------------------------------------------------------------------

    @property
    def can_close_stream(self) -> bool:
        return bool(getattr(self._outbound, "can_close", False))

    async def close_stream(self) -> None:
        """Close this request's SSE stream now; the client resumes it with `Last-Event-ID`.

        For long-running calls behind proxies that cut idle connections (SSE polling,
        2025-11-25 Transports > "Resumability"). The handler keeps running; what it sends from
        here on is stored and replayed when the client reconnects. A no-op on transports
        without streams.
        """
        close = getattr(self._outbound, "close_stream", None)
        if close is not None:
            await close()

    # ---- requests to the client -----------------------------------------------------------

    def _require(self, feature: str, *path: str) -> None:
        if not self.session.client_supports(*path):
            raise McpError(
                errors.INVALID_REQUEST,
                f"the client did not declare the {feature} capability",
            )

    async def request(
        self, method: str, params: dict[str, Any] | None = None, *, timeout: float | None = None
    ) -> dict[str, Any]:
        """Send any request to the client on this request's stream and wait for its result."""
        return await self.session.request(method, params, self._outbound, timeout=timeout)

    async def sample(
        self,
        messages: str | Sequence[Mapping[str, Any]],
        *,
        max_tokens: int,
        system_prompt: str | None = None,
        temperature: float | None = None,
        stop_sequences: Sequence[str] | None = None,
        model_preferences: Mapping[str, Any] | None = None,
        include_context: Literal["none", "thisServer", "allServers"] | None = None,
        metadata: Mapping[str, Any] | None = None,
        timeout: float | None = None,
    ) -> SamplingResult:
        """Ask the client's model for a message (`sampling/createMessage`)."""
        self._require("sampling", "sampling")
        if isinstance(messages, str):
            wire_messages: list[Any] = [
                {"role": "user", "content": {"type": "text", "text": messages}}
            ]
        else:
            wire_messages = [dict(m) for m in messages]
        params: dict[str, Any] = {"messages": wire_messages, "maxTokens": max_tokens}
        optional = {
            "systemPrompt": system_prompt,
            "temperature": temperature,
            "stopSequences": list(stop_sequences) if stop_sequences is not None else None,
            "modelPreferences": dict(model_preferences) if model_preferences else None,
            "includeContext": include_context,
            "metadata": dict(metadata) if metadata else None,
        }
        params.update({k: v for k, v in optional.items() if v is not None})
        result = await self.request("sampling/createMessage", params, timeout=timeout)
        content = result.get("content")
        if isinstance(content, list):  # 2025-11-25 allows a list of blocks; keep the first
            content = content[0] if content else {}
        return SamplingResult(
            role=str(result.get("role", "assistant")),
            content=content if isinstance(content, dict) else {},
            model=str(result.get("model", "")),
            stop_reason=result.get("stopReason"),
        )

    async def elicit(
        self,
        message: str,
        requested_schema: Mapping[str, Any],
        *,
        timeout: float | None = None,
    ) -> ElicitResult:
        """Ask the user for structured input through the client (form mode)."""
        self._require("elicitation", "elicitation")
        params: dict[str, Any] = {"message": message, "requestedSchema": dict(requested_schema)}
        if (self.session.protocol_version or "") >= "2025-11-25":
            params["mode"] = "form"
        return _elicit_result(await self.request("elicitation/create", params, timeout=timeout))

    async def elicit_url(
        self,
        message: str,
        url: str,
        elicitation_id: str,
        *,
        timeout: float | None = None,
    ) -> ElicitResult:
        """Send the user to a URL out of band (URL mode, 2025-11-25)."""
        self._require("URL elicitation", "elicitation", "url")
        params = {"mode": "url", "message": message, "url": url, "elicitationId": elicitation_id}
        return _elicit_result(await self.request("elicitation/create", params, timeout=timeout))

    async def list_roots(self, *, timeout: float | None = None) -> list[Root]:
        """The client's roots (`roots/list`)."""
        self._require("roots", "roots")
        result = await self.request("roots/list", None, timeout=timeout)
        roots = result.get("roots")
        out: list[Root] = []
        for item in roots if isinstance(roots, list) else []:
            if isinstance(item, dict) and isinstance(item.get("uri"), str):
                name = item.get("name")
                out.append(Root(uri=item["uri"], name=name if isinstance(name, str) else None))
        return out


def _elicit_result(result: dict[str, Any]) -> ElicitResult:
    action = result.get("action")
    if action not in ("accept", "decline", "cancel"):
        raise McpError(errors.INVALID_PARAMS, f"the client answered with action {action!r}")
    content = result.get("content")
    return ElicitResult(action=action, content=content if isinstance(content, dict) else None)
