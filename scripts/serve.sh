#!/usr/bin/env bash
# The README's first command: set up .venv if needed, then serve the demo MCP server on
# 127.0.0.1 with the vault on (credentials sealed in the embedded SQLite store). Arguments go
# to `mcp-core serve` (scripts/serve.sh --port 9000, or another TARGET: examples/x.py).
#
# The vault needs KEYRING_SECRET. When it is not set, this script uses a demo key kept in
# $XDG_DATA_HOME/mcp-core/demo-keyring (created once, readable by you only) and says so;
# a deployment sets its own (mcp-core keys generate).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
venv="$(bash "$root/scripts/bootstrap.sh" dev)"
if [ -z "${KEYRING_SECRET:-}" ]; then
  data="${XDG_DATA_HOME:-$HOME/.local/share}/mcp-core"
  keyfile="$data/demo-keyring"
  if [ ! -s "$keyfile" ]; then
    mkdir -p "$data" && chmod 700 "$data"
    (umask 077 && "$venv/bin/mcp-core" keys generate > "$keyfile")
  fi
  KEYRING_SECRET="$(cat "$keyfile")"
  export KEYRING_SECRET
  echo "mcp-core: KEYRING_SECRET not set; using the demo key in $keyfile" >&2
fi
exec "$venv/bin/mcp-core" serve "$@"
