#!/usr/bin/env bash
# Creates .venv (Python 3.11) with patchwork_tf and its test extra installed, once.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3.11}
if [ ! -x .venv/bin/python ]; then
  "$PYTHON" -m venv .venv
fi
if ! .venv/bin/python -c "import patchwork_tf, tensorflow, tf_keras, tf_agents, pytest, xdist" 2>/dev/null; then
  .venv/bin/python -m pip install --quiet --upgrade pip
  .venv/bin/python -m pip install --quiet -e ".[test]"
fi
