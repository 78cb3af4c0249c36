"""Helpers the model tests share: every configuration of N spins and their indices."""

from __future__ import annotations

import itertools

import torch


def all_configurations(N: int) -> torch.Tensor:  # noqa: N803
    """[2^N, N] float64 +-1 rows, in itertools.product((1, -1), repeat=N) order."""
    return torch.tensor(list(itertools.product((1.0, -1.0), repeat=N)), dtype=torch.float64)


def config_index(x: torch.Tensor) -> torch.Tensor:
    """[B] index of each row of x [B, N] in all_configurations order."""
    bits = (x < 0).long()
    return (bits * (2 ** torch.arange(x.shape[1] - 1, -1, -1, device=x.device))).sum(1)
