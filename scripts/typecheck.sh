#!/usr/bin/env bash
# mypy --strict over the package as it is imported (mcp_core.*). The source folders install
# under another name through setuptools' package-dir mapping, which mypy cannot follow, so
# this builds a tree of links named as the package and points mypy at it.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
venv="${VENV:-$root/.venv}"
tree="$venv/typecheck"
mkdir -p "$tree/mcp_core"
for part in core ports adapters; do ln -sfn "$root/$part" "$tree/mcp_core/$part"; done
cd "$tree"
exec "$venv/bin/mypy" --config-file "$root/pyproject.toml" -p mcp_core.core -p mcp_core.ports -p mcp_core.adapters "$@"
