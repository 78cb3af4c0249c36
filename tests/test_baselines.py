"""The baselines 1P, 1L, MADE_dw (docs/physics.md section 6): normalisation by enumeration, the
autoregressive property by flipping inputs, sampler == forward, sample statistics, energy,
gradients, parameter counts, the factory and every constructor error."""

from __future__ import annotations

import math

import pytest
import torch
from internals import member
from spins import all_configurations, config_index

from arnn_gen.errors import ArnnGenError
from arnn_gen.learn.baselines import (
    BASELINES,
    MADE,
    OneLayer,
    OneParameter,
    made_degrees,
    make_baseline,
)
from arnn_gen.systems import curie_weiss, sherrington_kirkpatrick

#: (name, options): every baseline of the paper, and MADE with tanh.
VARIANTS = [(name, {}) for name in BASELINES] + [("MADE_21", {"activation": "tanh"})]
IDS = [name + ("_tanh" if options else "") for name, options in VARIANTS]
#: Factor applied to the random start so that the distributions are far from uniform.
SHARPEN = 4.0


def build(name, N=10, *, seed=0, sharpen=1.0, hamiltonian=None, **options):  # noqa: N803
    """A float64 baseline with seeded random parameters, multiplied by ``sharpen``."""
    torch.manual_seed(seed)
    hamiltonian = hamiltonian or sherrington_kirkpatrick(N, seed=seed)
    options = {"dtype": torch.float64, "init": "random", **options}
    model = make_baseline(name, hamiltonian, 1.0, **options)
    with torch.no_grad():
        for parameter in model.parameters():
            parameter.mul_(sharpen)
    return model


def random_spins(batch, N, seed):  # noqa: N803
    generator = torch.Generator().manual_seed(seed)
    return torch.randint(0, 2, (batch, N), generator=generator).double() * 2 - 1  # [B, N]


@pytest.mark.parametrize(("name", "options"), VARIANTS, ids=IDS)
@pytest.mark.parametrize("sharpen", [1.0, SHARPEN])
@pytest.mark.parametrize("N", [1, 2, 10])
def test_normalised_by_enumeration(name, options, sharpen, N):  # noqa: N803
    model = build(name, N, sharpen=sharpen, **options)
    log_q = model.log_prob(all_configurations(N))  # [2^N]
    assert log_q.shape == (2**N,) and log_q.dtype == torch.float64
    assert abs(torch.logsumexp(log_q, 0).item()) < 1e-10
    x = all_configurations(N)
    assert torch.equal(log_q, torch.nn.functional.logsigmoid(x * model(x)).sum(-1))


@pytest.mark.parametrize(("name", "options"), VARIANTS, ids=IDS)
def test_autoregressive_property(name, options):
    N = 10
    model = build(name, N, sharpen=SHARPEN, **options)
    x = random_spins(64, N, seed=1)
    logits = model(x)  # [B, N]
    assert logits.shape == (64, N)
    for j in range(N):
        flipped = x.clone()
        flipped[:, j] *= -1
        changed = model(flipped)
        # logit i depends only on x_<i: flipping x_j leaves logits i <= j exactly unchanged
        assert torch.equal(changed[:, : j + 1], logits[:, : j + 1])
        if j < N - 1:  # ... and the later ones do depend on it
            assert not torch.equal(changed[:, j + 1 :], logits[:, j + 1 :])


def reference_sample(model, batch_size, generator):
    """Ancestral sampling with a full forward pass per site (the slow, obvious sampler)."""
    x = torch.zeros(batch_size, model.N, dtype=torch.float64)
    for i in range(model.N):
        logit = model(x)[:, i]
        u = torch.rand(batch_size, generator=generator, dtype=torch.float64)
        x[:, i] = torch.where(u < torch.sigmoid(logit), 1.0, -1.0)
    return x


@pytest.mark.parametrize(("name", "options"), VARIANTS, ids=IDS)
def test_sampler_equals_forward(name, options):
    model = build(name, 10, sharpen=SHARPEN, **options)
    x = model.sample(500, generator=torch.Generator().manual_seed(3))
    assert x.shape == (500, 10) and x.dtype == torch.float64
    assert bool(((x == 1) | (x == -1)).all())
    assert torch.equal(x, reference_sample(model, 500, torch.Generator().manual_seed(3)))
    again = model.sample(500, generator=torch.Generator().manual_seed(3))
    assert torch.equal(x, again)


@pytest.mark.parametrize(("name", "options"), VARIANTS, ids=IDS)
def test_sample_statistics(name, options):
    N, n = 5, 200_000
    model = build(name, N, sharpen=SHARPEN, hamiltonian=curie_weiss(N), **options)
    x = model.sample(n, generator=torch.Generator().manual_seed(7))
    counts = torch.bincount(config_index(x), minlength=2**N).double()  # [2^N]
    p = model.log_prob(all_configurations(N)).exp()  # [2^N]
    expected = n * p
    # 5 sigma of the binomial count, at least 5 counts for very unlikely configurations
    tolerance = 5 * torch.sqrt(torch.clamp(n * p * (1 - p), min=1.0))
    assert bool(((counts - expected).abs() <= tolerance).all()), (counts, expected)
    assert p.max() > 2 * p.min()  # a non-trivial distribution was tested


@pytest.mark.parametrize("name", BASELINES)
def test_energy_matches_hamiltonian(name):
    hamiltonian = sherrington_kirkpatrick(10, h=0.3, seed=4)
    model = build(name, hamiltonian=hamiltonian)
    x = random_spins(32, 10, seed=5)
    energy = model.energy(x)
    assert energy.shape == (32,) and energy.dtype == torch.float64
    torch.testing.assert_close(energy, hamiltonian.energy(x), rtol=1e-12, atol=1e-12)
    single = model.energy(x.float())
    assert single.dtype == torch.float32
    torch.testing.assert_close(single, hamiltonian.energy(x.float()))
    integer = model.energy(x.long())  # integer spins: computed in the model dtype
    assert integer.dtype == torch.float64
    torch.testing.assert_close(integer, energy, rtol=0, atol=0)
    assert len(member(model, "energy_tensors")) == 2  # one J, h pair per (device, dtype)
    assert model.hamiltonian is hamiltonian


@pytest.mark.parametrize(("name", "options"), VARIANTS, ids=IDS)
def test_gradients_flow(name, options):
    model = build(name, 10, **options)
    x = random_spins(64, 10, seed=6)
    model.log_prob(x).sum().backward()
    grads = [parameter.grad for parameter in model.parameters()]
    assert all(grad is not None and bool(torch.isfinite(grad).all()) for grad in grads)
    assert any(bool((grad != 0).any()) for grad in grads)
    if isinstance(model, OneLayer):  # the unused (masked) weights get no gradient
        assert bool((model.weight.grad.triu() == 0).all())


@pytest.mark.parametrize("N", [1, 7, 10])
def test_parameter_counts(N):  # noqa: N803
    hamiltonian = curie_weiss(N)

    def count(model):
        return sum(parameter.numel() for parameter in model.parameters())

    assert count(OneParameter(hamiltonian)) == OneParameter.parameter_count(N) == 1
    assert count(OneLayer(hamiltonian)) == OneLayer.parameter_count(N) == N * N + N
    for depth, width in [(1, 1), (2, 1), (2, 2), (3, 2)]:
        model = MADE(hamiltonian, depth=depth, width=width)
        assert count(model) == MADE.parameter_count(N, depth, width)
    assert MADE.parameter_count(10, 2, 1) == 330  # 110 + 110 + 110
    assert MADE.parameter_count(10, 2, 2) == 220 + 420 + 210


def test_made_degrees():
    assert made_degrees(4, 8).tolist() == [1, 2, 3, 1, 2, 3, 1, 2]
    assert made_degrees(1, 2).tolist() == [1, 1]


def test_inits_and_beta():
    hamiltonian = sherrington_kirkpatrick(6, seed=1)
    one = OneParameter(hamiltonian)
    assert one.w.item() == 0.0 and one.name == "1P"  # documented start: w = 0
    x = random_spins(8, 6, seed=2).float()
    for model in (one, OneLayer(hamiltonian, init="zero"), MADE(hamiltonian, init="zero")):
        torch.testing.assert_close(model.log_prob(x), torch.full((8,), -6 * math.log(2)))
        assert model.N == 6 and model.beta == 1.0
        assert model.sample(3).dtype == torch.float32  # default dtype
    torch.manual_seed(0)
    one.reset_parameters()
    assert one.w.item() != 0.0
    one.beta = 2
    assert one.beta == 2.0 and isinstance(one.beta, float)
    with pytest.raises(ArnnGenError, match="beta must be"):
        one.beta = 0.0
    layer = OneLayer(hamiltonian)
    used = layer.mask.bool()
    assert bool((layer.weight[~used] == 0).all()) and bool((layer.weight[used] != 0).all())
    assert "name='1L', N=6" in repr(layer)


def test_make_baseline():
    hamiltonian = curie_weiss(8)
    assert BASELINES == ("1P", "1L", "MADE_21", "MADE_22")
    kinds = [OneParameter, OneLayer, MADE, MADE]
    for name, kind in zip(BASELINES, kinds, strict=True):
        model = make_baseline(name, hamiltonian, 0.5)
        assert type(model) is kind and model.name == name and model.beta == 0.5
    made = make_baseline("made_32", hamiltonian, activation="tanh", dtype=torch.float64)
    assert (made.name, made.depth, made.width, made.activation) == ("MADE_32", 3, 2, "tanh")
    assert made.layers[0].weight.shape == (16, 8)
    with pytest.raises(ArnnGenError, match=r"unknown baseline 'RBM': choose 1P, 1L or MADE_dw"):
        make_baseline("RBM", hamiltonian)
    for bad in ("MADE_2", "MADE_02", "MADE_213"):
        with pytest.raises(ArnnGenError, match="unknown baseline"):
            make_baseline(bad, hamiltonian)
    with pytest.raises(ArnnGenError, match="baseline name must be a string"):
        make_baseline(1, hamiltonian)
    with pytest.raises(ArnnGenError, match=r"unknown option\(s\) depth for baseline 'MADE_21'"):
        make_baseline("MADE_21", hamiltonian, depth=3)
    with pytest.raises(ArnnGenError, match=r"unknown option\(s\) activation .*allowed"):
        make_baseline("1L", hamiltonian, activation="relu")


@pytest.mark.parametrize(
    ("kind", "arguments", "message"),
    [
        (OneParameter, {"hamiltonian": "sk"}, "hamiltonian must be an arnn_gen"),
        (OneLayer, {"beta": 0.0}, "beta must be a finite number > 0"),
        (OneLayer, {"beta": float("nan")}, "beta must be a finite number > 0"),
        (OneLayer, {"beta": "hot"}, "beta must be a finite number > 0"),
        (OneLayer, {"beta": True}, "beta must be a finite number > 0"),
        (OneParameter, {"dtype": torch.int64}, "dtype must be a real floating"),
        (OneParameter, {"dtype": "float32"}, "dtype must be a real floating"),
        (OneParameter, {"device": "nowhere"}, "invalid device 'nowhere'"),
        (OneLayer, {"init": "xavier"}, "init must be one of random, zero"),
        (MADE, {"init": "xavier"}, "init must be one of random, zero"),
        (MADE, {"depth": 0}, "MADE depth must be an integer >= 1"),
        (MADE, {"width": 1.5}, "MADE width must be an integer >= 1"),
        (MADE, {"activation": "gelu"}, "MADE activation must be one of relu, tanh"),
    ],
)
def test_constructor_errors(kind, arguments, message):
    arguments = {"hamiltonian": curie_weiss(4), **arguments}
    with pytest.raises(ArnnGenError, match=message) as error:
        kind(**arguments)
    assert "\n" not in str(error.value)
    with pytest.raises(ArnnGenError, match="init must be one of"):
        OneParameter(curie_weiss(4)).reset_parameters("xavier")
