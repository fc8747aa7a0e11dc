"""`mcp-core config show`: the settings mcp-core resolves, where each came from, secrets masked.

```
mcp-core config show [--json] [--config PATH]
                     [--host H] [--port P] [--response-mode M] [--log-level L]
```

Spec context: issue 6 "Boot and configuration"; the order and every setting are in
`docs/configuration.md`, the rules in `mcp_core.adapters.config`. The `serve` options given here
are explicit arguments, so `config show --port 9000` shows what `serve --port 9000` would use.
The `bridge_*` rows are what `mcp-core bridge` uses when given none of its options (its
`--log-level` is not `serve`'s, so `config show` takes none of them).

Output contract, for scripts: tab-separated rows `SETTING VALUE SOURCE` with a header, then
nothing else (the config file read, if any, is the source of the rows that came from it);
`--json`: one JSON object `{"config_file": PATH|null, "settings": {NAME: {"value", "source",
"env", "file_key"}}}`. `KEYRING_SECRET` is shown as `set`/`not set` and a password in a store
URL as `***`, never the value. An invalid setting is one line on stderr and exit status 1.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from typing import Any

from ._target import CliError

__all__ = ["add_config_commands"]


def _show(args: argparse.Namespace) -> int:
    from mcp_core.adapters.config import ConfigError, load_settings, settings_report

    explicit = {
        "config": args.config,
        "host": args.host,
        "port": args.port,
        "response_mode": args.response_mode,
        "log_level": args.log_level,
    }
    try:
        settings = load_settings(explicit)
    except ConfigError as exc:
        raise CliError(str(exc)) from None
    rows = settings_report(settings)
    if args.json:
        document = {
            "config_file": settings.config_file,
            "settings": {row.pop("name"): row for row in rows},
        }
        print(json.dumps(document, ensure_ascii=False, indent=2))
        return 0
    print("\t".join(("SETTING", "VALUE", "SOURCE")))
    for row in rows:
        print("\t".join((row["name"], _cell(row["value"]), row["source"])))
    return 0


def _cell(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, list):
        return ",".join(value)
    return str(value)


def _usage(parser: argparse.ArgumentParser) -> Callable[[argparse.Namespace], int]:
    def show(_: argparse.Namespace) -> int:
        parser.print_help(sys.stderr)
        return 2

    return show


def add_config_commands(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Register `config` on the CLI's subparsers; its subcommands set `run(args) -> int`."""
    config = commands.add_parser(
        "config",
        help="show the resolved configuration (secrets masked)",
        description=(
            "Inspect mcp-core's configuration: explicit arguments, then MCP_CORE_* environment "
            "variables, then the config file, then the defaults."
        ),
    )
    config.set_defaults(run=_usage(config))
    config_commands = config.add_subparsers(dest="config_command", metavar="COMMAND")
    show = config_commands.add_parser(
        "show",
        help="print every setting, its value and its source",
        description=(
            "Print every setting with its value and where it came from. KEYRING_SECRET is "
            "shown as set or not set, and passwords in store URLs as ***."
        ),
    )
    show.add_argument("--json", action="store_true", help="print one JSON object")
    show.add_argument(
        "--config",
        default=None,
        metavar="PATH",
        help="the TOML config file (default: $MCP_CORE_CONFIG, else "
        "$XDG_CONFIG_HOME/mcp-core/config.toml if it exists)",
    )
    # Strings on purpose: the resolver validates them and names the source in its errors.
    show.add_argument("--host", default=None, help="as `serve --host`")
    show.add_argument("--port", default=None, help="as `serve --port`")
    show.add_argument("--response-mode", default=None, help="as `serve --response-mode`")
    show.add_argument("--log-level", default=None, help="as `serve --log-level`")
    show.set_defaults(run=_show)
