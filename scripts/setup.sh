#!/usr/bin/env bash
# Create .venv and install SSSSegment with pinned dependencies (CPU torch; sam2 without CUDA).
# Idempotent: a second run only checks. Usage: scripts/setup.sh [VENV_DIR]
set -euo pipefail
cd "$(dirname "$0")/.."
VENV="${1:-.venv}"
PY="${PYTHON:-python3}"
# dciodvfy (Debian's dicom3tools) validates the DICOM SEG in Testing/test_dicom_seg*.py. Installed with apt-get
# when missing and apt is usable (root or passwordless sudo); otherwise the two dciodvfy tests skip, saying why.
install_dciodvfy() {
  command -v dciodvfy >/dev/null 2>&1 && return 0
  local root=()
  if [ "$(id -u)" != 0 ]; then
    if command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then root=(sudo -n); else
      echo "[setup] note: dciodvfy is missing and apt-get needs root (no passwordless sudo): the dciodvfy tests will skip"
      return 0
    fi
  fi
  if ! command -v apt-get >/dev/null 2>&1; then
    echo "[setup] note: dciodvfy is missing and this system has no apt-get: the dciodvfy tests will skip"; return 0
  fi
  echo "[setup] dicom3tools (dciodvfy, the DICOM validator) with apt-get"
  export DEBIAN_FRONTEND=noninteractive
  "${root[@]}" apt-get install -y -qq dicom3tools >/dev/null 2>&1 \
    || { "${root[@]}" apt-get update -qq >/dev/null && "${root[@]}" apt-get install -y -qq dicom3tools >/dev/null; } \
    || echo "[setup] WARNING: apt-get could not install dicom3tools: the dciodvfy tests will skip"
}
STAMP="$VENV/.sssseg-setup-$(sha256sum scripts/requirements.txt scripts/setup.sh pyproject.toml | sha256sum | cut -c1-16)"
if [ -f "$STAMP" ]; then
  install_dciodvfy
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
install_dciodvfy
"$VENV/bin/python" -c "import torch, sam2, SimpleITK, SSSSegmentLib; print('[setup] ok: torch', torch.__version__)"
rm -f "$VENV"/.sssseg-setup-*
touch "$STAMP"
