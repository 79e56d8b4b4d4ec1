#!/usr/bin/env bash
# The test command: installs the real peers the integration tests talk to
# (Python OAuth clients, a WebDAV server and webdavclient3, Caddy, nginx,
# rclone, cadaver, Chromium and Node for the console's browser tests),
# then runs the whole suite.
# With them present, tests that need them fail instead of skipping.
set -euo pipefail
cd "$(dirname "$0")/.."

if ! python3 -c "import authlib, jwt, requests, wsgidav, cheroot, prometheus_client, yaml, kubernetes_validate, check_jsonschema, schemathesis, webdav3" 2>/dev/null; then
  echo "tests/run.sh: installing Python test peers" >&2
  python3 -m pip install --quiet --disable-pip-version-check -r tests/interop/requirements.txt
fi

missing=()
command -v caddy >/dev/null 2>&1 || missing+=(caddy)
command -v nginx >/dev/null 2>&1 || [ -x /usr/sbin/nginx ] || missing+=(nginx)
command -v openssl >/dev/null 2>&1 || missing+=(openssl)
command -v faketime >/dev/null 2>&1 || missing+=(faketime)
command -v rclone >/dev/null 2>&1 || missing+=(rclone)
command -v cadaver >/dev/null 2>&1 || missing+=(cadaver)
[ -x /usr/bin/chromium ] || missing+=(chromium)
command -v node >/dev/null 2>&1 || missing+=(nodejs)
command -v npm >/dev/null 2>&1 || missing+=(npm)
if [ ${#missing[@]} -gt 0 ]; then
  echo "tests/run.sh: installing ${missing[*]}" >&2
  sudo_cmd=""
  [ "$(id -u)" -ne 0 ] && sudo_cmd="sudo"
  $sudo_cmd apt-get update -qq
  # Packages must not start their system services here.
  DEBIAN_FRONTEND=noninteractive RUNLEVEL=1 $sudo_cmd apt-get install -y -qq "${missing[@]}" >/dev/null
fi
export PATH="$PATH:/usr/sbin"

# The console's browser tests: playwright-core (driving the Chromium above;
# it downloads no browser of its own) and axe-core, as locked.
if ! (cd tests/console && npm ls --omit=dev >/dev/null 2>&1); then
  echo "tests/run.sh: installing the console test packages (npm ci)" >&2
  (cd tests/console && npm ci --no-audit --no-fund --loglevel=error)
fi

export GATEHOUSE_REQUIRE_INTEROP=1
# Each skipped peer test writes a line here (tests/api/helpers.rs); with
# GATEHOUSE_REQUIRE_INTEROP a missing peer fails instead, so CI reads 0.
export GATEHOUSE_SKIP_LOG="${TMPDIR:-/tmp}/gatehouse-skips.$$"
trap 'rm -f "$GATEHOUSE_SKIP_LOG"' EXIT
cargo test --locked "$@"
echo "tests/run.sh: $(cat "$GATEHOUSE_SKIP_LOG" 2>/dev/null | wc -l) peer tests skipped"
cat "$GATEHOUSE_SKIP_LOG" 2>/dev/null || true
# The OpenAPI contract, against a live node (CI has built the binary already).
cargo build --release --locked --bin gatehouse
tests/schemathesis.sh
