#!/usr/bin/env bash
# One-shot GPU check and benchmark on a CUDA machine. Part durations on an NVIDIA H200
# (torch 2.11, benchmarks/results/2026-11-27-h200-* and 2026-11-28-h200): tests 3 to 3.5 min,
# compiled 3 min, anneal 3 min for its two default runs and 6 min with ANNEAL_BETAS=39 (one
# float32 compiled run, the whole protocol), eager about 1.5 min. Parts run in the order of
# PARTS (default "tests compiled anneal eager", most needed first), so that a run cut short
# by a time limit keeps the first ones. The parts triton, instances and frontier have not
# run on a GPU yet (their durations are not known).
#   tests     the CUDA tests (pytest -k "cuda or gpu or triton": CUDA == CPU, the CUDA graph
#             of sampling, the fused backward on CUDA, the compiled passes on CUDA's blocks,
#             the Triton kernels against the torch code on CUDA);
#   eager     SK_1RSB at N = 200, 1000, 2000 (B = 2000, float32, median of 5 after a
#             warm-up) on CUDA, with the per-site baseline of benchmarks/persite.py at
#             N = 200 and the logsigmoid floor;
#   compiled  the same after model.enable_compile() at COMPILED_SIZES (default "200 1000");
#   triton    benchmarks/triton_step.py: the card's exp + log throughput, then SK_1RSB with
#             the torch and the Triton backend at TRITON_SIZES (default "200 1000 4000"),
#             float32 and float64: sampling, log_prob and the training step, each as a
#             fraction of that throughput;
#   instances benchmarks/instances_step.py: SK_1RSB of ten instances in one module against
#             one instance, N = 200, B = 2000, float32, with the torch and the Triton
#             backend;
#   frontier  benchmarks/frontier_step.py: the frontier SK_1RSB step of the 64 x 64 EA
#             lattice (N = 4096) and the dense step at 32 x 32, B = 500, with the torch
#             backend and then the Triton one;
#   anneal    the paper's annealing protocol for SK_1RSB at N = 200 (B = 2000, 1000 steps per
#             beta, 20000 evaluation samples) timed beta by beta over the last ANNEAL_BETAS
#             (default 2) of its 39 betas by benchmarks/anneal.py, for each of ANNEAL_RUNS
#             (default "float32:compiled float64:compiled"), each with empty compile
#             caches: set-up, first beta (graph capture, compilation), later betas, final
#             evaluation, and the whole protocol from them (ANNEAL_BETAS=39 runs it all).
#
#     bash benchmarks/gpu.sh                          # from the repository root, all parts
#     PARTS="tests anneal" bash benchmarks/gpu.sh     # some of them, run in the order given
#
# Writes into $OUT when it is set or, without it, ./bench_gpu:
# nvidia_smi.csv, tests.log, eager/bench.{json,md}, compiled/bench.{json,md}, anneal.log,
# triton/triton_step.json, instances/instances_step.jsonl, frontier/frontier_step.json (and
# frontier_triton/), gpu.log. It installs nothing that needs the network: torch with CUDA and the
# project's dependencies must be there; the package itself is installed editable (no
# dependencies, no build isolation) only if it is not importable. The benchmarks run
# benchmarks/harness.py of this checkout. A cost that runs out of GPU memory is
# recorded as an error in bench.json and the run goes on.
set -uo pipefail
cd "$(dirname "$0")/.."

out_dir="$(mkdir -p "${OUT:-./bench_gpu}" && cd "${OUT:-./bench_gpu}" && pwd)"
export PYTHONUNBUFFERED=1
parts="${PARTS:-tests compiled anneal eager}"
runs="${ANNEAL_RUNS:-float32:compiled float64:compiled}"
for part in $parts; do
    case "$part" in tests | eager | compiled | anneal | triton | instances | frontier) ;; *)
        echo "gpu.sh: unknown part '$part' (tests, eager, compiled, anneal, triton," \
            "instances, frontier)" >&2
        exit 2 ;;
    esac
done
for run in $runs; do
    case "$run" in float32:eager | float32:compiled | float64:eager | float64:compiled) ;; *)
        echo "gpu.sh: ANNEAL_RUNS entry '$run' is not float32|float64:eager|compiled" >&2
        exit 2 ;;
    esac
done

part_tests() {
    step "CUDA tests"
    python -m pytest -q -p no:cacheprovider -k "cuda or gpu or triton" tests \
        >"$out_dir/tests.log" 2>&1
    local status=$?
    tail -n 15 "$out_dir/tests.log"
    return "$status"
}

part_eager() {
    step "eager"
    python benchmarks/harness.py --device cuda --architectures SK_1RSB --sizes 200 1000 2000 \
        --persite-max-n 200 --repeats 5 --out "$out_dir/eager"
}

part_compiled() {
    step "compiled"
    # shellcheck disable=SC2086
    python benchmarks/harness.py --device cuda --architectures SK_1RSB \
        --sizes ${COMPILED_SIZES:-200 1000} --persite-max-n 200 --repeats 5 --compiled \
        --out "$out_dir/compiled"
}

part_triton() {
    step "Triton kernels against the torch code"
    # shellcheck disable=SC2086
    python benchmarks/triton_step.py --device cuda --sizes ${TRITON_SIZES:-200 1000 4000} \
        --out "$out_dir/triton"
}

part_instances() {
    local backend status=0
    for backend in torch triton; do
        step "ten SK instances in one module, N = 200, $backend backend"
        python benchmarks/instances_step.py -N 200 --instances 10 --device cuda \
            --backend "$backend" --out "$out_dir/instances" || status=1
    done
    return "$status"
}

part_frontier() {
    local status=0
    step "frontier step, 64 x 64 EA (torch, then triton)"
    python benchmarks/frontier_step.py --device cuda --sides 64 --dense-sides 32 \
        --out "$out_dir/frontier" || status=1
    python benchmarks/frontier_step.py --device cuda --sides 64 --dense-sides 32 \
        --backend triton --out "$out_dir/frontier_triton" || status=1
    return "$status"
}

part_anneal() {
    local run status=0
    for run in $runs; do
        local dtype="${run%%:*}" mode="${run##*:}" compile=()
        step "annealing protocol, SK_1RSB N = 200, $dtype, $mode"
        if [[ "$mode" == "compiled" ]]; then
            compile=(--compile)
        fi
        # empty compile caches, as on a user's first run: the first beta's compilation is
        # then not shortened by what an earlier part compiled
        local cache
        cache="$(mktemp -d)"
        TORCHINDUCTOR_CACHE_DIR="$cache/inductor" TRITON_CACHE_DIR="$cache/triton" \
            python benchmarks/anneal.py --device cuda --dtype "$dtype" \
            --betas "${ANNEAL_BETAS:-2}" ${compile[@]+"${compile[@]}"} 2>&1 \
            | tee -a "$out_dir/anneal.log"
        [[ "${PIPESTATUS[0]}" == 0 ]] || status=1
        rm -rf "$cache"
    done
    return "$status"
}

step() { echo; echo "=== $* ($(date +%T))"; }

main() {
    local status=0
    python - <<'EOF' || return 1
import sys

import torch

missing = []
for name in ("sympy", "jinja2", "numpy", "click", "matplotlib", "tqdm", "pytest"):
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
    if ! python -c "import arnn_gen.templates" 2>/dev/null; then
        python -m pip install --quiet --no-deps --no-build-isolation -e . || return 1
    fi
    nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.max.sm \
        --format=csv >"$out_dir/nvidia_smi.csv" 2>/dev/null || true
    cat "$out_dir/nvidia_smi.csv"

    local part
    for part in $parts; do  # in the order given, so that a run cut short has the first ones
        "part_$part" || status=1
    done
    step "done (exit status $status)"
    return "$status"
}

main 2>&1 | tee "$out_dir/gpu.log"
exit "${PIPESTATUS[0]}"
