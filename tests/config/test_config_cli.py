"""`mcp-core config show`: every setting with its source, secrets masked, errors on one line.

Spec context: issue 6 "Boot and configuration". The command runs in process through `main`,
with the environment replaced by `monkeypatch` (HOME and the XDG folders point into `tmp_path`,
every `MCP_CORE_*` variable and `KEYRING_SECRET` are cleared first).
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from mcp_core.adapters.cli import main

SECRET = "k1:c2VjcmV0LXNlY3JldC1zZWNyZXQtc2VjcmV0LXNlY3JldA=="
DB_PASSWORD = "hunter2-db-password"


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for name in list(os.environ):
        if name.startswith("MCP_CORE_") or name in {"KEYRING_SECRET", "XDG_DATA_HOME"}:
            monkeypatch.delenv(name)
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(["config", *argv])
    out, err = capsys.readouterr()
    return code, out, err


def show_json(capsys: pytest.CaptureFixture[str], *argv: str) -> dict[str, dict[str, object]]:
    code, out, err = run(capsys, "show", "--json", *argv)
    assert (code, err) == (0, "")
    document = json.loads(out)
    settings: dict[str, dict[str, object]] = document["settings"]
    return settings


def test_show_prints_every_setting_with_its_source(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    (tmp_path / "config" / "mcp-core").mkdir(parents=True)
    config = tmp_path / "config" / "mcp-core" / "config.toml"
    config.write_text('response_mode = "sse"\nallowed_hosts = ["a.example", "b.example"]\n')
    monkeypatch.setenv("MCP_CORE_PORT", "9002")
    code, out, err = run(capsys, "show", "--host", "0.0.0.0")
    assert (code, err) == (0, "")
    lines = out.splitlines()
    assert lines[0] == "SETTING\tVALUE\tSOURCE"
    rows = {line.split("\t")[0]: line.split("\t")[1:] for line in lines[1:]}
    assert rows["host"] == ["0.0.0.0", "argument --host"]
    assert rows["port"] == ["9002", "environment MCP_CORE_PORT"]
    assert rows["response_mode"] == ["sse", f"config file {config}"]
    assert rows["allowed_hosts"] == ["a.example,b.example", f"config file {config}"]
    assert rows["log_level"] == ["-", "default"]
    assert rows["keyring_secret"] == ["not set", "default"]
    assert rows["data_dir"] == [str(tmp_path / ".local/share/mcp-core"), "default"]
    assert rows["bridge_idle_timeout"] == ["600.0", "default"]
    assert len(rows) == 17


def test_show_gives_the_bridge_settings_with_their_sources(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    config = tmp_path / "bridge.toml"
    config.write_text("bridge_idle_timeout = 120\nbridge_max_attempts = 4\n")
    monkeypatch.setenv("MCP_CORE_BRIDGE_IDLE_TIMEOUT", "90")
    monkeypatch.setenv("MCP_CORE_BRIDGE_LOG_LEVEL", "info")
    settings = show_json(capsys, "--config", str(config))
    assert settings["bridge_idle_timeout"] == {
        "value": 90.0,
        "source": "environment MCP_CORE_BRIDGE_IDLE_TIMEOUT",
        "env": "MCP_CORE_BRIDGE_IDLE_TIMEOUT",
        "file_key": "bridge_idle_timeout",
    }
    assert settings["bridge_max_attempts"]["value"] == 4
    assert settings["bridge_max_attempts"]["source"] == f"config file {config}"
    assert settings["bridge_log_level"]["value"] == "info"
    assert settings["bridge_probe_timeout"] == {
        "value": 10.0,
        "source": "default",
        "env": "MCP_CORE_BRIDGE_PROBE_TIMEOUT",
        "file_key": "bridge_probe_timeout",
    }
    assert settings["bridge_daemon_log_level"]["value"] == "info"


def test_a_bad_bridge_variable_is_one_line_naming_it(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MCP_CORE_BRIDGE_IDLE_TIMEOUT", "-30")
    code, out, err = run(capsys, "show")
    assert (code, out) == (1, "")
    assert err == (
        "mcp-core: error: bridge_idle_timeout from environment MCP_CORE_BRIDGE_IDLE_TIMEOUT: "
        "'-30' is out of range; allowed: a number of seconds greater than 0\n"
    )


def test_show_json_is_one_object_with_value_source_env_and_file_key(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    code, out, _ = run(capsys, "show", "--json", "--port", "7")
    assert code == 0
    document = json.loads(out)
    assert document["config_file"] is None
    assert document["settings"]["port"] == {
        "value": 7,
        "source": "argument --port",
        "env": "MCP_CORE_PORT",
        "file_key": "port",
    }
    assert document["settings"]["keyring_secret"]["file_key"] is None


def test_secrets_never_appear_in_show_or_show_json(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("KEYRING_SECRET", SECRET)
    monkeypatch.setenv("MCP_CORE_VAULT_STORE", f"postgresql://app:{DB_PASSWORD}@db:5432/mcp")
    code, out, err = run(capsys, "show")
    assert code == 0
    assert SECRET not in out + err
    assert DB_PASSWORD not in out + err
    assert "keyring_secret\tset\tenvironment KEYRING_SECRET" in out
    assert "postgresql://app:***@db:5432/mcp" in out
    settings = show_json(capsys)
    assert settings["keyring_secret"]["value"] == "set"
    assert settings["vault_store"]["value"] == "postgresql://app:***@db:5432/mcp"
    assert SECRET not in json.dumps(settings)
    assert DB_PASSWORD not in json.dumps(settings)


def test_secrets_never_appear_in_error_messages(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("KEYRING_SECRET", SECRET)
    monkeypatch.setenv("MCP_CORE_VAULT_STORE", f"mysql://app:{DB_PASSWORD}@db/mcp")
    config = tmp_path / "c.toml"
    config.write_text(f'keyring_secret = "{SECRET}"\n')
    for argv in (("show",), ("show", "--json"), ("show", "--config", str(config))):
        code, out, err = run(capsys, *argv)
        assert code == 1
        assert out == ""
        assert SECRET not in err
        assert DB_PASSWORD not in err
        assert "mysql://app:***@db/mcp" in err


def test_an_invalid_setting_is_one_line_on_stderr_naming_setting_and_source(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MCP_CORE_MAX_SESSIONS", "lots")
    code, out, err = run(capsys, "show", "--json")
    assert (code, out) == (1, "")
    assert err == (
        "mcp-core: error: max_sessions from environment MCP_CORE_MAX_SESSIONS: 'lots' is not an "
        "integer; allowed: an integer of 1 or more\n"
    )


def test_an_invalid_argument_names_the_option(capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(capsys, "show", "--response-mode", "xml")
    assert code == 1
    assert err.startswith("mcp-core: error: response_mode from argument --response-mode: 'xml'")
    assert err.count("\n") == 1


def test_a_missing_explicit_config_is_an_error(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    missing = tmp_path / "missing.toml"
    code, out, err = run(capsys, "show", "--config", str(missing))
    assert (code, out) == (1, "")
    assert err == (
        f"mcp-core: error: the config file {missing} (from argument --config) does not exist\n"
    )


def test_the_config_variable_names_the_file(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    config = tmp_path / "from-env.toml"
    config.write_text("max_body_bytes = 1024\n")
    monkeypatch.setenv("MCP_CORE_CONFIG", str(config))
    settings = show_json(capsys)
    assert settings["max_body_bytes"] == {
        "value": 1024,
        "source": f"config file {config}",
        "env": "MCP_CORE_MAX_BODY_BYTES",
        "file_key": "max_body_bytes",
    }


def test_malformed_toml_is_a_clear_error_with_the_path(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    config = tmp_path / "bad.toml"
    config.write_text("port = \n")
    code, _, err = run(capsys, "show", "--config", str(config))
    assert code == 1
    assert err.startswith(f"mcp-core: error: the config file {config} is not valid TOML: ")


def test_unknown_keys_are_named(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    config = tmp_path / "c.toml"
    config.write_text("listen = 1\n")
    code, _, err = run(capsys, "show", "--config", str(config))
    assert code == 1
    assert f"unknown key 'listen' in the config file {config}; allowed keys: host, port" in err


def test_config_without_a_subcommand_prints_usage(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(capsys)
    assert (code, out) == (2, "")
    assert "show" in err
