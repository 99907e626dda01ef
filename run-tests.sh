#!/bin/bash
# Quick start, command 2: set everything up, then run the unit and integration tests.
# Integration tests boot real Debian kernels under QEMU (TCG); `-m "not integration"` skips them.
set -euo pipefail
cd "$(dirname "$0")"
scripts/setup.sh
exec .venv/bin/python -m pytest -ra "$@"
