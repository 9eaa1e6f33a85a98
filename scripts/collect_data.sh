#!/usr/bin/env bash
# One monitored benchmark run of the engine on the mock exchange: `scripts/collect_data.sh 300`.
# A thin wrapper over `latentspeed collect` (run it with --help for every option):
#   scripts/collect_data.sh [DURATION_S] [latentspeed collect options...]
# e.g. scripts/collect_data.sh 300 --out /opt/latentspeed/data --network-core 6 --strategy-core 7
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
# Prefer the latentspeed on PATH, else the repository's virtualenv.
LATENTSPEED="${LATENTSPEED:-$(command -v latentspeed || echo "$here/../.venv/bin/latentspeed")}"
duration=300
if [ $# -gt 0 ] && [[ "$1" =~ ^[0-9]+([.][0-9]+)?$ ]]; then duration="$1"; shift; fi
exec "$LATENTSPEED" collect --duration "$duration" "$@"
