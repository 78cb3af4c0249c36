"""Helpers the model tests share: every configuration of N spins and their indices, the
law of samples, and log Q through forward's own autograd."""

from __future__ import annotations

import itertools

import torch
from internals import member


def all_configurations(N: int) -> torch.Tensor:  # noqa: N803
    """[2^N, N] float64 +-1 rows, in itertools.product((1, -1), repeat=N) order."""
    return torch.tensor(list(itertools.product((1.0, -1.0), repeat=N)), dtype=torch.float64)


def config_index(x: torch.Tensor) -> torch.Tensor:
    """[B] index of each row of x [B, N] in all_configurations order."""
    bits = (x < 0).long()
    return (bits * (2 ** torch.arange(x.shape[1] - 1, -1, -1, device=x.device))).sum(1)


def assert_sampled_law(model, x: torch.Tensor) -> None:
    """The rows of x [S, N] (samples of ``model``, on any device) are distributed as
    Q = exp(model.log_prob) over all 2^N configurations: every frequency within 5 standard
    deviations of its probability."""
    N, count = x.shape[1], x.shape[0]
    assert set(x.unique().tolist()) == {-1.0, 1.0}
    states = all_configurations(N).to(device=x.device)
    p = model.log_prob(states).exp().cpu().double()
    frequency = torch.bincount(config_index(x.cpu()), minlength=2**N).double() / count
    sigma = (p * (1 - p) / count).sqrt()
    assert ((frequency - p).abs() < 5 * sigma + 1e-12).all(), (frequency, p)


def log_prob_through_forward(model, x: torch.Tensor) -> torch.Tensor:
    """log Q(x) [B] with autograd through forward: the reference for the replica modules'
    fused gradient pass, which their log_prob and sample_with_log_prob take."""
    x = x.to(member(model, "dtype")())
    return torch.nn.functional.logsigmoid(x * model(x)).sum(-1)
