"""The Triton backend of the replica forms (``emit --backend triton``): the printer, and the
kernels against the torch code, run under Triton's interpreter on the CPU (TRITON_INTERPRET=1)
and on CUDA where there is one."""

from __future__ import annotations

import pytest
import sympy as sp
import torch
from cli_runner import run
from sympy.codegen.cfunctions import expm1, log1p

from arnn_gen.codegen.emit import load_module, write_module
from arnn_gen.codegen.families import build_ir
from arnn_gen.codegen.triton_printing import triton_code
from arnn_gen.errors import ArnnGenError
from arnn_gen.pipeline import lower
from arnn_gen.symbolic.nn_functions import LogSumExp, logsigmoid, sigmoid

# -- the printer ------------------------------------------------------------------------


def test_the_printer_prints_what_triton_language_has():
    a, b, u, z = sp.symbols("a b u z")
    assert triton_code(a * z + b) == "a * z + b"
    assert triton_code(sigmoid(u)) == "tl.sigmoid(u)"
    assert triton_code(sp.sqrt(a) + 1 / a) == "tl.sqrt(a) + 1 / a"
    assert triton_code(a**3) == "a * a * a"
    assert triton_code((a + b) ** 2) == "(a + b) * (a + b)"
    assert triton_code(sp.Min(a, b) + sp.Max(a, 0)) == "tl.maximum(0, a) + tl.minimum(a, b)"
    assert triton_code(sp.Piecewise((a, u > 0), (b, True))) == "tl.where(u > 0, a, b)"
    assert triton_code(sp.pi * a) == "3.141592653589793 * a"
    assert triton_code(a / 2) == "a / 2"
    assert triton_code(sp.Rational(3, 4) * a) == "3 * a / 4"
    assert triton_code(sp.Rational(3, 4) + a) == "a + 0.75"
    assert triton_code(a * b, symbol_names={a: "tile"}) == "tile * b"


@pytest.mark.parametrize(
    "expr",
    [
        expm1(sp.Symbol("a")),
        log1p(sp.Symbol("a")),
        sp.tanh(sp.Symbol("a")),
        sp.Symbol("a") ** sp.Symbol("b"),
        sp.Symbol("a") ** sp.Rational(1, 3),
        sp.Function("f")(sp.Symbol("a")),
        LogSumExp(sp.Symbol("a"), (sp.Symbol("l"), 0, 3)),
        sp.Piecewise((1, sp.Symbol("a") > 0)),
    ],
    ids=str,
)
def test_the_printer_refuses_what_it_cannot_print(expr):
    with pytest.raises(ArnnGenError, match="triton printer: cannot print"):
        triton_code(expr)


def test_logsigmoid_prints_a_form_that_never_overflows():
    """The printed form, evaluated with torch's functions of the same names, equals torch's
    logsigmoid to rounding over the whole range (float64: no overflow at |u| = 700)."""
    u = sp.Symbol("u")
    code = triton_code(logsigmoid(u))
    values = torch.tensor([-700.0, -40.0, -3.0, -1e-3, 0.0, 1e-3, 3.0, 40.0, 700.0],
                          dtype=torch.float64)  # fmt: skip

    def minimum(first, second):  # tl.minimum takes a number and a tensor
        return torch.minimum(torch.as_tensor(first, dtype=torch.float64),
                             torch.as_tensor(second, dtype=torch.float64))  # fmt: skip

    functions = {"minimum": minimum, "log": torch.log, "exp": torch.exp, "abs": torch.abs}
    tl = type("tl", (), {name: staticmethod(f) for name, f in functions.items()})
    result = eval(code, {"tl": tl, "u": values, "torch": torch})  # noqa: S307 (printed here)
    result = result if torch.is_tensor(result) else torch.as_tensor(result)
    torch.testing.assert_close(result, torch.nn.functional.logsigmoid(values), rtol=1e-15,
                               atol=1e-16)  # fmt: skip


def test_every_kernel_formula_of_the_replica_forms_prints():
    """The formulas the Triton kernels take (replica_triton.py.j2), for k = 0, 1, 2."""
    used = ("layer_input", "layer_of_input", "slope_of_input", "output", "output_slope_a",
            "output_slope_z", "slope_a", "slope_z", "logit", "probability_plus",
            "cavity_update")  # fmt: skip
    for variant, k in (("rs", 0), ("krsb", 1), ("krsb", 2)):
        ir = lower("sk", variant=variant, k=k, N=5, backend="triton").ir
        names = dict(ir.symbol_names)
        for name in used:
            assert "torch" not in triton_code(ir.formula(name), symbol_names=names)


def test_the_backend_is_refused_where_there_are_no_kernels(tmp_path):
    for args in (("--system", "cw", "--variant", "exact"), ("--system", "sk", "--variant",
                 "exact", "-N", "6"), ("--system", "ea2d", "-L", "3", "--variant", "exact"),
                 ("--system", "cw", "--variant", "inf", "--h", "0,1")):  # fmt: skip
        result = run("emit", *args, "--backend", "triton", "--out", tmp_path)
        assert result.exit_code == 1, result.output
        assert "--backend triton is not available" in result.stderr
    result = run("emit", "--system", "sk", "--backend", "cuda", "--out", tmp_path)
    assert result.exit_code == 2 and "--backend" in result.stderr
    stages = lower("sk", N=6)
    with pytest.raises(ArnnGenError, match="not available"):
        build_ir(stages.hamiltonian, lower("cw", variant="exact", N=6).reduction, beta=1.0,
                 command="", backend="triton")  # fmt: skip


def test_the_torch_modules_are_the_same_bytes_without_a_backend_key():
    """backend = torch is the canonical form of every module emitted before there was a
    choice: its IR has no backend key and its source no Triton code."""
    torch_ir = lower("sk", N=6).ir
    assert "backend" not in torch_ir.to_dict()
    triton_stages = lower("sk", N=6, backend="triton")
    assert triton_stages.ir.to_dict()["backend"] == "triton"
    assert "import triton" in triton_stages.source and "--backend triton" in triton_stages.source
    assert "import triton" not in lower("sk", N=6).source


# -- the kernels ------------------------------------------------------------------------

triton = pytest.importorskip("triton", reason="triton is not installed (pip install triton)")

N, BATCH = 11, 13


@pytest.fixture()
def interpreted(monkeypatch):
    """Triton's interpreter on the CPU (its kernels run as numpy), unless there is CUDA."""
    if not torch.cuda.is_available():
        monkeypatch.setenv("TRITON_INTERPRET", "1")
    return "cuda" if torch.cuda.is_available() else "cpu"


def emit_pair(folder, k):
    variant = "rs" if k == 0 else "krsb"
    modules = []
    for backend in ("torch", "triton"):
        stages = lower("sk", variant=variant, k=k, N=N, beta=1.1, backend=backend,
                       name=f"{backend}_{k}")  # fmt: skip
        modules.append(load_module(write_module(stages.ir, stages.source, stages.hamiltonian,
                                                folder, force=True)))  # fmt: skip
    return modules


@pytest.mark.parametrize("k", [0, 1, 2])
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32], ids=str)
def test_the_kernels_equal_the_torch_code(tmp_path, interpreted, k, dtype):
    """forward, the sampler (the same uniforms), log Q from sampling and the fused gradients
    of the Triton module equal those of the torch module holding the same parameters, with
    tiles smaller than N and the batch so that several programs share each sum."""
    device = interpreted
    with_torch, with_triton = emit_pair(tmp_path, k)
    torch.manual_seed(k)
    model = with_triton.Model(dtype=dtype, device=device, init="random")
    model.TRITON_BLOCK_L, model.TRITON_BLOCK_B = 4, 8
    reference = with_torch.Model(dtype=dtype, device=device)
    reference.load_state_dict(model.state_dict())
    tight = dtype == torch.float64
    tolerance = {"rtol": 1e-10, "atol": 1e-12} if tight else {"rtol": 1e-5, "atol": 1e-5}
    x = (torch.randint(0, 2, (BATCH, N), device=device) * 2 - 1).to(dtype)
    assert model._triton_runs(x)
    with torch.no_grad():
        torch.testing.assert_close(model.forward(x), reference.forward(x), **tolerance)
        torch.testing.assert_close(model.log_prob(x), reference.log_prob(x), **tolerance)
        uniforms = torch.rand(N, BATCH, dtype=dtype, device=device)
        spins, logits = model._draw(uniforms)
        expected_spins, expected_logits = reference._draw(uniforms)
    assert torch.equal(spins, expected_spins)
    torch.testing.assert_close(logits, expected_logits, **tolerance)
    weights = torch.linspace(0.5, 1.5, BATCH, dtype=dtype, device=device)
    for module in (model, reference):
        generator = torch.Generator(device=device).manual_seed(3)
        x, log_q = module.sample_with_log_prob(BATCH, generator=generator)
        (log_q * weights).sum().backward()
        module.sampled = x, log_q.detach()
    if device == "cuda":  # the sampling launches were captured and replayed as a graph
        assert model._graph is not None
    assert torch.equal(model.sampled[0], reference.sampled[0])
    torch.testing.assert_close(model.sampled[1], reference.sampled[1], **tolerance)
    for (name, mine), theirs in zip(model.named_parameters(), reference.parameters(), strict=True):
        torch.testing.assert_close(mine.grad, theirs.grad, **tolerance, msg=name)


def test_the_torch_code_runs_where_the_kernels_do_not(tmp_path, monkeypatch):
    """Without the interpreter on the CPU, or with a learnable first layer, the Triton module
    is the torch module; autograd of forward takes the torch code too."""
    monkeypatch.delenv("TRITON_INTERPRET", raising=False)
    _, with_triton = emit_pair(tmp_path, 1)
    model = with_triton.Model(dtype=torch.float64)
    x = torch.ones(3, N, dtype=torch.float64)
    assert not model._triton_runs(x)
    monkeypatch.setenv("TRITON_INTERPRET", "1")
    interpreted = load_module(with_triton.__file__).Model(dtype=torch.float64,
                                                          learn_couplings=True)  # fmt: skip
    assert not interpreted._triton_runs(x)
    log_q = interpreted.log_prob(x)
    log_q.sum().backward()  # the couplings' gradients come from the torch code
    assert interpreted.J.grad is not None


def test_tensors_beyond_32_bit_offsets_take_the_torch_code(tmp_path, interpreted):
    """The kernels index with 32-bit offsets: a call whose log rho [2, N, B] (dense) or prefix
    fields [B, N, D + 1] (frontier) would exceed them runs the torch code."""
    _, with_triton = emit_pair(tmp_path, 1)
    model = with_triton.Model(device=interpreted)
    assert model._triton_runs(torch.zeros(1, device=interpreted).expand(2**30 - 1))
    assert not model._triton_runs(torch.zeros(1, device=interpreted).expand(2**30))
    stages = lower("ea2d", L=4, backend="triton", name="frontier_offsets")
    frontier = load_module(write_module(stages.ir, stages.source, stages.hamiltonian, tmp_path))
    model = frontier.Model(device=interpreted)
    depth = model.earlier.shape[1] + 1
    assert model._triton_runs(torch.zeros(1, device=interpreted).expand(2**31 // depth - 1))
    assert not model._triton_runs(torch.zeros(1, device=interpreted).expand(2**31 // depth + 1))


def test_a_triton_module_trains(tmp_path, interpreted):
    """Two betas of annealing through the kernels (float64) give the torch module's run."""
    from arnn_gen.learn.train import TrainConfig, train

    with_torch, with_triton = emit_pair(tmp_path, 1)
    config = TrainConfig(beta=0.6, beta_start=0.5, beta_step=0.1, steps_per_beta=3, batch=16,
                         lr=1e-2, eval_samples=32, dtype="float64", device=interpreted)  # fmt: skip
    results = []
    for module in (with_torch, with_triton):
        model = module.Model(beta=0.5)
        model.TRITON_BLOCK_L = model.TRITON_BLOCK_B = 8
        results.append(train(model, config, None, progress=False))
    for mine, theirs in zip(results[1].rows, results[0].rows, strict=True):
        assert mine["free_energy"] == pytest.approx(theirs["free_energy"], rel=1e-9)


@pytest.mark.parametrize(
    "system",
    [
        {"system": "ea2d", "L": 4, "variant": "krsb", "k": 1},
        {"system": "rrg", "N": 12, "variant": "krsb", "k": 2, "seed": 1},
        {"system": "ea2d", "L": 3, "W": 5, "boundary": "open", "variant": "rs"},
    ],
    ids=lambda options: f"{options['system']}-{options['variant']}",
)
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32], ids=str)
def test_the_frontier_kernels_equal_the_torch_code(tmp_path, interpreted, system, dtype):
    """The frontier networks of sparse systems: forward, the gradients of log Q (the kernels'
    backward pass), and sampling with log Q equal the torch module's, in the user's order."""
    device = interpreted
    modules = []
    for backend in ("torch", "triton"):
        stages = lower(beta=1.2, backend=backend, name=f"{backend}_frontier", **system)
        modules.append(load_module(write_module(stages.ir, stages.source, stages.hamiltonian,
                                                tmp_path, force=True)))  # fmt: skip
    torch.manual_seed(4)
    model = modules[1].Model(dtype=dtype, device=device, init="random")
    model.TRITON_BLOCK_W, model.TRITON_BLOCK_B = 4, 8  # several chunks of each frontier
    reference = modules[0].Model(dtype=dtype, device=device)
    reference.load_state_dict(model.state_dict())
    tight = dtype == torch.float64
    tolerance = {"rtol": 1e-10, "atol": 1e-12} if tight else {"rtol": 1e-5, "atol": 1e-5}
    x = (torch.randint(0, 2, (BATCH, model.N), device=device) * 2 - 1).to(dtype)
    assert model._triton_runs(x)
    with torch.no_grad():
        torch.testing.assert_close(model.forward(x), reference.forward(x), **tolerance)
    weights = torch.linspace(0.5, 1.5, BATCH, dtype=dtype, device=device)
    for module in (model, reference):
        (module.log_prob(x) * weights).sum().backward()
    for (name, mine), theirs in zip(model.named_parameters(), reference.parameters(), strict=True):
        torch.testing.assert_close(mine.grad, theirs.grad, **tolerance, msg=name)
    with torch.no_grad():
        drawn = [m.sample_with_log_prob(BATCH, generator=torch.Generator(device=device)
                                        .manual_seed(2)) for m in (model, reference)]  # fmt: skip
    assert torch.equal(drawn[0][0], drawn[1][0])
    torch.testing.assert_close(drawn[0][1], drawn[1][1], **tolerance)


def test_a_frontier_backward_pass_can_itself_be_differentiated(tmp_path, interpreted):
    """create_graph=True through the kernels' backward pass: a Hessian-vector product of
    log Q equals the torch module's (the differentiable backward takes the torch code)."""
    modules = []
    for backend in ("torch", "triton"):
        stages = lower("ea2d", L=3, variant="krsb", k=1, backend=backend, name=f"hvp_{backend}")
        modules.append(load_module(write_module(stages.ir, stages.source, stages.hamiltonian,
                                                tmp_path)))  # fmt: skip
    torch.manual_seed(5)
    model = modules[1].Model(dtype=torch.float64, device=interpreted, init="random")
    reference = modules[0].Model(dtype=torch.float64, device=interpreted)
    reference.load_state_dict(model.state_dict())
    x = (torch.randint(0, 2, (BATCH, model.N), device=interpreted) * 2 - 1).double()
    products = []
    for module in (model, reference):
        (grad,) = torch.autograd.grad(module.log_prob(x).sum(), module.a1, create_graph=True)
        (product,) = torch.autograd.grad((grad * torch.ones_like(grad)).sum(), module.a1)
        products.append(product)
    torch.testing.assert_close(products[0], products[1], rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32], ids=str)
def test_the_kernels_of_several_instances_equal_the_torch_code(tmp_path, interpreted, dtype):
    """A module of three SK instances: forward, sampling with per-instance generators, log Q
    and the fused gradients through the kernels (one program axis per instance) equal the
    torch module of the same instances."""
    device = interpreted
    modules = []
    for backend in ("torch", "triton"):
        stages = lower("sk", variant="krsb", k=1, N=N, instances="0-2", backend=backend,
                       name=f"several_{backend}")  # fmt: skip
        modules.append(load_module(write_module(stages.ir, stages.source, stages.hamiltonian,
                                                tmp_path)))  # fmt: skip
    torch.manual_seed(6)
    model = modules[1].Model(dtype=dtype, device=device, init="random")
    model.TRITON_BLOCK_L, model.TRITON_BLOCK_B = 4, 8
    reference = modules[0].Model(dtype=dtype, device=device)
    reference.load_state_dict(model.state_dict())
    tight = dtype == torch.float64
    tolerance = {"rtol": 1e-10, "atol": 1e-12} if tight else {"rtol": 1e-5, "atol": 1e-5}
    x = (torch.randint(0, 2, (3, BATCH, N), device=device) * 2 - 1).to(dtype)
    assert model._triton_runs(x)
    with torch.no_grad():
        torch.testing.assert_close(model.forward(x), reference.forward(x), **tolerance)
    weights = torch.linspace(0.5, 1.5, 3 * BATCH, dtype=dtype, device=device).view(3, BATCH)
    drawn = []
    for module in (model, reference):  # each instance its own stream: its own uniforms
        streams = [torch.Generator(device=device).manual_seed(7 + k) for k in range(3)]
        spins, log_q = module.sample_with_log_prob(BATCH, generator=streams)
        (log_q * weights).sum().backward()
        drawn.append((spins, log_q.detach()))
    assert torch.equal(drawn[0][0], drawn[1][0])
    torch.testing.assert_close(drawn[0][1], drawn[1][1], **tolerance)
    for (name, mine), theirs in zip(model.named_parameters(), reference.parameters(), strict=True):
        torch.testing.assert_close(mine.grad, theirs.grad, **tolerance, msg=name)
