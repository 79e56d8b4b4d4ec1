#!/usr/bin/env bash
# Instructions per request, counted by valgrind's callgrind: the same
# figure on every run for the same binary, whatever else the machine is
# doing, so it shows what a change costs or saves where wrk's req/s, on a
# noisy VM, cannot. User space only: the kernel's share (sockets,
# wake-ups) is not counted.
#
# Counts gatehouse's POST /oauth/token, /api/verify with one reused
# token, with a fresh token per request, with an API key as a bearer and
# the same key as Basic credentials (where the binary knows `basic` rules), GET /healthz (the plain
# handler), and the bare ring routes of
# examples/crypto_over_http.rs (POST /sign, GET /verify) as references.
# Under valgrind, ring takes its portable code paths (no ADX or SHA
# extensions), so its share is larger than on the bare CPU.
#
# Usage: bench/instructions.sh [requests per endpoint, default 1000]
# INSTRUCTIONS_BIN=path counts another gatehouse build instead (e.g. the
# commit before a change, for a before/after on the same machine).
set -euo pipefail
cd "$(dirname "$0")/.."
REQUESTS="${1:-1000}"
command -v valgrind >/dev/null || { echo "valgrind is needed: apt-get install valgrind" >&2; exit 1; }

cargo build --release --quiet --bin gatehouse --example crypto_over_http
gatehouse_bin=$(realpath "${INSTRUCTIONS_BIN:-target/release/gatehouse}")
echo "gatehouse binary: $gatehouse_bin, sha256 $(sha256sum "$gatehouse_bin" | cut -c1-16)"
work=$(mktemp -d)
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
port=$(free_port)
crypto_port=$(free_port)
export GATEHOUSE_ADMIN_TOKEN=bench-admin-token-0123456789abcdef
(cd "$work" && RUST_LOG=warn GATEHOUSE_WORKERS=1 \
  exec valgrind --tool=callgrind --callgrind-out-file="$work/gatehouse.%p.out" \
  "$gatehouse_bin" serve --listen "127.0.0.1:$port" >"$work/log" 2>&1) &
server=$!
valgrind --tool=callgrind --callgrind-out-file="$work/crypto.%p.out" \
  target/release/examples/crypto_over_http "127.0.0.1:$crypto_port" >"$work/crypto.log" 2>&1 &
crypto_server=$!
trap 'kill $server $crypto_server 2>/dev/null; wait $server $crypto_server 2>/dev/null; rm -rf "$work"' EXIT
for _ in $(seq 600); do curl -fs "http://127.0.0.1:$port/readyz" >/dev/null && break; sleep 0.1; done
for _ in $(seq 600); do curl -fs "http://127.0.0.1:$crypto_port/verify" >/dev/null && break; sleep 0.1; done

python3 - "$port" "$crypto_port" "$server" "$crypto_server" "$REQUESTS" "$work" <<'PY'
import base64, glob, http.client, json, subprocess, sys

port, crypto_port, server, crypto_server, requests, work = sys.argv[1:]
requests = int(requests)
admin = {"Authorization": "Bearer bench-admin-token-0123456789abcdef", "Content-Type": "application/json"}

def call(conn, method, path, body=None, headers={}, fail=True):
    conn.request(method, path, body=body, headers=headers)
    response = conn.getresponse()
    data = response.read()
    if response.status not in (200, 201):
        if not fail:
            return None
        sys.exit(f"{method} {path}: {response.status} {data[:200]!r}")
    return data

gatehouse = http.client.HTTPConnection("127.0.0.1", int(port), timeout=60)
crypto = http.client.HTTPConnection("127.0.0.1", int(crypto_port), timeout=60)
app = json.loads(call(gatehouse, "POST", "/admin/v1/applications", json.dumps(
    {"client_id": "bench", "groups": ["media"], "scopes": ["webdav:read"]}), admin))
call(gatehouse, "POST", "/admin/v1/resources", json.dumps(
    {"host": "dav.example.com", "allowed_groups": ["media"]}), admin)
basic = base64.b64encode(f"bench:{app['client_secret']}".encode()).decode()
token_request = ("POST", "/oauth/token", "grant_type=client_credentials",
                 {"Authorization": "Basic " + basic,
                  "Content-Type": "application/x-www-form-urlencoded"})
token = json.loads(call(gatehouse, *token_request))["access_token"]
# The forward-auth sub-request as Caddy sends it (as in bench/forward_auth.lua).
forward = {"Authorization": "Bearer " + token, "X-Forwarded-Method": "PROPFIND",
           "X-Forwarded-Proto": "https", "X-Forwarded-Host": "dav.example.com",
           "X-Forwarded-Uri": "/canister/photos/", "X-Forwarded-For": "198.51.100.7"}

# An API key, as a bearer and (on a rule that takes Basic) as Basic
# credentials: client_id:key, base64, as every WebDAV client sends them.
api_key = json.loads(call(gatehouse, "POST", "/admin/v1/applications/bench/api-keys",
                          json.dumps({"name": "bench"}), admin))["api_key"]
api_key_forward = dict(forward, Authorization="Bearer " + api_key)
basic_rule = call(gatehouse, "POST", "/admin/v1/resources", json.dumps(
    {"host": "basic.example.com", "allowed_groups": ["media"], "basic": True}), admin, fail=False)
basic_forward = dict(forward, **{"X-Forwarded-Host": "basic.example.com",
    "Authorization": "Basic " + base64.b64encode(f"bench:{api_key}".encode()).decode()})
bearer_on_basic_rule = dict(basic_forward, Authorization="Bearer " + api_key)

# Tokens for the fresh-token run, none used twice.
fresh = iter([json.loads(call(gatehouse, *token_request))["access_token"]
              for _ in range(requests + 100)])
def fresh_request():
    return ("GET", "/api/verify", None, dict(forward, Authorization="Bearer " + next(fresh)))

def same(request):
    return lambda: request

runs = [
    ("plain handler (GET /healthz)", gatehouse, server, same(("GET", "/healthz", None, forward))),
    ("/api/verify, reused token", gatehouse, server, same(("GET", "/api/verify", None, forward))),
    ("/api/verify, fresh token", gatehouse, server, fresh_request),
    ("/api/verify, API key (Bearer)", gatehouse, server, same(("GET", "/api/verify", None, api_key_forward))),
    ("POST /oauth/token", gatehouse, server, same(token_request)),
    ("bare ring verify over HTTP", crypto, crypto_server, same(("GET", "/verify", None, forward))),
    ("bare ring sign over HTTP", crypto, crypto_server, same(("POST", "/sign") + token_request[2:])),
]
if basic_rule is not None:
    runs[3:3] = [
        ("/api/verify, API key, basic rule", gatehouse, server, same(("GET", "/api/verify", None, bearer_on_basic_rule))),
        ("/api/verify, API key (Basic)", gatehouse, server, same(("GET", "/api/verify", None, basic_forward))),
    ]
counts = {}
for name, conn, pid, request in runs:
    for _ in range(100):  # warm up: caches, buffers, lazy statics
        call(conn, *request())
    subprocess.run(["callgrind_control", "-z", pid], check=True, capture_output=True)
    for _ in range(requests):
        call(conn, *request())
    subprocess.run(["callgrind_control", "-d", "bench", pid], check=True, capture_output=True)
    newest = max(glob.glob(f"{work}/*.{pid}.out.*"), key=lambda f: int(f.rsplit(".", 1)[1]))
    total = next(int(line.split()[1]) for line in open(newest) if line.startswith("summary:"))
    counts[name] = total / requests
    print(f"{name:<36} {counts[name]:>10,.0f} instructions/request")

print("== ratios")
for top, bottom in [("/api/verify, reused token", "plain handler (GET /healthz)"),
                    ("/api/verify, fresh token", "bare ring verify over HTTP"),
                    ("POST /oauth/token", "bare ring sign over HTTP"),
                    ("/api/verify, API key (Bearer)", "plain handler (GET /healthz)"),
                    ("/api/verify, API key (Basic)", "/api/verify, API key, basic rule")]:
    if top not in counts:
        continue
    print(f"{top} / {bottom}: {counts[top] / counts[bottom]:.2f}x")
PY
