#!/usr/bin/env bash
# The project's test command (make test; .ci/run calls it):
#  1. the smoke study (params/smoke.yaml: the real pipeline on the embedded sample with RANDOM
#     weights), which renders reports/smoke/NN_*.ipynb;
#  2. one pytest run: unit and integration tests, nbval executing every committed notebook with
#     its default parameters, and nbval re-running the rendered notebooks 04-05 and comparing the
#     cells marked "# NBVAL_CHECK_OUTPUT" with the smoke study's outputs (tests/nbval_sanitize.cfg
#     masks what legitimately varies between runs).
set -euo pipefail
cd "$(dirname "$0")/.."
VENV="${1:-.venv}"
PY="$VENV/bin/python"
"$PY" -m helpers.run params/smoke.yaml
exec "$PY" -m pytest tests notebooks reports/smoke/04_metrics.ipynb reports/smoke/05_figures_tables.ipynb \
  --nbval-lax --nbval-sanitize-with tests/nbval_sanitize.cfg --nbval-cell-timeout 1200
