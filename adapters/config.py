"""mcp-core's settings: one resolution order, validated once, shown with secrets masked.

Spec context: issue 6 "Boot and configuration"; the user's guide is `docs/configuration.md`.

Theory of operation. Every setting is resolved from the first layer that has it:

1. explicit arguments (command-line options, or keyword arguments of the embedding program),
2. environment variables (`MCP_CORE_HOST`, `MCP_CORE_PORT`, ...; `KEYRING_SECRET`),
3. the config file, TOML (`--config PATH`, else `MCP_CORE_CONFIG`, else
   `$XDG_CONFIG_HOME/mcp-core/config.toml` when that file exists),
4. the defaults.

`resolve_settings(args, environ, file_text, file_path)` is the whole rule and touches nothing
outside its arguments, so tests hand it plain dicts; `load_settings` is the thin I/O edge that
finds and reads the file. Every problem is collected before anything is raised, and each error
says which setting, from which source, what was wrong and what is allowed. Secrets never reach
a message or a `Settings`: `KEYRING_SECRET` is recorded as present or absent, and a password in
a store URL or DSN is replaced by `***` wherever it is shown (`mask_secret`).

The settings mirror the options of `create_app` and `mcp-core serve`, which reads them, plus
the `bridge_*` settings of `mcp-core bridge` (docs/daemon.md). All of them are flat keys of one
file, as every setting is: a bridge setting's file key is its name (`bridge_idle_timeout`), its
variable `MCP_CORE_` plus the name in capitals, and its option the bridge's own
(`--idle-timeout`), which is what an error about an explicit value names. A command resolves,
and so validates, every setting, not only its own: a broken file or variable stops `serve` and
`bridge` alike, at start, with the same message.
"""

from __future__ import annotations

import math
import os
import re
import tomllib
import types
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import attrs

from mcp_core.core.machines.daemon_recovery import RecoveryLimits

__all__ = [
    "CONFIG_VARIABLE",
    "SETTINGS",
    "ConfigError",
    "SettingSpec",
    "Settings",
    "default_config_path",
    "load_settings",
    "mask_secret",
    "resolve_settings",
    "settings_report",
]

CONFIG_VARIABLE = "MCP_CORE_CONFIG"
APP_FOLDER = "mcp-core"
SECRET_MASK = "***"
LOG_LEVELS = ("critical", "error", "warning", "info", "debug", "trace")
RESPONSE_MODES = ("auto", "json", "sse")
# The bridge and its daemon log through the standard library only, which has no `trace` level.
BRIDGE_LOG_LEVELS = ("critical", "error", "warning", "info", "debug")
# How long an idle daemon waits before it exits; `mcp_core.adapters.daemon.DEFAULT_IDLE_TIMEOUT`
# is this value (defined here so that reading the configuration imports no daemon code).
BRIDGE_IDLE_TIMEOUT = 600.0
_RECOVERY = RecoveryLimits()
# The store forms `open_credential_store` (adapters/cli/vault_cmds.py) understands.
STORE_SCHEMES = ("postgresql", "postgres", "redis", "rediss", "unix")


class ConfigError(ValueError):
    """The settings are invalid; `problems` holds one message per problem."""

    def __init__(self, problems: Iterable[str]) -> None:
        self.problems = tuple(problems)
        super().__init__("; ".join(self.problems))


class _Invalid(Exception):
    """A value was refused: what was wrong (`reason`) and what is allowed."""

    def __init__(self, reason: str, allowed: str) -> None:
        super().__init__(reason)
        self.reason = reason
        self.allowed = allowed


# ---- masking ------------------------------------------------------------------------------------

_PASSWORD_PAIR = re.compile(r"(?i)\b(password|passwd|pwd)(\s*=\s*)('[^']*'|[^\s&;]*)")


def mask_secret(value: str) -> str:
    """`value` with any password (URL userinfo, `password=...` pairs) replaced by `***`."""
    masked = _PASSWORD_PAIR.sub(lambda m: f"{m.group(1)}{m.group(2)}{SECRET_MASK}", value)
    try:
        parts = urlsplit(masked)
        password = parts.password
    except ValueError:
        return masked
    if password is None or not parts.netloc:
        return masked
    userinfo, _, hostinfo = parts.netloc.rpartition("@")
    user = userinfo.partition(":")[0]
    return urlunsplit(parts._replace(netloc=f"{user}:{SECRET_MASK}@{hostinfo}"))


# ---- parsing one value --------------------------------------------------------------------------
# A parser takes the raw value (a string from the environment or the command line, any TOML
# value from the file) and returns the typed value or raises `_Invalid`.


def _show(raw: object) -> str:
    return repr(raw)


def _integer(raw: object, allowed: str) -> int:
    if isinstance(raw, bool) or not isinstance(raw, int | str):
        raise _Invalid(f"{_show(raw)} is not an integer", allowed)
    if isinstance(raw, str):
        text = raw.strip().replace("_", "")
        if not re.fullmatch(r"[+-]?\d+", text):
            raise _Invalid(f"{_show(raw)} is not an integer", allowed)
        return int(text)
    return raw


def _port(raw: object) -> int:
    allowed = "an integer from 0 to 65535 (0 picks a free port)"
    value = _integer(raw, allowed)
    if not 0 <= value <= 65535:
        raise _Invalid(f"{value} is out of range", allowed)
    return value


def _at_least_one(raw: object) -> int:
    allowed = "an integer of 1 or more"
    value = _integer(raw, allowed)
    if value < 1:
        raise _Invalid(f"{value} is out of range", allowed)
    return value


def _seconds(raw: object) -> float:
    allowed = "a number of seconds greater than 0"
    if isinstance(raw, bool) or not isinstance(raw, int | float | str):
        raise _Invalid(f"{_show(raw)} is not a number", allowed)
    try:
        value = float(raw)
    except ValueError:
        raise _Invalid(f"{_show(raw)} is not a number", allowed) from None
    if not math.isfinite(value) or value <= 0:
        raise _Invalid(f"{_show(raw)} is out of range", allowed)
    return value


def _text(raw: object, allowed: str) -> str:
    if not isinstance(raw, str):
        raise _Invalid(f"{_show(raw)} is not a string", allowed)
    if not raw.strip():
        raise _Invalid("it is empty", allowed)
    return raw.strip()


def _host(raw: object) -> str:
    return _text(raw, "a host name or IP address to listen on")


def _choice(choices: tuple[str, ...]) -> Callable[[object], str]:
    allowed = "one of " + ", ".join(choices)

    def parse(raw: object) -> str:
        value = _text(raw, allowed).lower()
        if value not in choices:
            raise _Invalid(f"{_show(raw)} is not a known value", allowed)
        return value

    return parse


def _store(raw: object) -> str:
    allowed = (
        "memory:, memory:NAME, sqlite:///absolute/path, sqlite:relative/path, a plain path, "
        "postgresql://... or redis://..."
    )
    if not isinstance(raw, str):
        raise _Invalid(f"{_show(raw)} is not a string", allowed)
    value = raw.strip()
    if not value:
        raise _Invalid("it is empty", allowed)
    scheme, sep, _ = value.partition("://")
    if value.startswith(("memory:", "sqlite:")):
        if value.startswith("sqlite:") and not value.removeprefix("sqlite:").lstrip("/"):
            raise _Invalid(f"{mask_secret(value)!r} names no file", allowed)
        return value
    if sep and scheme.lower() not in STORE_SCHEMES:
        raise _Invalid(f"{mask_secret(value)!r} has an unknown scheme {scheme!r}", allowed)
    return value


def _directory(raw: object) -> str:
    allowed = "an absolute path (~ is expanded)"
    value = os.path.expanduser(_text(raw, allowed))
    if not os.path.isabs(value):
        raise _Invalid(f"{_show(raw)} is not an absolute path", allowed)
    return os.path.normpath(value)


def _names(raw: object) -> tuple[str, ...]:
    allowed = "a non-empty list of strings (in the environment: comma-separated)"
    if isinstance(raw, str):
        items: list[object] = [part for part in raw.split(",") if part.strip()]
    elif isinstance(raw, list | tuple):
        items = list(raw)
    else:
        raise _Invalid(f"{_show(raw)} is not a list of strings", allowed)
    if not items:
        raise _Invalid("it is empty", allowed)
    names: list[str] = []
    for item in items:
        if not isinstance(item, str) or not item.strip():
            raise _Invalid(f"the item {_show(item)} is not a non-empty string", allowed)
        names.append(item.strip())
    return tuple(names)


# ---- the settings -------------------------------------------------------------------------------


@attrs.frozen(kw_only=True)
class SettingSpec:
    """One setting: its name (also its file key and argument name), variable and rules."""

    name: str
    env: str
    parse: Callable[[object], Any]
    default: Any
    default_text: str
    doc: str
    in_file: bool = True
    secret: bool = False
    # The command-line option that gives it explicitly, when it is not `--<name>` (the bridge's
    # options drop the `bridge_` prefix: `bridge_idle_timeout` is `bridge --idle-timeout`).
    option: str | None = None

    @property
    def flag(self) -> str:
        return self.option or "--" + self.name.replace("_", "-")


SETTINGS: tuple[SettingSpec, ...] = (
    SettingSpec(
        name="host",
        env="MCP_CORE_HOST",
        parse=_host,
        default="127.0.0.1",
        default_text="127.0.0.1",
        doc="address the HTTP server listens on",
    ),
    SettingSpec(
        name="port",
        env="MCP_CORE_PORT",
        parse=_port,
        default=8000,
        default_text="8000",
        doc="port the HTTP server listens on; 0 picks a free one",
    ),
    SettingSpec(
        name="response_mode",
        env="MCP_CORE_RESPONSE_MODE",
        parse=_choice(RESPONSE_MODES),
        default="auto",
        default_text="auto",
        doc="answer POSTs as JSON, SSE, or JSON unless the handler streams (auto)",
    ),
    SettingSpec(
        name="log_level",
        env="MCP_CORE_LOG_LEVEL",
        parse=_choice(LOG_LEVELS),
        default=None,
        default_text="unset: info over HTTP, warning over stdio",
        doc="log verbosity on stderr",
    ),
    SettingSpec(
        name="data_dir",
        env="MCP_CORE_DATA_DIR",
        parse=_directory,
        default=None,  # derived from XDG_DATA_HOME in `_derived_data_dir`
        default_text="$XDG_DATA_HOME/mcp-core (~/.local/share/mcp-core)",
        doc="mcp-core's data folder (the default SQLite vault lives here)",
    ),
    SettingSpec(
        name="vault_store",
        env="MCP_CORE_VAULT_STORE",
        parse=_store,
        default=None,  # derived from data_dir
        default_text="<data_dir>/vault.sqlite3",
        doc="the credential store: a path, sqlite:///path, postgresql://..., redis://..., memory:",
    ),
    SettingSpec(
        name="keyring_secret",
        env="KEYRING_SECRET",
        parse=bool,
        default=False,
        default_text="not set",
        doc="the vault's keys; only whether it is set is recorded, never the value",
        in_file=False,
        secret=True,
    ),
    SettingSpec(
        name="session_idle_timeout",
        env="MCP_CORE_SESSION_IDLE_TIMEOUT",
        parse=_seconds,
        default=1800.0,
        default_text="1800 (seconds)",
        doc="seconds a legacy-era session may stay idle before it expires",
    ),
    SettingSpec(
        name="max_sessions",
        env="MCP_CORE_MAX_SESSIONS",
        parse=_at_least_one,
        default=10_000,
        default_text="10000",
        doc="most live sessions at once",
    ),
    SettingSpec(
        name="max_body_bytes",
        env="MCP_CORE_MAX_BODY_BYTES",
        parse=_at_least_one,
        default=4 * 1024 * 1024,
        default_text="4194304 (4 MiB)",
        doc="largest request body accepted",
    ),
    SettingSpec(
        name="allowed_hosts",
        env="MCP_CORE_ALLOWED_HOSTS",
        parse=_names,
        default=None,
        default_text="unset: loopback names only",
        doc="Host header values accepted (DNS rebinding protection)",
    ),
    SettingSpec(
        name="allowed_origins",
        env="MCP_CORE_ALLOWED_ORIGINS",
        parse=_names,
        default=None,
        default_text="unset: loopback origins only",
        doc="Origin header values accepted (DNS rebinding protection)",
    ),
    SettingSpec(
        name="bridge_idle_timeout",
        env="MCP_CORE_BRIDGE_IDLE_TIMEOUT",
        parse=_seconds,
        default=BRIDGE_IDLE_TIMEOUT,
        default_text="600 (seconds)",
        doc="seconds without a request before a daemon the bridge starts exits",
        option="--idle-timeout",
    ),
    SettingSpec(
        name="bridge_max_attempts",
        env="MCP_CORE_BRIDGE_MAX_ATTEMPTS",
        parse=_at_least_one,
        default=_RECOVERY.max_attempts,
        default_text=str(_RECOVERY.max_attempts),
        doc="failed tries in a row before the bridge gives up on its daemon",
        option="--max-attempts",
    ),
    SettingSpec(
        name="bridge_probe_timeout",
        env="MCP_CORE_BRIDGE_PROBE_TIMEOUT",
        parse=_seconds,
        default=_RECOVERY.probe_timeout,
        default_text=f"{_RECOVERY.probe_timeout:g} (seconds)",
        doc="seconds a daemon may take to answer its health route",
        option="--probe-timeout",
    ),
    SettingSpec(
        name="bridge_log_level",
        env="MCP_CORE_BRIDGE_LOG_LEVEL",
        parse=_choice(BRIDGE_LOG_LEVELS),
        default="warning",
        default_text="warning",
        doc="the bridge's log verbosity on stderr",
        option="--log-level",
    ),
    SettingSpec(
        name="bridge_daemon_log_level",
        env="MCP_CORE_BRIDGE_DAEMON_LOG_LEVEL",
        parse=_choice(BRIDGE_LOG_LEVELS),
        default="info",
        default_text="info",
        doc="the log verbosity of a daemon the bridge starts (its log file)",
        option="--daemon-log-level",
    ),
)
_BY_NAME = {spec.name: spec for spec in SETTINGS}
FILE_KEYS = tuple(spec.name for spec in SETTINGS if spec.in_file)


def _as_mapping(value: Mapping[str, str]) -> Mapping[str, str]:
    return types.MappingProxyType(dict(value))


@attrs.frozen(kw_only=True)
class Settings:
    """The resolved settings; `sources[name]` says where each value came from."""

    host: str
    port: int
    response_mode: str
    log_level: str | None
    data_dir: str
    vault_store: str
    keyring_secret: bool  # set or not: the value itself is never kept
    session_idle_timeout: float
    max_sessions: int
    max_body_bytes: int
    allowed_hosts: tuple[str, ...] | None
    allowed_origins: tuple[str, ...] | None
    bridge_idle_timeout: float
    bridge_max_attempts: int
    bridge_probe_timeout: float
    bridge_log_level: str
    bridge_daemon_log_level: str
    sources: Mapping[str, str] = attrs.field(converter=_as_mapping)
    config_file: str | None = None


# ---- resolution ---------------------------------------------------------------------------------


def default_config_path(environ: Mapping[str, str]) -> Path:
    """`$XDG_CONFIG_HOME/mcp-core/config.toml` (`~/.config` when unset or relative)."""
    base = environ.get("XDG_CONFIG_HOME", "")
    root = Path(base) if base and os.path.isabs(base) else _home(environ) / ".config"
    return root / APP_FOLDER / "config.toml"


def _home(environ: Mapping[str, str]) -> Path:
    home = environ.get("HOME", "")
    return Path(home) if home and os.path.isabs(home) else Path.home()


def _derived_data_dir(environ: Mapping[str, str]) -> tuple[str, str]:
    base = environ.get("XDG_DATA_HOME", "")
    # The XDG base directory spec says a relative XDG_DATA_HOME is invalid and must be ignored.
    if base and os.path.isabs(base):
        return str(Path(base) / APP_FOLDER), "environment XDG_DATA_HOME"
    return str(_home(environ) / ".local" / "share" / APP_FOLDER), "default"


def _read_file(file_text: str, file_path: str) -> tuple[dict[str, Any], list[str]]:
    try:
        table = tomllib.loads(file_text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError([f"the config file {file_path} is not valid TOML: {exc}"]) from None
    problems: list[str] = []
    for key in table:
        spec = _BY_NAME.get(key)
        if spec is not None and spec.secret:
            problems.append(
                f"{key} may not be set in the config file {file_path}: set the {spec.env} "
                "environment variable instead"
            )
        elif spec is None:
            problems.append(
                f"unknown key {key!r} in the config file {file_path}; allowed keys: "
                + ", ".join(FILE_KEYS)
            )
    return table, problems


def resolve_settings(
    args: Mapping[str, Any],
    environ: Mapping[str, str],
    file_text: str | None = None,
    file_path: str | os.PathLike[str] | None = None,
) -> Settings:
    """The settings from explicit `args` > `environ` > the file's text > defaults.

    `args` maps setting names to values; None (or a missing name) means not given. Raises
    `ConfigError` listing every problem, each naming the setting and its source.
    """
    path = str(file_path) if file_path is not None else "<config>"
    table: dict[str, Any] = {}
    problems: list[str] = []
    if file_text is not None:
        table, problems = _read_file(file_text, path)
    values: dict[str, Any] = {}
    sources: dict[str, str] = {}
    for spec in SETTINGS:
        if spec.secret:
            values[spec.name] = bool(environ.get(spec.env))
            sources[spec.name] = f"environment {spec.env}" if values[spec.name] else "default"
            continue
        raw: object = None
        if args.get(spec.name) is not None:
            raw, source = args[spec.name], f"argument {spec.flag}"
        elif environ.get(spec.env):  # an empty variable counts as unset
            raw, source = environ[spec.env], f"environment {spec.env}"
        elif spec.name in table:
            raw, source = table[spec.name], f"config file {path}"
        if raw is None:
            values[spec.name], sources[spec.name] = spec.default, "default"
            continue
        try:
            values[spec.name] = spec.parse(raw)
        except _Invalid as exc:
            problems.append(f"{spec.name} from {source}: {exc.reason}; allowed: {exc.allowed}")
            continue
        sources[spec.name] = source
    if values.get("data_dir") is None:
        values["data_dir"], sources["data_dir"] = _derived_data_dir(environ)
    if values.get("vault_store") is None:
        values["vault_store"] = str(Path(values["data_dir"]) / "vault.sqlite3")
        sources["vault_store"] = "default (under data_dir)"
    if problems:
        raise ConfigError(problems)
    config_file = path if file_text is not None else None
    return Settings(**values, sources=sources, config_file=config_file)


def load_settings(
    args: Mapping[str, Any] | None = None, environ: Mapping[str, str] | None = None
) -> Settings:
    """`resolve_settings` with the real environment and the config file read from disk.

    The file is `args["config"]`, else `MCP_CORE_CONFIG`, else the default path; a file named
    explicitly must exist, the default one may be absent.
    """
    args = args or {}
    env: Mapping[str, str] = os.environ if environ is None else environ
    explicit = args.get("config")
    source = "argument --config"
    if explicit is None and env.get(CONFIG_VARIABLE):
        explicit, source = env[CONFIG_VARIABLE], f"environment {CONFIG_VARIABLE}"
    path = Path(os.path.expanduser(str(explicit))) if explicit else default_config_path(env)
    try:
        text: str | None = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        if explicit:
            raise ConfigError([f"the config file {path} (from {source}) does not exist"]) from None
        text = None
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        raise ConfigError([f"cannot read the config file {path}: {reason}"]) from None
    return resolve_settings(args, env, text, path)


# ---- showing ------------------------------------------------------------------------------------


def _display(spec: SettingSpec, value: object) -> object:
    if spec.secret:
        return "set" if value else "not set"
    if isinstance(value, str):
        return mask_secret(value)
    if isinstance(value, tuple):
        return list(value)
    return value


def settings_report(settings: Settings) -> list[dict[str, Any]]:
    """One row per setting, values masked: name, value, source, env, file key."""
    return [
        {
            "name": spec.name,
            "value": _display(spec, getattr(settings, spec.name)),
            "source": settings.sources[spec.name],
            "env": spec.env,
            "file_key": spec.name if spec.in_file else None,
        }
        for spec in SETTINGS
    ]
