#!/usr/bin/env bash
# Creates .venv and installs dualmind with its dev and cluster extras.
#
# Why the dance with torch: on a machine without CUDA, a plain `pip install torch`
# (or any package asking for a newer torch) pulls a multi-GB CUDA build. We install
# the CPU build first, then pin whatever torch got installed in a constraint file so
# nothing that follows can replace it.
set -euo pipefail
PYTHON=${PYTHON:-python3}
VENV=${VENV:-.venv}
TORCH_CPU_VERSION=${TORCH_CPU_VERSION:-2.13.0}
PIP="$VENV/bin/pip"

if [[ ! -x "$VENV/bin/python" ]]; then
  echo "[setup] creating $VENV"
  "$PYTHON" -m venv "$VENV"
fi
"$PIP" install -q --upgrade pip

if ! "$VENV/bin/python" -c 'import torch' 2>/dev/null; then
  if command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi >/dev/null 2>&1; then
    echo "[setup] CUDA device found: installing the default (CUDA) torch"
    "$PIP" install -q torch
  else
    echo "[setup] no CUDA device: installing the CPU torch==$TORCH_CPU_VERSION"
    "$PIP" install -q "torch==$TORCH_CPU_VERSION"
  fi
fi
TORCH_VERSION=$("$VENV/bin/python" -c 'import torch; print(torch.__version__)')
echo "torch==${TORCH_VERSION%%+*}" > "$VENV/constraints.txt"
echo "[setup] torch $TORCH_VERSION pinned in $VENV/constraints.txt"

EXTRAS="dev,cluster"
if [[ "${1:-}" == "--bench" ]]; then EXTRAS="dev,cluster,bench"; fi
echo "[setup] installing dualmind[$EXTRAS]"
"$PIP" install -q -c "$VENV/constraints.txt" -e ".[$EXTRAS]"
if [[ "$EXTRAS" == *bench* ]]; then
  # litgpt pins huggingface-hub below what transformers needs; its model code (all the
  # throughput benchmark uses) works with the newer hub, so restore transformers' requirement.
  "$PIP" install -q -c "$VENV/constraints.txt" -U "huggingface-hub>=1.31" 2>&1 | grep -v "dependency conflicts\|litgpt" || true
fi
# torchvision (pulled by some extras) has no CPU build that imports beside this
# torch and breaks `import lightning`; dualmind never needs it.
if "$PIP" show torchvision >/dev/null 2>&1; then
  echo "[setup] removing torchvision (breaks lightning with this torch; not needed)"
  "$PIP" uninstall -q -y torchvision
fi
AFTER=$("$VENV/bin/python" -c 'import torch; print(torch.__version__)')
if [[ "$AFTER" != "$TORCH_VERSION" ]]; then
  echo "[setup] ERROR: torch changed from $TORCH_VERSION to $AFTER during install" >&2
  exit 1
fi
# The visualiser's browser test renders its HTML report in headless Chromium. Debian ships it;
# install it when missing and we may (root, apt present). Without it that one test says why it
# cannot run instead of passing.
if ! command -v chromium >/dev/null 2>&1 && command -v apt-get >/dev/null 2>&1 && [[ $(id -u) == 0 ]]; then
  echo "[setup] installing Debian's chromium (headless browser for the report test)"
  apt-get install -y -q chromium >/dev/null 2>&1 \
    || { apt-get update -q >/dev/null 2>&1 && apt-get install -y -q chromium >/dev/null 2>&1; } \
    || echo "[setup] warning: could not install chromium; the browser test will be skipped"
fi
echo "[setup] done: $("$VENV/bin/python" -c 'import torch, lightning, hydra; print(f"torch {torch.__version__}, lightning {lightning.__version__}, hydra {hydra.__version__}")')"
