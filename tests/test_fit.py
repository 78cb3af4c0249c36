"""Maximum likelihood on samples and the inverse problem (docs/physics.md section 5)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from arnn_gen.errors import ArnnGenError
from arnn_gen.learn.mcmc import metropolis_samples
from arnn_gen.learn.train import FitConfig, fit, fit_model


def test_inverse_problem_recovers_the_couplings(emitted, tmp_path):
    """SK_1RSB with a learnable first layer, fitted to Metropolis samples of an SK instance
    (N = 30, beta = 1, 4000 samples): the learned first-layer weights correlate with |J|
    (corr > 0.8; the sign of each weight is not identifiable, as in the paper's Fig. 5)."""
    N, beta = 30, 1.0  # noqa: N806
    module = emitted("sk", variant="krsb", k=1, N=N, seed=3, beta=beta)
    hamiltonian = module.stages.hamiltonian
    samples = metropolis_samples(
        hamiltonian, beta, count=4000, sweeps=100, generator=torch.Generator().manual_seed(0)
    )
    model = module.Model(learn_couplings=True, init="random")
    losses = fit_model(model, samples.numpy(), FitConfig(epochs=40, batch=500, lr=1e-2),
                       tmp_path / "fit", learn_couplings=True)  # fmt: skip
    assert losses[-1] < losses[0]
    upper = np.triu_indices(N, 1)
    learned = np.abs(model.J.detach().numpy()[upper])
    assert np.corrcoef(learned, np.abs(hamiltonian.J[upper]))[0, 1] > 0.8
    assert sorted(p.name for p in (tmp_path / "fit").iterdir()) == [
        "config.json", "fit.json", "model.pt",
    ]  # fmt: skip


def test_fit_lowers_the_negative_log_likelihood_to_the_entropy(emitted):
    """Fitting the exact samples of a system: the NLL per sample tends to the Boltzmann
    entropy (it cannot go below it on average) — checked on an RS model at N = 8."""
    from arnn_gen.exact import enumerate_exact

    module = emitted("sk", variant="rs", N=8, seed=2, beta=0.7)
    exact_model = emitted("sk", variant="exact", N=8, seed=2, beta=0.7).Model()
    samples = exact_model.sample(8000, generator=torch.Generator().manual_seed(1))
    model = module.Model(dtype=torch.float64)
    losses = fit(model, samples.numpy(), FitConfig(epochs=30, batch=500, lr=1e-2,
                                                   dtype="float64"))  # fmt: skip
    entropy = enumerate_exact(module.stages.hamiltonian, 0.7).entropy * 8
    assert losses[-1] == pytest.approx(entropy, rel=0.02)


def test_fit_errors(emitted):
    module = emitted("cw", variant="exact", N=6)
    with pytest.raises(ArnnGenError, match="no trainable parameters"):
        fit(module.Model(), np.ones((4, 6)), FitConfig(epochs=1))
    trainable = emitted("sk", variant="rs", N=6).Model()
    with pytest.raises(ArnnGenError, match=r"shape \[S, 6\]"):
        fit(trainable, np.ones((4, 5)), FitConfig(epochs=1))
    with pytest.raises(ArnnGenError, match="only -1 and \\+1"):
        fit(trainable, np.zeros((4, 6)), FitConfig(epochs=1))
    with pytest.raises(ArnnGenError, match="epochs"):
        FitConfig(epochs=0)
