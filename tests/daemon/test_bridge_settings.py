"""`mcp-core bridge` takes its settings from the configuration, options first (issue 6).

Spec context: issue 6 "Boot and configuration" and "the shared daemon"; docs/daemon.md and
docs/configuration.md. `plan_bridge` is the step of `mcp-core bridge` that resolves its
settings into the daemon command, the recovery limits and the log level, and the command then
uses that plan as it is; so these tests parse real command lines with the bridge's own parser
and check the plan, without spawning a daemon. The environment is a plain dict (HOME and
XDG_CONFIG_HOME under `tmp_path`), except in the `main` test, which uses `monkeypatch`.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

import pytest

from mcp_core.adapters.cli import main
from mcp_core.adapters.cli._target import CliError
from mcp_core.adapters.cli.bridge_cmds import add_bridge_commands, plan_bridge


def parse(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="mcp-core")
    add_bridge_commands(parser.add_subparsers(dest="command"))
    return parser.parse_args(["bridge", *argv])


@pytest.fixture
def environ(tmp_path: Path) -> dict[str, str]:
    return {"HOME": str(tmp_path), "XDG_CONFIG_HOME": str(tmp_path / "config")}


def test_without_anything_the_bridge_uses_the_defaults(environ: dict[str, str]) -> None:
    plan = plan_bridge(parse(), environ)
    assert plan.daemon_command == (
        sys.executable,
        "-m",
        "mcp_core.adapters.cli",
        "daemon",
        "--idle-timeout",
        "600.0",
        "--log-level",
        "info",
    )
    assert (plan.limits.max_attempts, plan.limits.probe_timeout) == (5, 10.0)
    assert plan.log_level == "warning"


def test_environment_variables_reach_the_daemon_command_and_the_limits(
    environ: dict[str, str],
) -> None:
    environ |= {
        "MCP_CORE_BRIDGE_IDLE_TIMEOUT": "42",
        "MCP_CORE_BRIDGE_MAX_ATTEMPTS": "9",
        "MCP_CORE_BRIDGE_PROBE_TIMEOUT": "2.5",
        "MCP_CORE_BRIDGE_LOG_LEVEL": "debug",
        "MCP_CORE_BRIDGE_DAEMON_LOG_LEVEL": "error",
    }
    plan = plan_bridge(parse("app.py"), environ)
    assert plan.daemon_command[3:] == (
        "daemon",
        "app.py",
        "--idle-timeout",
        "42.0",
        "--log-level",
        "error",
    )
    assert (plan.limits.max_attempts, plan.limits.probe_timeout) == (9, 2.5)
    assert plan.log_level == "debug"


def test_options_beat_the_environment_which_beats_the_config_file(
    environ: dict[str, str], tmp_path: Path
) -> None:
    config = tmp_path / "bridge.toml"
    config.write_text(
        "bridge_idle_timeout = 300\nbridge_max_attempts = 2\nbridge_probe_timeout = 4\n"
    )
    environ |= {"MCP_CORE_CONFIG": str(config), "MCP_CORE_BRIDGE_MAX_ATTEMPTS": "7"}
    plan = plan_bridge(parse("--max-attempts", "3", "--daemon-log-level", "debug"), environ)
    assert plan.limits.max_attempts == 3  # the option, over the variable and the file
    assert plan.limits.probe_timeout == 4.0  # the file, over the default
    assert plan.daemon_command[-4:] == ("--idle-timeout", "300.0", "--log-level", "debug")
    from_env = plan_bridge(parse(), environ)
    assert from_env.limits.max_attempts == 7  # the variable, over the file


def test_the_config_option_names_the_file(environ: dict[str, str], tmp_path: Path) -> None:
    config = tmp_path / "other.toml"
    config.write_text('bridge_log_level = "critical"\n')
    assert plan_bridge(parse("--config", str(config)), environ).log_level == "critical"


@pytest.mark.parametrize(
    ("argv", "env", "expected"),
    [
        (
            (),
            {"MCP_CORE_BRIDGE_IDLE_TIMEOUT": "-1"},
            "bridge_idle_timeout from environment MCP_CORE_BRIDGE_IDLE_TIMEOUT: '-1' is out of "
            "range; allowed: a number of seconds greater than 0",
        ),
        (
            ("--probe-timeout", "soon"),
            {},
            "bridge_probe_timeout from argument --probe-timeout: 'soon' is not a number; "
            "allowed: a number of seconds greater than 0",
        ),
    ],
)
def test_a_bad_setting_is_a_clear_error(
    environ: dict[str, str], argv: tuple[str, ...], env: dict[str, str], expected: str
) -> None:
    with pytest.raises(CliError) as info:
        plan_bridge(parse(*argv), environ | env)
    assert str(info.value) == expected


def test_the_bridge_command_stops_at_a_bad_variable_before_loading_its_target(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    for name in list(os.environ):
        if name.startswith("MCP_CORE_"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    monkeypatch.setenv("MCP_CORE_BRIDGE_MAX_ATTEMPTS", "0")
    # The target does not exist: had the bridge loaded it, the error would name it instead.
    code = main(["bridge", str(tmp_path / "missing_app.py")])
    out, err = capsys.readouterr()
    assert (code, out) == (1, "")
    assert err == (
        "mcp-core: error: bridge_max_attempts from environment MCP_CORE_BRIDGE_MAX_ATTEMPTS: "
        "0 is out of range; allowed: an integer of 1 or more\n"
    )
