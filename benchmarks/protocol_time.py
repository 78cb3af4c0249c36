"""Projected wall time of the paper's annealing protocol (docs/physics.md section 5: 39 values of
beta, 1000 Adam steps each) from the training steps a ``bench.json`` measured: step time x
39 x 1000 per architecture and size, steps alone (no start-up, no evaluation). The bench
times float32 steps; ``arnn-gen reproduce`` trains in float64, which costs more, so these
are lower bounds for it (docs/RESULTS.md compares them with whole runs).

    python benchmarks/protocol_time.py                        # benchmarks/bench.json
    python benchmarks/protocol_time.py --bench OTHER/bench.json

prints the Markdown table of docs/RESULTS.md ("Wall time of the full protocol").
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

#: The replica forms whose hours are added up per size (one SK instance, three forms).
REPLICA_FORMS = ("SK_RS", "SK_1RSB", "SK_2RSB")


def protocol_schedule() -> tuple[int, int]:
    """(betas, steps per beta) of the paper's protocol, from the full preset of ``arnn-gen
    reproduce`` (beta 0.1 -> 2.0 in steps of 0.05, 1000 steps each: (39, 1000))."""
    from arnn_gen.learn.experiments import preset

    config = preset("sk", quick=False).config
    return len(config.betas()), config.steps_per_beta


def protocol_steps() -> int:
    """Training steps of the paper's protocol: betas x steps per beta."""
    betas, steps_per_beta = protocol_schedule()
    return betas * steps_per_beta


def projection(bench: dict, steps: int | None = None) -> list[dict]:
    """One row per (architecture, N) of ``bench`` with a measured training step:
    architecture, N, step_s, hours = step_s x steps / 3600 (steps: protocol_steps())."""
    steps = protocol_steps() if steps is None else steps
    rows = []
    for result in bench["results"]:
        step = result["ours"].get("train_step_s")
        if step is None:  # CW_N: exact, no training
            continue
        rows.append({"architecture": result["architecture"], "N": result["N"],
                     "step_s": step, "hours": step * steps / 3600})  # fmt: skip
    return rows


def markdown(bench: dict, rows: list[dict], source: str = "benchmarks/bench.json") -> str:
    """The table of ``rows`` and, per size, the hours of the three replica forms together;
    ``source`` names the bench.json in the table's header."""
    settings = bench["settings"]
    lines = [
        f"From `{source}`: {settings['dtype']}, B = {settings['batch']}, "
        f"device {settings['device']}, {settings['threads']} threads, "
        f"{'compiled' if settings['compiled'] else 'eager'} mode.",
        "",
        "| architecture | N | measured training step (s) | {} x {} steps (h) |".format(
            *protocol_schedule()
        ),
        "|---|---|---|---|",
    ]
    lines += [f"| {r['architecture']} | {r['N']} | {r['step_s']:.3g} | {r['hours']:.2g} |"
              for r in rows]  # fmt: skip
    replica = {}
    for row in rows:
        if row["architecture"] in REPLICA_FORMS:
            replica.setdefault(row["N"], []).append(row["hours"])
    complete = {N: sum(hours) for N, hours in replica.items() if len(hours) == len(REPLICA_FORMS)}
    if complete:
        lines += [
            "",
            "The three replica forms on one SK instance, steps alone: "
            + ", ".join(f"N = {N}: {hours:.2g} h" for N, hours in sorted(complete.items()))
            + ".",
        ]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--bench", default=str(Path(__file__).with_name("bench.json")),
                        help="a bench.json written by arnn-gen bench")  # fmt: skip
    args = parser.parse_args(argv)
    try:
        bench = json.loads(Path(args.bench).read_text())
        rows = projection(bench)
        default = args.bench == parser.get_default("bench")
        text = markdown(bench, rows, "benchmarks/bench.json" if default else args.bench)
    except (OSError, ValueError, KeyError, TypeError) as error:
        print(f"protocol_time: {args.bench} is not a readable bench.json ({error})",
              file=sys.stderr)  # fmt: skip
        return 2
    sys.stdout.write(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
