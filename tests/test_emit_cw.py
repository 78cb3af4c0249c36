"""Emitted Curie-Weiss modules (templates/cw_exact.py.j2: CW_N, templates/cw_inf.py.j2:
CW_inf) against exact references (docs/physics.md section 3)."""

from __future__ import annotations

import math
import shutil
import subprocess

import numpy as np
import pytest
import torch
from internals import member
from spins import all_configurations, assert_sampled_law

from arnn_gen import systems
from arnn_gen.codegen.emit import print_formulas
from arnn_gen.exact import curie_weiss_exact, exact_conditionals, solve_magnetization


def seeded(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


# -- CW_N ------------------------------------------------------------------------------


@pytest.mark.parametrize("h", [0.0, 0.3])
def test_cw_exact_log_prob_is_exact_for_every_sample_at_N_1000(emitted, h):
    """log Q(x) + beta H(x) = -log Z on every sample: the zero-variance estimator."""
    N = 1000
    module = emitted("cw", variant="exact", N=N, h=h)
    for beta in (0.5, 1.0, 1.5):
        model = module.Model(beta=beta)
        assert model.logit_table.dtype == torch.float64
        x = model.sample(2000, generator=seeded(1))
        assert x.shape == (2000, N)
        log_z = curie_weiss_exact(N, beta, 1.0, h).log_z
        error = model.log_prob(x) + beta * model.energy(x) + log_z
        assert error.abs().max().item() < 1e-8 * N


@pytest.mark.parametrize("J, h, beta", [(1.0, 0.3, 1.3), (-0.7, -0.2, 0.8), (1.0, 0.0, 2.0)])
def test_cw_exact_conditionals_equal_brute_force(emitted, J, h, beta):
    N = 12
    module = emitted("cw", variant="exact", N=N, J=J, h=h, beta=beta)
    model = module.Model()
    rng = np.random.default_rng(4)
    x = torch.tensor(rng.choice([-1.0, 1.0], size=(8 * N, N)))  # 8 prefixes per site
    site = torch.arange(8 * N) % N
    prefixes = [x[row, : site[row]] for row in range(len(x))]
    reference = exact_conditionals(module.stages.hamiltonian, beta, prefixes)
    conditionals = torch.sigmoid(model(x))[torch.arange(len(x)), site]
    assert (conditionals - reference).abs().max().item() < 1e-12


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("h, beta", [(0.3, 1.3), (60.0, 1.0), (-60.0, 1.0)])
def test_cw_exact_sampling_thresholds(emitted, dtype, h, beta):
    """Note [Integer thresholds]: with r uniform on 0 .. 2^31 - 1, P(r <= up_threshold[i, K])
    = (threshold + 1) / 2^31 lies within 2^-32 of the exact P(x_i = +1) of brute force
    after K of the i earlier spins are +1; it is 0 or 1 when P is that within 2^-32."""
    N = 10
    module = emitted("cw", variant="exact", N=N, h=h, beta=beta)
    model = module.Model(dtype=dtype)
    prefixes, cells = [], []
    for i in range(N):
        for K in range(i + 1):
            prefixes.append(torch.tensor([1.0] * K + [-1.0] * (i - K), dtype=torch.float64))
            cells.append((i, K))
    p = exact_conditionals(module.stages.hamiltonian, beta, prefixes)
    threshold = model.up_threshold[tuple(torch.tensor(cells).T)].double()
    probability = (threshold + 1) / 2.0**31
    assert model.up_threshold.dtype == torch.int32
    assert ((probability - p).abs() <= 2.0**-32).all()
    if abs(h) > 50:  # every conditional is within e^-100 of 0 or 1
        assert set(probability.tolist()) == {1.0 if h > 0 else 0.0}
        assert (model.sample(100, generator=seeded(0)) == math.copysign(1.0, h)).all()


def test_cw_exact_table_is_the_sum_over_k_of_the_printed_formulas(emitted):
    """The binomial recursion of the template equals logsumexp over k of the IR's b+-, w
    (printed by arnn_gen.codegen.printing) at every site and every M = -N..N."""
    N, beta, J, h = 9, 1.2, 0.8, 0.25
    module = emitted("cw", variant="exact", N=N, J=J, h=h, beta=beta)
    printed = print_formulas(module.stages.ir)
    i = torch.arange(N, dtype=torch.float64)[:, None, None]
    k = torch.arange(N, dtype=torch.float64)[None, None, :]
    M = torch.arange(-N, N + 1, dtype=torch.float64)[None, :, None]
    names = {"torch": torch, "beta": beta, "J": J, "h": h, "N": N, "n": N - 1 - i, "k": k}
    weight = eval(printed["weight"], dict(names))
    sums = []
    for sign in (1.0, -1.0):
        bias = eval(printed["bias"], dict(names, sign=sign))
        terms = torch.where(k <= N - 1 - i, bias + weight * M, -math.inf)  # [N, 2N + 1, N]
        sums.append(torch.logsumexp(terms, -1))
    residual = eval(printed["residual"], dict(names, M=M[..., 0]))
    expected = residual + sums[0] - sums[1]  # [N, 2N + 1]
    assert torch.allclose(module.Model().logit_table, expected, rtol=0, atol=1e-11)


def test_cw_exact_recursion_is_printed_from_sympy(emitted):
    """Note [Binomial recursion]: every line of the recursion is a printed formula of the IR
    (arnn_gen.symbolic.simplify.cw_n_recursion), pasted into _tabulate."""
    module = emitted("cw", variant="exact", N=7, h=0.3)
    printed = print_formulas(module.stages.ir)
    expected = {
        "half_residual": "J * M * beta / N + beta * h",
        "branch_plus": "log_z_up + half",
        "branch_minus": "log_z_down - half",
        "recursion_logit": "plus - minus",
        "next_log_z": "torch.logaddexp(plus, minus)",
    }
    assert {name: printed[name] for name in expected} == expected
    source = module.stages.source
    for target, name in [("half_residual", "half_residual"), ("plus", "branch_plus"),
                         ("minus", "branch_minus"), ("logit", "recursion_logit"),
                         ("log_z", "next_log_z")]:  # fmt: skip
        assert f"{target} = {printed[name]}\n" in source


def test_cw_exact_beta_setter_retabulates(emitted):
    module = emitted("cw", variant="exact", N=30, h=0.2)
    model = module.Model(beta=0.7)
    model.beta = 1.9
    assert model.beta == 1.9
    assert torch.equal(model.logit_table, module.Model(beta=1.9).logit_table)
    x = model.sample(16, generator=seeded(2))
    assert torch.equal(model.log_prob(x), module.Model(beta=1.9).log_prob(x))
    assert list(model.parameters()) == []


# -- both variants ---------------------------------------------------------------------


@pytest.mark.parametrize(
    "variant, init", [("exact", None), ("inf", "paramagnetic"), ("inf", "random")]
)
def test_normalised_and_autoregressive(emitted, variant, init):
    N = 10
    module = emitted("cw", variant=variant, N=N, beta=1.4, h=0.15)
    torch.manual_seed(0)
    options = {} if init is None else {"init": init}
    model = module.Model(dtype=torch.float64, **options)
    X = all_configurations(N)
    assert model.log_prob(X).exp().sum().item() == pytest.approx(1.0, abs=1e-10)
    x = X[torch.randperm(len(X))[:32]]
    logits = model(x)
    for j in range(N):
        flipped = x.clone()
        flipped[:, j] *= -1
        assert torch.equal(model(flipped)[:, : j + 1], logits[:, : j + 1])


@pytest.mark.parametrize(
    "variant, init", [("exact", None), ("inf", "paramagnetic"), ("inf", "random")]
)
def test_sampler_follows_log_prob(emitted, variant, init):
    N, count = 5, 200_000
    module = emitted("cw", variant=variant, N=N, beta=1.3, h=0.2)
    torch.manual_seed(1)
    options = {} if init is None else {"init": init}
    model = module.Model(dtype=torch.float64, **options)
    x = model.sample(count, generator=seeded(7))
    assert_sampled_law(model, x)


def test_energy_is_the_hamiltonian(emitted):
    X = all_configurations(7)
    # The dense Hamiltonian, -x^T J x / 2 - h x with J_ij = J/N: independent of the closed
    # form in M that the modules print (derived and checked in SymPy).
    expected = systems.curie_weiss(7, J=-0.6, h=0.4).energy(X)
    for variant in ("exact", "inf"):
        model = emitted("cw", variant=variant, N=7, J=-0.6, h=0.4).Model(dtype=torch.float64)
        assert torch.allclose(model.energy(X), expected, rtol=0, atol=1e-12)


# -- CW_inf ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "beta, J, h",
    [(1.5, 1.0, 0.0), (0.7, 1.0, 0.0), (1.0, 1.0, 0.0), (1.2, 1.0, -0.3), (2.0, -1.0, 0.5)],
)
def test_cw_inf_omega_starts_at_the_saddle_point(emitted, beta, J, h):
    N = 20
    module = emitted("cw", variant="inf", N=N, J=J, h=h, beta=beta)
    model = module.Model(dtype=torch.float64)
    n = torch.arange(N - 1, -1, -1, dtype=torch.float64)
    expected = 2 * beta * J * (n / N) * solve_magnetization(beta, J, h)
    assert torch.allclose(model.omega.detach(), expected, rtol=1e-13, atol=1e-14)
    model.beta = 0.5  # trained parameter: the setter leaves it
    assert torch.equal(model.omega.detach(), module.Model(dtype=torch.float64).omega.detach())
    model.reset_parameters()  # the saddle point at the new beta: paramagnetic, omega = 0
    assert h != 0 or model.omega.abs().max().item() == 0.0


def test_cw_inf_variational_free_energy_is_close_to_exact_at_N_2000(emitted):
    N, beta, count = 2000, 1.5, 2000
    module = emitted("cw", variant="inf", N=N, beta=beta)
    model = module.Model(dtype=torch.float64)
    x = model.sample(count, generator=seeded(3))
    with torch.no_grad():
        per_sample = (model.log_prob(x) + beta * model.energy(x)) / (beta * N)
    estimate = per_sample.mean().item()
    noise = per_sample.std().item() / math.sqrt(count)
    exact = curie_weiss_exact(N, beta).free_energy
    assert estimate >= exact - 5 * noise
    assert abs(estimate - exact) < 0.02 * abs(exact)


def test_cw_inf_trains(emitted):
    """omega is a parameter: the gradient of the variational free energy reaches it."""
    module = emitted("cw", variant="inf", N=12, beta=1.5)
    torch.manual_seed(0)
    model = module.Model(dtype=torch.float64, init="random")
    x = model.sample(64, generator=seeded(4))
    log_q = model.log_prob(x)
    loss = ((log_q + 1.5 * model.energy(x)).detach() * log_q).mean()
    loss.backward()
    assert [name for name, _ in model.named_parameters()] == ["omega"]
    assert model.omega.grad is not None and model.omega.grad.abs().sum() > 0


# -- dtypes, compile, devices, input checks, format -----------------------------------


@pytest.mark.parametrize("variant", ["exact", "inf"])
def test_float32_agrees_with_float64(emitted, variant):
    module = emitted("cw", variant=variant, N=200, beta=1.2, h=0.1)
    single = module.Model(dtype=torch.float32)
    double = module.Model(dtype=torch.float64)
    x = double.sample(64, generator=seeded(5))
    log_q = single.log_prob(x)
    assert log_q.dtype == torch.float32 and single.sample(3).dtype == torch.float32
    assert torch.allclose(log_q.double(), double.log_prob(x), rtol=1e-5, atol=1e-3)
    assert single.energy(x).dtype == torch.float32


def test_default_dtypes_come_from_the_ir(emitted):
    exact = emitted("cw", variant="exact", N=4)
    assert exact.stages.ir.dtype == "float64" and member(exact.Model(), "dtype")() == torch.float64
    inf = emitted("cw", variant="inf", N=4)
    assert member(inf.Model(), "dtype")() == getattr(torch, inf.stages.ir.dtype)


@pytest.mark.slow
@pytest.mark.parametrize("variant", ["exact", "inf"])
def test_compiled_log_prob_equals_eager(emitted, variant):
    if not hasattr(torch, "compile"):
        pytest.skip("torch.compile is unavailable")
    module = emitted("cw", variant=variant, N=16, beta=1.1, h=0.2)
    model = module.Model(dtype=torch.float64)
    x = model.sample(32, generator=seeded(6))
    try:
        compiled = torch.compile(model.log_prob)(x)
    except Exception as error:  # no C compiler or backend in this environment
        pytest.skip(f"torch.compile does not run here: {error}")
    assert torch.allclose(compiled, model.log_prob(x), rtol=0, atol=1e-12)


@pytest.mark.gpu
def test_cw_exact_cuda_sampler_follows_log_prob(emitted):
    """CW_N's integer-threshold sampler on CUDA (int32 random bits there) has the law."""
    module = emitted("cw", variant="exact", N=5, beta=1.3, h=0.2)
    model = module.Model(dtype=torch.float64, device="cuda")
    count = 200_000
    x = model.sample(count, generator=torch.Generator("cuda").manual_seed(7))
    assert_sampled_law(model, x)


@pytest.mark.gpu
@pytest.mark.parametrize("variant", ["exact", "inf"])
def test_cuda_agrees_with_cpu(emitted, variant):
    module = emitted("cw", variant=variant, N=300, beta=1.3, h=0.1)
    cpu = module.Model(dtype=torch.float64)
    gpu = module.Model(dtype=torch.float64, device="cuda")
    x = gpu.sample(256, generator=torch.Generator("cuda").manual_seed(0))
    assert x.device.type == "cuda"
    assert torch.allclose(gpu.log_prob(x).cpu(), cpu.log_prob(x.cpu()), rtol=0, atol=1e-9)
    gpu.beta = 0.9
    cpu.beta = 0.9
    assert torch.allclose(gpu(x).cpu(), cpu(x.cpu()), rtol=0, atol=1e-9)


@pytest.mark.parametrize("variant", ["exact", "inf"])
def test_bad_constructor_input_raises(emitted, variant):
    module = emitted("cw", variant=variant, N=5)
    for beta in (0.0, -1.0, math.inf, math.nan):
        with pytest.raises(ValueError, match="beta must be finite and > 0"):
            module.Model(beta=beta)
    with pytest.raises(ValueError, match="J must be a scalar"):
        module.Model(J=np.ones((5, 5)))
    with pytest.raises(ValueError, match="h must be a scalar"):
        module.Model(h=[0.1] * 5)
    with pytest.raises(ValueError, match="J must be a real number"):
        module.Model(J="strong")
    with pytest.raises(ValueError, match="h must be finite"):
        module.Model(h=math.inf)
    model = module.Model()
    with pytest.raises(ValueError, match="beta must be finite and > 0"):
        model.beta = 0.0
    model = module.Model(J=2.0, h=np.float64(-0.5))
    assert (model.J, model.h) == (2.0, -0.5)


def test_init_must_be_known(emitted):
    module = emitted("cw", variant="inf", N=5)
    with pytest.raises(ValueError, match="init must be 'paramagnetic' or 'random'"):
        module.Model(init="ordered")


def test_emitted_modules_are_ruff_formatted(emitted, tmp_path):
    """Long printed formulas included (h != 0): ruff format leaves the files unchanged."""
    ruff = shutil.which("ruff")
    if ruff is None:
        pytest.skip("ruff is not installed")
    files = [emitted("cw", variant=v, N=50, h=0.3, J=-1.5).__file__ for v in ("exact", "inf")]
    done = subprocess.run(
        [ruff, "format", "--check", "--diff", "--line-length", "100", *files],
        cwd=tmp_path,
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stdout + done.stderr


@pytest.mark.parametrize("beta, field", [(0.7, 0.0), (1.6, 0.25)])
def test_table_equals_the_cw_n_network(emitted, beta, field):
    """forward (the table, O(N^2) per beta) equals the CW_N network evaluated directly with
    the SymPy-printed b_{i,k}, w_{i,k} (docs/physics.md section 3)."""
    module = emitted("cw", variant="exact", N=60, beta=beta, h=field)
    model = module.Model()
    x = model.sample(256, generator=torch.Generator().manual_seed(4))
    assert (model(x) - model.network_logits(x)).abs().max().item() < 1e-10


@pytest.mark.parametrize("J, h, beta", [(1.0, 0.0, 1.2), (-0.6, 0.3, 0.7)])
def test_cw_exact_log_prob_table_is_the_sum_of_the_conditionals(emitted, J, h, beta):
    """Note [Exact joint]: log Q read off by the number of up spins equals the sum over the
    sites of log P(x_i | M_<i) from forward's logits, for random x of every magnetisation."""
    module = emitted("cw", variant="exact", N=60)
    model = module.Model(beta=beta, J=J, h=h, dtype=torch.float64)
    generator = torch.Generator().manual_seed(0)
    fraction = torch.linspace(0, 1, 61, dtype=torch.float64)[:, None]  # all counts of up
    x = torch.where(torch.rand(61, 60, generator=generator, dtype=torch.float64) < fraction,
                    1.0, -1.0)  # fmt: skip
    x[0], x[-1] = -1.0, 1.0
    per_site = torch.nn.functional.logsigmoid(x * model(x)).sum(-1)
    assert torch.allclose(model.log_prob(x), per_site, rtol=0, atol=1e-10)
