#!/bin/bash
# Quick start, command 1: set everything up, then run the pin matrix on Debian's 6.1 kernel.
# Extra arguments go to `rig run` (e.g. --junit out.xml).
set -euo pipefail
cd "$(dirname "$0")"
scripts/setup.sh
exec .venv/bin/rig run "${PINRIG_KERNEL:-debian-6.1}" --suite "${PINRIG_SUITE:-pin-matrix}" "$@"
