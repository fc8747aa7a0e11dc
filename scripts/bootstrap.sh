#!/usr/bin/env bash
# Shared set-up for the README's commands: a virtual environment in .venv with the package
# installed (editable) and its extras. Idempotent and quiet when nothing changed.
#   MCP_CORE_PYTHON   the interpreter to build the venv from (default: python3, needs 3.11+)
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
extras="${1:-dev}"
py="${MCP_CORE_PYTHON:-python3}"
if ! "$py" -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then
  echo "mcp-core needs Python 3.11 or newer; '$py' is $("$py" --version 2>&1). Set MCP_CORE_PYTHON." >&2
  exit 2
fi
venv="$root/.venv"
if [ ! -x "$venv/bin/python" ]; then
  echo "creating $venv" >&2
  "$py" -m venv "$venv"
  "$venv/bin/python" -m pip install --quiet --upgrade pip >&2
fi
# Reinstall only when pyproject.toml or the requested extras changed.
stamp="$venv/.mcp-core-installed"
want="$(sha256sum "$root/pyproject.toml" | cut -d' ' -f1) $extras"
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
  echo "installing mcp-core[$extras] into $venv" >&2
  "$venv/bin/python" -m pip install --quiet --disable-pip-version-check -e "$root[$extras]" >&2
  printf '%s' "$want" > "$stamp"
fi
echo "$venv"
