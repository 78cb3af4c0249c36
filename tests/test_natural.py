"""The natural-gradient optimizer: the block structure of the Fisher matrix it relies on,
its direction against a dense solve, and training with it."""

from __future__ import annotations

import pytest
import torch
from internals import member
from spins import all_configurations

from arnn_gen.errors import ArnnGenError
from arnn_gen.learn.natural import SiteNaturalGradient
from arnn_gen.learn.train import TrainConfig, reinforce_loss, train


def _model(emitted, k=1, N=5, seed=3, beta=0.9):  # noqa: N803
    variant = "rs" if k == 0 else "krsb"
    module = emitted("sk", variant=variant, k=k, N=N, seed=seed, h=0.2)
    torch.manual_seed(seed)
    return module.Model(beta=beta, dtype=torch.float64, init="random")


@pytest.mark.parametrize("k", [0, 1])
def test_exact_fisher_matrix_is_block_diagonal_over_the_sites(emitted, k):
    """By enumeration (N = 5): the Fisher matrix of Q over all parameters has no entries
    between two sites' parameters, and its diagonal blocks are not zero."""
    model = _model(emitted, k=k)
    X = all_configurations(5)  # noqa: N806
    q = model.log_prob(X).detach().exp()  # [32]
    scores = model.site_log_prob_grads(X).flatten(1)  # [32, N P]
    centred = scores - q @ scores
    fisher = (centred * q[:, None]).T @ centred  # [N P, N P]
    P = scores.shape[1] // 5  # noqa: N806
    blocks = fisher.reshape(5, P, 5, P).permute(0, 2, 1, 3)  # [site, site, P, P]
    for i in range(5):
        for j in range(5):
            size = blocks[i, j].abs().max()
            if i == j:
                assert size > 1e-3
            else:
                assert size < 1e-14, (i, j)


def test_direction_solves_each_sites_fisher_block(emitted):
    """direction(x, L) = (S_i + lambda 1)^-1 g_i with S_i the batch covariance of site i's
    scores and g_i their covariance with L, which is the REINFORCE gradient of train."""
    model = _model(emitted, k=1, N=7)
    optimizer = SiteNaturalGradient(model, lr=0.1, damping=1e-2)
    x = model.sample(300, generator=torch.Generator().manual_seed(1))
    loss, L = reinforce_loss(model, x, 0.9)  # noqa: N806
    gradients = torch.autograd.grad(loss, member(model, "trained")())
    direction = optimizer.direction(x, L)  # [N, P]
    scores = model.site_log_prob_grads(x)  # [B, N, P]
    centred = scores - scores.mean(0)
    excess = L - L.mean()
    for i in range(7):
        fisher = centred[:, i].T @ centred[:, i] / 300 + 1e-2 * torch.eye(scores.shape[-1])
        gradient = centred[:, i].T @ excess / 300
        scale = gradient.abs().max()  # the blocks' condition numbers reach about 1e4
        assert torch.allclose(fisher @ direction[i], gradient, rtol=0, atol=1e-8 * scale)
        hidden = torch.stack([g[:, i] for g in gradients[:-2]])  # [T, 2, N]
        assert torch.allclose(gradient[:-2], hidden.flatten(), rtol=1e-9, atol=1e-12)
        assert torch.allclose(gradient[-2:], torch.stack([g[i] for g in gradients[-2:]]))


def test_step_moves_each_parameter_by_lr_times_the_direction(emitted):
    model = _model(emitted, k=2, N=6)
    optimizer = SiteNaturalGradient(model, lr=0.3)
    x = model.sample(200, generator=torch.Generator().manual_seed(2))
    _, L = reinforce_loss(model, x, 0.9)  # noqa: N806
    direction = optimizer.direction(x, L)
    before = [p.detach().clone() for p in member(model, "trained")()]
    optimizer.step(x, L)
    moved = [
        before_ - after.detach()
        for before_, after in zip(before, member(model, "trained")(), strict=True)
    ]
    hidden = torch.stack([m.transpose(0, 1) for m in moved[:-2]], 1)  # [N, T, 2, N]
    assert torch.allclose(hidden.flatten(1), 0.3 * direction[:, :-2], atol=1e-14)
    assert torch.allclose(torch.stack(moved[-2:], -1), 0.3 * direction[:, -2:], atol=1e-14)
    assert (model.a0.detach()[:, ~model.later] == before[-3][:, ~model.later]).all()


def test_natural_gradient_trains_and_is_refused_where_it_cannot_apply(emitted):
    """On an N = 8 instance at beta = 1, a few natural-gradient steps from the paramagnetic
    start take the relative error of f below 2e-4; models without per-site gradients and
    oversized batches are refused with one line."""
    module = emitted("sk", variant="krsb", k=1, N=8, seed=2)
    config = TrainConfig(beta=1.0, beta_start=1.0, steps_per_beta=40, batch=1000,
                         optimizer="natural", eval_samples=20000, dtype="float64")  # fmt: skip
    model = module.Model(beta=1.0, dtype=torch.float64)
    assert config.lr is None and config.for_model(model).lr == 0.2
    result = train(model, config, None, progress=False)
    assert result.final["relative_error"] < 2e-4
    cw = emitted("cw", variant="inf", N=8)
    with pytest.raises(ArnnGenError, match="per-site gradients"):
        train(cw.Model(beta=1.0), config, None, progress=False)
    with pytest.raises(ArnnGenError, match="more than"):
        train(module.Model(), TrainConfig(beta=1.0, batch=10**8, optimizer="natural"), None,
              progress=False)  # fmt: skip


def test_a_natural_gradient_run_resumes_to_the_same_state(emitted, tmp_path):
    module = emitted("sk", variant="krsb", k=1, N=6, seed=1)
    config = TrainConfig(beta=0.4, beta_start=0.2, beta_step=0.1, steps_per_beta=3, batch=64,
                         eval_samples=128, dtype="float64", optimizer="natural")  # fmt: skip
    whole = module.Model(beta=0.2, dtype=torch.float64)
    expected = train(whole, config, tmp_path / "whole", progress=False)

    def stop(index, beta):
        if index == 1:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        train(module.Model(beta=0.2, dtype=torch.float64), config, tmp_path / "cut",
              progress=False, after_beta=stop)  # fmt: skip
    resumed = module.Model(beta=0.2, dtype=torch.float64)
    result = train(resumed, config, tmp_path / "cut", resume=True, progress=False)
    for name, value in whole.state_dict().items():
        assert torch.equal(value, resumed.state_dict()[name]), name
    assert result.final == expected.final


def test_the_size_check_counts_the_per_sample_gradients(emitted, monkeypatch):
    """B N P numbers, P = 2 N (2k + 3) + 2: a batch just under MAX_SITE_GRAD_NUMBERS
    passes, one more sample is refused."""
    from arnn_gen.learn import natural

    model = _model(emitted, k=1, N=6)
    per_sample = 6 * (2 * 6 * 5 + 2)
    assert model.site_log_prob_grads(model.sample(3)).shape == (3, 6, 62)
    monkeypatch.setattr(natural, "MAX_SITE_GRAD_NUMBERS", 10 * per_sample)
    optimizer = SiteNaturalGradient(model)
    optimizer.check_size(10)
    with pytest.raises(ArnnGenError, match="more than"):
        optimizer.check_size(11)
