#!/usr/bin/env bash
# Create (or update) the project's virtual environment with pip.
#   bash scripts/bootstrap.sh [VENV_DIR]      (default: .venv)
# Environment knobs:
#   PYTHON       interpreter to build the venv with (default: python3; 3.10-3.12)
#   TORCH_SPEC   torch/torchvision requirement (default: the versions pinned below, which pip
#                takes from a local wheel cache where one is configured)
# torch is installed first so that sam2, built without build isolation and without its optional
# CUDA extension (SAM2_BUILD_CUDA=0), compiles against it instead of downloading another torch.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV="${1:-.venv}"
PYTHON="${PYTHON:-python3}"
TORCH_SPEC="${TORCH_SPEC:-torch==2.14.1 torchvision==0.29.1}"

if [ ! -x "$VENV/bin/python" ]; then
  echo "creating $VENV with $($PYTHON --version)"
  "$PYTHON" -m venv "$VENV"
fi
PIP=("$VENV/bin/python" -m pip --disable-pip-version-check)
"${PIP[@]}" install -q --upgrade pip setuptools wheel
# shellcheck disable=SC2086
"${PIP[@]}" install -q $TORCH_SPEC
SAM2_BUILD_CUDA=0 "${PIP[@]}" install -q --no-build-isolation "sam2==1.1.0"
"${PIP[@]}" install -q -e ".[test]"
"$VENV/bin/python" -m ipykernel install --sys-prefix --name python3 --display-name "Python 3 (study)" >/dev/null
touch "$VENV/.installed"
echo "environment ready: $VENV"
