"""Plots of training runs: reading run folders, the four figures, and the files written."""

from __future__ import annotations

import csv
import json
import math

import numpy as np
import pytest
from matplotlib.figure import Figure

from arnn_gen.errors import ArnnGenError
from arnn_gen.learn.plots import (
    HISTORY_COLUMNS,
    PLOT_NAMES,
    free_energy_figure,
    overlap_figure,
    read_run,
    relative_error_figure,
    save_plots,
    training_figure,
)

BETAS = [round(0.1 + 0.25 * i, 2) for i in range(8)]
STEPS_PER_BETA = 6  # 8 betas x 6 steps + 2 extra at the last beta = 50 history lines


def _exact_f(beta: float) -> float:
    # Curie-Weiss-like free energy per spin: -ln 2 / beta at high temperature, -0.5 deep down.
    return -math.log(2.0) / beta - 0.5 * (1 - math.exp(-beta))


def _write_run(folder, *, label, N, exact, seed, overlap=True):
    """A synthetic run folder as the trainer writes it; returns the metrics dict."""
    rng = np.random.default_rng(seed)
    folder.mkdir()
    rows = []
    for beta in BETAS:
        f_exact = _exact_f(beta)
        f = f_exact + abs(rng.normal(0, 1e-3)) + 1e-4
        row = {
            "beta": beta,
            "free_energy": f,
            "free_energy_std": 0.01,
            "free_energy_sem": 0.001,
            "free_energy_is": f - 1e-5,
            "ess": 0.9,
            "energy": -0.5,
            "entropy": 0.3,
            "magnetization_abs": 0.5,
        }
        if exact:
            row["exact_free_energy"] = f_exact
            row["relative_error"] = abs(f - f_exact) / abs(f_exact)
        else:
            row["exact_free_energy"] = None
            row["relative_error"] = None
        rows.append(row)
    final = dict(rows[-1])
    if overlap:
        edges = np.linspace(-1, 1, 41)
        centres = 0.5 * (edges[1:] + edges[:-1])
        peak = 0.4 + 0.1 * (seed % 4)
        density = np.exp(-((np.abs(centres) - peak) ** 2) / 0.02)
        density /= density.sum() * (edges[1] - edges[0])
        final["overlap_edges"] = edges.tolist()
        final["overlap_density"] = density.tolist()
    metrics = {
        "label": label,
        "system": "sk",
        "N": N,
        "config": {"lr": 1e-3, "batch": 2000},
        "rows": rows,
        "final": final,
    }
    (folder / "metrics.json").write_text(json.dumps(metrics), encoding="utf-8")
    with open(folder / "history.csv", "w", newline="", encoding="utf-8") as stream:
        writer = csv.writer(stream)
        writer.writerow(HISTORY_COLUMNS)
        schedule = [b for b in BETAS for _ in range(STEPS_PER_BETA)] + [BETAS[-1]] * 2
        for step, beta in enumerate(schedule):
            excess = (0.05 + 0.02 * seed) * math.exp(-(step % STEPS_PER_BETA) / 2)
            writer.writerow([beta, step, _exact_f(beta) + excess, 0.02])
    return metrics


@pytest.fixture
def runs_dirs(tmp_path):
    a = tmp_path / "run_a"
    b = tmp_path / "run_b"
    _write_run(a, label="SK_1RSB", N=20, exact=True, seed=1)
    _write_run(b, label="MADE_d2w1", N=20, exact=False, seed=2)
    return [a, b]


def _legend_texts(fig: Figure) -> list[str]:
    legend = fig.axes[0].get_legend()
    return [] if legend is None else [text.get_text() for text in legend.get_texts()]


def test_read_run_round_trips(tmp_path):
    metrics = _write_run(tmp_path / "run", label="SK_1RSB", N=20, exact=True, seed=3)
    run = read_run(tmp_path / "run")
    assert (run.label, run.system, run.N) == ("SK_1RSB", "sk", 20)
    assert run.rows == tuple(metrics["rows"])
    assert run.final == metrics["final"]
    assert run.has_exact()
    np.testing.assert_array_equal(run.column("beta"), BETAS)
    assert set(run.history) == set(HISTORY_COLUMNS)
    assert run.history["step"].tolist() == list(range(50))
    assert run.history["beta"][0] == BETAS[0] and run.history["beta"][-1] == BETAS[-1]


def test_null_exact_values_read_as_nan(runs_dirs):
    run = read_run(runs_dirs[1])
    assert not run.has_exact()
    assert np.isnan(run.column("relative_error")).all()


def test_truncated_last_history_line_is_dropped(runs_dirs):
    path = runs_dirs[0] / "history.csv"
    path.write_text(path.read_text() + "2.0,50,-0.8", encoding="utf-8")
    assert read_run(runs_dirs[0]).history["step"].size == 50


def test_free_energy_figure(runs_dirs):
    runs = [read_run(d) for d in runs_dirs]
    fig = free_energy_figure(runs)
    assert isinstance(fig, Figure)
    ax = fig.axes[0]
    assert len(ax.lines) == 3  # two runs and the exact curve, drawn once
    assert _legend_texts(fig) == ["exact", "SK_1RSB", "MADE_d2w1"]
    assert ax.get_xlabel() == r"$\beta$"
    assert ax.get_ylabel() == r"free energy per spin $f$"
    exact = [line for line in ax.lines if line.get_label() == "exact"][0]
    assert exact.get_color() == "black"


def test_labels_carry_n_when_sizes_differ(tmp_path, runs_dirs):
    _write_run(tmp_path / "big", label="SK_1RSB", N=50, exact=False, seed=4)
    runs = [read_run(d) for d in [*runs_dirs, tmp_path / "big"]]
    assert _legend_texts(free_energy_figure(runs)) == [
        "exact",
        "SK_1RSB N=20",
        "MADE_d2w1 N=20",
        "SK_1RSB N=50",
    ]


def test_relative_error_figure(runs_dirs):
    runs = [read_run(d) for d in runs_dirs]
    fig = relative_error_figure(runs)
    ax = fig.axes[0]
    assert ax.get_yscale() == "log"
    assert len(ax.lines) == 1  # the run without exact values is skipped
    assert _legend_texts(fig) == ["SK_1RSB"]
    np.testing.assert_allclose(ax.lines[0].get_ydata(), runs[0].column("relative_error"))


def test_relative_error_figure_without_reference(runs_dirs):
    fig = relative_error_figure([read_run(runs_dirs[1])])
    ax = fig.axes[0]
    assert ax.get_yscale() == "log"
    assert not ax.lines
    assert [text.get_text() for text in ax.texts] == ["no exact reference"]


def test_overlap_figure(runs_dirs):
    runs = [read_run(d) for d in runs_dirs]
    fig = overlap_figure(runs)
    ax = fig.axes[0]
    assert len(ax.patches) == 2  # one step curve per run
    assert _legend_texts(fig) == ["SK_1RSB", "MADE_d2w1"]
    assert ax.get_xlim() == (-1.0, 1.0)
    assert f"{BETAS[-1]:g}" in ax.get_title()  # the common final beta


def test_training_figure(runs_dirs):
    runs = [read_run(d) for d in runs_dirs]
    fig = training_figure(runs)
    ax = fig.axes[0]
    data_lines = [line for line in ax.lines if not line.get_label().startswith("_")]
    assert len(data_lines) == 2
    assert _legend_texts(fig) == ["SK_1RSB", "MADE_d2w1"]
    assert len(ax.lines) - len(data_lines) == len(BETAS) - 1  # beta changes, first run only
    assert data_lines[0].get_xdata().tolist() == list(range(50))


def test_many_runs_put_the_legend_outside(tmp_path):
    dirs = []
    for i in range(7):
        dirs.append(tmp_path / f"r{i}")
        _write_run(dirs[-1], label=f"A{i}", N=20, exact=True, seed=10 + i)
    fig = relative_error_figure([read_run(d) for d in dirs])
    legend = fig.axes[0].get_legend()
    assert legend.get_bbox_to_anchor().transformed(fig.axes[0].transAxes.inverted()).x0 > 1


def test_save_plots_writes_eight_files(tmp_path, runs_dirs):
    out = tmp_path / "plots"
    paths = save_plots(runs_dirs, out)
    assert [p.name for p in paths] == [f"{n}.{e}" for n in PLOT_NAMES for e in ("png", "pdf")]
    assert sorted(p.name for p in out.iterdir()) == sorted(p.name for p in paths)  # no temps
    for path in paths:
        signature = b"\x89PNG\r\n\x1a\n" if path.suffix == ".png" else b"%PDF"
        assert path.read_bytes().startswith(signature), path.name
    # Unchanged bytes are not rewritten: the second call leaves modification times alone.
    stamps = {p: p.stat().st_mtime_ns for p in paths}
    save_plots(runs_dirs, out)
    assert {p: p.stat().st_mtime_ns for p in paths} == stamps


def test_missing_metrics_json(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(ArnnGenError, match=r"not a run folder: metrics\.json is missing"):
        read_run(tmp_path / "empty")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("{not json", r"metrics\.json is not valid JSON \(line 1, column 2"),
        ("[1, 2]", r"must hold a JSON object, not list"),
        ('{"label": "x", "system": "sk", "N": 4}', r"lacks the key\(s\) 'rows'"),
        ('{"label": "x", "system": "sk", "N": 0, "rows": []}', r"'N' must be a positive"),
        ('{"label": "x", "system": "sk", "N": 4, "rows": [1]}', r"'rows' must be a list"),
        ('{"label": "x", "system": "sk", "N": 4, "rows": [{}]}', r"row 0 has no numeric"),
    ],
)
def test_malformed_metrics_json(tmp_path, text, message):
    (tmp_path / "metrics.json").write_text(text, encoding="utf-8")
    with pytest.raises(ArnnGenError, match=message):
        read_run(tmp_path)


def test_malformed_history(runs_dirs):
    path = runs_dirs[0] / "history.csv"
    path.write_text("beta,step\n0.1,0\n", encoding="utf-8")
    with pytest.raises(ArnnGenError, match="must start with the header"):
        read_run(runs_dirs[0])
    path.write_text("beta,step,free_energy,free_energy_std\n0.1,0,x,1\n0.1,1,-7,1\n")
    with pytest.raises(ArnnGenError, match=r"line 2: expected 4 numbers"):
        read_run(runs_dirs[0])
