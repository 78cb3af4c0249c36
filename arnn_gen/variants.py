"""The systems arnn-gen knows and the variants (architectures) each offers, the first the
default (DESIGN.md's table). Shared by the reductions, the IR and the request."""

from __future__ import annotations

from collections.abc import Mapping

__all__ = ["VARIANTS"]

#: Variants by system (DESIGN.md): the first is the default.
VARIANTS: Mapping[str, tuple[str, ...]] = {
    "general": ("krsb", "exact", "rs"),
    "cw": ("exact", "inf", "rs", "krsb"),
    "sk": ("krsb", "exact", "rs"),
    "ea2d": ("krsb", "rs", "exact"),
    "ea3d": ("krsb", "rs", "exact"),
    "ising2d": ("krsb", "rs", "exact"),
    "rrg": ("krsb", "rs", "exact"),
}
