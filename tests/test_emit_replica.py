"""Emitted SK_RS / SK_kRSB modules (templates/replica.py.j2) against exact references."""

from __future__ import annotations

import contextlib
import copy
import logging
import math

import numpy as np
import pytest
import torch
from internals import member, set_member
from spins import all_configurations, assert_sampled_law, log_prob_through_forward

from arnn_gen import systems
from arnn_gen.exact import log_boltzmann
from arnn_gen.symbolic.simplify import outer_layer_offset


@pytest.mark.parametrize("variant, k", [("rs", 0), ("krsb", 1), ("krsb", 2)])
def test_normalised_and_autoregressive_at_random_parameters(emitted, variant, k):
    module = emitted("sk", variant=variant, k=k, N=10, seed=3)
    torch.manual_seed(0)
    model = module.Model(dtype=torch.float64, init="random")
    X = all_configurations(10)
    assert model.log_prob(X).exp().sum().item() == pytest.approx(1.0, abs=1e-10)
    x = X[torch.randperm(len(X))[:16]]
    logits = model(x)
    for j in range(10):
        flipped = x.clone()
        flipped[:, j] *= -1
        assert torch.equal(model(flipped)[:, : j + 1], logits[:, : j + 1])


def test_sampler_follows_log_prob(emitted):
    module = emitted("sk", variant="krsb", k=1, N=5, seed=1)
    torch.manual_seed(1)
    model = module.Model(dtype=torch.float64, init="random")
    count = 200_000
    x = model.sample(count, generator=torch.Generator().manual_seed(7))
    assert_sampled_law(model, x)


def test_forward_equals_sampler_logits_with_small_blocks(emitted):
    """forward in many site blocks equals forward in one block."""
    module = emitted("sk", variant="krsb", k=1, N=30, seed=2)
    torch.manual_seed(2)
    model = module.Model(dtype=torch.float64, init="random")
    x = model.sample(64, generator=torch.Generator().manual_seed(3))
    single = model(x)
    model.PAIRS_PER_BLOCK = 7
    set_member(model, "blocks", member(model, "site_blocks")())
    assert len(member(model, "blocks")) > 10
    assert torch.allclose(model(x), single, rtol=0, atol=1e-12)


def test_cuda_blocks_partition_the_sites(emitted):
    """The larger blocks used on CUDA cover every site once, in order, and give the same
    logits (computed here on the CPU with those blocks)."""
    module = emitted("sk", variant="krsb", k=1, N=300, seed=0)
    model = module.Model(dtype=torch.float64, init="random")
    cuda_blocks = member(model, "blocks_on")(torch.device("cuda"))
    for blocks in (member(model, "blocks"), cuda_blocks):
        assert blocks[0][0] == 0 and blocks[-1][1] == 300
        assert all(a[1] == b[0] and a[0] < a[1] for a, b in zip(blocks, blocks[1:], strict=False))
    assert 1 < len(cuda_blocks) < len(member(model, "blocks")) / 10
    x = model.sample(8, generator=torch.Generator().manual_seed(0))
    logits = model(x)
    set_member(model, "blocks", cuda_blocks)
    assert torch.allclose(model(x), logits, rtol=0, atol=1e-10)


@pytest.mark.parametrize(
    "system, variant, k, N", [("sk", "rs", 0, 9), ("sk", "krsb", 1, 30), ("cw", "krsb", 2, 8)]
)
def test_sample_with_log_prob_and_its_fused_gradient(emitted, system, variant, k, N):
    """The one-pass log Q equals log_prob, and the fused backward pass equals autograd's
    gradient of log_prob for every trainable parameter (also with several site blocks)."""
    module = emitted(system, variant=variant, k=k, N=N, seed=4)
    torch.manual_seed(4)
    model = module.Model(dtype=torch.float64, init="random")
    model.PAIRS_PER_BLOCK = 11  # several blocks, several sites in some of them
    set_member(model, "blocks", member(model, "site_blocks")())
    x, log_q = model.sample_with_log_prob(128, generator=torch.Generator().manual_seed(5))
    assert torch.allclose(log_q, model.log_prob(x), rtol=0, atol=1e-12)
    assert torch.equal(x, model.sample(128, generator=torch.Generator().manual_seed(5)))
    weights = torch.randn(128, dtype=torch.float64)
    (weights * log_q).sum().backward()
    fused = {name: p.grad.clone() for name, p in model.named_parameters()}
    model.zero_grad()
    (weights * log_prob_through_forward(model, x)).sum().backward()
    for name, parameter in model.named_parameters():
        assert parameter.grad.abs().max() > 0, name  # a real comparison
        assert torch.allclose(fused[name], parameter.grad, rtol=1e-10, atol=1e-12), name


def _layer_logsigmoid_calls(monkeypatch):
    """A list that grows by one for each logsigmoid on a layer's [sign, sites, pairs, B]
    tensor (not on the [B, N] logits of log Q, nor on the parameters' [sign, i, l])."""
    calls, logsigmoid = [], torch.nn.functional.logsigmoid

    def counted(u, *args, **kwargs):
        if u.dim() >= 4:
            calls.append(tuple(u.shape))
        return logsigmoid(u, *args, **kwargs)

    monkeypatch.setattr(torch.nn.functional, "logsigmoid", counted)
    return calls


@pytest.mark.parametrize("variant, k", [("rs", 0), ("krsb", 1), ("krsb", 2)])
def test_eager_layers_through_the_sigmoid_equal_logsigmoid(emitted, monkeypatch, variant, k):
    """On the CPU the eager layers take log(sigmoid(u)) in place (Note [Eager layers on the
    CPU]): sampling with log Q, its fused gradient pass, forward and log_prob with autograd
    give the samples and numbers of the logsigmoid forms, which they do not call."""
    module = emitted("sk", variant=variant, k=k, N=14, seed=4)
    torch.manual_seed(4)
    model = module.Model(dtype=torch.float64, init="random")
    model.PAIRS_PER_BLOCK = 9  # several blocks, several sites in some of them
    set_member(model, "blocks", member(model, "site_blocks")())
    assert member(model, "through_sigmoid")()
    weights = torch.linspace(-1.0, 1.0, 256, dtype=torch.float64)

    def run():
        x, log_q = model.sample_with_log_prob(256, generator=torch.Generator().manual_seed(5))
        model.zero_grad()
        (weights * log_q).sum().backward()
        fused = [p.grad.clone() for p in member(model, "trained")()]
        model.zero_grad()
        (weights * log_prob_through_forward(model, x)).sum().backward()  # through _Layer
        autograd = [p.grad.clone() for p in member(model, "trained")()]
        with torch.no_grad():
            logits = model(x)
        return x, [log_q.detach(), logits, *fused, *autograd]

    calls = _layer_logsigmoid_calls(monkeypatch)
    x, through = run()
    assert calls == []
    monkeypatch.setattr(model, "_through_sigmoid", lambda: False)
    plain_x, plain = run()
    assert calls  # the other forms did run
    assert torch.equal(x, plain_x)
    for got, expected in zip(through, plain, strict=True):
        assert expected.abs().max() > 0
        torch.testing.assert_close(got, expected, rtol=1e-12, atol=1e-13)


def _lowest_layer_input(model, x):
    """The lowest layer input u = b + a z over every pair (i, l), sign and layer for the
    spins x [B, N], computed directly in float64 (phi_{i,l} = h_l + sum_{s<i} J_{s,l} x_s)."""
    J, h = model.J.double(), model.h.double()
    terms = x.double()[:, :, None] * J  # [B, s, l]
    phi = h + torch.cumsum(terms, 1) - terms  # [B, i, l]: sum over s < i
    z, lowest = phi[:, None], math.inf  # [B, 1, i, l]
    hidden = [p.double() for p in member(model, "trained")()[:-3]]
    for a, b in zip(hidden[0::2], hidden[1::2], strict=True):
        u = b + a * z  # [B, 2, i, l]
        lowest = min(lowest, u.min().item())
        z = torch.nn.functional.logsigmoid(u)
    return lowest


@pytest.mark.parametrize("scale", [0.3, 1.0, 3.0])
def test_through_sigmoid_only_where_no_layer_input_can_underflow(emitted, scale):
    """Whenever the model allows the sigmoid forms, no layer input of any pair (masked ones
    too) falls below log(tiny) for any of the 2^N spin configurations; parameters that can
    push one below turn them off."""
    module = emitted("sk", variant="krsb", k=2, N=9, seed=6)
    model = module.Model(dtype=torch.float32)
    generator = torch.Generator().manual_seed(int(scale * 10))
    with torch.no_grad():
        for parameter in member(model, "trained")():
            parameter.normal_(0.0, scale, generator=generator)
    lowest = _lowest_layer_input(model, all_configurations(9))
    limit = math.log(torch.finfo(torch.float32).tiny)
    # sound, and at these scales not loose either: off only where some input does underflow
    assert member(model, "through_sigmoid")() == (lowest >= limit)


def test_through_sigmoid_bound_is_reached(emitted):
    """One pair's inner layer input made to reach the bound (but for the term of the sites
    s >= i, which phi_{i,l} leaves out; its outer layers pass a constant on): the sigmoid
    forms are allowed half a unit above log(tiny) and refused half a unit below."""
    module = emitted("sk", variant="krsb", k=2, N=9, seed=6)
    limit = math.log(torch.finfo(torch.float32).tiny)
    model = module.Model(dtype=torch.float32)
    i, l = 8, 3
    spins = torch.ones(1, 9)
    spins[0, :i] = -torch.sign(model.J[:i, l])  # phi_{i,l} = h_l - sum_{s<i} |J_{s,l}|
    for margin, allowed in ((0.5, True), (-0.5, False)):
        with torch.no_grad():
            model.a3[0, i, l], model.a2[0, i, l], model.a1[0, i, l] = 1.0, 0.0, 0.0
            model.b3[0, i, l] = limit + margin + model.J[:, l].abs().sum()
        assert member(model, "through_sigmoid")() == allowed
        expected = limit + margin + model.J[i:, l].abs().sum().item()
        assert _lowest_layer_input(model, spins) == pytest.approx(expected, abs=1e-4)


def test_underflowing_layer_input_takes_logsigmoid(emitted, monkeypatch):
    """A pair whose inner layer input is about -150 in float32 (sigmoid(u) = 0 there) turns
    the sigmoid forms off, and log_prob stays that of the float64 model; forced on, the
    outer layer (a1 < 0) would read -inf as its input and give a wrong log_prob."""
    module = emitted("sk", variant="krsb", k=1, N=8, seed=7)
    model = module.Model(dtype=torch.float32)
    with torch.no_grad():
        model.b2[0, 2, 5] = -150.0
        model.a1[0, 2, 5] = -0.01
        model.b1[0, 2, 5] = -6.0  # the outer layer's bias, whatever the start's offset
    assert not member(model, "through_sigmoid")()
    x = model.sample(256, generator=torch.Generator().manual_seed(8))
    reference = copy.deepcopy(model).double()
    assert member(reference, "through_sigmoid")()  # float64 holds sigmoid(-150)
    expected = reference.log_prob(x.double())
    assert torch.allclose(model.log_prob(x).double(), expected, rtol=1e-5, atol=1e-4)
    monkeypatch.setattr(model, "_through_sigmoid", lambda: True)
    assert (model.log_prob(x).double() - expected).abs().max() > 1


@pytest.mark.parametrize("source", ["sample_with_log_prob", "log_prob"])
def test_fused_backward_refuses_parameters_changed_since_forward(emitted, source):
    module = emitted("sk", variant="rs", N=6, seed=0)
    model = module.Model(dtype=torch.float64)
    x, log_q = model.sample_with_log_prob(16, generator=torch.Generator().manual_seed(0))
    if source == "log_prob":
        log_q = model.log_prob(x)
    with torch.no_grad():
        model.a1.add_(0.1)  # as an optimizer step before backward would
    with pytest.raises(RuntimeError, match="modified by an inplace operation"):
        log_q.sum().backward()


@pytest.mark.parametrize("variant, k", [("rs", 0), ("krsb", 1), ("krsb", 2)])
def test_log_prob_with_autograd_takes_the_fused_gradient_pass(emitted, monkeypatch, variant, k):
    """log_prob with autograd (maximum-likelihood training) runs forward without autograd and
    the fused gradient pass as its backward: the same log Q and the same gradients of every
    trainable parameter as autograd through forward, without the layers' own backward; for
    spins given as integers too. A gradient of the gradient (create_graph) is autograd's
    through forward: Hessian-vector products come out right."""
    module = emitted("sk", variant=variant, k=k, N=13, seed=5)
    torch.manual_seed(5)
    model = module.Model(dtype=torch.float64, init="random")
    model.PAIRS_PER_BLOCK = 10  # several blocks, several sites in some of them
    set_member(model, "blocks", member(model, "site_blocks")())
    x = model.sample(200, generator=torch.Generator().manual_seed(6))
    weights = torch.randn(200, dtype=torch.float64)
    reference = log_prob_through_forward(model, x)
    (weights * reference).sum().backward()
    expected = {name: p.grad.clone() for name, p in model.named_parameters()}
    model.zero_grad()
    layers = []
    apply = module._Layer.apply
    monkeypatch.setattr(module._Layer, "apply", lambda *args: layers.append(1) or apply(*args))
    log_q = model.log_prob(x.to(torch.int8))
    assert type(log_q.grad_fn).__name__.startswith("_FusedLogProb")
    assert torch.allclose(log_q, reference, rtol=0, atol=1e-12)
    (weights * log_q).sum().backward()
    assert layers == []  # no autograd graph of the layers
    for name, parameter in model.named_parameters():
        assert expected[name].abs().max() > 0, name  # a real comparison
        assert torch.allclose(parameter.grad, expected[name], rtol=1e-10, atol=1e-12), name
    monkeypatch.undo()
    direction = torch.randn_like(model.a1)

    def hessian_vector_product(log_prob):
        model.zero_grad()
        (grad,) = torch.autograd.grad((weights * log_prob(x)).sum(), model.a1, create_graph=True)
        (grad * direction).sum().backward()
        return {name: p.grad.clone() for name, p in model.named_parameters()}

    expected = hessian_vector_product(lambda x: log_prob_through_forward(model, x))
    got = hessian_vector_product(model.log_prob)
    for name, value in expected.items():
        assert value.abs().max() > 0, name
        assert torch.allclose(got[name], value, rtol=1e-10, atol=1e-12), name


def test_log_prob_with_a_first_layer_that_requires_a_gradient_takes_forwards_autograd(emitted):
    """Couplings made to take a gradient by hand (not learn_couplings) get it from log_prob
    and sample_with_log_prob: the fused gradient pass, which holds them fixed, is not used."""
    module = emitted("sk", variant="krsb", k=1, N=8, seed=2)
    model = module.Model(dtype=torch.float64)
    model.J.requires_grad_()
    x, log_q = model.sample_with_log_prob(32, generator=torch.Generator().manual_seed(3))
    (log_q + model.log_prob(x)).sum().backward()
    model_J_grad = model.J.grad.clone()
    model.J.grad = None
    (2 * log_prob_through_forward(model, x)).sum().backward()
    assert model_J_grad.abs().max() > 0
    assert torch.allclose(model_J_grad, model.J.grad, rtol=1e-12, atol=1e-12)


def test_log_prob_with_spins_that_require_a_gradient_takes_forwards_autograd(emitted):
    module = emitted("sk", variant="krsb", k=1, N=8, seed=2)
    torch.manual_seed(2)
    model = module.Model(dtype=torch.float64, init="random")
    x = model.sample(32, generator=torch.Generator().manual_seed(3)).requires_grad_()
    model.log_prob(x).sum().backward()
    reference = x.detach().clone().requires_grad_()
    log_prob_through_forward(model, reference).sum().backward()
    assert x.grad.abs().max() > 0
    assert torch.allclose(x.grad, reference.grad, rtol=1e-12, atol=1e-12)


def test_sample_with_log_prob_without_autograd_and_with_learned_couplings(emitted):
    module = emitted("sk", variant="krsb", k=1, N=7, seed=1)
    torch.manual_seed(1)
    model = module.Model(dtype=torch.float64, init="random")
    with torch.no_grad():
        x, log_q = model.sample_with_log_prob(64, generator=torch.Generator().manual_seed(2))
    assert log_q.grad_fn is None
    assert torch.allclose(log_q, model.log_prob(x), rtol=0, atol=1e-12)
    # a learnable first layer: log_prob's own autograd, so J and h get gradients too
    learner = module.Model(dtype=torch.float64, learn_couplings=True)
    x, log_q = learner.sample_with_log_prob(64, generator=torch.Generator().manual_seed(2))
    log_q.sum().backward()
    assert learner.J.grad is not None and learner.J.grad.abs().max() > 0


def test_paramagnetic_start_is_exact_without_later_couplings(emitted, tmp_path):
    """RS at its default (paramagnetic) start is exact when later spins do not interact:
    a star around spin 0, in the natural order (docs/physics.md section 4; the order of
    smallest frontier would put the hub last, where the later spins interact through it)."""
    N, beta = 8, 1.3
    rng = np.random.default_rng(5)
    J = np.zeros((N, N))
    J[0, 1:] = rng.normal(size=N - 1)
    J = J + J.T
    h = rng.normal(size=N)
    path = tmp_path / "star.npz"
    systems.from_couplings(J, h).save(path)
    module = emitted("general", variant="rs", couplings=str(path), beta=beta, order="natural")
    model = module.Model(dtype=torch.float64)
    X = all_configurations(N)
    exact = log_boltzmann(systems.from_couplings(J, h), beta, X)
    assert (model.log_prob(X) - exact).abs().max().item() < 1e-12
    # k-RSB starts near-linear in its outer layers: close to exact, not equal
    module = emitted("general", variant="krsb", k=1, couplings=str(path), beta=beta,
                     order="natural")  # fmt: skip
    error = (module.Model(dtype=torch.float64).log_prob(X) - exact).abs().max().item()
    assert 0 < error < N * (N - 1) * math.exp(-float(outer_layer_offset(1)))


def test_first_layer_is_the_couplings(emitted):
    module = emitted("sk", N=12, seed=4)
    hamiltonian = module.stages.hamiltonian
    model = module.Model()
    assert model.J.dtype == torch.float32
    assert torch.equal(model.J, torch.as_tensor(hamiltonian.J, dtype=torch.float32))
    assert not isinstance(model.J, torch.nn.Parameter)
    names = {name for name, _ in model.named_parameters()}
    assert "J" not in names and "h" not in names
    learning = module.Model(learn_couplings=True)
    names = {name for name, _ in learning.named_parameters()}
    assert {"J", "h"} <= names
    x = learning.sample(8)
    learning.log_prob(x).sum().backward()
    assert learning.J.grad is not None and learning.J.grad.abs().sum() > 0


def test_energy_and_constructor_overrides(emitted):
    module = emitted("sk", variant="rs", N=9, seed=6)
    other = systems.sherrington_kirkpatrick(9, seed=99, h=0.3)
    model = module.Model(J=other.J, h=other.h, dtype=torch.float64)
    x = model.sample(32)
    assert torch.allclose(model.energy(x), other.energy(x))
    with pytest.raises(ValueError, match="beta must be finite"):
        module.Model(beta=0.0)
    with pytest.raises(ValueError, match="expected J"):
        module.Model(J=np.zeros((3, 3)))
    with pytest.raises(ValueError, match="init must be"):
        module.Model(init="zeros")


def test_trainable_and_beta_attribute(emitted):
    module = emitted("sk", variant="krsb", k=2, N=10, beta=1.5)
    model = module.Model()
    assert model.beta == 1.5 and model.N == 10
    model.beta = 2.0
    assert model.beta == 2.0
    k = 2
    # a0, then a and b of each of the k + 1 layers, per sign, site i and later site l
    # (stored as N x N squares, of which the pairs l > i are used); residual weight, bias
    expected = (1 + 2 * (k + 1)) * 2 * 10 * 10 + 2 * 10
    assert sum(p.numel() for p in model.parameters()) == expected


@pytest.mark.slow
def test_compiled_log_prob_equals_eager(emitted):
    module = emitted("sk", variant="krsb", k=1, N=12)
    model = module.Model(dtype=torch.float64, init="random")
    x = model.sample(16, generator=torch.Generator().manual_seed(0))
    try:
        compiled = torch.compile(model.log_prob)
        value = compiled(x)
    except Exception as error:  # pragma: no cover - depends on the toolchain
        pytest.skip(f"torch.compile unavailable here: {error}")
    assert torch.allclose(value, model.log_prob(x), rtol=1e-12, atol=1e-12)


@pytest.mark.gpu
def test_cuda(emitted):
    module = emitted("sk", variant="krsb", k=1, N=12)
    model = module.Model(device="cuda")
    x = model.sample(8)
    assert x.is_cuda and model.log_prob(x).is_cuda
    assert not member(model, "through_sigmoid")()  # one logsigmoid kernel per layer on CUDA


def _cuda_pair(module, **options):
    """(graphed, eager): the same random-parameter model on CUDA in float64, sampling
    through a CUDA graph and eagerly."""
    torch.manual_seed(0)
    graphed = module.Model(dtype=torch.float64, device="cuda", init="random", **options)
    eager = module.Model(dtype=torch.float64, device="cuda", **options)
    eager.load_state_dict(graphed.state_dict())
    eager.CUDA_GRAPHS = False
    return graphed, eager


def _same_draws(first, second, batch, seed):
    x, logits = member(first, "sample")(batch, torch.Generator("cuda").manual_seed(seed))
    y, expected = member(second, "sample")(batch, torch.Generator("cuda").manual_seed(seed))
    assert torch.allclose(logits, expected, rtol=0, atol=1e-12)
    assert torch.equal(x, y)


@pytest.mark.gpu
@pytest.mark.parametrize("k", [0, 1, 2])
def test_cuda_graph_sampling_replays_the_eager_steps(emitted, k):
    """The CUDA graph of sampling draws what the eager loop draws; it follows in-place
    parameter changes (an optimizer step) and captures again for another batch size or
    after the parameters moved."""
    module = emitted("sk", variant="rs" if k == 0 else "krsb", k=k, N=40, seed=1)
    graphed, eager = _cuda_pair(module)
    _same_draws(graphed, eager, 256, 0)
    first_graph = member(graphed, "graph")
    assert first_graph is not None and member(eager, "graph") is None
    _same_draws(graphed, eager, 256, 1)
    assert member(graphed, "graph") is first_graph  # replayed, not captured again
    with torch.no_grad():
        for model in (graphed, eager):
            model.a1.mul_(1.5)
            model.residual_bias.add_(0.3)
    _same_draws(graphed, eager, 256, 2)
    assert member(graphed, "graph") is first_graph
    _same_draws(graphed, eager, 100, 3)
    assert member(graphed, "graph") is not first_graph
    graphed.cpu()  # moving the model drops the graph and its memory pool
    assert member(graphed, "graph") is None
    graphed.cuda()
    _same_draws(graphed, eager, 100, 4)
    assert member(graphed, "graph") is not None
    copied = copy.deepcopy(graphed)
    assert member(copied, "graph") is None
    _same_draws(copied, eager, 100, 5)


@pytest.mark.gpu
def test_cuda_graph_first_captured_in_inference_mode(emitted):
    """A graph captured under torch.inference_mode() serves later calls outside it."""
    module = emitted("sk", variant="krsb", k=1, N=20, seed=1)
    graphed, eager = _cuda_pair(module)
    with torch.inference_mode():
        _same_draws(graphed, eager, 64, 0)
    _same_draws(graphed, eager, 64, 1)
    assert member(graphed, "graph") is not None and graphed.CUDA_GRAPHS


@pytest.mark.gpu
def test_cuda_graph_capture_failure_falls_back_to_eager(emitted, monkeypatch):
    module = emitted("sk", variant="krsb", k=1, N=20, seed=1)
    graphed, eager = _cuda_pair(module)

    def fail(uniforms):
        raise RuntimeError("no capture here")

    monkeypatch.setattr(graphed, "_capture_draw", fail)
    with pytest.warns(UserWarning, match="no capture here"):
        _same_draws(graphed, eager, 64, 0)
    assert graphed.CUDA_GRAPHS is False and member(graphed, "graph") is None
    _same_draws(graphed, eager, 64, 1)  # eager from now on, without a warning


@pytest.mark.gpu
def test_cuda_graph_sampling_follows_log_prob(emitted):
    """Samples replayed from the CUDA graph have the model's law (exact enumeration)."""
    module = emitted("sk", variant="krsb", k=1, N=5, seed=1)
    graphed, _ = _cuda_pair(module)
    count = 200_000
    x = graphed.sample(count, generator=torch.Generator("cuda").manual_seed(7))
    assert_sampled_law(graphed, x)


def _same_sampled_log_prob_and_gradient(model, eager, batch, log_q_atol, grad_atol):
    """log Q from model.sample_with_log_prob and the gradient of its backward pass (random
    weights on the batch) equal eager's log_prob and autograd's gradient through it, on
    CUDA; (x, weights, eager's log_prob, eager's gradients) for further checks."""
    x, log_q = model.sample_with_log_prob(batch, generator=torch.Generator("cuda").manual_seed(0))
    weights = torch.randn(batch, dtype=torch.float64, device="cuda")
    (log_q * weights).sum().backward()
    reference = log_prob_through_forward(eager, x)
    assert torch.allclose(log_q, reference, rtol=0, atol=log_q_atol)
    (reference * weights).sum().backward()
    pairs = [
        (got.grad, expected.grad)
        for got, expected in zip(model.parameters(), eager.parameters(), strict=True)
        if got.grad is not None or expected.grad is not None
    ]
    assert pairs
    for got, expected in pairs:
        assert torch.allclose(got, expected, rtol=1e-9, atol=grad_atol)
    return x, weights, reference, [expected.clone() for _, expected in pairs]


@pytest.mark.gpu
def test_cuda_sampled_log_prob_gradient(emitted):
    """On CUDA, log Q from the graphed sampling pass and its fused backward equal log_prob
    and autograd's gradient through it."""
    module = emitted("sk", variant="krsb", k=2, N=30, seed=2)
    graphed, eager = _cuda_pair(module)
    _same_sampled_log_prob_and_gradient(graphed, eager, 64, log_q_atol=1e-10, grad_atol=1e-11)


@pytest.mark.gpu
@pytest.mark.slow
def test_cuda_graph_of_compiled_sampling(emitted):
    """After enable_compile() the CUDA graph replays the compiled sampling step."""
    module = emitted("sk", variant="krsb", k=1, N=24, seed=3)
    graphed, eager = _cuda_pair(module)
    graphed.enable_compile()
    _same_draws(graphed, eager, 128, 0)
    assert member(graphed, "graph") is not None and graphed.CUDA_GRAPHS
    assert "sample_step" in member(graphed, "compiled")  # compiled, not fallen back to eager


@pytest.mark.gpu
@pytest.mark.slow
@pytest.mark.parametrize("k", [1, 2])
def test_cuda_compiled_passes_equal_eager(emitted, k):
    """On CUDA, with its large blocks (several blocks of many sites at N = 200), the compiled
    forward, its autograd gradient and the compiled fused gradient pass of the graphed
    sampling give the eager numbers."""
    module = emitted("sk", variant="krsb", k=k, N=200, seed=4)
    fused, eager = _cuda_pair(module)
    blocks = member(fused, "blocks_on")(torch.device("cuda"))
    assert len(blocks) > 1 and max(end - first for first, end in blocks) > 1
    fused.enable_compile()
    x, weights, reference, eager_grads = _same_sampled_log_prob_and_gradient(
        fused, eager, 96, log_q_atol=1e-9, grad_atol=1e-10
    )
    fused.zero_grad()
    value = log_prob_through_forward(fused, x)  # the compiled forward, with autograd
    assert torch.allclose(value, reference, rtol=0, atol=1e-9)
    (value * weights).sum().backward()
    for got, expected in zip(
        [p.grad for p in fused.parameters() if p.grad is not None], eager_grads, strict=True
    ):
        assert torch.allclose(got, expected, rtol=1e-9, atol=1e-10)
    assert set(member(fused, "compiled")) == {"block", "sample_step", "grads"}  # none fell back


def test_deepcopy(emitted):
    module = emitted("sk", variant="krsb", k=1, N=8, seed=1)
    torch.manual_seed(0)
    model = module.Model(dtype=torch.float64, init="random")
    x = model.sample(16, generator=torch.Generator().manual_seed(0))
    copied = copy.deepcopy(model)
    assert torch.equal(copied.log_prob(x), model.log_prob(x))
    assert torch.equal(copied.sample(16, generator=torch.Generator().manual_seed(0)), x)


@pytest.mark.parametrize("through_sigmoid", [False, True])
def test_layer_backward_matches_finite_differences(emitted, through_sigmoid):
    """The memory-saving layer's SymPy-printed derivatives are right, broadcasting included;
    its output is logsigmoid(b + a z), through the sigmoid to the precision of the dtype."""
    module = emitted("sk", variant="krsb", k=1, N=5)
    generator = torch.Generator().manual_seed(0)

    def tensor(*shape):
        return torch.randn(*shape, generator=generator, dtype=torch.float64).requires_grad_()

    def layer(z, a, b):
        return module._Layer.apply(z, a, b, through_sigmoid)

    inputs = (tensor(1, 3, 4), tensor(2, 1, 4), tensor(2, 1, 4))
    assert torch.autograd.gradcheck(layer, inputs)
    z, a, b = inputs
    before = [t.detach().clone() for t in inputs]
    expected = torch.nn.functional.logsigmoid(b + a * z)
    tolerance = 1e-15 if through_sigmoid else 0
    assert torch.allclose(layer(z, a, b), expected, rtol=0, atol=tolerance)
    assert all(map(torch.equal, inputs, before))  # none overwritten


@pytest.mark.slow
@pytest.mark.parametrize("through_sigmoid", [True, False])
def test_enable_compile_matches_eager(emitted, monkeypatch, through_sigmoid):
    """The compiled forward, sampling step and fused gradient pass (inductor) give the eager
    numbers; the gradient through the compiled forward too. Compiled are the forms of the
    layers through the sigmoid (the CPU) and the others (CUDA, or where the bound fails)."""
    module = emitted("sk", variant="krsb", k=1, N=9)
    torch.manual_seed(0)
    eager = module.Model(dtype=torch.float64, init="random")
    fused = module.Model(dtype=torch.float64)
    fused.load_state_dict(eager.state_dict())
    fused.enable_compile()
    fused.EAGER_THROUGH_SIGMOID = ()  # compile forward and sampling here too
    assert member(fused, "through_sigmoid")()
    if not through_sigmoid:
        monkeypatch.setattr(fused, "_through_sigmoid", lambda: False)
    x = eager.sample(32, generator=torch.Generator().manual_seed(1))
    assert torch.allclose(fused.log_prob(x), eager.log_prob(x), rtol=0, atol=1e-12)
    phi = torch.randn(9, 32, dtype=torch.float64)  # site-major, as in sample()
    uniforms = torch.rand(9, 32, dtype=torch.float64)
    for i in (0, 4, 7, 8):
        spin, logit = member(eager, "sample_step")(phi, uniforms, i, member(eager, "tensors")())
        got_spin, got_logit = member(fused, "call")(
            "sample_step", None, phi, uniforms, i, member(eager, "tensors")()
        )
        assert torch.allclose(got_logit, logit, rtol=0, atol=1e-12)
        assert torch.equal(got_spin, spin)
    log_prob_through_forward(fused, x).sum().backward()  # through the compiled forward
    log_prob_through_forward(eager, x).sum().backward()
    assert torch.allclose(fused.a1.grad, eager.a1.grad, rtol=1e-10, atol=1e-12)
    y = eager.log_prob(x)[:, None].expand(32, 9).detach() / 9  # any values in (-inf, 0)
    weights = torch.randn(32, dtype=torch.float64)
    grads = zip(
        member(fused, "log_prob_grads")(x, y, weights),
        member(eager, "log_prob_grads")(x, y, weights),
        strict=True,
    )
    for got, expected in grads:
        assert torch.allclose(got, expected, rtol=1e-10, atol=1e-12)
    samples = fused.sample(64, generator=torch.Generator().manual_seed(2))
    assert samples.shape == (64, 9)


def test_compiled_forward_and_sampling_stay_eager_through_the_sigmoid(emitted, monkeypatch):
    """After enable_compile(), where the layers take the sigmoid forms (the CPU), forward
    and the sampling step run their eager code and only the gradient pass its compiled
    one; with the other forms, or EAGER_THROUGH_SIGMOID emptied, all three compile."""
    module = emitted("sk", variant="krsb", k=1, N=8, seed=2)
    model = module.Model(dtype=torch.float64, init="random").enable_compile()
    calls = []

    def recording(name, eager):
        return lambda *args: calls.append(name) or eager(*args)

    eager = {"block": member(model, "block_logits"), "sample_step": member(model, "sample_step")}
    eager["grads"] = member(model, "block_grads")
    set_member(
        model, "compiled", {name: recording(name, function) for name, function in eager.items()}
    )

    def run():
        calls.clear()
        x, log_q = model.sample_with_log_prob(16, generator=torch.Generator().manual_seed(0))
        log_q.sum().backward()
        with torch.no_grad():
            model.log_prob(x)
        return set(calls)

    assert member(model, "through_sigmoid")()
    assert run() == {"grads"}
    model.EAGER_THROUGH_SIGMOID = ()
    assert run() == {"block", "sample_step", "grads"}
    model.EAGER_THROUGH_SIGMOID = module.Model.EAGER_THROUGH_SIGMOID
    monkeypatch.setattr(model, "_through_sigmoid", lambda: False)
    assert run() == {"block", "sample_step", "grads"}


def test_compile_options_turn_off_the_coalesce_tiling_analysis(emitted):
    """enable_compile() turns off inductor's coalesce tiling analysis, which failed the
    compilation of the CUDA gradient pass, unless the caller chose a mode (torch.compile
    takes mode or options, not both), another backend or the analysis itself."""
    import torch._inductor.config

    if not hasattr(torch._inductor.config.triton, "coalesce_tiling_analysis"):
        pytest.skip("this torch has no coalesce tiling analysis")
    options = member(emitted("sk", variant="krsb", k=1, N=6).Model, "compile_options")
    off = {"triton.coalesce_tiling_analysis": False}
    assert options({}) == {"options": off}
    assert options({"fullgraph": True, "options": {"max_autotune": True}}) == {
        "fullgraph": True,
        "options": {**off, "max_autotune": True},
    }
    chosen = {"options": {"triton.coalesce_tiling_analysis": True}}
    assert options(chosen) == chosen
    for kept in ({"mode": "max-autotune"}, {"backend": "eager"}):
        assert options(kept) == kept


def test_enable_compile_passes_dynamic_through(emitted, monkeypatch):
    """enable_compile() compiles with symbolic sizes (dynamic=True) unless told otherwise;
    dynamic=False reaches torch.compile instead of clashing with it."""
    model = emitted("sk", variant="krsb", k=1, N=6).Model()
    calls = []
    monkeypatch.setattr(torch, "compile", lambda function, **options: calls.append(options))
    model.enable_compile()
    model.enable_compile(dynamic=False, fullgraph=True)
    assert [call["dynamic"] for call in calls] == [True] * 3 + [False] * 3
    assert all(call["fullgraph"] for call in calls[3:])


@pytest.mark.slow
def test_compiled_functions_generate_code_without_the_coalesce_analysis(emitted, monkeypatch):
    """The option reaches inductor's code generation of every compiled function (forward
    with and without autograd, its backward compiled later, the sampling step, the gradient
    pass), seen here on the CPU, where the analysis itself is not used."""
    import torch._inductor.config
    import torch._inductor.graph

    if not hasattr(torch._inductor.config.triton, "coalesce_tiling_analysis"):
        pytest.skip("this torch has no coalesce tiling analysis")
    seen = []
    generate = torch._inductor.graph.GraphLowering.compile_to_module

    def spy(self, *args, **kwargs):
        seen.append(torch._inductor.config.triton.coalesce_tiling_analysis)
        return generate(self, *args, **kwargs)

    monkeypatch.setattr(torch._inductor.graph.GraphLowering, "compile_to_module", spy)
    monkeypatch.setattr(torch._inductor.config, "fx_graph_cache", False)  # generate anew
    torch._dynamo.reset()
    module = emitted("sk", variant="krsb", k=1, N=7, seed=3)
    model = module.Model(dtype=torch.float64, init="random").enable_compile()
    model.EAGER_THROUGH_SIGMOID = ()  # compile forward and sampling on the CPU too
    x, log_q = model.sample_with_log_prob(8, generator=torch.Generator().manual_seed(0))
    log_q.sum().backward()  # the gradient pass
    log_prob_through_forward(model, x).sum().backward()  # forward with autograd, then backward
    with torch.no_grad():
        model.log_prob(x)
    assert set(member(model, "compiled")) == {"block", "sample_step", "grads"}
    assert len(seen) >= 5 and not any(seen), seen
    assert torch._inductor.config.triton.coalesce_tiling_analysis  # only for these functions


def test_failed_compiled_function_falls_back_to_the_eager_forms(emitted, monkeypatch):
    """A compiled function that fails (as inductor once did for the CUDA gradient pass) warns,
    is dropped, and its eager code runs with the eager forms (the memory-saving layer under
    autograd, not the plain forms traced for inductor), giving the eager numbers."""
    module = emitted("sk", variant="krsb", k=1, N=12, seed=1)
    torch.manual_seed(0)
    model = module.Model(dtype=torch.float64, init="random")
    reference = copy.deepcopy(model)
    model.enable_compile()
    model.EAGER_THROUGH_SIGMOID = ()  # every function compiled, on the CPU too

    def broken(*args):
        raise AssertionError("get_pw_red_splits")

    set_member(model, "compiled", dict.fromkeys(member(model, "compiled"), broken))
    generator = torch.Generator().manual_seed(0)
    with pytest.warns(UserWarning, match="torch.compile failed.*get_pw_red_splits"):
        x, log_q = model.sample_with_log_prob(16, generator=generator)
    assert set(member(model, "compiled")) == {"block", "grads"}
    weights = torch.randn(16, dtype=torch.float64)
    with pytest.warns(UserWarning, match="torch.compile failed"):
        (log_q * weights).sum().backward()
    (log_prob_through_forward(reference, x) * weights).sum().backward()
    for got, expected in zip(model.parameters(), reference.parameters(), strict=True):
        if expected.grad is not None:
            assert torch.allclose(got.grad, expected.grad, rtol=1e-10, atol=1e-12)
    layers = []
    monkeypatch.setattr(module._Layer, "apply", lambda *args: layers.append(args) or 0.0 * args[0])
    with pytest.warns(UserWarning, match="torch.compile failed"):
        model(x)  # forward with autograd, eagerly: through _Layer
    assert member(model, "compiled") == {} and layers


@pytest.mark.slow
def test_compiled_functions_keep_few_graphs(emitted):
    """The compiled block, sampling step and gradient pass take whole tensors and their
    offsets: every block, site and batch size of a run fits in a few graphs, well below
    COMPILED_GRAPHS, so that dynamo never gives up and runs a function eagerly."""
    module = emitted("sk", variant="krsb", k=1, N=40, seed=0)
    model = module.Model(dtype=torch.float64, init="random")
    model.PAIRS_PER_BLOCK = 30  # blocks of one site, of two and of several
    set_member(model, "blocks", member(model, "site_blocks")())
    assert {end - first for first, end in member(model, "blocks")} >= {1, 2, 3}
    model.enable_compile()
    model.EAGER_THROUGH_SIGMOID = ()  # every function compiled, on the CPU too
    warnings = []

    class Record(logging.Handler):
        def emit(self, record):
            warnings.append(record.getMessage())

    logger = logging.getLogger("torch._dynamo")
    handler = Record(level=logging.WARNING)
    logger.addHandler(handler)
    torch._dynamo.reset()
    stats = torch._dynamo.utils.counters["stats"]
    before = stats["unique_graphs"]  # the counters are not reset with the caches
    try:
        for batch in (3, 50):
            generator = torch.Generator().manual_seed(batch)
            x, log_q = model.sample_with_log_prob(batch, generator=generator)
            log_q.sum().backward()  # the fused gradient pass
            log_prob_through_forward(model, x).sum().backward()  # forward with autograd
            model.log_prob(x).sum().backward()  # the fused gradient pass again
            with torch.no_grad():
                model.log_prob(x)
        graphs = stats["unique_graphs"] - before
    finally:
        logger.removeHandler(handler)
    assert not [message for message in warnings if "recompile" in message], warnings
    # 13 graphs when written (8 of them forward's: one site or several, first block or last,
    # with and without autograd); the bound leaves room, the limit is 16 per function
    assert graphs <= 20, graphs


class _FakeCudaGraphs:
    """Stand-ins for torch.cuda's graph API on the CPU: capturing records the _draw call made
    inside ``torch.cuda.graph`` and replaying runs it again into the captured outputs, so
    that the Python side of _replay_draw (its key, the recapture rules, the buffers, the
    inference-mode and failure paths) is exercised without a GPU."""

    def __init__(self, monkeypatch, model):
        self.captures, self.capturing, self.graph = 0, False, None
        draw = member(model, "draw")

        def recording_draw(uniforms):
            outputs = draw(uniforms)
            if self.capturing:
                graph = self.graph

                def replay():
                    for output, new in zip(outputs, draw(uniforms), strict=True):
                        output.copy_(new)

                graph.body = replay
            return outputs

        fakes = self

        class Graph:
            body = None

            def replay(self):
                self.body()

        class Capture:
            def __init__(self, graph, stream=None):
                self.graph = graph

            def __enter__(self):
                fakes.capturing, fakes.graph = True, self.graph
                fakes.captures += 1

            def __exit__(self, *exc):
                fakes.capturing = False

        class Stream:
            def __init__(self, *args, **kwargs):
                pass

            def wait_stream(self, other):
                pass

        monkeypatch.setattr(model, "_draw", recording_draw)
        monkeypatch.setattr(torch.cuda, "CUDAGraph", Graph)
        monkeypatch.setattr(torch.cuda, "graph", Capture)
        monkeypatch.setattr(torch.cuda, "Stream", Stream)
        monkeypatch.setattr(torch.cuda, "current_stream", lambda device=None: Stream())
        monkeypatch.setattr(torch.cuda, "stream", lambda stream: contextlib.nullcontext())
        monkeypatch.setattr(torch.cuda, "device", lambda device: contextlib.nullcontext())
        monkeypatch.setattr(torch.cuda, "set_stream", lambda stream: None)


def test_replay_draw_logic_on_the_cpu(emitted, monkeypatch):
    """_replay_draw with stand-in CUDA graphs: the same draws as _draw, one capture per key,
    in-place parameter changes followed, recapture for a new batch size and after a move,
    outputs that are the graph's buffers (which _sample copies), inference mode first."""
    module = emitted("sk", variant="krsb", k=1, N=12, seed=1)
    torch.manual_seed(0)
    model = module.Model(dtype=torch.float64, init="random")
    reference = module.Model(dtype=torch.float64)
    reference.load_state_dict(model.state_dict())
    fakes = _FakeCudaGraphs(monkeypatch, model)

    def check(batch, seed):
        uniforms = torch.rand(12, batch, generator=torch.Generator().manual_seed(seed),
                              dtype=torch.float64)  # fmt: skip
        x, logits = member(model, "replay_draw")(uniforms)
        y, expected = member(reference, "draw")(uniforms)
        assert torch.equal(x, y) and torch.allclose(logits, expected, rtol=0, atol=1e-12)
        return x

    with torch.inference_mode():  # the first capture under inference mode
        check(16, 0)
    assert fakes.captures == 1
    first = check(16, 1)  # then outside it: replayed
    assert fakes.captures == 1
    assert check(16, 2) is first  # the graph's own buffer, refilled
    with torch.no_grad():
        for m in (model, reference):
            m.a1.mul_(1.5)
    check(16, 3)
    assert fakes.captures == 1
    check(8, 4)
    assert fakes.captures == 2
    model.double()  # _apply: the graph is dropped, captured again on the next call
    assert member(model, "graph") is None
    check(8, 5)
    assert fakes.captures == 3

    def fail(uniforms):
        raise RuntimeError("no capture here")

    set_member(model, "graph", None)
    monkeypatch.setattr(model, "_capture_draw", fail)
    with pytest.warns(UserWarning, match="no capture here"):
        check(8, 6)
    assert model.CUDA_GRAPHS is False
