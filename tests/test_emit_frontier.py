"""Emitted frontier replica modules (templates/frontier_replica.py.j2: the replica layers over
the frontier F^+_i of a sparse system, docs/physics.md section 7) against enumeration, the
dense replica modules and the definition of the frontier."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from spins import all_configurations, assert_sampled_law

from arnn_gen import systems
from arnn_gen.codegen.emit import load_module, render_module, write_module
from arnn_gen.codegen.families import build_ir
from arnn_gen.errors import ArnnGenError
from arnn_gen.pipeline import lower
from arnn_gen.symbolic.derive import derive_conditional
from arnn_gen.symbolic.frontier import frontier_from_derivation
from arnn_gen.symbolic.simplify import reduce_conditional

#: Small sparse systems, one of each kind (N <= 12, enumerable), with a non-trivial order.
SMALL = {
    "ea2d_open": dict(system="ea2d", L=3, W=4, boundary="open", seed=1),
    "ea2d_periodic": dict(system="ea2d", L=3, W=3, seed=2, h=0.3),
    "ising2d": dict(system="ising2d", L=3, W=4, boundary="open", J=0.7),
    "ea3d": dict(system="ea3d", L=2, boundary="open", disorder="pm1", seed=3),
    "rrg_rcm": dict(system="rrg", N=12, degree=3, seed=4, order="rcm"),
}


def brute_frontier_plus(hamiltonian, order):
    """F^+_p = {l > p : J_{s,l} != 0 for some s <= p}, in positions, from the definition."""
    N = hamiltonian.N  # noqa: N806
    position = np.empty(N, dtype=np.int64)
    position[np.asarray(order)] = np.arange(N)
    pairs = {(int(position[a]), int(position[b])) for a, b in hamiltonian.edges}
    pairs |= {(b, a) for a, b in pairs}
    return [
        sorted(l for l in range(p + 1, N) if any((s, l) in pairs for s in range(p + 1)))
        for p in range(N)
    ]


def order_of(model):
    return model.order.cpu().numpy()


@pytest.mark.parametrize("name", sorted(SMALL))
@pytest.mark.parametrize("variant, k", [("rs", 0), ("krsb", 1), ("krsb", 2)])
def test_normalised_and_autoregressive_along_the_order(emitted, name, variant, k):
    options = dict(SMALL[name])
    module = emitted(options.pop("system"), variant=variant, k=k, **options)
    assert module.stages.ir.family == "frontier_replica"
    torch.manual_seed(0)
    model = module.Model(dtype=torch.float64, init="random")
    X = all_configurations(model.N)
    assert model.log_prob(X).exp().sum().item() == pytest.approx(1.0, abs=1e-10)
    # the logit of the site at position p depends on the sites at positions < p only
    order = order_of(model)
    x = X[torch.randperm(len(X))[:16]]
    logits = model(x)
    for q, site in enumerate(order):
        flipped = x.clone()
        flipped[:, site] *= -1
        before = order[: q + 1]
        assert torch.equal(model(flipped)[:, before], logits[:, before])


@pytest.mark.parametrize("name", sorted(SMALL))
def test_layer_set_is_the_frontier_of_the_definition(emitted, name):
    options = dict(SMALL[name])
    module = emitted(options.pop("system"), **options)
    model = module.Model()
    hamiltonian = module.stages.hamiltonian
    expected = brute_frontier_plus(hamiltonian, order_of(model))
    for p, members in enumerate(expected):
        size = int(model.frontier_size[p])
        assert model.members[p, :size].tolist() == members
        assert not model.valid[p, size:].any() and model.valid[p, :size].all()
    assert model.width == max(1, max(len(m) for m in expected))
    sizes = systems.frontier_plus_sizes(hamiltonian, order_of(model))  # what emit checks
    assert sizes.tolist() == [len(m) for m in expected]
    # the header's width: max |F_i|, F_i = F^+_i without the later neighbours of i
    assert model.FRONTIER_WIDTH == systems.frontier(hamiltonian, order_of(model)).width


@pytest.mark.parametrize("name", sorted(SMALL))
def test_frontier_read_off_the_derivation(name):
    """The symbolic derivation, with the absent couplings set to zero, has phi_{i,l} != h_l
    exactly for l in F_i, and F^+_i = F_i plus the later neighbours of i."""
    options = dict(SMALL[name])
    stages = lower(options.pop("system"), **options)
    hamiltonian = stages.hamiltonian
    if hamiltonian.N > 9:  # SymPy's concrete derivation grows as N^2 terms per site
        pytest.skip("checked on the smaller systems")
    order = systems.site_order(hamiltonian, stages.ir.site_order)
    position = np.empty(hamiltonian.N, dtype=np.int64)
    position[order] = np.arange(hamiltonian.N)
    pairs = [(int(position[a]), int(position[b])) for a, b in hamiltonian.edges]
    expected = brute_frontier_plus(hamiltonian, order)
    frontier = systems.frontier(hamiltonian, order)
    derivation = derive_conditional()
    for site in range(hamiltonian.N):
        cavity, neighbours = frontier_from_derivation(derivation, pairs, hamiltonian.N, site)
        members = frontier.members[frontier.indptr[site] : frontier.indptr[site + 1]]
        assert list(cavity) == sorted(members.tolist())
        assert sorted(set(cavity) | set(neighbours)) == expected[site]


def _dense_twin(emitted, hamiltonian, model, k):
    """The dense replica module of the same couplings in the frontier module's site order,
    with the frontier module's parameters on the pairs of F^+_i and zero elsewhere."""
    order = order_of(model)
    J = torch.tensor(hamiltonian.to_dense().J)[order][:, order]  # noqa: N806
    h = torch.tensor(hamiltonian.h)[order]
    variant = "rs" if k == 0 else "krsb"
    module = emitted("sk", variant=variant, k=k, N=model.N, seed=0)
    dense = module.Model(beta=model.beta, J=J, h=h, dtype=torch.float64)
    with torch.no_grad():
        mine = dict(model.named_parameters())
        for name, parameter in dense.named_parameters():
            if parameter.dim() == 3:
                parameter.zero_()
                for p in range(model.N):
                    size = int(model.frontier_size[p])
                    parameter[:, p, model.members[p, :size]] = mine[name][:, p, :size]
            else:
                parameter.copy_(mine[name])
    return dense, order


@pytest.mark.parametrize("name", ["ea2d_open", "ea2d_periodic", "rrg_rcm"])
@pytest.mark.parametrize("k", [0, 1])
@pytest.mark.parametrize("init", ["paramagnetic", "random"])
def test_equals_the_dense_module_with_zeros_outside_the_frontier(emitted, name, k, init):
    """The correspondence (docs/physics.md section 7): the dense replica module whose pair
    parameters are zero outside F^+_i is the frontier module; at the paramagnetic start the
    dense module's own parameters outside F^+_i see no shift (J_{i,l} = 0) and a constant
    field, the same in rho^+ and rho^-, so the two starts are the same network too."""
    options = dict(SMALL[name])
    module = emitted(options.pop("system"), variant="rs" if k == 0 else "krsb", k=k, **options)
    torch.manual_seed(5)
    model = module.Model(beta=0.8, dtype=torch.float64, init=init)
    dense, order = _dense_twin(emitted, module.stages.hamiltonian, model, k)
    X = all_configurations(model.N)
    assert torch.allclose(model.log_prob(X), dense.log_prob(X[:, order]), rtol=0, atol=1e-12)
    if init == "paramagnetic":  # the dense module's own start, all pairs l > i
        own = type(dense)(beta=0.8, J=dense.couplings, h=dense.fields, dtype=torch.float64)
        assert torch.allclose(model.log_prob(X), own.log_prob(X[:, order]), rtol=0, atol=1e-12)


def test_complete_graph_equals_the_dense_module(emitted, tmp_path):
    """On a complete graph F^+_i holds every later site: the frontier module is the dense
    module with the same parameters, entry for entry."""
    rng = np.random.default_rng(9)
    N = 7  # noqa: N806
    lines = [f"{i} {j} {rng.normal():.6f}" for i in range(N) for j in range(i + 1, N)]
    path = tmp_path / "complete.txt"
    path.write_text("\n".join(lines) + "\n")
    stages = lower("general", couplings=str(path))
    assert stages.ir.family == "replica"  # dense: the frontier saves nothing
    hamiltonian = systems.read_couplings(str(path))
    reduction = reduce_conditional("general", "krsb", k=1, layout="frontier")
    ir = build_ir(hamiltonian, reduction, beta=1.0, command="test", site_order="natural")
    out = tmp_path / "frontier"
    module = load_module(write_module(ir, render_module(ir), hamiltonian, out))
    torch.manual_seed(3)
    model = module.Model(dtype=torch.float64, init="random")
    assert model.width == N - 1 and model.frontier_size.tolist() == list(range(N - 1, -1, -1))
    dense, _ = _dense_twin(emitted, hamiltonian, model, 1)
    X = all_configurations(N)
    assert torch.allclose(model.log_prob(X), dense.log_prob(X), rtol=0, atol=1e-12)


def test_sampler_follows_log_prob_in_the_users_order(emitted):
    options = dict(SMALL["rrg_rcm"])
    options.update(N=6, degree=3)
    module = emitted(options.pop("system"), **options)
    torch.manual_seed(1)
    model = module.Model(dtype=torch.float64, init="random")
    x = model.sample(200_000, generator=torch.Generator().manual_seed(7))
    assert_sampled_law(model, x)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_energy_sample_with_log_prob_and_padding_gradients(emitted, dtype):
    module = emitted("ea2d", L=4, W=5, boundary="open", seed=6)
    torch.manual_seed(2)
    model = module.Model(dtype=dtype, init="random")
    hamiltonian = module.stages.hamiltonian
    x, log_q = model.sample_with_log_prob(64, generator=torch.Generator().manual_seed(1))
    assert x.dtype == dtype and x.shape == (64, 20)
    tolerance = 1e-4 if dtype == torch.float32 else 1e-10
    assert torch.allclose(log_q, model.log_prob(x), rtol=0, atol=tolerance)
    assert torch.allclose(model.energy(x).double(), hamiltonian.energy(x), atol=tolerance * 10)
    log_q.sum().backward()
    for parameter in model.parameters():
        if parameter.dim() == 3:
            assert parameter.grad[:, ~model.valid].abs().max() == 0
    with torch.no_grad():
        _, drawn = model.sample_with_log_prob(8)
    assert not drawn.requires_grad


def test_kept_layers_and_recomputed_blocks_give_the_same_gradient(emitted):
    module = emitted("ea2d", L=4, W=4, seed=7)
    torch.manual_seed(4)
    model = module.Model(dtype=torch.float64, init="random")
    model.PAIRS_PER_BLOCK = 8  # several blocks
    x = model.sample(32, generator=torch.Generator().manual_seed(2))
    grads = []
    for budget in (2**40, 0):
        model.KEPT_LAYER_BYTES = budget
        model.zero_grad()
        model.log_prob(x).sum().backward()
        grads.append([p.grad.clone() for p in model.parameters()])
    for kept, recomputed in zip(*grads, strict=True):
        assert torch.allclose(kept, recomputed, rtol=0, atol=1e-12)


def test_constructor_takes_couplings_as_edges_or_a_matrix(emitted):
    module = emitted("ea2d", L=3, W=3, seed=8)
    hamiltonian = module.stages.hamiltonian
    edges, weights = torch.tensor(hamiltonian.edges), torch.tensor(hamiltonian.weights)
    from_sidecar = module.Model(dtype=torch.float64)
    from_pairs = module.Model(
        J=(edges, weights), h=torch.tensor(hamiltonian.h), dtype=torch.float64
    )
    from_matrix = module.Model(J=torch.tensor(hamiltonian.to_dense().J), dtype=torch.float64)
    X = all_configurations(9)
    for other in (from_pairs, from_matrix):
        assert torch.allclose(other.log_prob(X), from_sidecar.log_prob(X), rtol=0, atol=1e-12)
    for bad, message in (
        ((edges, weights[:-1]), "edges"),
        ((edges + 100, weights), "sites in"),
        ((torch.tensor([[0, 0]]), torch.tensor([1.0])), "self-coupling"),
        (torch.ones(9, 9), "diagonal"),
    ):
        with pytest.raises(ValueError, match=message):
            module.Model(J=bad)
    with pytest.raises(ValueError, match="learn_couplings"):
        module.Model(learn_couplings=True)
    model = module.Model()
    model.beta = 2.0
    assert model.beta == 2.0


def test_request_errors():
    for options, message in (
        (dict(system="ea2d", N=16), "-L"),
        (dict(system="ea2d"), None),
        (dict(system="sk", L=4), "lattices"),
        (dict(system="ea3d", L=3, W=4), "-W"),
        (dict(system="sk", order="rcm"), "--order"),
        (dict(system="ea2d", L=2, boundary="periodic"), "periodic"),
    ):
        system = options.pop("system")
        if message is None:
            assert lower(system, **options).ir.N == 100
            continue
        with pytest.raises(ArnnGenError, match=message):
            lower(system, **options)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
@pytest.mark.gpu
def test_cuda(emitted):
    module = emitted("ea2d", L=3, W=4, boundary="open", seed=1)
    torch.manual_seed(0)
    model = module.Model(dtype=torch.float64, init="random", device="cuda")
    X = all_configurations(12).cuda()
    assert model.log_prob(X).exp().sum().item() == pytest.approx(1.0, abs=1e-10)
    x = model.sample(1000, generator=torch.Generator("cuda").manual_seed(0))
    assert x.is_cuda


def test_trainer_reference_of_a_frontier_module(emitted):
    """arnn-gen train's exact f of a frontier module: Kaufman's formula for the periodic
    Ising torus (read off the module's KIND and PROVENANCE), frontier elimination for an
    open lattice, nothing for couplings the module was not emitted with that are too wide."""
    from arnn_gen.exact import enumerate_exact, kaufman_log_z
    from arnn_gen.learn.train import exact_free_energy

    torus = emitted("ising2d", L=16).Model()
    assert exact_free_energy(torus, 0.6) == pytest.approx(
        -kaufman_log_z(16, 16, 0.6) / (0.6 * 256), rel=1e-13
    )
    module = emitted("ea2d", L=4, W=6, boundary="open", seed=3)
    reference = enumerate_exact(module.stages.hamiltonian.to_dense(), 0.9).free_energy
    assert exact_free_energy(module.Model(), 0.9) == pytest.approx(reference, rel=1e-12)
    other = systems.ising2d(16, 16, J=0.5)  # not the emitted torus: a general system
    model = type(torus)(J=(torch.tensor(other.edges), torch.tensor(other.weights)))
    assert exact_free_energy(model, 0.6) is None  # width 32: no cheap reference


def test_sidecar_with_another_site_order_is_refused(emitted, tmp_path):
    """The module records the sha256 of its order: a sidecar whose order.npy was changed (or
    an order computed otherwise) is refused, never read into parameters laid out for
    another order."""
    import zipfile

    module = emitted("rrg", N=12, degree=3, seed=4, order="rcm")
    path = Path(module.__file__).with_suffix(".npz")
    with zipfile.ZipFile(path) as archive:
        members = {name: archive.read(name) for name in archive.namelist()}
    import io

    buffer = io.BytesIO()
    np.save(buffer, np.arange(12, dtype="<i8"))
    members["order.npy"] = buffer.getvalue()
    with zipfile.ZipFile(path, "w") as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    with pytest.raises(ValueError, match="site order"):
        module.Model()
