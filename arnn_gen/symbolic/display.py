"""Presentation of derived formulas for ``arnn-gen derive``: LaTeX, plain text, PNG.

Input: sections, each a title and an object with ``equations(N)`` (a
:class:`~arnn_gen.symbolic.derive.Derivation` or :class:`~arnn_gen.symbolic.simplify.Reduction`).
Output: a string (LaTeX, text) or PNG bytes; writing files is the CLI's business.
The PNG is drawn by matplotlib's mathtext, so no TeX installation is needed.
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from typing import Protocol

from arnn_gen.symbolic.nn_functions import Equation

__all__ = ["render_latex", "render_text", "render_png"]


class _Displayable(Protocol):
    def equations(self, N: int | None = None) -> tuple[Equation, ...]: ...


Sections = Sequence[tuple[str, _Displayable]]


def render_latex(sections: Sections, N: int | None = None) -> str:
    """A LaTeX fragment: per section a comment line and an ``align*`` block."""
    out = []
    for title, item in sections:
        out.append(f"% {title}")
        out.append(r"\begin{align*}")
        equations = item.equations(N)
        for number, eq in enumerate(equations):
            end = r" \\" if number < len(equations) - 1 else ""
            out.append(f"  {eq.lhs_latex} &= {eq.rhs_latex}{end}")
        out.append(r"\end{align*}")
        out.append("")
    return "\n".join(out)


def render_text(sections: Sections, N: int | None = None) -> str:
    """Plain text (SymPy's string form), one equation per line."""
    out = []
    for title, item in sections:
        out.append(f"# {title}")
        out.extend(eq.text() for eq in item.equations(N))
        out.append("")
    return "\n".join(out)


def render_png(sections: Sections, N: int | None = None, *, dpi: int = 150) -> bytes:
    """PNG bytes: every section's equations drawn with mathtext, one per line."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    from matplotlib.figure import Figure

    rows: list[tuple[str, bool]] = []
    for title, item in sections:
        rows.append((title, True))
        rows.extend((f"${eq.latex()}$", False) for eq in item.equations(N))
    line_height = 0.8  # inches per row
    figure = Figure(figsize=(12, line_height * (len(rows) + 1)), facecolor="white")
    for number, (text, is_title) in enumerate(rows):
        y = 1 - (number + 0.8) / (len(rows) + 1)
        figure.text(
            0.01,
            y,
            text,
            fontsize=13 if is_title else 12,
            fontweight="bold" if is_title else "normal",
            va="center",
            ha="left",
        )
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=dpi, bbox_inches="tight", pad_inches=0.25)
    return buffer.getvalue()
