#!/usr/bin/env bash
# The README's second command: set up everything the tests need, then run all of them:
# lint, format check, mypy --strict, the machine-spec drift check and the whole pytest suite
# (unit, model-based, integration, interop with the official SDKs, the conformance suite).
#   CI=true    a missing service or tool is a failure, never a skip
#   any arguments are passed to pytest (e.g. scripts/test.sh -k session -x)
set -uo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
venv="$(bash scripts/bootstrap.sh dev)" || exit 2
export PATH="$venv/bin:$PATH"

# Services the storage adapters' tests use; started when down (they run on this machine).
start_services() {
  if command -v pg_isready >/dev/null && ! pg_isready -q -h 127.0.0.1 -p 5432; then
    echo "starting PostgreSQL" >&2
    pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | head -1)" main start || true
  fi
  if command -v redis-cli >/dev/null && ! redis-cli -h 127.0.0.1 -p 6379 ping >/dev/null 2>&1; then
    echo "starting Redis" >&2
    redis-server --daemonize yes --bind 127.0.0.1 --port 6379 --save "" --appendonly no || true
  fi
}
start_services

# npm tools: Node 22 and the conformance suite, and the TypeScript SDK client for interop.
bash scripts/npm-tools.sh >&2 || { [ "${CI:-}" = "true" ] && { echo "npm tools could not be installed" >&2; exit 2; }; }
# Headless Chromium and its driver, for the relay form's browser test.
if [ -f scripts/browser-tools.sh ]; then
  bash scripts/browser-tools.sh >&2 || { [ "${CI:-}" = "true" ] && { echo "Chromium could not be installed" >&2; exit 2; }; }
fi

status=0
step() { echo "== $*" >&2; "$@" || status=1; }
step ruff check .
step ruff format --check .
step bash scripts/typecheck.sh
step python scripts/export_machines.py --check
python -m pytest "$@"
rc=$?
# pytest exits 5 when it collected nothing: a filter that matched no test is not a pass.
[ "$rc" -eq 0 ] || status=1
exit "$status"
