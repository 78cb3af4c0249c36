"""Emitted exact frontier modules (templates/frontier_exact.py.j2: the sparse H2ARNN of
docs/physics.md section 7, its biases by a backward frontier elimination that the module runs
itself) against enumeration, the frontier elimination of arnn_gen.exact.frontier, the dense
H2ARNN and the definition of the frontier."""

from __future__ import annotations

import shutil

import numpy as np
import pytest
import sympy as sp
import torch
from spins import all_configurations, assert_sampled_law
from test_templates import _physics_functions, _render_with_markers, hand_typed

from arnn_gen import systems
from arnn_gen.codegen.emit import load_module, print_formulas, render_module, write_module
from arnn_gen.codegen.families import build_ir, family_for
from arnn_gen.codegen.families.frontier_exact import BIAS_MINUS, BIAS_PLUS, JOINED, TABLE
from arnn_gen.codegen.families.symbols import PHI, TO_SITE
from arnn_gen.codegen.ir import ArchitectureIR
from arnn_gen.errors import ArnnGenError
from arnn_gen.exact import enumerate_exact, log_boltzmann
from arnn_gen.exact.frontier import frontier_conditionals, frontier_exact, frontier_tables
from arnn_gen.symbolic.derive import SYMBOLS, derive_conditional
from arnn_gen.symbolic.frontier_exact import _check_on_graph, frontier_elimination
from arnn_gen.symbolic.reduction import RSYM
from arnn_gen.symbolic.simplify import reduce_conditional


def _general(N, edges, seed):  # noqa: N803
    """A random sparse general system: Gaussian couplings on ``edges``, fields in [-0.5, 0.5]."""
    rng = np.random.default_rng(seed)
    edges = np.array(edges, dtype=np.int64)
    return systems.SparseHamiltonian(
        N, edges, rng.normal(size=len(edges)), rng.uniform(-0.5, 0.5, size=N)
    )


def _random_graph(N, count, seed):  # noqa: N803
    rng = np.random.default_rng(seed)
    pairs = set()
    while len(pairs) < count:
        a, b = (int(v) for v in rng.choice(N, size=2, replace=False))
        pairs.add((min(a, b), max(a, b)))
    return sorted(pairs)


#: Small sparse systems (N <= 14, enumerable) with their site orders.
SMALL = {
    "ea2d_open": (lambda: systems.ea2d(3, 4, boundary="open", seed=1), "natural"),
    "ea2d_periodic": (lambda: systems.ea2d(3, 3, seed=2, h=0.3), "natural"),
    "ea2d_periodic_rcm": (lambda: systems.ea2d(3, 4, seed=5, h=-0.2), "rcm"),
    "ising2d": (lambda: systems.ising2d(3, 4, boundary="open", J=0.7, h=0.1), "natural"),
    "ea3d": (lambda: systems.ea3d(2, boundary="open", disorder="pm1", seed=3, h=0.2), "natural"),
    "rrg_rcm": (lambda: systems.rrg(12, degree=3, seed=4), "rcm"),
    "general_natural": (lambda: _general(14, _random_graph(14, 20, 6), 6), "natural"),
    "general_rcm": (lambda: _general(14, _random_graph(14, 20, 6), 6), "rcm"),
}
BETA = 0.9


@pytest.fixture(scope="module")
def exact_module(tmp_path_factory):
    """exact_module(hamiltonian, order) -> the emitted module, written to a fresh folder,
    copied alone (with its sidecar) into an empty one and imported from there (cached)."""
    cache = {}

    def make(hamiltonian, order="natural", key=None):
        if key is not None and key in cache:
            return cache[key]
        reduction = reduce_conditional(hamiltonian.kind, "exact", layout="frontier")
        ir = build_ir(hamiltonian, reduction, beta=BETA, command="test", site_order=order)
        build = tmp_path_factory.mktemp("build")
        path = write_module(ir, render_module(ir), hamiltonian, build)
        alone = tmp_path_factory.mktemp("alone")
        for produced in build.iterdir():
            shutil.copy(produced, alone / produced.name)
        module = load_module(alone / path.name)
        module.hamiltonian, module.ir = hamiltonian, ir
        if key is not None:
            cache[key] = module
        return module

    return make


def small(exact_module, name):
    make, order = SMALL[name]
    return exact_module(make(), order, key=name)


def positions_of(model):
    return model.order.cpu().numpy()


def some_configurations(N, count, *, seed):  # noqa: N803
    """[count, N]: distinct configurations of N spins, drawn without replacement."""
    generator = torch.Generator().manual_seed(seed)
    return all_configurations(N)[torch.randperm(2**N, generator=generator)[:count]]


def brute_frontiers(hamiltonian, order):
    """F_p = {l > p : J_{s,l} != 0 for some s < p}, in positions, from the definition."""
    N = hamiltonian.N  # noqa: N806
    position = np.empty(N, dtype=np.int64)
    position[np.asarray(order)] = np.arange(N)
    pairs = {(int(position[a]), int(position[b])) for a, b in hamiltonian.edges}
    pairs |= {(b, a) for a, b in pairs}
    return [
        [l for l in range(p + 1, N) if any((s, l) in pairs for s in range(p))] for p in range(N)
    ]


# --- the reduction, the printed formulas, the IR ----------------------------------------


def test_reduction_and_printed_formulas():
    reduction = reduce_conditional("ea2d", "exact", layout="frontier")
    assert (reduction.layout, reduction.variant, reduction.title()) == (
        "frontier",
        "exact",
        "H2ARNN",
    )
    assert family_for("ea2d", "exact", "frontier").name == "frontier_exact"
    assert family_for("general", "exact").name == "h2arnn"  # dense stays the dense H2ARNN
    ir = build_ir(systems.ea2d(3, 4, boundary="open"), reduction, beta=1.0, command="test",
                  site_order="natural")  # fmt: skip
    printed = print_formulas(ir)
    assert printed["weight"] == "beta * xi"
    assert printed["elimination"] == "sign * to_site + joined + table"
    assert printed["close"] == (
        "torch.logaddexp(beta * phi_site + bias_plus, -beta * phi_site + bias_minus)"
    )
    assert printed["logit"] == "2 * beta * phi_site - log_rho_minus + log_rho_plus"
    assert printed["cavity_increment"] == "coupling * x"
    assert ArchitectureIR.from_dict(ir.to_dict()) == ir
    assert ArchitectureIR.from_dict(ir.to_dict()).signature() == ir.signature()
    source = render_module(ir)
    assert source == render_module(ir) and "import arnn_gen" not in source


def test_elimination_check_is_not_vacuous():
    """The SymPy check of the elimination (Note [Backward elimination]) refuses a wrong step
    and a wrong close on a small graph."""
    d = derive_conditional()
    reduction = reduce_conditional("general", "exact", layout="frontier")
    weight = reduction.parameters[1].initial
    stand_ins = (TABLE, JOINED, TO_SITE, BIAS_PLUS, BIAS_MINUS, PHI)
    step, close = frontier_elimination(
        reduction, table=TABLE, joined=JOINED, to_site=TO_SITE, bias_plus=BIAS_PLUS,
        bias_minus=BIAS_MINUS, phi_site=PHI,
    )  # fmt: skip
    path = (4, ((0, 1), (1, 2), (2, 3)))
    _check_on_graph(d, *path, weight, step, close, stand_ins)
    wrong_steps = (TABLE + JOINED - RSYM.sign * TO_SITE, TABLE + RSYM.sign * TO_SITE)
    for wrong in wrong_steps:
        with pytest.raises(ArnnGenError, match="elimination"):
            _check_on_graph(d, *path, weight, wrong, close, stand_ins)
    wrong_close = close.xreplace({PHI: 2 * PHI})
    with pytest.raises(ArnnGenError, match="-beta H"):
        _check_on_graph(d, *path, weight, step, wrong_close, stand_ins)
    assert sp.simplify(step - (TABLE + JOINED + RSYM.sign * TO_SITE)) == 0
    assert SYMBOLS.beta in close.free_symbols


def test_template_types_no_formula():
    """tests/test_templates.py's rule on this family's module (the pipeline does not emit
    it, so it is not among that file's cases)."""
    reduction = reduce_conditional("rrg", "exact", layout="frontier")
    ir = build_ir(systems.rrg(8, degree=3, seed=0), reduction, beta=1.0, command="test",
                  site_order="rcm")  # fmt: skip
    assert hand_typed(_render_with_markers(ir), _physics_functions()) == []


# --- small systems against enumeration and the frontier elimination ----------------------


@pytest.mark.parametrize("name", sorted(SMALL))
def test_normalised_and_exact(exact_module, name):
    module = small(exact_module, name)
    hamiltonian = module.hamiltonian
    model = module.Model(beta=BETA)
    assert model.bias.dtype == torch.float64
    X = all_configurations(model.N)  # noqa: N806
    log_q = model.log_prob(X)
    assert log_q.exp().sum().item() == pytest.approx(1.0, abs=1e-12)
    dense = hamiltonian.to_dense()
    log_z = enumerate_exact(dense, BETA).log_z
    assert model.log_z() == pytest.approx(log_z, abs=1e-10)
    assert torch.allclose(log_q, log_boltzmann(dense, BETA, X), rtol=0, atol=1e-10)
    assert torch.allclose(log_q, -BETA * dense.energy(X) - log_z, rtol=0, atol=1e-10)
    assert torch.allclose(model.energy(X), hamiltonian.energy(X), rtol=0, atol=1e-12)


@pytest.mark.parametrize("name", sorted(SMALL))
def test_logits_are_the_reference_conditionals(exact_module, name):
    module = small(exact_module, name)
    model = module.Model(beta=BETA)
    order = positions_of(model)
    x = some_configurations(model.N, 64, seed=0)
    reference = frontier_conditionals(module.hamiltonian, BETA, x, order)  # [B, N] by position
    assert torch.allclose(torch.sigmoid(model(x))[:, order], reference, rtol=0, atol=1e-12)


@pytest.mark.parametrize("name", sorted(SMALL))
def test_autoregressive_along_the_order(exact_module, name):
    module = small(exact_module, name)
    model = module.Model(beta=BETA)
    order = positions_of(model)
    x = some_configurations(model.N, 16, seed=1)
    logits = model(x)
    for q, site in enumerate(order):
        flipped = x.clone()
        flipped[:, site] *= -1
        before = order[: q + 1]
        assert torch.equal(model(flipped)[:, before], logits[:, before])


@pytest.mark.parametrize("name", sorted(SMALL))
def test_tables_are_the_frontier_and_the_reference_biases(exact_module, name):
    """F_i as defined, the configurations in the reference's order, and the biases equal to
    frontier_tables' up to one constant per site (Note [Centred biases])."""
    module = small(exact_module, name)
    model = module.Model(beta=BETA)
    order = positions_of(model)
    tables = frontier_tables(module.hamiltonian, BETA, order)
    expected = brute_frontiers(module.hamiltonian, order)
    assert model.width == max(len(members) for members in expected) == tables.width
    for p, members in enumerate(expected):
        width = int(model.frontier_width[p])
        assert model.frontier_members[p, :width].tolist() == members == tables.frontier(p).tolist()
        mine = model.bias[:, model._offsets[p] : model._offsets[p + 1]].numpy()
        theirs = tables.biases(p)
        assert mine.max() == 0.0
        np.testing.assert_allclose(mine, theirs - theirs.max(), rtol=0, atol=1e-11)
    assert model.log_z() == pytest.approx(tables.log_z, abs=1e-10)


def test_complete_graph_is_the_dense_h2arnn(exact_module, emitted, tmp_path):
    """On a complete graph F_i holds every later site (i >= 1): the sparse H2ARNN is H2ARNN."""
    rng = np.random.default_rng(9)
    N = 7  # noqa: N806
    lines = [f"{i} {j} {rng.normal():.6f}" for i in range(N) for j in range(i + 1, N)]
    lines += [f"h {i} {rng.normal() / 2:.6f}" for i in range(N)]
    path = tmp_path / "complete.txt"
    path.write_text("\n".join(lines) + "\n")
    dense = emitted("general", variant="exact", couplings=str(path))
    assert dense.stages.ir.family == "h2arnn"
    module = exact_module(systems.read_couplings(str(path)), "natural")
    model = module.Model(beta=1.3)
    assert model.frontier_width.tolist() == [0] + list(range(N - 2, -1, -1))
    X = all_configurations(N)  # noqa: N806
    reference = dense.Model(beta=1.3).log_prob(X)
    assert torch.allclose(model.log_prob(X), reference, rtol=0, atol=1e-12)


def test_sampler_follows_log_prob_in_the_users_order(exact_module):
    module = exact_module(_general(6, [(0, 3), (3, 5), (5, 1), (1, 4), (4, 2), (0, 5)], 2), "rcm")
    model = module.Model(beta=1.1)
    assert not bool((model.order == torch.arange(6)).all())
    x = model.sample(200_000, generator=torch.Generator().manual_seed(7))
    assert x.dtype == torch.float64 and x.shape == (200_000, 6)
    assert_sampled_law(model, x)


# --- strips of N = 200 and 400 ---------------------------------------------------------

STRIPS = {
    "open_40x5": (lambda: systems.ea2d(40, 5, boundary="open", seed=11, h=0.1), 4),
    "periodic_100x4": (lambda: systems.ea2d(100, 4, seed=12), 7),
}


@pytest.mark.parametrize("name", sorted(STRIPS))
def test_strip_is_exact_for_every_sample(exact_module, name):
    make, width = STRIPS[name]
    module = exact_module(make(), "natural", key=name)
    hamiltonian = module.hamiltonian
    model = module.Model(beta=BETA)
    assert model.width == width
    log_z = frontier_exact(hamiltonian, BETA, with_magnetization_abs=False).log_z
    assert model.log_z() == pytest.approx(log_z, abs=1e-9)
    x = model.sample(256, generator=torch.Generator().manual_seed(3))
    error = model.log_prob(x) + BETA * hamiltonian.energy(x) + log_z  # [B], 0 when exact
    assert error.abs().max().item() < 1e-8 * model.N
    assert torch.allclose(model.energy(x), hamiltonian.energy(x), rtol=0, atol=1e-10)


def test_beta_setter_recomputes_the_biases(exact_module):
    module = exact_module(STRIPS["open_40x5"][0](), "natural", key="open_40x5")
    model = module.Model(beta=BETA)
    x = model.sample(64, generator=torch.Generator().manual_seed(4))
    before = model.log_prob(x)
    model.beta = 0.4
    fresh = module.Model(beta=0.4)
    assert model.beta == 0.4 and model.log_z() == fresh.log_z()
    assert torch.equal(model.bias, fresh.bias)
    assert torch.allclose(model.log_prob(x), fresh.log_prob(x), rtol=0, atol=1e-12)
    assert not torch.allclose(model.log_prob(x), before)
    log_z = frontier_exact(module.hamiltonian, 0.4, with_magnetization_abs=False).log_z
    error = model.log_prob(x) + 0.4 * module.hamiltonian.energy(x) + log_z
    assert error.abs().max().item() < 1e-8 * model.N
    with pytest.raises(ValueError, match="beta"):
        model.beta = -1.0


def test_float32_is_close(exact_module):
    module = exact_module(STRIPS["periodic_100x4"][0](), "natural", key="periodic_100x4")
    exact = module.Model(beta=BETA)
    single = module.Model(beta=BETA, dtype=torch.float32)
    assert single.bias.dtype == torch.float32 and single.log_z() == exact.log_z()
    x = exact.sample(128, generator=torch.Generator().manual_seed(5))
    difference = single.log_prob(x.float()).double() - exact.log_prob(x)
    assert difference.abs().max().item() < 1e-6 * exact.N  # 2e-5 measured at N = 400
    drawn = single.sample(16, generator=torch.Generator().manual_seed(6))
    assert drawn.dtype == torch.float32 and set(drawn.unique().tolist()) == {-1.0, 1.0}


def test_chunks_give_the_same_logits(exact_module):
    module = small(exact_module, "ea2d_periodic_rcm")
    model = module.Model(beta=BETA)
    x = all_configurations(model.N)[::37]
    whole = model(x)
    model.CHUNK_ELEMENTS, model.CONTRACTION_ROWS = 8, 2
    model.beta = BETA  # the elimination again, two rows of w at a time
    assert torch.allclose(model(x), whole, rtol=0, atol=1e-12)
    generator = torch.Generator().manual_seed(8)
    assert model.sample(5, generator=generator).shape == (5, model.N)


# --- the constructor ----------------------------------------------------------------------


def test_width_and_table_size_are_refused(exact_module, monkeypatch):
    module = exact_module(systems.ea2d(3, 22, boundary="open", seed=0), "natural")
    with pytest.raises(ValueError, match=r"limited to width max \|F_i\| <= 20, got 21") as error:
        module.Model()
    assert "\n" not in str(error.value)
    module = small(exact_module, "ea2d_open")
    monkeypatch.setattr(module.Model, "MAX_TABLE_ENTRIES", 16)
    with pytest.raises(ValueError, match="the limit is 16"):
        module.Model()


def test_constructor_takes_couplings_as_edges_or_a_matrix(exact_module):
    module = small(exact_module, "ea2d_periodic")
    hamiltonian = module.hamiltonian
    edges, weights = torch.tensor(hamiltonian.edges), torch.tensor(hamiltonian.weights)
    h = torch.tensor(hamiltonian.h)
    from_sidecar = module.Model()
    from_pairs = module.Model(J=(edges, weights), h=h)
    from_matrix = module.Model(J=torch.tensor(hamiltonian.to_dense().J), h=h)
    X = all_configurations(9)  # noqa: N806
    for other in (from_pairs, from_matrix):
        assert torch.allclose(other.log_prob(X), from_sidecar.log_prob(X), rtol=0, atol=1e-12)
    system = from_sidecar.system_edges()
    assert torch.equal(system[0], edges) and torch.equal(system[1], weights)
    assert from_sidecar.N == 9 and from_sidecar.SITE_ORDER == "natural"
    assert from_sidecar.EMISSION_BETA == BETA and from_sidecar.beta == BETA
    for bad, message in (
        ((edges, weights[:-1]), "edges"),
        ((edges + 100, weights), "sites in"),
        (torch.ones(9, 9), "diagonal"),
    ):
        with pytest.raises(ValueError, match=message):
            module.Model(J=bad)
    with pytest.raises(ValueError, match="batch_size"):
        from_sidecar.sample(0)
    with pytest.raises(ValueError, match="-1 and \\+1"):
        from_sidecar.log_prob(torch.zeros(2, 9))


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
@pytest.mark.gpu
def test_cuda(exact_module):
    module = small(exact_module, "ea2d_periodic_rcm")
    model = module.Model(beta=BETA, device="cuda")
    X = all_configurations(model.N).cuda()  # noqa: N806
    cpu = module.Model(beta=BETA)
    assert torch.allclose(model.log_prob(X).cpu(), cpu.log_prob(X.cpu()), rtol=0, atol=1e-10)
    assert model.log_prob(X).exp().sum().item() == pytest.approx(1.0, abs=1e-10)
    x = model.sample(200_000, generator=torch.Generator("cuda").manual_seed(0))
    assert x.is_cuda
    strip = exact_module(STRIPS["periodic_100x4"][0](), "natural", key="periodic_100x4")
    on_cuda = strip.Model(beta=BETA, device="cuda", dtype=torch.float32)
    drawn = on_cuda.sample(512, generator=torch.Generator("cuda").manual_seed(1))
    reference = strip.Model(beta=BETA).log_prob(drawn.double().cpu())
    assert torch.allclose(
        on_cuda.log_prob(drawn).double().cpu(), reference, rtol=0, atol=1e-6 * 400
    )
