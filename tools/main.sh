#!/usr/bin/env bash
# Sets up .venv if needed, then runs the main job: stages 1 to 3, evaluation and export on the
# embedded synthetic detection benchmark (experiments/synthetic_det.flags). Extra flags pass on.
set -euo pipefail
cd "$(dirname "$0")/.."
bash tools/bootstrap.sh
export TF_USE_LEGACY_KERAS=1 TF_CPP_MIN_LOG_LEVEL=2
exec .venv/bin/python -m patchwork_tf.train --flagfile=experiments/synthetic_det.flags "$@"
