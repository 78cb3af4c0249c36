#!/usr/bin/env bash
# One-shot GPU benchmark for a lent device machine (issue 5), a few minutes in all:
# SK_1RSB at N = 200, 1000, 2000 (B = 2000, float32, median of 3 after a warm-up) on CUDA,
# with the per-site baseline of benchmarks/persite.py at N = 200, and the logsigmoid floor.
#
#     bash benchmarks/gpu.sh            # from the repository root of the device machine
#
# Writes bench.json, the log and nvidia-smi's description of the card into $OUT (the device
# tool's output folder) or, without it, ./bench_gpu. It installs nothing that needs the
# network: torch with CUDA and the project's dependencies must be there; the package itself
# is installed editable (no dependencies, no build isolation) only if it is not importable.
# Costs that run out of GPU memory (the training step at N = 2000 keeps the hidden layers
# of every pair for backward) are recorded as errors in bench.json and the run goes on.
# COMPILED=1 also times model.enable_compile() (compilation can take minutes).
set -euo pipefail
cd "$(dirname "$0")/.."

out_dir="${OUT:-./bench_gpu}"
mkdir -p "$out_dir"

python - <<'EOF'
import sys

import torch

missing = []
for name in ("sympy", "jinja2", "numpy", "click"):
    try:
        __import__(name)
    except ImportError:
        missing.append(name)
if missing:
    sys.exit(f"gpu.sh: missing dependencies {missing}; install them first")
if not torch.cuda.is_available():
    sys.exit(f"gpu.sh: torch {torch.__version__} sees no CUDA device")
print(f"torch {torch.__version__}, CUDA {torch.version.cuda}, {torch.cuda.get_device_name(0)}")
EOF

if ! python -c "import arnn_gen.templates, arnn_gen.bench" 2>/dev/null; then
    pip install --quiet --no-deps --no-build-isolation -e .
fi

nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.max.sm \
    --format=csv >"$out_dir/nvidia_smi.csv" 2>/dev/null || true

extra=()
if [[ "${COMPILED:-0}" == "1" ]]; then
    extra+=(--compiled)
fi

python -m arnn_gen.bench \
    --device cuda \
    --architectures SK_1RSB \
    --sizes 200 1000 2000 \
    --persite-max-n 200 \
    --repeats 3 \
    --out "$out_dir" \
    ${extra[@]+"${extra[@]}"} 2>&1 | tee "$out_dir/bench_gpu.log"
