"""The annealing schedule of the trainer: parameters that follow beta, the warm-up at the
first beta, the learning rate within a beta, and per-beta estimates with error bars."""

from __future__ import annotations

import json
import math
from dataclasses import replace
from types import SimpleNamespace

import pytest
import torch
from internals import member

from arnn_gen.errors import ArnnGenError
from arnn_gen.learn.baselines import make_baseline
from arnn_gen.learn.train import TrainConfig, follow_beta, hamiltonian_of, logit_width, train


@pytest.mark.parametrize("k", [0, 1, 2])
def test_follow_beta_carries_the_paramagnetic_start_to_the_next_beta(emitted, k):
    """The parameters named BETA_SCALED are beta times a function of the couplings at the
    paramagnetic start, so scaling them by beta'/beta gives the start at beta' exactly;
    every other parameter is left alone."""
    variant = "rs" if k == 0 else "krsb"
    module = emitted("sk", variant=variant, k=k, N=7, seed=3)
    inner = f"a{k + 1}", f"b{k + 1}"
    assert module.Model.BETA_SCALED == (*inner, "residual_weight", "residual_bias")
    moved = module.Model(beta=0.3, dtype=torch.float64)
    follow_beta(moved, 0.3, 1.1)
    expected = module.Model(beta=1.1, dtype=torch.float64).state_dict()
    for name, value in moved.state_dict().items():
        assert torch.allclose(value, expected[name], rtol=1e-14, atol=0), name
    unchanged = module.Model(beta=0.3, dtype=torch.float64).state_dict()
    assert torch.equal(moved.a0, unchanged["a0"])
    assert not torch.equal(moved.residual_weight, unchanged["residual_weight"])


def test_follow_beta_leaves_models_without_beta_scaled_parameters(emitted):
    module = emitted("cw", variant="inf", N=10)
    model = module.Model(beta=0.5)
    before = {name: value.clone() for name, value in model.state_dict().items()}
    follow_beta(model, 0.5, 1.0)
    assert all(torch.equal(value, before[name]) for name, value in model.state_dict().items())


def test_annealing_follows_beta_between_betas_only(emitted):
    """With no training steps, annealing 0.2 -> 0.6 scales the BETA_SCALED parameters by
    0.6 / 0.2 (through 0.4); with follow_beta off it leaves them as they were."""
    module = emitted("sk", variant="krsb", k=1, N=6, seed=0)
    config = TrainConfig(beta=0.6, beta_start=0.2, beta_step=0.2, steps_per_beta=0,
                         batch=64, eval_samples=64, dtype="float64")  # fmt: skip
    for follow, beta in ((True, 0.6), (False, 0.2)):
        model = module.Model(beta=0.2, dtype=torch.float64)
        train(model, TrainConfig(**{**config.to_dict(), "follow_beta": follow}), None,
              progress=False)  # fmt: skip
        start = module.Model(beta=beta, dtype=torch.float64).state_dict()
        for name, value in model.state_dict().items():
            assert torch.allclose(value, start[name], rtol=1e-13, atol=0), (follow, name)


def test_warmup_steps_join_the_first_beta(emitted, tmp_path):
    module = emitted("sk", variant="rs", N=5, seed=1)
    config = TrainConfig(beta=0.3, beta_start=0.1, beta_step=0.1, steps_per_beta=3,
                         warmup_steps=4, batch=32, eval_samples=32)  # fmt: skip
    assert [config.steps_at(i) for i in range(3)] == [7, 3, 3] and config.total_steps() == 13
    train(module.Model(beta=0.1), config, tmp_path / "run", progress=False)
    history = (tmp_path / "run" / "history.csv").read_text().splitlines()[1:]
    betas = [float(line.split(",")[0]) for line in history]
    assert betas == [0.1] * 7 + [0.2] * 3 + [0.3] * 3


def test_learning_rate_falls_along_a_cosine_within_each_beta():
    config = TrainConfig(beta=0.3, beta_start=0.1, beta_step=0.1, steps_per_beta=5,
                         warmup_steps=2, lr=1e-2, lr_min=1e-4)  # fmt: skip
    assert [config.lr_at(0, step) for step in (0, 1)] == [1e-2, 1e-2]  # the warm-up
    for index, offset in ((0, 2), (1, 0), (2, 0)):
        rates = [config.lr_at(index, offset + step) for step in range(5)]
        expected = [1e-4 + 0.5 * (1e-2 - 1e-4) * (1 + math.cos(math.pi * s / 4)) for s in range(5)]
        assert rates == pytest.approx(expected, rel=1e-12)
        assert rates[0] == pytest.approx(1e-2) and rates[-1] == pytest.approx(1e-4)
    fixed = TrainConfig(beta=0.3, lr=3e-3)
    assert {fixed.lr_at(index, step) for index in range(3) for step in range(9)} == {3e-3}


def test_learning_rate_options_are_checked():
    with pytest.raises(ArnnGenError, match="lr_min"):
        TrainConfig(beta=1.0, lr=1e-3, lr_min=1e-2)
    with pytest.raises(ArnnGenError, match="warmup_steps"):
        TrainConfig(beta=1.0, warmup_steps=-1)


def test_default_learning_rate_falls_with_the_width_of_the_replica_forms(emitted, tmp_path):
    """Without --lr, Adam runs at 1e-3 except for replica forms whose logits sum over more
    than 50 later sites (N - 1 dense, FRONTIER_WIDTH over a frontier): 1e-3 * 50 / width;
    the baselines, runs without follow_beta and the natural gradient keep their own rate,
    and a run records the rate it ran."""
    config = TrainConfig(beta=0.2, beta_start=0.1, beta_step=0.1, steps_per_beta=1,
                         batch=16, eval_samples=16)  # fmt: skip
    assert config.lr is None
    wide = emitted("sk", variant="krsb", k=1, N=101, seed=0).Model(beta=0.1)
    assert logit_width(wide) == 100
    assert config.for_model(wide).lr == pytest.approx(5e-4, rel=1e-12)
    assert replace(config, follow_beta=False).for_model(wide).lr == 1e-3
    assert replace(config, optimizer="natural").for_model(wide).lr == 0.2
    assert replace(config, lr=3e-3).for_model(wide).lr == 3e-3
    narrow = emitted("sk", variant="rs", N=51, seed=0).Model(beta=0.1)
    assert config.for_model(narrow).lr == 1e-3
    baseline = make_baseline("1L", hamiltonian_of(wide), beta=0.1)
    assert config.for_model(baseline).lr == 1e-3
    lattice = emitted("ea2d", variant="rs", L=4, W=4, seed=0).Model(beta=0.1)
    assert logit_width(lattice) == lattice.FRONTIER_WIDTH < 50
    assert config.for_model(lattice).lr == 1e-3
    framed = SimpleNamespace(N=10**4, FRONTIER_WIDTH=200, BETA_SCALED=("a1",))
    assert config.for_model(framed).lr == pytest.approx(2.5e-4, rel=1e-12)
    train(wide, config, tmp_path / "run", progress=False)
    recorded = json.loads((tmp_path / "run" / "config.json").read_text())["config"]
    assert recorded["lr"] == pytest.approx(5e-4, rel=1e-12)
    with pytest.raises(ArnnGenError, match="lr_min"):  # above the default it resolves to
        train(wide, replace(config, lr_min=1e-3), None, progress=False)


def test_every_beta_is_estimated_on_eval_samples_with_error_bars(emitted, tmp_path):
    """Each per-beta row comes from eval_samples fresh samples, and carries the standard
    errors of its relative errors: the estimates' standard errors over |f_exact|."""
    module = emitted("sk", variant="rs", N=6, seed=2)
    config = TrainConfig(beta=0.4, beta_start=0.2, beta_step=0.2, steps_per_beta=2,
                         batch=50, eval_samples=700, dtype="float64")  # fmt: skip
    result = train(module.Model(beta=0.2, dtype=torch.float64), config, tmp_path / "run",
                   progress=False)  # fmt: skip
    for row in (*result.rows, result.final):
        exact = abs(row["exact_free_energy"])
        assert row["samples"] == 700
        assert row["relative_error"] == pytest.approx(
            abs(row["free_energy"] - row["exact_free_energy"]) / exact, rel=1e-12)  # fmt: skip
        assert row["relative_error_sem"] == pytest.approx(row["free_energy_sem"] / exact)
        assert row["relative_error_is"] == pytest.approx(
            abs(row["free_energy_is"] - row["exact_free_energy"]) / exact, rel=1e-12)  # fmt: skip
        assert row["relative_error_is_sem"] == pytest.approx(row["free_energy_is_sem"] / exact)
        assert 0 < row["relative_error_sem"] < 1
    header = (tmp_path / "run" / "metrics.csv").read_text().splitlines()[0].split(",")
    assert {"relative_error_sem", "relative_error_is", "relative_error_is_sem"} <= set(header)
    rows = json.loads((tmp_path / "run" / "metrics.json").read_text())["rows"]
    assert [row["samples"] for row in rows] == [700, 700]


@pytest.mark.parametrize("k, N, dtype", [(0, 5, torch.float64), (1, 20, torch.float64),
                                         (2, 9, torch.float32)])  # fmt: skip
def test_site_log_prob_grads_are_the_per_sample_gradients(emitted, k, N, dtype):
    """Row i of site_log_prob_grads is d log Q(x_b) / d theta_i, checked against autograd
    one sample at a time; together the rows hold the whole gradient (N = 20 spans several
    blocks of sites)."""
    variant = "rs" if k == 0 else "krsb"
    module = emitted("sk", variant=variant, k=k, N=N, seed=4)
    torch.manual_seed(0)
    model = module.Model(beta=0.9, dtype=dtype, init="random")
    x = model.sample(6, generator=torch.Generator().manual_seed(1))
    rows = model.site_log_prob_grads(x)  # [B, N, P]
    trained = member(model, "trained")()
    hidden, residual = trained[:-2], trained[-2:]
    assert rows.shape == (6, N, 2 * N * len(hidden) + 2) and rows.dtype == dtype
    tolerance = 1e-10 if dtype == torch.float64 else 1e-4
    for b in range(len(x)):
        grads = torch.autograd.grad(model.log_prob(x[b : b + 1]).sum(), trained)
        expected = torch.cat(
            [torch.stack([g.transpose(0, 1).reshape(N, -1) for g in grads[:-2]], 1).reshape(N, -1),
             torch.stack(grads[-2:], -1)], -1)  # fmt: skip
        assert torch.allclose(rows[b], expected, rtol=tolerance, atol=tolerance)
    assert len(residual) == 2


@pytest.mark.parametrize("k", [0, 1])
def test_one_sample_leaves_the_fields_alone(emitted, k):
    """forward, log_prob and sample of a single configuration give the rows of the batched
    results and leave the model's fields h untouched (their carried fields phi start as a
    copy of h, never as a view of it)."""
    variant = "rs" if k == 0 else "krsb"
    module = emitted("sk", variant=variant, k=k, N=20, seed=5, h=0.3)
    torch.manual_seed(1)
    model = module.Model(beta=0.8, dtype=torch.float64, init="random")
    fields = model.h.clone()
    x = model.sample(4, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        logits = model.forward(x)
        for b in range(4):
            assert torch.allclose(model.forward(x[b : b + 1].clone())[0], logits[b])
        single = model.sample(1, generator=torch.Generator().manual_seed(3))
        assert single.shape == (1, 20)
    assert torch.equal(model.h, fields)
    assert torch.allclose(model.log_prob(x[1:2].clone()), model.log_prob(x)[1:2])
    assert torch.equal(model.h, fields)


@pytest.mark.slow
def test_default_annealing_beats_the_old_default_on_an_sk_instance(emitted):
    """SK_1RSB on an N = 10 SK instance, beta 0.1 -> 1.5 in steps of 0.05, 30 steps of
    batch 500 at each (lr 1e-2): with the default follow_beta the final relative error of f
    (20000 samples) is below 3e-4; the same run without it (the earlier default: the
    paramagnetic start left at the first beta's scale) stays above that bound."""
    module = emitted("sk", variant="krsb", k=1, N=10, seed=0)
    errors = {}
    for follow in (True, False):
        config = TrainConfig(beta=1.5, steps_per_beta=30, batch=500, lr=1e-2, seed=1,
                             eval_samples=20000, dtype="float64", follow_beta=follow)  # fmt: skip
        model = module.Model(beta=0.1, dtype=torch.float64)
        final = train(model, config, None, progress=False).final
        errors[follow] = (final["relative_error"], final["relative_error_sem"])
    (new, new_sem), (old, old_sem) = errors[True], errors[False]
    assert new + 3 * new_sem < 3e-4 < old - 3 * old_sem, errors


def test_default_outer_offset_keeps_adam_steps_small(emitted):
    """SK_2RSB's default start (the k outer offsets adding up to 2): five Adam steps from the
    start at beta = 0.1 move its logits less than half as far as from the earlier start with
    offset 6 per layer, whose output weights multiply an input of about z - 12 (the lag of
    SK_2RSB at N = 50, docs/RESULTS.md "Why SK_2RSB lagged at N = 50"). Measured with
    benchmarks/replica_step_size.py's logit_change."""
    import argparse
    import importlib.util
    from pathlib import Path

    script = Path(__file__).resolve().parents[1] / "benchmarks" / "replica_step_size.py"
    spec = importlib.util.spec_from_file_location("replica_step_size_under_test", script)
    step_size = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(step_size)
    module = emitted("sk", variant="krsb", k=2, N=12, seed=0)
    assert module.OUTER_LAYER_OFFSET == 1
    args = argparse.Namespace(seed=0, beta=0.1, lr=1e-3, steps=5, batch=500)
    default = step_size.logit_change(module, None, args)
    earlier = step_size.logit_change(module, 6.0, args)
    assert default < earlier / 2, (default, earlier)
