"""Wall time of the paper's annealing protocol, timed beta by beta (the GPU target: a whole
run at N = 200 under 10 minutes).

The protocol (``arnn-gen reproduce``'s full preset): betas 0.1, 0.15, ..., 2.0 (39 of them),
1000 Adam steps of batch 2000 each, a batch-sized estimate after each beta, 20000 samples
for the final evaluation. Every beta costs the same (the same sizes at another beta), so
this script runs the last ``--betas`` of them through :func:`arnn_gen.learn.train.train` exactly
as ``arnn-gen train`` does and times, separately: the set-up (emission, model, device
start), the first beta (which also captures CUDA graphs and compiles, with ``--compile``),
each later beta, and the final evaluation. The whole run is then

    set-up + first beta + 38 x (median later beta) + final evaluation,

reported as ``protocol_s`` with every part in the JSON. Needs ``--betas`` >= 2.
``compile_failures`` lists enable_compile()'s "torch.compile failed" warnings: a function
that ran its eager code instead (empty when everything compiled, or without ``--compile``).

    python benchmarks/anneal.py --device cuda --dtype float32 --compile --out anneal.json
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
import warnings
from dataclasses import replace
from pathlib import Path

PROTOCOL_BETAS = 39


def time_protocol(
    architecture: str = "SK_1RSB",
    N: int = 200,  # noqa: N803
    *,
    betas: int = 2,
    device: str = "cpu",
    dtype: str = "float64",
    compile: bool = False,  # noqa: A002 (the name of arnn-gen train's option)
    steps_per_beta: int | None = None,
    batch: int | None = None,
    eval_samples: int | None = None,
    seed: int = 0,
) -> dict:
    """Time the last ``betas`` betas of the protocol for ``architecture`` at size N on the
    SK instance ``seed`` (CW for CW_*); ``steps_per_beta``, ``batch`` and ``eval_samples``
    override the protocol's (for tests). A dict of seconds and settings (module docstring)."""
    import torch

    from arnn_gen.learn.experiments import preset
    from arnn_gen.learn.train import train
    from arnn_gen.sweep import SweepTask
    from arnn_gen.sweep.task import build_model

    if betas < 2:
        raise ValueError("--betas must be at least 2 (a first beta and a later one)")
    system = "cw" if architecture.startswith("CW") else "sk"
    config = preset(system, quick=False, device=device).config
    overrides = {"steps_per_beta": steps_per_beta, "batch": batch, "eval_samples": eval_samples}
    config = replace(config, dtype=dtype, compile=compile,
                     **{k: v for k, v in overrides.items() if v is not None})  # fmt: skip
    all_betas = config.betas()
    if len(all_betas) != PROTOCOL_BETAS:
        raise AssertionError(f"the protocol has {len(all_betas)} betas, not {PROTOCOL_BETAS}")
    config = replace(config, beta_start=all_betas[-betas])
    if len(config.betas()) != betas:
        raise AssertionError("the shortened schedule does not end on the protocol's betas")

    def now() -> float:
        if device.startswith("cuda"):
            torch.cuda.synchronize()
        return time.perf_counter()

    start = time.perf_counter()  # before the device starts: set-up includes it
    with tempfile.TemporaryDirectory() as folder:
        task = SweepTask(system=system, size=N, instance=seed if system == "sk" else 0,
                         architecture=architecture, config=config, N=N)  # fmt: skip
        model = build_model(task, Path(folder))
        model.to(device=device, dtype=getattr(torch, dtype))
        ready = now()
        marks: list[float] = []

        def mark(index: int, beta: float) -> None:
            # one line per beta as it ends, so that a run cut short still shows its betas
            marks.append(now())
            print(f"beta {index + 1}/{betas} ({beta:g}) ended at {marks[-1] - start:.1f} s",
                  file=sys.stderr, flush=True)  # fmt: skip

        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            result = train(model, config, Path(folder) / "run", progress=False,
                           after_beta=mark)  # fmt: skip
            end = now()
    for caught_warning in caught:  # shown as they would have been
        warnings.showwarning(caught_warning.message, caught_warning.category,
                             caught_warning.filename, caught_warning.lineno)  # fmt: skip
    # enable_compile() warns "torch.compile failed" when a function falls back to its
    # eager code: the times are then not those of the compiled run
    failed = sorted({str(w.message).splitlines()[0] for w in caught
                     if str(w.message).startswith("torch.compile failed")})  # fmt: skip
    per_beta = [later - earlier for earlier, later in zip([ready, *marks], marks, strict=False)]
    later = statistics.median(per_beta[1:])
    final = end - marks[-1]
    setup = ready - start
    protocol = setup + per_beta[0] + (PROTOCOL_BETAS - 1) * later + final
    return {
        "architecture": architecture,
        "N": N,
        "seed": seed,
        "device": device,
        "device_name": torch.cuda.get_device_name(device) if device.startswith("cuda") else None,
        "torch": torch.__version__,
        "dtype": dtype,
        "compile": compile,
        "config": config.to_dict(),
        "betas_run": list(config.betas()),
        "setup_s": setup,
        "per_beta_s": per_beta,
        "first_beta_s": per_beta[0],
        "later_beta_median_s": later,
        # a later beta over its steps: the step with its share of the per-beta estimate
        "later_beta_per_step_s": later / config.steps_per_beta if config.steps_per_beta else None,
        "final_evaluation_s": final,
        "run_s": end - start,
        "protocol_betas": PROTOCOL_BETAS,
        "protocol_s": protocol,
        "final_free_energy": result.final.get("free_energy"),
        "compile_failures": failed,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--architecture", default="SK_1RSB")
    parser.add_argument("-N", type=int, default=200)
    parser.add_argument("--betas", type=int, default=2, help="last betas run (>= 2)")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--dtype", default="float64", choices=("float32", "float64"))
    parser.add_argument("--compile", action="store_true")
    parser.add_argument("--steps-per-beta", type=int, help="override (tests only)")
    parser.add_argument("--batch", type=int, help="override (tests only)")
    parser.add_argument("--eval-samples", type=int, help="override (tests only)")
    parser.add_argument("--out", help="write the JSON here too")
    options = parser.parse_args(argv)
    try:
        report = time_protocol(
            options.architecture, options.N, betas=options.betas, device=options.device,
            dtype=options.dtype, compile=options.compile,
            steps_per_beta=options.steps_per_beta, batch=options.batch,
            eval_samples=options.eval_samples,
        )  # fmt: skip
    except (ValueError, RuntimeError) as error:
        parser.exit(2, f"error: {error}\n")
    text = json.dumps(report, indent=2, sort_keys=True)
    print(text)
    mode = " compiled" if report["compile"] else ""
    print(
        f"{report['architecture']} N={report['N']} {report['dtype']}{mode} on "
        f"{report['device_name'] or report['device']}: "
        f"set-up {report['setup_s']:.1f} s, first beta {report['first_beta_s']:.1f} s, later "
        f"betas {report['later_beta_median_s']:.1f} s, final evaluation "
        f"{report['final_evaluation_s']:.1f} s; the 39-beta protocol: about "
        f"{report['protocol_s']:.0f} s"
        + ("; a compiled function fell back to eager code" if report["compile_failures"] else ""),
        file=sys.stderr,
    )
    if options.out:
        from arnn_gen.files import write_atomically

        write_atomically(Path(options.out), (text + "\n").encode())
    return 0


if __name__ == "__main__":
    sys.exit(main())
