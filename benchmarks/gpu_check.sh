#!/usr/bin/env bash
# One command for the day a GPU is lent: checks the attention backends, measures bf16 training
# throughput and MFU, the decoder's cross-attention kernels and a 2-step fsdp2 run on one CUDA
# GPU, and writes the figures to benchmarks/RESULTS.md (section "GPU").
#
#   bash benchmarks/gpu_check.sh              # from a fresh clone: installs, then checks
#   bash benchmarks/gpu_check.sh --no-write   # print the figures only
#   bash benchmarks/gpu_check.sh --help       # every option (passed on to gpu_check.py)
#
# Without a CUDA GPU it stops before installing anything: one line on stderr, exit status 2.
# Installs like `make setup` (.venv with the CUDA torch, dualmind and its dev extra), then tries
# the GPU extra's flash-attn and xformers, each bounded in time: a package with no prebuilt wheel
# for this torch/CUDA is reported as not installed and its backend skipped, never built for an
# hour. The checks stop starting new measurements after --budget-s (default 360 s), and the fsdp2
# run is cut at 120 s: an installed machine should finish in under 8 minutes (not yet measured).
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=${VENV:-.venv}
INSTALL_TIMEOUT_S=${INSTALL_TIMEOUT_S:-240}

usage() {
  sed -n '2,15p' "$0" | sed 's/^# \{0,1\}//'
  echo
  echo "Options (gpu_check.py): --shape NAME --seq-len N --batch N --steps N --warmup N"
  echo "  --budget-s S --no-write; environment: VENV (default .venv), INSTALL_TIMEOUT_S"
  echo "  (default 240 s per optional GPU package), GPU_CHECK_NO_INSTALL=1 (use the venv as is)"
}
for arg in "$@"; do
  if [[ "$arg" == "-h" || "$arg" == "--help" ]]; then usage; exit 0; fi
done

no_gpu() { echo "gpu_check: no CUDA GPU: $1; these checks measure GPU kernels and need one" >&2; exit 2; }
if [[ -n "${CUDA_VISIBLE_DEVICES+set}" && ( -z "$CUDA_VISIBLE_DEVICES" || "$CUDA_VISIBLE_DEVICES" == "-1" ) ]]; then
  no_gpu "CUDA_VISIBLE_DEVICES='${CUDA_VISIBLE_DEVICES}' hides every GPU"
fi
command -v nvidia-smi >/dev/null 2>&1 || no_gpu "nvidia-smi is not installed (no NVIDIA driver)"
nvidia-smi -L 2>/dev/null | grep -q "^GPU " || no_gpu "nvidia-smi lists no GPU"

if [[ "${GPU_CHECK_NO_INSTALL:-0}" != 1 ]]; then
  make setup VENV="$VENV" >&2
  PIP=("$VENV/bin/pip" install -q -c "$VENV/constraints.txt")
  # xformers: a wheel per torch version; flash-attn: its setup fetches a prebuilt wheel for this
  # torch/CUDA/Python or else compiles CUDA code (an hour): bounded, and a miss is reported.
  for pkg in "xformers>=0.0.28" "flash-attn>=2.6"; do
    if ! timeout "$INSTALL_TIMEOUT_S" "${PIP[@]}" --no-build-isolation "$pkg" >&2 2>&1; then
      echo "[gpu_check] $pkg not installed (no wheel for this torch/CUDA within" \
           "${INSTALL_TIMEOUT_S} s): its backend is reported as skipped" >&2
    fi
  done
fi
exec "$VENV/bin/python" benchmarks/gpu_check.py "$@"
