#!/usr/bin/env bash
# Property-based API test of a live node against its own /openapi.json,
# with schemathesis (tests/interop/requirements.txt).
#
# Builds nothing: uses $GATEHOUSE_BIN, else $CARGO_TARGET_DIR/release/gatehouse,
# else target/release/gatehouse (`cargo build --release` first). Starts a
# primary on a free loopback port with a temporary data and key directory,
# a known admin token and replica token, creates an application and a
# resource so that the OAuth and verify endpoints have something real to
# answer, then runs every operation of the document with a bounded number
# of examples. Exits non-zero on any failure; the server is stopped on exit.
#
# Extra arguments go to `schemathesis run` (e.g. --seed 1). Environment:
# ST_MAX_EXAMPLES (per operation and phase, default 100: about 90 s here),
# ST_SEED, ST_TIMEOUT (wall-clock limit of the schemathesis run, default 280 s),
# ST_KEEP=1 (keep the work directory: server log, schemathesis reports).
set -euo pipefail
cd "$(dirname "$0")/.."

die() {
  echo "tests/schemathesis.sh: $*" >&2
  exit 1
}

bin="${GATEHOUSE_BIN:-}"
if [ -z "$bin" ]; then
  for candidate in "${CARGO_TARGET_DIR:+$CARGO_TARGET_DIR/release/gatehouse}" target/release/gatehouse; do
    if [ -n "$candidate" ] && [ -x "$candidate" ]; then
      bin="$candidate"
      break
    fi
  done
fi
[ -n "$bin" ] && [ -x "$bin" ] || die "no gatehouse binary: run 'cargo build --release' (or set GATEHOUSE_BIN)"
command -v schemathesis >/dev/null 2>&1 ||
  die "schemathesis is not installed: python3 -m pip install -r tests/interop/requirements.txt"
command -v curl >/dev/null 2>&1 || die "curl is required"

work="$(mktemp -d "${TMPDIR:-/tmp}/gatehouse-schemathesis.XXXXXX")"
server_pid=""
cleanup() {
  local status=$?
  if [ -n "$server_pid" ] && kill -0 "$server_pid" 2>/dev/null; then
    kill "$server_pid" 2>/dev/null || true
    wait "$server_pid" 2>/dev/null || true
  fi
  if [ "$status" -ne 0 ] && [ -f "$work/server.log" ]; then
    echo "--- last lines of the server log ($work/server.log) ---" >&2
    tail -n 20 "$work/server.log" >&2 || true
    echo "--- (work directory kept: $work) ---" >&2
  else
    [ -n "${ST_KEEP:-}" ] || rm -rf "$work"
  fi
  exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

token() { python3 -c 'import secrets; print(secrets.token_urlsafe(32))'; }
admin_token="gat_$(token)"
replica_token="$(token)"

# The caller's GATEHOUSE_* variables (GATEHOUSE_REQUIRE_INTEROP from
# tests/run.sh, GATEHOUSE_BIN, a developer's own settings) are not this
# server's settings: an unknown one would stop it.
unset_own=()
while IFS='=' read -r name _; do
  case "$name" in GATEHOUSE_*) unset_own+=(-u "$name") ;; esac
done < <(env)

# The throttle would answer most generated (wrong) credentials with 429
# after a few; documented, but it would hide the endpoints behind it.
env "${unset_own[@]}" \
  GATEHOUSE_ADMIN_TOKEN="$admin_token" \
  GATEHOUSE_REPLICA_TOKEN="$replica_token" \
  GATEHOUSE_AUTH_FAILURE_LIMIT=1000000 \
  RUST_LOG="${RUST_LOG:-info}" \
  "$bin" serve --listen 127.0.0.1:0 --data-dir "$work/data" --keys-dir "$work/keys" \
  >"$work/server.log" 2>&1 &
server_pid=$!

addr=""
for _ in $(seq 1 100); do
  addr="$(sed -n 's/.*gatehouse listening on \([0-9.:]*\).*/\1/p' "$work/server.log" | head -n 1)"
  [ -n "$addr" ] && break
  kill -0 "$server_pid" 2>/dev/null || die "the server exited at start"
  sleep 0.1
done
[ -n "$addr" ] || die "the server did not report its address"
base="http://$addr"
for _ in $(seq 1 50); do
  curl -fsS "$base/readyz" >/dev/null 2>&1 && break
  sleep 0.1
done
curl -fsS "$base/readyz" >/dev/null || die "the server is not ready"

json_field() { python3 -c 'import json,sys; print(json.load(sys.stdin)[sys.argv[1]])' "$1"; }
admin() {
  curl -fsS -H "Authorization: Bearer $admin_token" -H 'Content-Type: application/json' "$@"
}

# Something real behind the OAuth and verify endpoints: an application and a
# rule for the host schemathesis sends (Host: 127.0.0.1:<port>).
client_id=schemathesis-client
client_secret="$(admin -X POST "$base/admin/v1/applications" -d "{
  \"client_id\": \"$client_id\", \"name\": \"Schemathesis\",
  \"groups\": [\"fuzzers\"], \"scopes\": [\"read\", \"webdav\"]}" | json_field client_secret)"
admin -X POST "$base/admin/v1/resources" \
  -d '{"id": "loopback", "host": "127.0.0.1", "allowed_groups": ["fuzzers"]}' >/dev/null
admin -X POST "$base/admin/v1/applications/$client_id/api-keys" -d '{"name": "fuzz"}' >/dev/null
access_token="$(curl -fsS -u "$client_id:$client_secret" -d grant_type=client_credentials \
  "$base/oauth/token" | json_field access_token)"
curl -fsS -o /dev/null -H "Authorization: Bearer $access_token" "$base/api/verify" ||
  die "the access token is not granted by /api/verify"

# Credentials per security scheme of the document.
cat >"$work/schemathesis.toml" <<EOF
[auth.openapi.adminToken]
bearer = "$admin_token"

[auth.openapi.clientSecretBasic]
username = "$client_id"
password = "$client_secret"

[auth.openapi.accessToken]
bearer = "$access_token"

[auth.openapi.replicaToken]
bearer = "$replica_token"

# A long-poll that finds nothing new waits up to 30 s: keep the run short.
# Every replica id the primary hears from is waited for by a key rotation
# (up to 10 s) until it catches up: an empty id is not counted.
[[operations]]
include-path = "/internal/v1/state"
parameters = { wait = 0, "X-Gatehouse-Replica" = "" }
EOF

report="$work/report"
started=$(date +%s)
set +e
# The operation serving the document is left out unless a filter names it:
# the regex selects every path. One worker: CPython 3.11 can fail compiling
# in threads ("AST constructor recursion depth mismatch").
timeout --kill-after=10 "${ST_TIMEOUT:-280}" \
  schemathesis --config-file "$work/schemathesis.toml" run "$base/openapi.json" \
  --include-path-regex '^/' \
  --checks not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance \
  --max-examples "${ST_MAX_EXAMPLES:-100}" \
  --workers 1 \
  --seed "${ST_SEED:-$RANDOM}" \
  --request-timeout 10 \
  --no-color \
  --report junit,ndjson --report-dir "$report" \
  "$@"
st_status=$?
set -e
elapsed=$(($(date +%s) - started))

# The figures, from the run's event stream.
python3 - "$report" "$elapsed" "$st_status" "$work/server.log" <<'EOF'
import glob, json, sys

report, elapsed, status, server_log = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
operations, cases, failed_checks, errors, server_errors = set(), 0, 0, 0, 0
unique = set()
for path in glob.glob(f"{report}/*.ndjson"):
    for line in open(path):
        (kind, body), = json.loads(line).items()
        if kind == "ScenarioFinished":
            recorder = body.get("recorder", {})
            if recorder.get("cases") and recorder.get("label") != "Stateful tests":
                operations.add(recorder["label"])
            cases += len(recorder.get("cases", {}))
            for interaction in recorder.get("interactions", {}).values():
                if ((interaction or {}).get("response") or {}).get("status_code", 0) >= 500:
                    server_errors += 1
            for checks in recorder.get("checks", {}).values():
                for check in checks:
                    if check.get("status") == "failure":
                        failed_checks += 1
                        failure = check.get("failure_info", {}).get("failure", {})
                        unique.add((failure.get("operation"), failure.get("code")))
        elif kind == "NonFatalError":
            errors += 1
panics = sum(1 for line in open(server_log, errors="replace") if "panicked" in line)
print(
    f"schemathesis summary: {len(operations)} operations tested, {cases} examples, "
    f"{len(unique)} unique failures ({failed_checks} failed checks), {errors} errors, "
    f"{server_errors} 5xx responses, {panics} server panics, {elapsed} s "
    f"(schemathesis exit {status})"
)
ok = status == 0 and not unique and errors == 0 and server_errors == 0 and panics == 0
sys.exit(0 if ok else 1)
EOF
