#!/usr/bin/env bash
# Installs the npm tools the tests use into a cache folder (idempotent; prints nothing when
# everything is there):
#   conformance/   Node.js 22 and the official MCP conformance suite (scripts/conformance.sh setup)
#   ts-sdk/   @modelcontextprotocol/sdk, the official TypeScript SDK, for interop tests
#   MCP_CORE_NPM_CACHE   where (default ${XDG_CACHE_HOME:-$HOME/.cache}/mcp-core)
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cache="${MCP_CORE_NPM_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/mcp-core}"
mkdir -p "$cache"
install() { # folder package-dir spec
  if [ ! -f "$cache/$1/node_modules/$2/package.json" ]; then
    echo "installing $3 into $cache/$1" >&2
    npm install --silent --no-audit --no-fund --prefix "$cache/$1" "$3" >&2
  fi
}
install ts-sdk @modelcontextprotocol/sdk @modelcontextprotocol/sdk@1.32.2
if [ -x "$root/scripts/conformance.sh" ]; then
  bash "$root/scripts/conformance.sh" setup >&2
fi
