"""What `mcp-core serve TARGET` serves: finding and classifying the target object.

TARGET is a file path (`examples/app.py`, or `examples/app.py:obj`) or a module path
(`package.module` or `package.module:obj`, with `obj` possibly dotted). Without `:obj`, the
module's `app` is used, else its `server`. The object may be an `McpServer`, an ASGI
application, or a callable taking no arguments that returns one of those (a factory).

A file is imported under a unique module name (so two files both named `app.py` never collide)
and registered in `sys.modules` while it runs, so type hints and dataclasses in it resolve; its
folder goes on `sys.path` first, as when Python runs a script. For a module path the current
directory goes on `sys.path`, as with `python -m`.

For an ASGI app, the MCP endpoint to announce is found when the app is one made by
`create_app`, or mounts one in a Starlette-style router (Starlette, FastAPI); otherwise the
default `/mcp` is assumed.
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.util
import inspect
import os
import re
import sys
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import Any

import attrs

from mcp_core.core.services.server import McpServer

from ..asgi.app import McpAsgiApp

__all__ = ["CliError", "Target", "load_target"]

_DEFAULT_NAMES = ("app", "server")
_MODULE_PATH = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*\Z")
_ATTRIBUTE_PATH = _MODULE_PATH

AsgiApp = Callable[..., Any]


class CliError(Exception):
    """A problem the user can fix; printed as one line, without a traceback."""


@attrs.frozen(kw_only=True)
class Target:
    """A loaded target: exactly one of `server` and `app` is set."""

    server: McpServer | None = None
    app: AsgiApp | None = None
    # What the CLI announces: "serving <name> at ...<path>".
    name: str
    path: str = "/mcp"
    # The McpServer behind the target when one can be reached (an app made by create_app).
    mcp_server: McpServer | None = None


def load_target(spec: str | None) -> Target:
    """Import and classify TARGET; `None` is the bundled demo server."""
    if spec is None:
        from .demo import build_demo_server

        return _classify(build_demo_server(), "the demo server", "the demo server")
    module, attribute, label = _import(spec)
    if attribute is not None:
        obj = _lookup(module, attribute, label)
        where = f"{label}:{attribute}"
    else:
        for name in _DEFAULT_NAMES:
            if hasattr(module, name):
                obj, where = getattr(module, name), f"{label}:{name}"
                break
        else:
            raise CliError(
                f"{label} defines neither `app` nor `server`; name the object to serve, "
                f"as in {label}:my_server"
            )
    return _classify(obj, where, spec)


def _split(spec: str) -> tuple[str, str | None, bool]:
    """(file or module, attribute or None, is_file)."""
    if spec.endswith(".py") or os.path.isfile(spec):
        return spec, None, True
    head, sep, tail = spec.rpartition(":")
    if sep and (head.endswith(".py") or os.path.isfile(head)):
        return head, tail, True
    if sep:
        return head, tail, False
    return spec, None, False


def _import(spec: str) -> tuple[ModuleType, str | None, str]:
    where, attribute, is_file = _split(spec)
    if attribute is not None and not _ATTRIBUTE_PATH.match(attribute):
        raise CliError(f"{attribute!r} in {spec!r} is not an attribute name")
    if is_file:
        return _import_file(Path(where)), attribute, where
    if not _MODULE_PATH.match(where):
        raise CliError(
            f"{spec!r} is neither a file that exists nor a module path (package.module[:object])"
        )
    return _import_module(where), attribute, where


def _import_module(name: str) -> ModuleType:
    cwd = os.getcwd()
    if cwd not in sys.path:
        sys.path.insert(0, cwd)
    try:
        return importlib.import_module(name)
    except ModuleNotFoundError as exc:
        if exc.name is not None and (name == exc.name or name.startswith(exc.name + ".")):
            raise CliError(
                f"no module named {exc.name!r} (run from the folder that holds it, "
                "or give a file path)"
            ) from None
        raise CliError(f"importing {name} failed: {_describe(exc)}") from None
    except (Exception, SystemExit) as exc:
        raise CliError(f"importing {name} failed: {_describe(exc)}") from None


def _import_file(path: Path) -> ModuleType:
    if not path.is_file():
        raise CliError(f"no such file: {path}")
    resolved = path.resolve()
    stem = re.sub(r"\W", "_", resolved.stem)
    digest = hashlib.sha256(str(resolved).encode()).hexdigest()[:12]
    name = f"_mcp_core_target_{stem}_{digest}"
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, resolved)
    if spec is None or spec.loader is None:
        raise CliError(f"cannot import {path}: not a Python source file")
    module = importlib.util.module_from_spec(spec)
    folder = str(resolved.parent)
    if folder not in sys.path:
        sys.path.insert(0, folder)
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
    except (Exception, SystemExit) as exc:
        sys.modules.pop(name, None)
        raise CliError(f"importing {path} failed: {_describe(exc)}") from None
    return module


def _lookup(module: ModuleType, attribute: str, label: str) -> Any:
    obj: Any = module
    for part in attribute.split("."):
        try:
            obj = getattr(obj, part)
        except AttributeError:
            raise CliError(f"{label} has no attribute {attribute!r}") from None
    return obj


def _required_positional(obj: Any) -> int | None:
    """How many arguments `obj` needs to be called; None when it cannot be told."""
    try:
        signature = inspect.signature(obj)
    except (TypeError, ValueError):
        return None
    return sum(
        1
        for p in signature.parameters.values()
        if p.default is inspect.Parameter.empty
        and p.kind in (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)
    )


def _is_asgi_app(obj: Any) -> bool:
    # ASGI 3 apps take (scope, receive, send); ASGI 2 classes take (scope). A callable whose
    # signature cannot be read gets the benefit of the doubt: the server checks it at once.
    if not callable(obj):
        return False
    needed = _required_positional(obj)
    return needed is None or needed == 3 or (isinstance(obj, type) and needed == 1)


def _classify(obj: Any, where: str, spec: str) -> Target:
    if isinstance(obj, McpServer):
        return Target(server=obj, name=obj.name, mcp_server=obj)
    if callable(obj) and _required_positional(obj) == 0:
        try:
            made = obj()
        except Exception as exc:
            raise CliError(f"calling {where}() failed: {_describe(exc)}") from None
        if isinstance(made, McpServer):
            return Target(server=made, name=made.name, mcp_server=made)
        if _is_asgi_app(made):
            return _for_app(made, spec)
        raise CliError(f"{where}() returned {_kind(made)}, not an McpServer or an ASGI application")
    if _is_asgi_app(obj):
        return _for_app(obj, spec)
    raise CliError(
        f"{where} is {_kind(obj)}, not an McpServer, an ASGI application, "
        "or a function without arguments that returns one"
    )


def _for_app(app: Any, spec: str) -> Target:
    found = _find_mcp_app(app)
    if found is None:
        return Target(app=app, name=spec)
    mcp_app, path = found
    server = mcp_app.service.server
    return Target(app=app, name=server.name, path=path, mcp_server=server)


def _find_mcp_app(app: Any, depth: int = 0) -> tuple[McpAsgiApp, str] | None:
    """The McpAsgiApp in `app` and its endpoint path: the app itself, or one mounted in a
    Starlette-style router (`routes` whose items have `path` and `app`), as far as can be seen.
    """
    if isinstance(app, McpAsgiApp):
        return app, app.path
    if depth >= 4:
        return None
    try:
        routes = list(getattr(app, "routes", None) or ())
    except Exception:  # an object with a `routes` that is not a list of routes
        return None
    for route in routes:
        inner = getattr(route, "app", None)
        prefix = getattr(route, "path", None)
        if inner is None or inner is app or not isinstance(prefix, str):
            continue
        found = _find_mcp_app(inner, depth + 1)
        if found is not None:
            mcp_app, path = found
            return mcp_app, (prefix.rstrip("/") + path) or "/"
    return None


def _kind(obj: Any) -> str:
    if inspect.iscoroutine(obj):
        obj.close()  # never awaited: silence the warning
        return "a coroutine (async factories are not supported)"
    return f"a {type(obj).__name__}"


def _describe(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0]}" if text else type(exc).__name__
