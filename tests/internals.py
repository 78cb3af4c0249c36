"""The one door tests use into an emitted module's private members.

Tests of the emitted modules go through the public contract (Model, forward, log_prob,
sample, sample_with_log_prob, energy, beta); a test about one mechanism of a module (the
blocks forward walks, the sigmoid forms, compilation, the CUDA graph of sampling, the
order of the trained parameters) reads or sets the member behind it through these two
functions, so that every such use is easy to find.
"""

from __future__ import annotations

__all__ = ["member", "set_member"]


def member(model, name: str):
    """The private member ``_<name>`` of ``model`` (an attribute or a bound method)."""
    return getattr(model, f"_{name}")


def set_member(model, name: str, value) -> None:
    """Set the private member ``_<name>`` of ``model``."""
    setattr(model, f"_{name}", value)
