#!/usr/bin/env bash
# The benchmark in one command: set up what it needs, then run bench/run.py (arguments pass through).
#
#   bash bench/run.sh            # the full run, a few minutes
#   bash bench/run.sh --quick    # a smoke run
#
# - mcp-core's own .venv (editable install, through scripts/bootstrap.sh);
# - bench/.venv for the peers: the official SDK (mcp 2.3.0, its newest release), the newest
#   FastMCP, and py-spy for bench/profile_server.py. It gets the same uvicorn, uvloop and
#   httptools versions as .venv, so every server runs on the same ASGI server;
# - wrk from the distribution when apt-get is there and we are root (else run.py falls back to
#   its own Python load generator).
# Each step that cannot be done is reported and skipped; run.py says what it ran with.
set -euo pipefail
bench="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(dirname "$bench")"
venv="$(bash "$root/scripts/bootstrap.sh" dev)"

pins="$("$venv/bin/python" - <<'PY'
from importlib.metadata import PackageNotFoundError, version
out = []
for name in ("uvicorn", "uvloop", "httptools"):
    try:
        out.append(f"{name}=={version(name)}")
    except PackageNotFoundError:
        out.append(name)
print(" ".join(out))
PY
)"
peer="$bench/.venv"
want="mcp==2.3.0 fastmcp py-spy $pins"
stamp="$peer/.bench-installed"
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
  echo "setting up $peer: $want" >&2
  if { [ -x "$peer/bin/python" ] || python3 -m venv "$peer"; } &&
     "$peer/bin/python" -m pip install --quiet --disable-pip-version-check $want >&2; then
    printf '%s' "$want" > "$stamp"
  else
    echo "bench/run.sh: could not set up $peer; the SDK runs from $venv, FastMCP is skipped" >&2
  fi
fi

if ! command -v wrk >/dev/null 2>&1 && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
  echo "installing wrk" >&2
  apt-get install -y -qq wrk >/dev/null 2>&1 ||
    { apt-get update -qq >/dev/null 2>&1 && apt-get install -y -qq wrk >/dev/null 2>&1; } ||
    echo "bench/run.sh: could not install wrk; using the Python load generator" >&2
fi

exec "$venv/bin/python" "$bench/run.py" "$@"
