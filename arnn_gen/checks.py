"""Input checks and the documented bounds on sizes, shared by every stage and the CLI.

Every check raises :class:`~arnn_gen.errors.ArnnGenError` with one line naming the input.
Sizes are checked *before* anything proportional to them is allocated: a size read from a
file header, from the largest index of an edge list or from a command-line option is
compared with the bound of what the requested operation can do, and refused otherwise.

The bounds (docs/reliability.md lists them with the reasoning):

``MAX_SPINS``
    the most spins of any system (the Curie-Weiss formula, O(N) memory).
``DENSE_BUDGET_BYTES`` / ``MAX_DENSE_N``
    dense couplings J are float64 ``[N, N]``; a system whose J would exceed the budget is
    refused before J is built (N <= 16384, J = 2 GiB).
``MAX_ENUMERATION_N``
    exact enumeration of 2^N states (in :mod:`arnn_gen.exact`).
``MAX_CW_TABLE_N``
    the CW_N module tabulates [N, 2N + 1] logits.
``MAX_BETAS``
    points of an annealing grid.
``MAX_OUTPUT_SPINS``
    spins written by one ``sample`` or ``mcmc`` call (samples x N, int8 on disk).
``MAX_SAMPLES``
    samples drawn at once for an estimate or a file.
``MAX_BATCH_SPINS``
    spins of one training batch (batch x N; 1 GiB of float32 samples).
``MAX_TRAINING_STEPS``
    steps of one annealing schedule (each keeps a row of training history).
"""

from __future__ import annotations

import math
import operator
from typing import Any

from arnn_gen.errors import ArnnGenError

__all__ = [
    "MAX_SPINS",
    "DENSE_BUDGET_BYTES",
    "MAX_DENSE_N",
    "MAX_CW_TABLE_N",
    "MAX_BETAS",
    "MAX_OUTPUT_SPINS",
    "MAX_SAMPLES",
    "MAX_TRAINING_STEPS",
    "MAX_BATCH_SPINS",
    "check_beta",
    "check_real",
    "check_int",
    "check_spins",
    "check_dense",
    "check_samples",
]

MAX_SPINS = 1_000_000
DENSE_BUDGET_BYTES = 2 * 1024**3
MAX_DENSE_N = math.isqrt(DENSE_BUDGET_BYTES // 8)  # 16384
MAX_CW_TABLE_N = 10_000
MAX_BETAS = 100_000
MAX_OUTPUT_SPINS = 2**30
MAX_SAMPLES = 100_000_000
MAX_TRAINING_STEPS = 10_000_000
MAX_BATCH_SPINS = 2**28


def check_real(name: str, value: Any) -> float:
    """``value`` as a finite float (bools refused)."""
    if isinstance(value, bool) or type(value).__name__ == "bool_":
        raise ArnnGenError(f"{name} must be a finite number, got {value!r}")
    try:
        result = float(value)
    except (TypeError, ValueError, OverflowError):
        raise ArnnGenError(f"{name} must be a finite number, got {value!r}") from None
    if not math.isfinite(result):
        raise ArnnGenError(f"{name} must be a finite number, got {result!r}")
    return result


def check_beta(beta: Any, name: str = "beta") -> float:
    """An inverse temperature: a finite number > 0."""
    message = f"{name} must be a finite number > 0, got {{}}"
    if isinstance(beta, bool) or type(beta).__name__ == "bool_":
        raise ArnnGenError(message.format(repr(beta)))
    try:
        value = float(beta)
    except (TypeError, ValueError, OverflowError):
        raise ArnnGenError(message.format(repr(beta))) from None
    if not math.isfinite(value) or value <= 0.0:
        raise ArnnGenError(message.format(repr(value)))
    return value


def check_int(name: str, value: Any, minimum: int | None = None, maximum: int | None = None) -> int:
    """``value`` as an int within [minimum, maximum] (bools and non-integers refused)."""
    if isinstance(value, bool) or type(value).__name__ == "bool_":
        raise ArnnGenError(f"{name} must be an integer, got {value!r}")
    try:
        result = operator.index(value)
    except TypeError:
        raise ArnnGenError(f"{name} must be an integer, got {value!r}") from None
    if minimum is not None and result < minimum:
        raise ArnnGenError(f"{name} must be an integer >= {minimum}, got {result}")
    if maximum is not None and result > maximum:
        raise ArnnGenError(f"{name} must be an integer <= {maximum}, got {result}")
    return result


def check_spins(N: Any, name: str = "the number of spins N") -> int:  # noqa: N803
    """A system size: 1 <= N <= MAX_SPINS."""
    return check_int(name, N, 1, MAX_SPINS)


def check_dense(N: int, what: str = "dense couplings") -> int:  # noqa: N803
    """Refuse a size whose dense float64 J [N, N] would exceed DENSE_BUDGET_BYTES.

    >>> check_dense(MAX_DENSE_N)
    16384
    >>> check_dense(20000)  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    arnn_gen.errors.ArnnGenError: dense couplings of N = 20000 spins need 2.98 GiB ...
    """
    N = check_spins(N)  # noqa: N806
    if N > MAX_DENSE_N:
        gib = 8 * N * N / 1024**3
        raise ArnnGenError(
            f"{what} of N = {N} spins need {gib:.3g} GiB (J is [N, N] float64); the limit is "
            f"N <= {MAX_DENSE_N} ({DENSE_BUDGET_BYTES // 1024**3} GiB)"
        )
    return N


def check_samples(name: str, count: Any, N: int | None = None) -> int:  # noqa: N803
    """A number of samples: 1 <= count <= MAX_SAMPLES and count x N <= MAX_OUTPUT_SPINS."""
    count = check_int(name, count, 1, MAX_SAMPLES)
    if N is not None and count * N > MAX_OUTPUT_SPINS:
        raise ArnnGenError(
            f"{name} = {count} samples of N = {N} spins exceed the limit of "
            f"{MAX_OUTPUT_SPINS} spins per call; draw them in several calls"
        )
    return count
