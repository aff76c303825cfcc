#!/usr/bin/env bash
# Create .venv and install SSSSegment with pinned dependencies (CPU torch; sam2 without CUDA).
# Idempotent: a second run only checks. Usage: scripts/setup.sh [VENV_DIR]
set -euo pipefail
cd "$(dirname "$0")/.."
VENV="${1:-.venv}"
PY="${PYTHON:-python3}"
STAMP="$VENV/.sssseg-setup-$(sha256sum scripts/requirements.txt scripts/setup.sh pyproject.toml | sha256sum | cut -c1-16)"
if [ -f "$STAMP" ]; then
  echo "[setup] $VENV is up to date"; exit 0
fi
echo "[setup] creating $VENV"
"$PY" -m venv "$VENV"
PIP=("$VENV/bin/python" -m pip --disable-pip-version-check)
"${PIP[@]}" install -q --upgrade "pip>=24" wheel setuptools
echo "[setup] torch 2.13.0 (CPU build; a loose pin would pull a multi-GB CUDA build)"
"${PIP[@]}" install -q torch==2.13.0
echo "[setup] pinned requirements"
"${PIP[@]}" install -q -r scripts/requirements.txt
echo "[setup] sam2 1.1.0 without build isolation, deps or CUDA extension"
SAM2_BUILD_CUDA=0 "${PIP[@]}" install -q --no-build-isolation --no-deps sam2==1.1.0
echo "[setup] no-deps pins of requirements.txt (LiteMedSAM weights)"
sed -n 's/^# no-deps: //p' scripts/requirements.txt | xargs -r "${PIP[@]}" install -q --no-deps
echo "[setup] SSSSegment (editable)"
# setuptools prints an "Editable installation" InformationOnly box for every editable install;
# silence that one message only (PYTHONWARNINGS matches the start of the message).
PYTHONWARNINGS="ignore:Editable installation" "${PIP[@]}" install -q --no-build-isolation --no-deps -e .
"$VENV/bin/python" -c "import torch, sam2, SimpleITK, SSSSegmentLib; print('[setup] ok: torch', torch.__version__)"
rm -f "$VENV"/.sssseg-setup-*
touch "$STAMP"
