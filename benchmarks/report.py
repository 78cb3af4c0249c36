"""The Markdown report of a benchmark run (``run_benchmarks`` of benchmarks/harness.py).

Input: the report dict that ``bench.json`` holds. Output: Markdown text (:func:`markdown`):
the machine, the floor, one table row per (architecture, N) with ours, the per-site
baseline's ratios and ours / floor, the growth exponents and the performance targets;
:func:`write_report` writes it as ``bench.md`` beside ``bench.json`` and, when the folder's
``RESULTS.md`` has the markers ``<!-- bench:begin -->`` / ``<!-- bench:end -->``, replaces
what is between them, so hand-written commentary around the numbers is kept.
The harness writes the report itself; to print it again from a ``bench.json``, or with
``--write`` rewrite its ``bench.md`` (the targets as stored; ``python benchmarks/harness.py
--report BENCH_JSON`` evaluates them again first), run from the repository root:

    python benchmarks/report.py bench_out/bench.json [--write]
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path

__all__ = ["markdown", "write_report", "main", "BEGIN", "END"]

BEGIN = "<!-- bench:begin -->"
END = "<!-- bench:end -->"

_COSTS = ("sample", "log_prob", "sample_plus_log_prob", "train_step")


def _number(value: float | None, digits: int = 3) -> str:
    return "-" if value is None else f"{value:.{digits}g}"


def _ratios(values: dict | None, keys=_COSTS) -> str:
    if not values:
        return "-"
    return ", ".join(_number(values.get(key)) for key in keys)


def _command(report: dict) -> str:
    settings = report["settings"]
    parts = ["python benchmarks/harness.py"]
    if report["mode"] == "quick":
        parts.append("--quick")
    if settings["device"] != "cpu":
        parts.append(f"--device {settings['device']}")
    if settings.get("compiled"):
        parts.append("--compiled")
    parts.append("--sizes " + " ".join(map(str, settings["sizes"])))
    parts.append("--architectures " + " ".join(settings["architectures"]))
    return " ".join(parts)


def _machine(report: dict) -> str:
    machine = report["machine"]
    device = machine["device"] + (f" ({machine['device_name']})" if machine["device_name"] else "")
    load = machine.get("load_average") or []
    after = machine.get("load_average_after") or []
    return (
        f"Machine: {machine['platform']}, {machine['processor']}, {machine['cpu_count']} CPUs, "
        f"torch {machine['torch']}, {machine['threads']} threads, device {device}; "
        f"B = {report['settings']['batch']}, {report['settings']['dtype']}, median of "
        f"{report['settings']['repeats']} runs after one warm-up call. Load average "
        f"(1, 5, 15 min) before: {', '.join(f'{x:.2f}' for x in load)}; after: "
        f"{', '.join(f'{x:.2f}' for x in after)}."
    )


def fell_back(timings: dict) -> bool:
    """Whether a compiled model's timings include eager code: enable_compile() warns
    "torch.compile failed" when a function fails to compile and runs its eager code, and
    the bench keeps the warnings of the compiled timings."""
    return any(w.startswith("torch.compile failed") for w in timings.get("warnings", ()))


FELL_BACK = "compiled, partly eager"


def _main_table(report: dict) -> list[str]:
    compiled = report["settings"].get("compiled")
    gpu = str(report["settings"].get("device", "cpu")).startswith("cuda")
    memory = "peak GPU memory (MiB)" if gpu else "peak RSS (MiB)"
    lines = [
        "| architecture | N | mode | sample (s) | log_prob (s) | training step (s) | "
        f"{memory} | per-site / ours: sample, log_prob, both, step | ours / floor: log_prob |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    fallbacks = False
    for record in report["results"]:
        head = f"| {record['architecture']} | {record['N']} "
        if "error" in record:
            lines.append(head + f"| - | {record['error']} | | | | | |")
            continue
        modes = [("eager", record["ours"], record.get("persite_over_ours"))]
        if compiled and "ours_compiled" in record:
            modes.append(("compiled", record["ours_compiled"], record.get("persite_over_compiled")))
        for mode, ours, speedup in modes:
            if "error" in ours:
                lines.append(head + f"| {mode} | {ours['error']} | | | | | |")
                continue
            floor_ratios = record.get(
                "ours_over_floor" if mode == "eager" else "compiled_over_floor", {}
            )
            over_floor = floor_ratios.get("log_prob")
            deep = record["architecture"].startswith("SK_")
            peak = record["memory"]["peak_mib"] if mode == "eager" else None
            if mode == "compiled" and fell_back(ours):
                mode, fallbacks = FELL_BACK, True
            lines.append(
                head + f"| {mode} | {_number(ours.get('sample_s'))} | "
                f"{_number(ours.get('log_prob_s'))} | {_number(ours.get('train_step_s'))} | "
                f"{'-' if peak is None else f'{peak:.0f}'} | {_ratios(speedup)} | "
                f"{_number(over_floor) if deep else '-'} |"
            )
    if fallbacks:
        lines += [
            "",
            f'"{FELL_BACK}": a compiled function failed to compile and ran its eager code '
            '(the "torch.compile failed" warning in bench.json), so these are not compiled '
            "timings.",
        ]
    return lines


def _growth_table(report: dict) -> list[str]:
    lines = [
        "| architecture | ours: sample | log_prob | training step | per-site: sample | "
        "training step |",
        "|---|---|---|---|---|---|",
    ]
    for architecture, fits in sorted(report["growth"].items()):

        def exponent(side: str, cost: str, fits=fits) -> str:
            fit = (fits.get(side) or {}).get(cost)
            return "-" if not fit else f"{fit['exponent']:.2f}"

        lines.append(
            f"| {architecture} | {exponent('ours', 'sample')} | {exponent('ours', 'log_prob')} "
            f"| {exponent('ours', 'train_step')} | {exponent('persite', 'sample')} | "
            f"{exponent('persite', 'train_step')} |"
        )
    return lines


def _graph_table(report: dict) -> list[str]:
    """Sampling replayed from the CUDA graph against the same steps launched one by one
    (``sample_without_graph_s``, measured on CUDA only); no lines when there is none."""
    rows = [
        (record, mode, ours)
        for record in report["results"]
        for mode, ours in (("eager", record.get("ours")), ("compiled", record.get("ours_compiled")))
        if ours and ours.get("sample_without_graph_s") is not None
    ]
    if not rows:
        return []
    lines = [
        "Sampling through the CUDA graph against the same steps launched one by one:",
        "",
        "| architecture | N | mode | graph (s) | step by step (s) | step by step / graph |",
        "|---|---|---|---|---|---|",
    ]
    for record, mode, ours in rows:
        graph, steps = ours.get("sample_s"), ours["sample_without_graph_s"]
        ratio = None if not graph else steps / graph
        lines.append(
            f"| {record['architecture']} | {record['N']} | {mode} | {_number(graph)} | "
            f"{_number(steps)} | {_number(ratio)} |"
        )
    return [*lines, ""]


def _targets_table(report: dict) -> list[str]:
    lines = ["| performance target | measured | met |", "|---|---|---|"]
    for target in report["targets"]:
        met = {True: "yes", False: "no", None: "-"}[target["met"]]
        lines.append(f"| {target['target']} | {_number(target['value'])} | {met} |")
    return lines


def markdown(report: dict) -> str:
    """The report as Markdown (see the module docstring)."""
    floor = report["floor"]
    lines = [
        f"    {_command(report)}",
        "",
        _machine(report),
        "",
        f"Elementwise floor: {floor['evals_per_s']:.3g} logsigmoid evaluations per second "
        f"(best chunk of {floor['best_chunk']} elements).",
        "",
        *_main_table(report),
        "",
        f"Growth exponents (least-squares slope of log time against log N over N >= "
        f"{report['settings']['fit_min_n']}):",
        "",
        *_growth_table(report),
        "",
        *_graph_table(report),
        *_targets_table(report),
    ]
    return "\n".join(lines) + "\n"


def write_report(report: dict, out_dir: Path) -> list[Path]:
    """Write ``bench.md`` into ``out_dir`` and refresh the marked section of its
    ``RESULTS.md`` when there is one; the paths written."""
    from arnn_gen.files import write_atomically

    text = markdown(report)
    written = [out_dir / "bench.md"]
    write_atomically(written[0], text.encode())
    results = out_dir / "RESULTS.md"
    if results.is_file():
        current = results.read_text()
        first, last = current.find(BEGIN), current.find(END)
        if 0 <= first < last:
            updated = current[: first + len(BEGIN)] + "\n" + text + current[last:]
            write_atomically(results, updated.encode())
            written.append(results)
    return written


def main(argv: Sequence[str] | None = None) -> int:
    """``python benchmarks/report.py BENCH_JSON [--write]``: the report on standard output,
    or written beside the file with --write."""
    parser = argparse.ArgumentParser(
        prog="python benchmarks/report.py", description=__doc__.splitlines()[0]
    )
    parser.add_argument("bench_json", metavar="BENCH_JSON", help="a bench.json of the harness")
    parser.add_argument(
        "--write", action="store_true", help="write bench.md (and RESULTS.md's section) beside it"
    )
    options = parser.parse_args(argv)
    path = Path(options.bench_json)
    try:
        report = json.loads(path.read_text())
        text = markdown(report)
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as error:
        parser.exit(2, f"error: {path} is not a bench.json: {error}\n")
    if not options.write:
        sys.stdout.write(text)
        return 0
    for written in write_report(report, path.parent):
        print(f"wrote {written}")
    return 0


if __name__ == "__main__":
    # the checkout's arnn_gen, installed or not: the repository root before this folder
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    sys.exit(main())
