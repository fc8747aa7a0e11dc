"""Settings resolution: explicit arguments > environment > config file > defaults.

Spec context: issue 6 "Boot and configuration" and `docs/configuration.md`. Everything here
calls `resolve_settings` with plain dicts, or `load_settings` with a dict for the environment
and files under `tmp_path`, so the real environment and home folder are never read.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from mcp_core.adapters.config import (
    SETTINGS,
    ConfigError,
    default_config_path,
    load_settings,
    mask_secret,
    resolve_settings,
    settings_report,
)
from mcp_core.adapters.daemon import DEFAULT_IDLE_TIMEOUT
from mcp_core.core.machines.daemon_recovery import RecoveryLimits

HOME = {"HOME": "/home/alice"}
FILE = "/etc/mcp-core/config.toml"
SECRET = "k1:c2VjcmV0LXNlY3JldC1zZWNyZXQtc2VjcmV0LXNlY3JldA=="
DB_PASSWORD = "hunter2-db-password"


def resolve(
    args: dict[str, Any] | None = None,
    env: dict[str, str] | None = None,
    text: str | None = None,
) -> Any:
    return resolve_settings(args or {}, {**HOME, **(env or {})}, text, FILE)


def problems(
    args: dict[str, Any] | None = None, env: dict[str, str] | None = None, text: str | None = None
) -> tuple[str, ...]:
    with pytest.raises(ConfigError) as info:
        resolve(args, env, text)
    return info.value.problems


# ---- precedence ---------------------------------------------------------------------------------


def test_defaults_when_nothing_is_given() -> None:
    settings = resolve()
    assert settings.host == "127.0.0.1"
    assert settings.port == 8000
    assert settings.response_mode == "auto"
    assert settings.log_level is None
    assert settings.data_dir == "/home/alice/.local/share/mcp-core"
    assert settings.vault_store == "/home/alice/.local/share/mcp-core/vault.sqlite3"
    assert settings.keyring_secret is False
    assert settings.session_idle_timeout == 1800.0
    assert settings.max_sessions == 10_000
    assert settings.max_body_bytes == 4 * 1024 * 1024
    assert settings.allowed_hosts is None
    assert settings.allowed_origins is None
    assert settings.bridge_idle_timeout == 600.0
    assert settings.bridge_max_attempts == 5
    assert settings.bridge_probe_timeout == 10.0
    assert settings.bridge_log_level == "warning"
    assert settings.bridge_daemon_log_level == "info"
    assert settings.config_file is None
    assert set(settings.sources) == {spec.name for spec in SETTINGS}
    assert settings.sources["port"] == "default"
    assert settings.sources["vault_store"] == "default (under data_dir)"


# (name, argument value, env value, file TOML value, expected from each layer)
LAYERS = [
    ("host", "10.0.0.1", "10.0.0.2", '"10.0.0.3"', ("10.0.0.1", "10.0.0.2", "10.0.0.3")),
    ("port", "9001", "9002", "9003", (9001, 9002, 9003)),
    ("response_mode", "json", "sse", '"auto"', ("json", "sse", "auto")),
    ("log_level", "debug", "error", '"trace"', ("debug", "error", "trace")),
    ("data_dir", "/a", "/b", '"/c"', ("/a", "/b", "/c")),
    ("vault_store", "memory:a", "memory:b", '"memory:c"', ("memory:a", "memory:b", "memory:c")),
    ("session_idle_timeout", "1", "2.5", "3", (1.0, 2.5, 3.0)),
    ("max_sessions", "1", "2", "3", (1, 2, 3)),
    ("max_body_bytes", "10", "20", "30", (10, 20, 30)),
    (
        "allowed_hosts",
        ("a.example",),
        "b.example, c.example",
        '["d.example"]',
        (("a.example",), ("b.example", "c.example"), ("d.example",)),
    ),
    (
        "allowed_origins",
        ["https://a.example"],
        "https://b.example",
        '["https://c.example"]',
        (("https://a.example",), ("https://b.example",), ("https://c.example",)),
    ),
    ("bridge_idle_timeout", "30", "45.5", "60", (30.0, 45.5, 60.0)),
    ("bridge_max_attempts", "2", "3", "4", (2, 3, 4)),
    ("bridge_probe_timeout", "0.5", "1", "2.5", (0.5, 1.0, 2.5)),
    ("bridge_log_level", "debug", "ERROR", '"critical"', ("debug", "error", "critical")),
    ("bridge_daemon_log_level", "warning", "debug", '"error"', ("warning", "debug", "error")),
]


@pytest.mark.parametrize(("name", "arg", "env", "file", "expected"), LAYERS)
def test_each_layer_overrides_the_ones_below(
    name: str, arg: Any, env: str, file: str, expected: tuple[Any, Any, Any]
) -> None:
    spec = next(spec for spec in SETTINGS if spec.name == name)
    text = f"{name} = {file}\n"
    everything = resolve({name: arg}, {spec.env: env}, text)
    assert getattr(everything, name) == expected[0]
    assert everything.sources[name] == f"argument {spec.flag}"
    no_args = resolve({name: None}, {spec.env: env}, text)
    assert getattr(no_args, name) == expected[1]
    assert no_args.sources[name] == f"environment {spec.env}"
    file_only = resolve({}, {}, text)
    assert getattr(file_only, name) == expected[2]
    assert file_only.sources[name] == f"config file {FILE}"
    assert file_only.config_file == FILE


def test_the_bridge_settings_are_named_for_the_bridge_options() -> None:
    flags = {
        spec.name: (spec.env, spec.flag) for spec in SETTINGS if spec.name.startswith("bridge_")
    }
    assert flags == {
        "bridge_idle_timeout": ("MCP_CORE_BRIDGE_IDLE_TIMEOUT", "--idle-timeout"),
        "bridge_max_attempts": ("MCP_CORE_BRIDGE_MAX_ATTEMPTS", "--max-attempts"),
        "bridge_probe_timeout": ("MCP_CORE_BRIDGE_PROBE_TIMEOUT", "--probe-timeout"),
        "bridge_log_level": ("MCP_CORE_BRIDGE_LOG_LEVEL", "--log-level"),
        "bridge_daemon_log_level": ("MCP_CORE_BRIDGE_DAEMON_LOG_LEVEL", "--daemon-log-level"),
    }


def test_the_bridge_defaults_are_the_daemon_and_recovery_defaults() -> None:
    limits = RecoveryLimits()
    settings = resolve()
    assert settings.bridge_idle_timeout == DEFAULT_IDLE_TIMEOUT
    assert settings.bridge_max_attempts == limits.max_attempts
    assert settings.bridge_probe_timeout == limits.probe_timeout


def test_bridge_and_serve_log_levels_are_separate_settings() -> None:
    settings = resolve(env={"MCP_CORE_LOG_LEVEL": "debug"}, text='bridge_log_level = "error"\n')
    assert (settings.log_level, settings.bridge_log_level) == ("debug", "error")
    assert settings.sources["bridge_daemon_log_level"] == "default"


def test_an_empty_environment_variable_counts_as_unset() -> None:
    settings = resolve(env={"MCP_CORE_PORT": ""}, text="port = 9003\n")
    assert settings.port == 9003


def test_data_dir_follows_xdg_data_home_and_the_vault_store_follows_data_dir() -> None:
    settings = resolve(env={"XDG_DATA_HOME": "/xdg/data"})
    assert settings.data_dir == "/xdg/data/mcp-core"
    assert settings.sources["data_dir"] == "environment XDG_DATA_HOME"
    assert settings.vault_store == "/xdg/data/mcp-core/vault.sqlite3"
    explicit = resolve(env={"XDG_DATA_HOME": "/xdg/data", "MCP_CORE_DATA_DIR": "/srv/mcp"})
    assert explicit.vault_store == "/srv/mcp/vault.sqlite3"


def test_a_relative_xdg_data_home_is_ignored() -> None:
    assert resolve(env={"XDG_DATA_HOME": "rel"}).data_dir == "/home/alice/.local/share/mcp-core"


def test_keyring_secret_is_recorded_as_present_only() -> None:
    settings = resolve(env={"KEYRING_SECRET": SECRET})
    assert settings.keyring_secret is True
    assert settings.sources["keyring_secret"] == "environment KEYRING_SECRET"
    assert SECRET not in repr(settings)


def test_settings_are_frozen() -> None:
    settings = resolve()
    with pytest.raises(AttributeError):
        settings.port = 1  # type: ignore[misc]
    with pytest.raises(TypeError):
        settings.sources["port"] = "x"  # type: ignore[index]


# ---- validation ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "bad", "reason", "allowed"),
    [
        ("host", "  ", "it is empty", "a host name or IP address"),
        ("port", "eighty", "'eighty' is not an integer", "an integer from 0 to 65535"),
        ("port", "65536", "65536 is out of range", "an integer from 0 to 65535"),
        ("response_mode", "xml", "'xml' is not a known value", "one of auto, json, sse"),
        ("log_level", "loud", "'loud' is not a known value", "one of critical, error, warning"),
        ("data_dir", "relative/dir", "'relative/dir' is not an absolute path", "absolute path"),
        ("vault_store", "ftp://x/y", "unknown scheme 'ftp'", "postgresql://... or redis://..."),
        ("vault_store", "sqlite:", "names no file", "sqlite:///absolute/path"),
        ("session_idle_timeout", "0", "'0' is out of range", "greater than 0"),
        ("session_idle_timeout", "soon", "'soon' is not a number", "greater than 0"),
        ("session_idle_timeout", "nan", "'nan' is out of range", "greater than 0"),
        ("max_sessions", "0", "0 is out of range", "an integer of 1 or more"),
        ("max_body_bytes", "1.5", "'1.5' is not an integer", "an integer of 1 or more"),
        ("allowed_hosts", " , ", "it is empty", "a non-empty list of strings"),
        ("bridge_idle_timeout", "-5", "'-5' is out of range", "seconds greater than 0"),
        ("bridge_idle_timeout", "10m", "'10m' is not a number", "seconds greater than 0"),
        ("bridge_idle_timeout", "inf", "'inf' is out of range", "seconds greater than 0"),
        ("bridge_max_attempts", "0", "0 is out of range", "an integer of 1 or more"),
        ("bridge_max_attempts", "many", "'many' is not an integer", "an integer of 1 or more"),
        ("bridge_probe_timeout", "0", "'0' is out of range", "seconds greater than 0"),
        ("bridge_log_level", "trace", "'trace' is not a known value", "critical, error, warn"),
        ("bridge_daemon_log_level", "loud", "'loud' is not a known value", "one of critical"),
    ],
)
def test_invalid_environment_values_name_the_setting_the_source_and_what_is_allowed(
    name: str, bad: str, reason: str, allowed: str
) -> None:
    env = next(spec.env for spec in SETTINGS if spec.name == name)
    (message,) = problems(env={env: bad})
    assert message.startswith(f"{name} from environment {env}: ")
    said, _, allows = message.partition("; allowed: ")
    assert reason in said
    assert allowed in allows


@pytest.mark.parametrize(
    ("toml", "expected"),
    [
        ("port = true", "port from config file {f}: True is not an integer"),
        ("port = 1.5", "port from config file {f}: 1.5 is not an integer"),
        ("host = 1", "host from config file {f}: 1 is not a string"),
        ("max_sessions = -3", "max_sessions from config file {f}: -3 is out of range"),
        ("allowed_hosts = []", "allowed_hosts from config file {f}: it is empty"),
        ("allowed_hosts = [1]", "allowed_hosts from config file {f}: the item 1 is not"),
        ("session_idle_timeout = false", "session_idle_timeout from config file {f}: False"),
        ("response_mode = { a = 1 }", "response_mode from config file {f}: {'a': 1}"),
        ("bridge_idle_timeout = -1", "bridge_idle_timeout from config file {f}: -1 is out of"),
        ("bridge_idle_timeout = 'soon'", "bridge_idle_timeout from config file {f}: 'soon' is n"),
        ("bridge_idle_timeout = true", "bridge_idle_timeout from config file {f}: True is not"),
        ("bridge_max_attempts = 2.5", "bridge_max_attempts from config file {f}: 2.5 is not an"),
        ("bridge_probe_timeout = 0", "bridge_probe_timeout from config file {f}: 0 is out of"),
        ("bridge_log_level = 3", "bridge_log_level from config file {f}: 3 is not a string"),
    ],
)
def test_wrong_types_in_the_file_name_the_setting_and_the_file(toml: str, expected: str) -> None:
    (message,) = problems(text=toml)
    assert message.startswith(expected.replace("{f}", FILE))
    assert "allowed: " in message


def test_file_strings_are_read_as_the_environment_would_be() -> None:
    settings = resolve(text='port = "8000"\nallowed_hosts = "a.example, b.example"\n')
    assert settings.port == 8000
    assert settings.allowed_hosts == ("a.example", "b.example")


def test_invalid_arguments_name_the_option() -> None:
    (message,) = problems(args={"port": "-1"})
    assert message == (
        "port from argument --port: -1 is out of range; "
        "allowed: an integer from 0 to 65535 (0 picks a free port)"
    )


def test_invalid_bridge_arguments_name_the_bridge_option() -> None:
    (message,) = problems(args={"bridge_idle_timeout": "-1"})
    assert message == (
        "bridge_idle_timeout from argument --idle-timeout: '-1' is out of range; "
        "allowed: a number of seconds greater than 0"
    )
    (message,) = problems(args={"bridge_daemon_log_level": "chatty"})
    assert message.startswith(
        "bridge_daemon_log_level from argument --daemon-log-level: 'chatty' is not a known value"
    )


def test_a_bridge_option_beats_a_bad_bridge_variable_and_file_key() -> None:
    settings = resolve(
        args={"bridge_max_attempts": "7"},
        env={"MCP_CORE_BRIDGE_MAX_ATTEMPTS": "zero"},
        text="bridge_max_attempts = -1\n",
    )
    assert settings.bridge_max_attempts == 7
    assert settings.sources["bridge_max_attempts"] == "argument --max-attempts"


def test_every_problem_is_reported_at_once() -> None:
    found = problems(
        args={"port": "x"}, env={"MCP_CORE_MAX_SESSIONS": "0"}, text="log_level = 'loud'\n"
    )
    assert [message.split(" ")[0] for message in found] == ["port", "log_level", "max_sessions"]
    assert str(ConfigError(found)) == "; ".join(found)


def test_a_lower_layer_is_not_validated_when_a_higher_one_wins() -> None:
    assert resolve(env={"MCP_CORE_PORT": "9000"}, text="port = 'junk'\n").port == 9000


def test_unknown_file_keys_are_named_with_the_allowed_ones() -> None:
    (message,) = problems(text="prot = 80\n")
    assert message.startswith(f"unknown key 'prot' in the config file {FILE}; allowed keys: ")
    assert "host, port, response_mode, log_level" in message
    assert "bridge_idle_timeout, bridge_max_attempts, bridge_probe_timeout" in message
    assert "keyring_secret" not in message


def test_a_keyring_secret_in_the_file_is_refused_without_echoing_it() -> None:
    (message,) = problems(text=f'keyring_secret = "{SECRET}"\n')
    assert "set the KEYRING_SECRET environment variable instead" in message
    assert SECRET not in message


def test_malformed_toml_is_an_error_naming_the_file() -> None:
    (message,) = problems(text="port = = 1\n")
    assert message.startswith(f"the config file {FILE} is not valid TOML: ")
    assert "line 1" in message


# ---- masking ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "masked"),
    [
        (f"postgresql://app:{DB_PASSWORD}@db:5432/mcp", "postgresql://app:***@db:5432/mcp"),
        (f"redis://:{DB_PASSWORD}@cache:6379/0", "redis://:***@cache:6379/0"),
        (
            f"host=db user=app password={DB_PASSWORD} dbname=x",
            "host=db user=app password=*** dbname=x",
        ),
        (
            f"postgresql://db/x?password={DB_PASSWORD}&sslmode=require",
            "postgresql://db/x?password=***&sslmode=require",
        ),
        ("postgresql://app@db/x", "postgresql://app@db/x"),
        ("sqlite:///var/lib/mcp.sqlite3", "sqlite:///var/lib/mcp.sqlite3"),
    ],
)
def test_mask_secret_hides_passwords_only(value: str, masked: str) -> None:
    assert mask_secret(value) == masked


def test_the_report_never_holds_a_secret() -> None:
    settings = resolve(
        env={
            "KEYRING_SECRET": SECRET,
            "MCP_CORE_VAULT_STORE": f"postgresql://app:{DB_PASSWORD}@db/mcp",
        }
    )
    report = settings_report(settings)
    assert SECRET not in repr(report)
    assert DB_PASSWORD not in repr(report)
    rows = {row["name"]: row for row in report}
    assert rows["keyring_secret"]["value"] == "set"
    assert rows["keyring_secret"]["file_key"] is None
    assert rows["vault_store"]["value"] == "postgresql://app:***@db/mcp"


def test_an_invalid_store_url_error_masks_its_password() -> None:
    (message,) = problems(env={"MCP_CORE_VAULT_STORE": f"ftp://u:{DB_PASSWORD}@h/x"})
    assert DB_PASSWORD not in message
    assert "ftp://u:***@h/x" in message


# ---- the file on disk ---------------------------------------------------------------------------


def test_default_config_path_follows_xdg_config_home() -> None:
    assert default_config_path({"XDG_CONFIG_HOME": "/cfg"}) == Path("/cfg/mcp-core/config.toml")
    assert default_config_path({"HOME": "/h"}) == Path("/h/.config/mcp-core/config.toml")
    assert default_config_path({"HOME": "/h", "XDG_CONFIG_HOME": "rel"}) == Path(
        "/h/.config/mcp-core/config.toml"
    )


def test_a_missing_default_file_is_fine(tmp_path: Path) -> None:
    settings = load_settings({}, {"XDG_CONFIG_HOME": str(tmp_path), "HOME": str(tmp_path)})
    assert settings.config_file is None
    assert settings.sources["port"] == "default"


def test_the_default_file_is_read_when_present(tmp_path: Path) -> None:
    path = tmp_path / "mcp-core" / "config.toml"
    path.parent.mkdir()
    path.write_text("port = 9100\n")
    settings = load_settings({}, {"XDG_CONFIG_HOME": str(tmp_path), "HOME": str(tmp_path)})
    assert settings.port == 9100
    assert settings.sources["port"] == f"config file {path}"
    assert settings.config_file == str(path)


def test_config_argument_beats_the_environment_variable(tmp_path: Path) -> None:
    (tmp_path / "a.toml").write_text("port = 1\n")
    (tmp_path / "b.toml").write_text("port = 2\n")
    env = {"HOME": str(tmp_path), "MCP_CORE_CONFIG": str(tmp_path / "b.toml")}
    assert load_settings({}, env).port == 2
    assert load_settings({"config": str(tmp_path / "a.toml")}, env).port == 1


@pytest.mark.parametrize("how", ["argument", "environment"])
def test_a_missing_explicit_file_is_an_error(tmp_path: Path, how: str) -> None:
    missing = tmp_path / "nope.toml"
    args = {"config": str(missing)} if how == "argument" else {}
    env = {"HOME": str(tmp_path)}
    if how == "environment":
        env["MCP_CORE_CONFIG"] = str(missing)
    with pytest.raises(ConfigError) as info:
        load_settings(args, env)
    source = "argument --config" if how == "argument" else "environment MCP_CORE_CONFIG"
    assert str(info.value) == f"the config file {missing} (from {source}) does not exist"


def test_a_malformed_file_on_disk_names_its_path(tmp_path: Path) -> None:
    path = tmp_path / "bad.toml"
    path.write_text("[unclosed\n")
    with pytest.raises(ConfigError, match=r"the config file .*bad\.toml is not valid TOML"):
        load_settings({"config": str(path)}, {"HOME": str(tmp_path)})


def test_an_unreadable_file_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read the config file"):
        load_settings({"config": str(tmp_path)}, {"HOME": str(tmp_path)})  # a folder


# ---- the guide ----------------------------------------------------------------------------------


def test_the_guide_lists_every_setting_with_its_variable() -> None:
    guide = (Path(__file__).parents[2] / "docs" / "configuration.md").read_text(encoding="utf-8")
    rows = [line for line in guide.splitlines() if line.startswith("| `")]
    for spec in SETTINGS:
        (row,) = [row for row in rows if row.startswith(f"| `{spec.name}`")]
        assert f"`{spec.env}`" in row
        if spec.option is not None:
            assert f"`bridge {spec.option}`" in row
