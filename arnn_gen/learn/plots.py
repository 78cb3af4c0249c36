"""Figures of training runs: free energy, relative error, overlap distribution, training curve.

Input: run folders written by the trainer (:func:`read_run`), each holding

* ``metrics.json``: ``{"label", "system", "N", "config", "rows": [row, ...], "final"}``, one
  row per annealing beta (increasing) with ``beta, free_energy, free_energy_std,
  free_energy_sem, free_energy_is, ess, energy, entropy, magnetization_abs`` and, when an
  exact value is known, ``exact_free_energy, relative_error``; ``final`` (or null) has the
  same keys plus optionally ``overlap_edges`` / ``overlap_density`` of P(q) (docs/physics.md
  section 5);
* ``history.csv``: ``beta,step,free_energy,free_energy_std``, one line per training step.

Output: :class:`matplotlib.figure.Figure` objects (object API only, no pyplot state; Agg
for raster output; mathtext, never TeX), and with :func:`save_plots` the files
``free_energy``, ``relative_error``, ``overlaps`` and ``training`` as PNG and PDF, written
atomically and only when their bytes change.

A run keeps the same colour and marker in every figure (its position in ``runs``), so the
four figures of one comparison read together. Labels are the architecture names, with
`` N=...`` appended when the runs do not all have the same N.
"""

from __future__ import annotations

import csv
import io
import json
import math
import os
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from arnn_gen.errors import ArnnGenError
from arnn_gen.files import write_atomically

__all__ = [
    "HISTORY_COLUMNS",
    "PLOT_NAMES",
    "Run",
    "read_run",
    "free_energy_figure",
    "relative_error_figure",
    "overlap_figure",
    "training_figure",
    "figure_bytes",
    "save_plots",
]

#: Columns of ``history.csv``, in order.
HISTORY_COLUMNS: tuple[str, ...] = ("beta", "step", "free_energy", "free_energy_std")

#: Base names of the files :func:`save_plots` writes (each as .png and .pdf).
PLOT_NAMES: tuple[str, ...] = ("free_energy", "relative_error", "overlaps", "training")

_FIGSIZE = (6.4, 4.4)
_FIGSIZE_WIDE = (8.6, 4.4)  # room for a legend beside the axes
_LEGEND_INSIDE_MAX = 5  # more entries than this go outside the data
_PNG_DPI = 150
_MARKERS = ("o", "s", "^", "D", "v", "P", "X", "<", ">", "h")
_BETA_LABEL = r"$\beta$"
_F_LABEL = r"free energy per spin $f$"


@dataclass(frozen=True, slots=True, kw_only=True)
class Run:
    """One training run as read from its folder.

    ``rows`` are the per-beta metrics in file order (beta increasing), ``final`` the
    post-training metrics or None, ``history`` maps each of :data:`HISTORY_COLUMNS` to a
    float64 array of shape [steps] (empty arrays when ``history.csv`` is absent). Missing or
    null values in rows read as absent keys / None, exactly as in the file.
    """

    path: Path
    label: str
    system: str
    N: int
    rows: tuple[dict[str, Any], ...]
    final: dict[str, Any] | None
    history: dict[str, np.ndarray]

    def column(self, key: str) -> np.ndarray:
        """``rows[*][key]`` as a float64 array of shape [len(rows)], NaN where absent or null."""
        return np.array([_as_float(row.get(key)) for row in self.rows], dtype=np.float64)

    def has_exact(self) -> bool:
        """Whether any row carries a finite exact free energy."""
        return bool(np.isfinite(self.column("exact_free_energy")).any())


# --------------------------------------------------------------------------- reading


def _as_float(value: Any) -> float:
    if value is None:
        return math.nan
    try:
        return float(value)
    except (TypeError, ValueError):
        return math.nan


def _load_metrics(path: Path) -> dict[str, Any]:
    if not path.is_file():
        raise ArnnGenError(f"{path.parent} is not a run folder: {path.name} is missing")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as exc:
        raise ArnnGenError(f"cannot read {path}: {exc}") from exc
    except json.JSONDecodeError as exc:
        raise ArnnGenError(
            f"{path} is not valid JSON (line {exc.lineno}, column {exc.colno}: {exc.msg})"
        ) from exc
    if not isinstance(data, dict):
        raise ArnnGenError(f"{path} must hold a JSON object, not {type(data).__name__}")
    missing = [key for key in ("label", "system", "N", "rows") if key not in data]
    if missing:
        raise ArnnGenError(f"{path} lacks the key(s) {', '.join(map(repr, missing))}")
    if not isinstance(data["N"], int) or isinstance(data["N"], bool) or data["N"] < 1:
        raise ArnnGenError(f"{path}: 'N' must be a positive integer, got {data['N']!r}")
    rows = data["rows"]
    if not isinstance(rows, list) or not all(isinstance(row, dict) for row in rows):
        raise ArnnGenError(f"{path}: 'rows' must be a list of objects")
    for index, row in enumerate(rows):
        if not math.isfinite(_as_float(row.get("beta"))):
            raise ArnnGenError(f"{path}: row {index} has no numeric 'beta'")
    final = data.get("final")
    if final is not None and not isinstance(final, dict):
        raise ArnnGenError(f"{path}: 'final' must be an object or null")
    return data


def _load_history(path: Path) -> dict[str, np.ndarray]:
    columns: dict[str, list[float]] = {name: [] for name in HISTORY_COLUMNS}
    if not path.is_file():
        return {name: np.zeros(0) for name in HISTORY_COLUMNS}
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise ArnnGenError(f"cannot read {path}: {exc}") from exc
    records = list(csv.reader(lines))
    if not records or tuple(name.strip() for name in records[0]) != HISTORY_COLUMNS:
        raise ArnnGenError(f"{path} must start with the header {','.join(HISTORY_COLUMNS)}")
    body = records[1:]
    for number, record in enumerate(body, start=2):
        try:
            values = [float(field) for field in record]
        except ValueError:
            values = []
        if len(values) != len(HISTORY_COLUMNS):
            # The trainer appends while it runs: tolerate a half-written last line only.
            if number == len(body) + 1:
                break
            raise ArnnGenError(f"{path}, line {number}: expected 4 numbers, got {record!r}")
        for name, value in zip(HISTORY_COLUMNS, values, strict=True):
            columns[name].append(value)
    return {name: np.asarray(values, dtype=np.float64) for name, values in columns.items()}


def read_run(run_dir: str | os.PathLike[str]) -> Run:
    """Read ``metrics.json`` (required) and ``history.csv`` (optional) of one run folder.

    Raises :class:`ArnnGenError` naming the file when ``metrics.json`` is missing, is not
    valid JSON, or lacks ``label``/``system``/``N``/``rows``, and when ``history.csv`` is
    malformed (a truncated last line, as left by a trainer still writing, is dropped).
    """
    path = Path(run_dir)
    data = _load_metrics(path / "metrics.json")
    return Run(
        path=path,
        label=str(data["label"]),
        system=str(data["system"]),
        N=int(data["N"]),
        rows=tuple(dict(row) for row in data["rows"]),
        final=None if data.get("final") is None else dict(data["final"]),
        history=_load_history(path / "history.csv"),
    )


# --------------------------------------------------------------------------- styling


def _labels(runs: Sequence[Run]) -> list[str]:
    """run.label, plus " N=..." when the runs do not share one N."""
    if len({run.N for run in runs}) > 1:
        return [f"{run.label} N={run.N}" for run in runs]
    return [run.label for run in runs]


def _style(index: int) -> dict[str, Any]:
    return {"color": f"C{index % 10}", "marker": _MARKERS[index % len(_MARKERS)]}


def _new_figure(entries: int) -> tuple[Figure, Any]:
    """A figure with one axes, wider when the legend will sit beside the data."""
    size = _FIGSIZE_WIDE if entries > _LEGEND_INSIDE_MAX else _FIGSIZE
    fig = Figure(figsize=size, layout="constrained")
    FigureCanvasAgg(fig)  # Agg explicitly, whatever the default backend
    ax = fig.add_subplot()
    ax.grid(True, alpha=0.3)
    return fig, ax


def _legend(ax: Any, entries: int, **inside: Any) -> None:
    if entries == 0:
        return
    if entries > _LEGEND_INSIDE_MAX:
        ax.legend(
            loc="upper left",
            bbox_to_anchor=(1.02, 1.0),
            borderaxespad=0.0,
            fontsize="small",
            ncols=1 if entries <= 18 else 2,
        )
    else:
        ax.legend(fontsize="small", **inside)


def _note(ax: Any, text: str) -> None:
    ax.text(
        0.5,
        0.5,
        text,
        transform=ax.transAxes,
        ha="center",
        va="center",
        fontsize="large",
        color="0.4",
    )


# --------------------------------------------------------------------------- figures


def free_energy_figure(runs: Sequence[Run]) -> Figure:
    """Variational free energy per spin f against beta, one marked line per run.

    The exact free energy, where rows carry one, is drawn as a black line under the runs,
    once per distinct exact curve (several runs of one instance share it; runs of different
    sizes or instances each get theirs), labelled "exact" once.
    """
    runs = list(runs)
    labels = _labels(runs)
    exact_drawn: list[tuple[tuple[float, ...], tuple[float, ...]]] = []
    for run in runs:
        beta, exact = run.column("beta"), run.column("exact_free_energy")
        known = np.isfinite(exact)
        if not known.any():
            continue
        key = (tuple(beta[known]), tuple(exact[known]))
        if key in exact_drawn:
            continue
        exact_drawn.append(key)
    fig, ax = _new_figure(len(runs) + bool(exact_drawn))
    for number, (beta, exact) in enumerate(exact_drawn):
        # On top and thin, so that runs sitting on it do not hide it.
        ax.plot(
            beta,
            exact,
            color="black",
            linewidth=0.9,
            zorder=3,
            label="exact" if number == 0 else None,
        )
    for index, (run, label) in enumerate(zip(runs, labels, strict=True)):
        ax.plot(
            run.column("beta"),
            run.column("free_energy"),
            linestyle="-",
            linewidth=1.0,
            markersize=4,
            label=label,
            zorder=2,
            **_style(index),
        )
    ax.set_xlabel(_BETA_LABEL)
    ax.set_ylabel(_F_LABEL)
    if not runs:
        _note(ax, "no runs")
    _legend(ax, len(runs) + bool(exact_drawn), loc="best")
    return fig


def _relative_error(run: Run) -> np.ndarray:
    """|f - f_exact| / |f_exact| per row: the stored value, else computed; NaN if unknown."""
    stored = run.column("relative_error")
    exact = run.column("exact_free_energy")
    with np.errstate(divide="ignore", invalid="ignore"):
        computed = np.abs(run.column("free_energy") - exact) / np.abs(exact)
    return np.where(np.isfinite(stored), stored, computed)


def relative_error_figure(runs: Sequence[Run]) -> Figure:
    """Relative error of f against beta per run, log y; runs without exact values skipped.

    Zero errors cannot sit on a log axis and are left out of the line. With no run having
    an exact reference the figure carries the centred note "no exact reference".
    """
    runs = list(runs)
    labels = _labels(runs)
    shown = [i for i, run in enumerate(runs) if np.isfinite(_relative_error(run)).any()]
    fig, ax = _new_figure(len(shown))
    ax.set_yscale("log")
    for index in shown:
        error = _relative_error(runs[index])
        error = np.where(error > 0, error, np.nan)
        ax.plot(
            runs[index].column("beta"),
            error,
            linestyle="-",
            linewidth=1.0,
            markersize=4,
            label=labels[index],
            **_style(index),
        )
    ax.set_xlabel(_BETA_LABEL)
    ax.set_ylabel(r"relative error $|f - f_{\mathrm{exact}}|\,/\,|f_{\mathrm{exact}}|$")
    if not shown:
        _note(ax, "no exact reference")
    _legend(ax, len(shown), loc="best")
    return fig


def _overlap(run: Run) -> tuple[np.ndarray, np.ndarray] | None:
    final = run.final or {}
    edges, density = final.get("overlap_edges"), final.get("overlap_density")
    if not edges or not density or len(edges) != len(density) + 1:
        return None
    return np.asarray(edges, dtype=np.float64), np.asarray(density, dtype=np.float64)


def overlap_figure(runs: Sequence[Run]) -> Figure:
    """Overlap distribution P(q) of the final samples, one step curve per run, q in [-1, 1].

    Runs whose ``final`` has no histogram are skipped. The final beta goes into the title
    when all shown runs share it, else into each label.
    """
    runs = list(runs)
    labels = _labels(runs)
    histograms = {i: h for i, run in enumerate(runs) if (h := _overlap(run)) is not None}
    shown = sorted(histograms)
    betas = {_as_float((runs[i].final or {}).get("beta")) for i in shown}
    common_beta = betas.pop() if len(betas) == 1 else None
    fig, ax = _new_figure(len(shown))
    for index in shown:
        edges, density = histograms[index]
        label = labels[index]
        if common_beta is None:
            beta = _as_float((runs[index].final or {}).get("beta"))
            if math.isfinite(beta):
                label = rf"{label} $\beta$={beta:g}"
        # A step curve (stairs) is the histogram itself: no smoothing between bins.
        ax.stairs(density, edges, color=f"C{index % 10}", linewidth=1.3, label=label)
    ax.set_xlim(-1.0, 1.0)
    top = max((float(np.nanmax(density)) for _, density in histograms.values()), default=1.0)
    if 0 < len(shown) <= _LEGEND_INSIDE_MAX and math.isfinite(top) and top > 0:
        # Headroom for the legend: P(q) peaks anywhere in [-1, 1] (at 0 when paramagnetic,
        # at +-q_EA when ordered), so no corner is reliably free.
        ax.set_ylim(0.0, top * (1.12 + 0.09 * len(shown)))
    else:
        ax.set_ylim(bottom=0.0)
    ax.set_xlabel(r"overlap $q$")
    ax.set_ylabel(r"$P(q)$")
    if common_beta is not None and math.isfinite(common_beta):
        ax.set_title(rf"$\beta$ = {common_beta:g}", fontsize="medium")
    if not shown:
        _note(ax, "no overlap histogram")
    _legend(ax, len(shown), loc="upper left")
    return fig


def training_figure(runs: Sequence[Run]) -> Figure:
    """Batch free energy per spin against cumulative training step, one line per run.

    The cumulative step is the line number in ``history.csv``. Faint vertical lines mark
    where beta changes, for the first run shown only, to stay readable.
    """
    runs = list(runs)
    labels = _labels(runs)
    shown = [i for i, run in enumerate(runs) if run.history["free_energy"].size]
    fig, ax = _new_figure(len(shown))
    for number, index in enumerate(shown):
        history = runs[index].history
        steps = np.arange(history["free_energy"].size)
        if number == 0:
            changes = np.flatnonzero(np.diff(history["beta"]) != 0) + 1
            for step in changes:
                ax.axvline(step - 0.5, color="0.5", alpha=0.25, linewidth=0.6, zorder=0)
        ax.plot(
            steps,
            history["free_energy"],
            color=f"C{index % 10}",
            linewidth=0.9,
            label=labels[index],
        )
    ax.set_xlabel("cumulative training step")
    ax.set_ylabel(r"batch free energy per spin $f$")
    if not shown:
        _note(ax, "no training history")
    _legend(ax, len(shown), loc="best")
    return fig


# --------------------------------------------------------------------------- output


def figure_bytes(fig: Figure, fmt: str) -> bytes:
    """The figure as PNG (150 dpi) or PDF bytes, the same bytes for the same figure."""
    # Fixed metadata keeps the bytes deterministic (no creation dates, no version strings).
    metadata: Mapping[str, Any] = (
        {"CreationDate": None, "Producer": None, "Creator": None}
        if fmt == "pdf"
        else {"Software": None}
    )
    buffer = io.BytesIO()
    fig.savefig(buffer, format=fmt, dpi=_PNG_DPI, metadata=metadata)
    return buffer.getvalue()


def save_plots(
    run_dirs: Iterable[str | os.PathLike[str]], out_dir: str | os.PathLike[str]
) -> list[Path]:
    """Read the runs and write the four figures as PNG (150 dpi) and PDF into ``out_dir``.

    Returns the paths in the order of :data:`PLOT_NAMES`, PNG before PDF. ``out_dir`` is
    created if needed; files are written atomically and only when their bytes change.
    """
    runs = [read_run(run_dir) for run_dir in run_dirs]
    if not runs:
        raise ArnnGenError("save_plots needs at least one run folder")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    figures = {
        "free_energy": free_energy_figure(runs),
        "relative_error": relative_error_figure(runs),
        "overlaps": overlap_figure(runs),
        "training": training_figure(runs),
    }
    paths: list[Path] = []
    for name in PLOT_NAMES:
        for fmt in ("png", "pdf"):
            path = out / f"{name}.{fmt}"
            write_atomically(path, figure_bytes(figures[name], fmt), only_if_changed=True)
            paths.append(path)
    return paths
