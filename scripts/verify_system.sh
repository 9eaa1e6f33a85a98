#!/usr/bin/env bash
# Pre-flight check of a trading host: a thin wrapper over `latentspeed verify`.
#   scripts/verify_system.sh [--json] [--cores LIST] [--ports 9000,5556,5557]
# Exit 0 unless a check FAILs; WARNs are expected on an untuned machine.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
LATENTSPEED="${LATENTSPEED:-$(command -v latentspeed || echo "$here/../.venv/bin/latentspeed")}"
exec "$LATENTSPEED" verify "$@"
