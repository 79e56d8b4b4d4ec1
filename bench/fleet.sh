#!/usr/bin/env bash
# A primary and two replicas on loopback:
#  1. propagation: 100 API key revocations on the primary, each timed until
#     both replicas refuse the key (p50, p99, max);
#  2. verify throughput with a reused token on a replica and on the
#     primary, alternating rounds, each ratio within its round.
# Every node has one worker pinned to CPU 0; the client runs on CPU 1.
#
# Usage: bench/fleet.sh [seconds per run, default 5] [rounds, default 3]
set -euo pipefail
cd "$(dirname "$0")/.."
DURATION="${1:-5}"
ROUNDS="${2:-3}"
command -v wrk >/dev/null || { echo "wrk is needed: apt-get install wrk" >&2; exit 1; }
cargo build --release --quiet --bin gatehouse

work=$(mktemp -d)
pids=()
trap 'kill "${pids[@]}" 2>/dev/null; wait 2>/dev/null; rm -rf "$work"' EXIT
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
export GATEHOUSE_ADMIN_TOKEN=bench-admin-token-0123456789abcdef GATEHOUSE_REPLICA_TOKEN=bench-replica-token-0123456789abcdef
PRIMARY_PORT=$(free_port)
export GATEHOUSE_ISSUER="http://127.0.0.1:$PRIMARY_PORT"

# start NAME PORT [ENV...]
start() {
  local name=$1 port=$2; shift 2
  mkdir -p "$work/$name"
  (cd "$work/$name" && exec env RUST_LOG=warn GATEHOUSE_WORKERS=1 "$@" \
    taskset -c 0 "$OLDPWD/target/release/gatehouse" serve --listen "127.0.0.1:$port" >"$work/$name.log" 2>&1) &
  pids+=($!)
  for _ in $(seq 300); do curl -fs "http://127.0.0.1:$port/readyz" >/dev/null && return; sleep 0.1; done
  echo "$name did not become ready" >&2; cat "$work/$name.log" >&2; exit 1
}
REPLICA_1=$(free_port) REPLICA_2=$(free_port)
start primary "$PRIMARY_PORT"
replica_env=(GATEHOUSE_ROLE=replica "GATEHOUSE_PRIMARY_URL=$GATEHOUSE_ISSUER")
start replica-1 "$REPLICA_1" "${replica_env[@]}"
start replica-2 "$REPLICA_2" "${replica_env[@]}"

taskset -c 1 python3 - "$PRIMARY_PORT" "$REPLICA_1" "$REPLICA_2" >"$work/token" <<'PY'
import statistics, sys, time, requests
primary, r1, r2 = (f"http://127.0.0.1:{p}" for p in sys.argv[1:4])
admin = requests.Session()
admin.headers["Authorization"] = "Bearer bench-admin-token-0123456789abcdef"
secret = admin.post(f"{primary}/admin/v1/applications",
                    json={"client_id": "bench", "groups": ["media"]}).json()["client_secret"]
admin.post(f"{primary}/admin/v1/resources", json={"host": "dav.example.com", "allowed_groups": ["media"]})
keys = [admin.post(f"{primary}/admin/v1/applications/bench/api-keys", json={"name": f"k{i}"}).json()
        for i in range(100)]
probe = requests.Session()
def status(base, key):
    return probe.get(f"{base}/api/verify", headers={"X-Forwarded-Host": "dav.example.com",
                                                    "Authorization": f"Bearer {key}"}).status_code
for key in keys:                      # every key verifies everywhere first
    for base in (r1, r2):
        while status(base, key["api_key"]) != 200:
            time.sleep(0.001)
times = []
for key in keys:
    start = time.perf_counter()
    assert admin.delete(f"{primary}/admin/v1/api-keys/{key['id']}").status_code == 204
    for base in (r1, r2):
        while status(base, key["api_key"]) != 401:
            pass
    times.append((time.perf_counter() - start) * 1000)
times.sort()
p = lambda q: times[min(len(times) - 1, int(q * len(times)))]
print(f"propagation of 100 revocations to both replicas (ms, including the admin call): "
      f"p50 {p(0.5):.1f}  p99 {p(0.99):.1f}  max {times[-1]:.1f}", file=sys.stderr)
token = requests.post(f"{primary}/oauth/token", auth=("bench", secret),
                      data={"grant_type": "client_credentials"}).json()["access_token"]
print(token)
PY
export TOKEN=$(cat "$work/token")

results="$work/results"
for round in $(seq 1 "$ROUNDS"); do
  for node in primary:$PRIMARY_PORT replica:$REPLICA_1; do
    rps=$(taskset -c 1 wrk -t1 -c32 -d"${DURATION}s" -s bench/forward_auth.lua "http://127.0.0.1:${node#*:}/api/verify" |
      awk '/^Requests\/sec/ {print $2}')
    echo "$round ${node%%:*} $rps" >>"$results"
  done
done
python3 - "$results" <<'PY'
import collections, statistics, sys
runs = collections.defaultdict(dict)
for line in open(sys.argv[1]):
    rnd, name, rps = line.split()
    runs[name][rnd] = float(rps)
for name in ("primary", "replica"):
    print(f"verify, reused token, {name:<8} median {statistics.median(runs[name].values()):>9.0f} req/s")
ratios = [runs["replica"][r] / runs["primary"][r] for r in runs["primary"]]
print(f"replica / primary, within each round: median {statistics.median(ratios):.1%}  [{min(ratios):.1%} .. {max(ratios):.1%}]")
PY
