#!/usr/bin/env bash
# One-time set-up on a fresh Debian/Ubuntu machine: Debian packages, npm dependencies, fixtures.
#   bash scripts/setup.sh            (then: npx bootgate demo)
#   bash scripts/setup.sh --no-demo  (CI: the tests build their own fixtures)
set -euo pipefail
cd "$(dirname "$0")/.."
SUDO=""
[ "$(id -u)" = 0 ] || SUDO="sudo"
mapfile -t PKGS < <(grep -v '^#' scripts/debian-packages.txt | grep -v '^$')
missing=()
for p in "${PKGS[@]}"; do dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" || missing+=("$p"); done
if [ "${#missing[@]}" -gt 0 ]; then
  echo "setup: installing ${missing[*]}" >&2
  $SUDO env DEBIAN_FRONTEND=noninteractive apt-get update -qq
  $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
if ! command -v node >/dev/null || ! node -e 'process.exit(+process.versions.node.split(".")[0] >= 20 ? 0 : 1)'; then
  echo "setup: Node.js 20 or newer is needed (apt-get install nodejs npm on Debian 13 / Ubuntu 24.04)" >&2
  exit 2
fi
npm ci --no-audit --no-fund --loglevel=error
if [ "${1:-}" != "--no-demo" ] && [ -f scripts/build-fixtures-gen1.sh ]; then
  bash scripts/build-fixtures-gen1.sh
  bash scripts/build-fixtures-gen2.sh
fi
