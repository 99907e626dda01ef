#!/bin/bash
# Quick start, command 2: set everything up, lint and type-check, then run the unit and
# integration tests. Integration tests boot real Debian kernels under QEMU (TCG);
# `-m "not integration"` skips them. Extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")"
scripts/setup.sh
echo "run-tests: ruff check" >&2
.venv/bin/ruff check pinrig tests scripts
echo "run-tests: mypy" >&2
.venv/bin/mypy
exec .venv/bin/python -m pytest -ra "$@"
