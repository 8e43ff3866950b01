#!/usr/bin/env bash
# Sets up .venv if needed, then runs the whole test suite on three pytest-xdist workers (each
# test file on one worker, so module fixtures are built once). Much of a test's time is
# single-threaded graph tracing, so on this 2-core machine a third worker fills idle time.
set -euo pipefail
cd "$(dirname "$0")/.."
bash tools/bootstrap.sh
export TF_USE_LEGACY_KERAS=1 TF_CPP_MIN_LOG_LEVEL=2
exec .venv/bin/python -m pytest -q -n 3 --dist loadfile "$@"
