#!/usr/bin/env bash
# Scale-out at a million revocations (issue 12): the same measurement twice
# in one run, on a primary with an empty store and on one seeded with
# 1,000,000 revoked API keys and 100,000 applications, each with 8 replicas
# on loopback. Per run:
#  1. primary start to /readyz 200: the first start, and the second (cold
#     start proper: on the seeded store the first one scans every record
#     and writes data/revoked-api-keys.bin);
#  2. first sync of each new replica, spawn to /readyz 200 (one at a time);
#  3. propagation: API key revocations on the primary, each timed from the
#     admin DELETE until every replica refuses the key;
#  4. bytes per change: one more replica follows the primary through a TCP
#     proxy that counts every byte it relays (headers, long-polls and 304s
#     included), divided by the versions that replica moved;
#  5. RSS of the primary and the replicas after the revocations, and of
#     the primary after it lists one application's keys;
# then verify throughput (reused token) on a replica of each primary,
# alternating rounds, each ratio within its round.
# Every node has one worker pinned to CPU 0; clients, wrk and the proxy run
# on CPU 1.
#
# With SCALE_COMPARE_BIN=/path/to/another/gatehouse (e.g. a build of the
# commit before a change), a third fleet runs that binary, every node of
# it, on a copy of the seeded store made before the seeded fleet started,
# with the same measurements and in the same verify rounds: before and
# after in one run.
#
# Usage: bench/scale.sh [replicas, default 8] [revoked keys, default 1000000]
#                       [applications, default 100000] [revocations, default 100]
#                       [seconds per wrk run, default 5] [rounds, default 3]
set -euo pipefail
cd "$(dirname "$0")/.."
REPLICAS="${1:-8}"
REVOKED="${2:-1000000}"
APPS="${3:-100000}"
REVOCATIONS="${4:-100}"
DURATION="${5:-5}"
ROUNDS="${6:-3}"
command -v wrk >/dev/null || { echo "wrk is needed: apt-get install wrk" >&2; exit 1; }
(( REVOCATIONS >= 20 )) || { echo "at least 20 revocations" >&2; exit 1; }

revocation_sha=$(sha256sum src/revocation.rs | cut -c1-16)
cargo build --release --quiet --bin gatehouse --example seed_revoked_keys
[[ $(sha256sum src/revocation.rs | cut -c1-16) == "$revocation_sha" ]] ||
  echo "warning: src/revocation.rs changed during the build" >&2
RELEASE="$(cd "${CARGO_TARGET_DIR:-target}" && pwd)/release"
export SCALE_NODE_BIN="$RELEASE/gatehouse"
COMPARE_BIN="${SCALE_COMPARE_BIN:-}"
if [[ -n "$COMPARE_BIN" ]]; then
  COMPARE_BIN=$(realpath "$COMPARE_BIN")
  [[ -x "$COMPARE_BIN" ]] || { echo "SCALE_COMPARE_BIN: $COMPARE_BIN is not executable" >&2; exit 1; }
  (( REVOKED > 0 || APPS > 0 )) || { echo "SCALE_COMPARE_BIN needs a seeded store" >&2; exit 1; }
fi

work=$(mktemp -d)
pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  for pid in "${pids[@]}"; do
    for _ in $(seq 250); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
  done
  rm -rf "$work"
}
trap cleanup EXIT
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
export GATEHOUSE_ADMIN_TOKEN=bench-admin-token-0123456789abcdef GATEHOUSE_REPLICA_TOKEN=bench-replica-token-0123456789abcdef
results="$work/results"
{
  echo "meta revocation_sha256 $revocation_sha"
  echo "meta commit $(git rev-parse --short HEAD)$(git diff --quiet HEAD -- src && echo '' || echo '+uncommitted-src')"
  echo "meta config replicas=$REPLICAS revoked=$REVOKED applications=$APPS revocations=$REVOCATIONS"
  [[ -z "$COMPARE_BIN" ]] || echo "meta compare $COMPARE_BIN, sha256 $(sha256sum "$COMPARE_BIN" | cut -c1-16)"
} >>"$results"

cat >"$work/scale.py" <<'PY'
"""Helpers for bench/scale.sh: spawn a node and time it to /readyz, a
counting TCP proxy, the setup and the revocation phase, the summary."""
import asyncio, json, os, socket, statistics, subprocess, sys, time

def ready(port):
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1) as s:
            s.sendall(b"GET /readyz HTTP/1.1\r\nHost: bench\r\nConnection: close\r\n\r\n")
            return s.recv(16).startswith(b"HTTP/1.1 200")
    except OSError:
        return False

def spawn(cwd, log, port, *env):
    """Starts a node (one worker, CPU 0; the binary SCALE_NODE_BIN, or
    BIN=path as the first env entry) and prints its pid and the seconds
    from the spawn to its first /readyz 200."""
    binary = os.environ["SCALE_NODE_BIN"]
    if env and env[0].startswith("BIN="):
        binary, env = env[0][4:], env[1:]
    cmd = ["env", "RUST_LOG=warn,gatehouse::startup=info", "GATEHOUSE_WORKERS=1", *env, "taskset", "-c", "0",
           binary, "serve", "--listen", f"127.0.0.1:{port}"]
    port = int(port)
    with open(log, "ab") as out:
        start = time.perf_counter()
        node = subprocess.Popen(cmd, cwd=cwd, stdout=out, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL, start_new_session=True)
        while not ready(port):
            if node.poll() is not None or time.perf_counter() - start > 300:
                node.kill()
                sys.exit(f"node in {cwd} did not become ready; see {log}")
            time.sleep(0.003)
        print(node.pid, f"{time.perf_counter() - start:.4f}")

def proxy(listen, upstream, control):
    """Relays 127.0.0.1:listen to 127.0.0.1:upstream, counting bytes each
    way; a connection to `control` reads 'down up'."""
    counts = {"down": 0, "up": 0}
    async def pipe(src, dst, way):
        try:
            while data := await src.read(65536):
                counts[way] += len(data)
                dst.write(data)
                await dst.drain()
        except (ConnectionError, OSError):
            pass
        finally:
            dst.close()
    async def relay(reader, writer):
        up_reader, up_writer = await asyncio.open_connection("127.0.0.1", int(upstream))
        await asyncio.gather(pipe(reader, up_writer, "up"), pipe(up_reader, writer, "down"))
    async def report(reader, writer):
        writer.write(f"{counts['down']} {counts['up']}\n".encode())
        await writer.drain()
        writer.close()
    async def main():
        a = await asyncio.start_server(relay, "127.0.0.1", int(listen))
        b = await asyncio.start_server(report, "127.0.0.1", int(control))
        await asyncio.gather(a.serve_forever(), b.serve_forever())
    asyncio.run(main())

def proxied_bytes(control):
    with socket.create_connection(("127.0.0.1", int(control))) as s:
        down, up = s.makefile().readline().split()
    return int(down), int(up)

def counted(control):
    print(*proxied_bytes(control))

ADMIN = {"Authorization": "Bearer " + os.environ.get("GATEHOUSE_ADMIN_TOKEN", "")}

def prepare(primary, count, out):
    """On the primary: an application, a rule, `count` API keys and an
    access token, written to `out` as JSON."""
    import requests
    base = f"http://127.0.0.1:{primary}"
    admin = requests.Session()
    admin.headers.update(ADMIN)
    r = admin.post(f"{base}/admin/v1/applications", json={"client_id": "bench", "groups": ["media"]})
    r.raise_for_status()
    secret = r.json()["client_secret"]
    admin.post(f"{base}/admin/v1/resources",
               json={"host": "dav.example.com", "allowed_groups": ["media"]}).raise_for_status()
    keys = []
    for i in range(int(count)):
        r = admin.post(f"{base}/admin/v1/applications/bench/api-keys", json={"name": f"k{i}"})
        r.raise_for_status()
        keys.append({"id": r.json()["id"], "key": r.json()["api_key"]})
    token = requests.post(f"{base}/oauth/token", auth=("bench", secret),
                          data={"grant_type": "client_credentials"}).json()["access_token"]
    json.dump({"keys": keys, "token": token}, open(out, "w"))

def list_keys(primary):
    """One application's API keys, as an admin or the console lists them."""
    import requests
    r = requests.get(f"http://127.0.0.1:{primary}/admin/v1/applications/bench/api-keys", headers=ADMIN)
    r.raise_for_status()

def metric(port, name):
    import requests
    text = requests.get(f"http://127.0.0.1:{port}/metrics").text
    return sum(float(line.split()[-1]) for line in text.splitlines()
               if line.startswith(name + " ") or line.startswith(name + "{"))

def revoke(run, primary, replicas, meter, control, prepared):
    """Times each revocation until every replica refuses the key; the
    meter replica (behind the proxy) gives the bytes per change."""
    import requests
    replicas = [int(p) for p in replicas.split(",")]
    keys = json.load(open(prepared))["keys"]
    sessions = {p: requests.Session() for p in replicas + [int(meter)]}
    def status(port, key):
        return sessions[port].get(f"http://127.0.0.1:{port}/api/verify", headers={
            "X-Forwarded-Host": "dav.example.com", "Authorization": f"Bearer {key}"}).status_code
    deadline = time.time() + 120
    for key in keys:                      # every key verifies everywhere first
        for port in sessions:
            while status(port, key["key"]) != 200:
                if time.time() > deadline:
                    sys.exit(f"replica {port} never accepted the keys")
                time.sleep(0.01)
    time.sleep(1)                         # every replica parked in its long-poll
    down0, up0 = proxied_bytes(control)
    version0 = metric(meter, "gatehouse_state_version")
    changes0 = metric(primary, 'gatehouse_replication_answers_total{kind="changes"}')
    snapshots0 = metric(primary, 'gatehouse_replication_answers_total{kind="snapshot"}')
    sent0 = metric(primary, "gatehouse_replication_changes_sent_total")
    admin = requests.Session()
    admin.headers.update(ADMIN)
    times = []
    for key in keys:
        start = time.perf_counter()
        r = admin.delete(f"http://127.0.0.1:{primary}/admin/v1/api-keys/{key['id']}")
        assert r.status_code == 204, r.status_code
        for port in replicas:
            while status(port, key["key"]) != 401:
                pass
        times.append((time.perf_counter() - start) * 1000)
    target = version0 + len(keys)
    while metric(meter, "gatehouse_state_version") < target:
        time.sleep(0.01)
    time.sleep(0.2)                       # the meter's next long-poll is sent
    down1, up1 = proxied_bytes(control)
    moved = metric(meter, "gatehouse_state_version") - version0
    answers = metric(primary, 'gatehouse_replication_answers_total{kind="changes"}') - changes0
    snapshots = metric(primary, 'gatehouse_replication_answers_total{kind="snapshot"}') - snapshots0
    sent = metric(primary, "gatehouse_replication_changes_sent_total") - sent0
    times.sort()
    q = lambda f: times[min(len(times) - 1, int(f * len(times)))]
    followers = len(replicas) + 1
    for name, value in [
        ("revocations", len(times)), ("prop_p50", q(0.5)), ("prop_p99", q(0.99)),
        ("prop_max", times[-1]), ("bytes_down_per_change", (down1 - down0) / moved),
        ("bytes_up_per_change", (up1 - up0) / moved), ("meter_versions", moved),
        ("answers_per_change_per_replica", answers / len(keys) / followers),
        ("changes_sent_per_replica", sent / followers), ("snapshots_during", snapshots)]:
        print(run, name, f"{value:.4g}" if isinstance(value, float) else value)

def summary(path):
    rows = {}
    meta = {}
    rounds = {}
    for line in open(path):
        run, name, value = line.split(maxsplit=2)
        value = value.strip()
        if run == "meta":
            meta[name] = value
        elif name == "rps":
            rnd, rps = value.split()
            rounds.setdefault(run, {})[rnd] = float(rps)
        else:
            rows.setdefault(run, {}).setdefault(name, []).append(float(value))
    print(f"src/revocation.rs sha256 {meta['revocation_sha256']}..., commit {meta['commit']}; "
          f"{meta['config']}")
    if "compare" in meta:
        print(f"compare (the same seeded store, every node this binary): {meta['compare']}")
    if "seeding" in meta:
        print(f"seeding (examples/seed_revoked_keys): {meta['seeding']}")
    runs = [r for r in ("empty", "seeded", "compare") if r in rows]
    med = lambda run, name: statistics.median(rows[run][name])
    mib = lambda kib: kib / 1024
    lines = [
        ("primary first start to /readyz (seeded: scans records, writes revoked-api-keys.bin)",
         lambda r: f"{med(r, 'primary_first_start') * 1000:.0f} ms", ""),
        ("primary cold start to /readyz (second start)",
         lambda r: f"{med(r, 'primary_cold_start') * 1000:.0f} ms", "≤ 500 ms"),
        ("of which: state loaded (the node's log) / sled's own open",
         lambda r: f"{med(r, 'primary_state_loaded'):.0f} / {med(r, 'primary_store_open'):.0f} ms", ""),
        ("primary RSS when ready",
         lambda r: f"{mib(med(r, 'primary_rss_ready')):.0f} MiB", ""),
        ("replica first sync, spawn to /readyz (median [min..max])",
         lambda r: f"{med(r, 'replica_sync') * 1000:.0f} ms "
                   f"[{min(rows[r]['replica_sync']) * 1000:.0f}..{max(rows[r]['replica_sync']) * 1000:.0f}]", ""),
        ("snapshot on the wire (meter replica's first sync)",
         lambda r: f"{med(r, 'snapshot_bytes') / 1e6:.1f} MB", ""),
        ("revocation visible on every replica: p50 / p99 / max",
         lambda r: f"{med(r, 'prop_p50'):.1f} / {med(r, 'prop_p99'):.1f} / {med(r, 'prop_max'):.1f} ms",
         "p99 ≤ 100 ms"),
        ("bytes per change per replica, primary → replica",
         lambda r: f"{med(r, 'bytes_down_per_change'):.0f} B", "≤ 4096 B"),
        ("bytes per change per replica, replica → primary",
         lambda r: f"{med(r, 'bytes_up_per_change'):.0f} B", ""),
        ("`changes` answers per change per replica",
         lambda r: f"{med(r, 'answers_per_change_per_replica'):.2f}", ""),
        ("primary RSS after the revocations (peak)",
         lambda r: f"{mib(med(r, 'primary_rss')):.0f} MiB ({mib(med(r, 'primary_hwm')):.0f})",
         "≤ 150 MiB"),
        ("primary RSS after listing one application's keys",
         lambda r: f"{mib(med(r, 'primary_rss_listed')):.0f} MiB", ""),
        ("replica RSS after the revocations, median / max (max peak)",
         lambda r: f"{mib(statistics.median(rows[r]['replica_rss'])):.0f} / "
                   f"{mib(max(rows[r]['replica_rss'])):.0f} MiB ({mib(max(rows[r]['replica_hwm'])):.0f})",
         "≤ 100 MiB"),
    ]
    if rounds:
        lines.append(("verify, reused token, on replica-1 (median req/s)",
                      lambda r: f"{statistics.median(rounds[r].values()):.0f}", ""))
    print("| what | " + " | ".join(runs) + " | goal |")
    print("|---|" + "---|" * len(runs) + "---|")
    for label, fmt, goal in lines:
        cells = []
        for r in runs:
            try:
                cells.append(fmt(r))
            except (KeyError, ValueError):
                cells.append("-")
        print(f"| {label} | " + " | ".join(cells) + f" | {goal} |")
    for run in ("seeded", "compare"):
        if "empty" in rounds and run in rounds:
            ratios = [rounds[run][k] / rounds["empty"][k] for k in rounds["empty"] if k in rounds[run]]
            print(f"\nverify on a {run} replica / on an empty one, within each round: median "
                  f"{statistics.median(ratios):.1%} [{min(ratios):.1%} .. {max(ratios):.1%}] "
                  f"over {len(ratios)} rounds (goal: ≥ 95%)")

if __name__ == "__main__":
    globals()[sys.argv[1]](*sys.argv[2:])
PY
helper() { taskset -c 1 python3 "$work/scale.py" "$@"; }
status_kib() { awk -v k="$2:" '$1 == k {print $2}' "/proc/$1/status"; }
# spawn DIR LOG PORT [ENV...]: sets SPAWNED_PID, SPAWNED_SECONDS
spawn() {
  local out
  out=$(helper spawn "$@") || exit 1
  read -r SPAWNED_PID SPAWNED_SECONDS <<<"$out"
  pids+=("$SPAWNED_PID")
}
stop() {
  kill "$1"
  for _ in $(seq 300); do kill -0 "$1" 2>/dev/null || return 0; sleep 0.1; done
  echo "node $1 did not stop" >&2; exit 1
}

if (( REVOKED > 0 || APPS > 0 )); then
  mkdir -p "$work/seeded/primary"
  /usr/bin/time -f "%e %M" -o "$work/seed.time" \
    "$RELEASE/examples/seed_revoked_keys" "$work/seeded/primary/data" "$REVOKED" --applications "$APPS"
  read -r seconds kib <"$work/seed.time"
  echo "(seeding took $seconds s, peak RSS $(( kib / 1024 )) MiB)"
  echo "meta seeding $seconds s, peak RSS $(( kib / 1024 )) MiB" >>"$results"
fi

# fleet RUN: a primary (started twice), REPLICAS replicas and the meter
# replica behind the counting proxy; leaves them running. Sets PORT_RUN (a
# replica's port) and TOKEN_RUN.
fleet() {
  local run=$1 dir=$work/$1 port issuer pid ports=() bin=()
  [[ $run != compare ]] || bin=("BIN=$COMPARE_BIN")
  port=$(free_port)
  issuer="http://127.0.0.1:$port"
  mkdir -p "$dir/primary"
  spawn "$dir/primary" "$dir/primary.log" "$port" "${bin[@]}" "GATEHOUSE_ISSUER=$issuer"
  echo "$run primary_first_start $SPAWNED_SECONDS" >>"$results"
  echo "($run: primary's first start: $SPAWNED_SECONDS s)"
  stop "$SPAWNED_PID"
  spawn "$dir/primary" "$dir/primary.log" "$port" "${bin[@]}" "GATEHOUSE_ISSUER=$issuer"
  local primary_pid=$SPAWNED_PID primary_port=$port
  echo "$run primary_cold_start $SPAWNED_SECONDS" >>"$results"
  # The node's own account of that start: state loaded, of which sled's open.
  sed -n 's/.*state loaded in \([0-9]*\) ms (the store opened in \([0-9]*\) ms).*/\1 \2/p' "$dir/primary.log" | tail -n 1 |
    while read -r loaded opened; do
      echo "$run primary_state_loaded $loaded" >>"$results"
      echo "$run primary_store_open $opened" >>"$results"
    done
  echo "$run primary_rss_ready $(status_kib "$primary_pid" VmRSS)" >>"$results"
  echo "($run: primary's second start: $SPAWNED_SECONDS s)"
  helper prepare "$primary_port" "$REVOCATIONS" "$dir/prepared.json"

  local env=("${bin[@]}" GATEHOUSE_ROLE=replica "GATEHOUSE_ISSUER=$issuer")
  local replica_pids=()
  for i in $(seq "$REPLICAS"); do
    port=$(free_port)
    mkdir -p "$dir/replica-$i"
    spawn "$dir/replica-$i" "$dir/replica-$i.log" "$port" "${env[@]}" "GATEHOUSE_PRIMARY_URL=$issuer"
    replica_pids+=("$SPAWNED_PID")
    ports+=("$port")
    echo "$run replica_sync $SPAWNED_SECONDS" >>"$results"
  done
  echo "($run: $REPLICAS replicas synced)"

  local listen control meter
  listen=$(free_port) control=$(free_port) meter=$(free_port)
  taskset -c 1 python3 "$work/scale.py" proxy "$listen" "$primary_port" "$control" &
  pids+=($!)
  for _ in $(seq 100); do python3 -c "import socket,sys; socket.create_connection(('127.0.0.1',$control))" 2>/dev/null && break; sleep 0.05; done
  mkdir -p "$dir/meter"
  spawn "$dir/meter" "$dir/meter.log" "$meter" "${env[@]}" "GATEHOUSE_PRIMARY_URL=http://127.0.0.1:$listen"
  echo "$run snapshot_bytes $(helper counted "$control" | cut -d' ' -f1)" >>"$results"

  helper revoke "$run" "$primary_port" "$(IFS=,; echo "${ports[*]}")" "$meter" "$control" "$dir/prepared.json" >>"$results"
  echo "$run primary_rss $(status_kib "$primary_pid" VmRSS)" >>"$results"
  echo "$run primary_hwm $(status_kib "$primary_pid" VmHWM)" >>"$results"
  helper list_keys "$primary_port"
  echo "$run primary_rss_listed $(status_kib "$primary_pid" VmRSS)" >>"$results"
  for pid in "${replica_pids[@]}"; do
    echo "$run replica_rss $(status_kib "$pid" VmRSS)" >>"$results"
    echo "$run replica_hwm $(status_kib "$pid" VmHWM)" >>"$results"
  done
  echo "($run: $REVOCATIONS revocations measured)"
  eval "PORT_$run=${ports[0]}"
  eval "TOKEN_$run=\$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))[\"token\"])' \"\$dir/prepared.json\")"
}

mkdir -p "$work/empty"
fleet empty
if [[ -n "$COMPARE_BIN" ]]; then
  mkdir -p "$work/compare"
  cp -a "$work/seeded/primary" "$work/compare/primary"
fi
if (( REVOKED > 0 || APPS > 0 )); then fleet seeded; fi
if [[ -n "$COMPARE_BIN" ]]; then fleet compare; fi

if [[ -n "${PORT_seeded:-}" ]]; then
  for round in $(seq 1 "$ROUNDS"); do
    for run in empty seeded ${COMPARE_BIN:+compare}; do
      rps=$(TOKEN=$(eval echo \$TOKEN_$run) taskset -c 1 wrk -t1 -c32 -d"${DURATION}s" -s bench/forward_auth.lua \
        "http://127.0.0.1:$(eval echo \$PORT_$run)/api/verify" | awk '/^Requests\/sec/ {print $2}')
      echo "$run rps $round $rps" >>"$results"
    done
  done
fi

# Replicas hold no signing key here, so each warns once that it issues no
# tokens: expected, and left out.
for log in "$work"/*/*.log; do
  if grep -E ' (WARN|ERROR) ' "$log" | grep -qv -e 'no issuer configured' -e 'which this replica does not hold'; then
    echo "== ${log#"$work"/}:"
    grep -E ' (WARN|ERROR) ' "$log" | grep -v -e 'no issuer configured' -e 'which this replica does not hold' | sort | uniq -c | head -5
  fi
done
echo
helper summary "$results"
