#!/usr/bin/env bash
# The test command: installs the real peers the integration tests talk to
# (Python OAuth clients, a WebDAV server, Caddy), then runs the whole suite.
# With them present, tests that need them fail instead of skipping.
set -euo pipefail
cd "$(dirname "$0")/.."

if ! python3 -c "import authlib, jwt, requests, wsgidav, cheroot, prometheus_client" 2>/dev/null; then
  echo "tests/run.sh: installing Python test peers" >&2
  python3 -m pip install --quiet --disable-pip-version-check -r tests/interop/requirements.txt
fi

if ! command -v caddy >/dev/null 2>&1; then
  echo "tests/run.sh: installing caddy" >&2
  sudo_cmd=""
  [ "$(id -u)" -ne 0 ] && sudo_cmd="sudo"
  $sudo_cmd apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo_cmd apt-get install -y -qq caddy >/dev/null
fi

export GATEHOUSE_REQUIRE_INTEROP=1
cargo test --locked "$@"
