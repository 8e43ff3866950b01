#!/usr/bin/env bash
# Sets up .venv if needed, then runs the whole test suite (pytest.ini: two pytest-xdist workers,
# one per core of this machine, each test file on one worker so module fixtures are built once).
set -euo pipefail
cd "$(dirname "$0")/.."
bash tools/bootstrap.sh
export TF_USE_LEGACY_KERAS=1 TF_CPP_MIN_LOG_LEVEL=2
exec .venv/bin/python -m pytest -q "$@"
