"""Emitted H2ARNN modules (templates/h2arnn.py.j2) against exact enumeration.

Every module is written by write_module, copied alone with its sidecar into an empty folder
and imported from there, as a user would (DESIGN.md, emitted module contract).
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import subprocess

import numpy as np
import pytest
import torch
from spins import all_configurations, assert_sampled_law

from arnn_gen import systems
from arnn_gen.codegen.emit import write_module
from arnn_gen.errors import ArnnGenError
from arnn_gen.exact import log_boltzmann
from arnn_gen.pipeline import lower
from arnn_gen.symbolic.derive import derive_conditional


@pytest.fixture(scope="module")
def derivation():
    return derive_conditional()


@pytest.fixture(scope="module")
def emit(tmp_path_factory, derivation):
    """emit(system, **options) -> (module, stages): emitted, copied alone, imported."""
    cache = {}

    def make(system, **options):
        key = (system, tuple(sorted(options.items())))
        if key not in cache:
            stages = lower(system, variant="exact", derivation=derivation, **options)
            build = tmp_path_factory.mktemp("build")
            path = write_module(stages.ir, stages.source, stages.hamiltonian, build)
            alone = tmp_path_factory.mktemp("alone")
            for produced in build.iterdir():
                shutil.copy(produced, alone / produced.name)
            copied = alone / path.name
            spec = importlib.util.spec_from_file_location(f"h2arnn_{alone.name}", copied)
            module = importlib.util.module_from_spec(spec)
            spec.loader.exec_module(module)
            module.path = copied
            cache[key] = (module, stages)
        return cache[key]

    return make


def random_system(N: int, seed: int) -> systems.Hamiltonian:  # noqa: N803
    rng = np.random.default_rng(seed)
    J = np.triu(rng.normal(0.0, 1.0 / np.sqrt(N), (N, N)), 1)  # noqa: N806
    return systems.from_couplings(J + J.T, rng.normal(0.0, 0.5, N))


def assert_exact(model, hamiltonian, beta):
    """log Q(x) = log P(x) for every x to 1e-10, and sum_x Q(x) = 1."""
    X = all_configurations(hamiltonian.N)  # noqa: N806
    log_q = model.log_prob(X)
    assert log_q.dtype == torch.float64
    assert (log_q - log_boltzmann(hamiltonian, beta, X)).abs().max().item() < 1e-10
    assert log_q.exp().sum().item() == pytest.approx(1.0, abs=1e-10)


@pytest.fixture(scope="module")
def sk8(emit):
    return emit("sk", N=8, beta=1.0, seed=4)


@pytest.mark.parametrize("N", [6, 9, 12])
@pytest.mark.parametrize("beta", [0.5, 1.5])
def test_general_equals_boltzmann(emit, tmp_path_factory, N, beta):  # noqa: N803
    hamiltonian = random_system(N, seed=N)
    couplings = tmp_path_factory.mktemp("couplings") / f"random_n{N}.npz"
    hamiltonian.save(couplings)
    module, stages = emit("general", couplings=str(couplings), beta=beta)
    assert stages.hamiltonian == hamiltonian
    model = module.Model()
    assert model.N == N and model.beta == beta and model.EMISSION_BETA == beta
    assert_exact(model, hamiltonian, beta)


def test_sk_equals_boltzmann_and_energy(sk8):
    module, stages = sk8
    model = module.Model()
    assert_exact(model, stages.hamiltonian, 1.0)
    X = all_configurations(8)  # noqa: N806
    assert torch.allclose(model.energy(X), stages.hamiltonian.energy(X), rtol=0, atol=1e-12)


def test_autoregressive(sk8):
    model = sk8[0].Model()
    x = all_configurations(8)[torch.randperm(256, generator=torch.Generator().manual_seed(0))]
    x = x[:32]
    logits = model(x)
    assert logits.shape == (32, 8)
    for j in range(8):
        flipped = x.clone()
        flipped[:, j] *= -1
        changed = model(flipped)
        assert torch.equal(changed[:, : j + 1], logits[:, : j + 1])
        assert j == 7 or not torch.allclose(changed[:, j + 1 :], logits[:, j + 1 :])


def test_beta_setter_follows(sk8):
    module, stages = sk8
    model = module.Model(beta=0.7)
    model.beta = 1.9
    assert model.beta == 1.9
    x = all_configurations(8)
    assert torch.allclose(model(x), module.Model(beta=1.9)(x), rtol=0, atol=1e-12)
    assert_exact(model, stages.hamiltonian, 1.9)
    with pytest.raises(ValueError, match="beta"):
        model.beta = -1.0


def test_other_couplings(sk8):
    module, _ = sk8
    other = random_system(8, seed=11)
    model = module.Model(beta=1.2, J=other.couplings.copy(), h=torch.as_tensor(other.fields))
    assert_exact(model, other, 1.2)
    # load_state_dict brings the couplings and recomputes the fixed parameters.
    reloaded = module.Model(beta=1.2)
    reloaded.load_state_dict(model.state_dict())
    assert set(model.state_dict()) == {"J", "h"}
    assert_exact(reloaded, other, 1.2)
    with pytest.raises(ValueError, match="symmetric"):
        module.Model(J=np.triu(other.couplings))


def test_sampler_follows_log_prob(emit):
    module, _ = emit("sk", N=5, beta=1.3, seed=2)
    model = module.Model()
    count = 200_000
    x = model.sample(count, generator=torch.Generator().manual_seed(7))
    assert x.shape == (count, 5) and x.dtype == torch.float64
    assert_sampled_law(model, x)
    with pytest.raises(ValueError, match="batch_size must be a positive integer"):
        model.sample(0)  # an empty batch is refused (DESIGN.md, Emitted module contract)


def test_chunked_forward_and_sampler_equal_unchunked(sk8):
    """Tiny batch chunks (CHUNK_ELEMENTS) change nothing in forward or in sample."""
    module, _ = sk8
    model, chunked = module.Model(), module.Model()
    chunked.CHUNK_ELEMENTS = 1
    x = all_configurations(8)
    assert torch.allclose(chunked(x), model(x), rtol=0, atol=1e-12)
    first = model.sample(64, generator=torch.Generator().manual_seed(3))
    assert torch.equal(chunked.sample(64, generator=torch.Generator().manual_seed(3)), first)


def test_too_many_spins_refused(emit, tmp_path):
    with pytest.raises(ArnnGenError, match="N <= 20"):
        lower("sk", variant="exact", N=21)
    path = tmp_path / "big.npz"
    random_system(23, seed=0).save(path)  # dense: frontier width 21, beyond the sparse form
    with pytest.raises(ArnnGenError, match="N <= 20"):
        lower("general", variant="exact", couplings=str(path))
    module, _ = emit("sk", N=5, beta=1.3, seed=2)

    class Large(module.Model):
        MAX_N = 4

    with pytest.raises(ValueError, match="N <= 4"):
        Large()


def test_float32_close_to_float64(sk8):
    module, _ = sk8
    x = all_configurations(8)
    single = module.Model(dtype=torch.float32)
    assert single.log_prob(x).dtype == torch.float32
    assert single.sample(4).dtype == torch.float32
    assert torch.allclose(single.log_prob(x).double(), module.Model().log_prob(x), atol=1e-4)


def test_ruff_format_leaves_module_unchanged(sk8):
    if shutil.which("ruff") is None:
        pytest.skip("ruff is not installed")
    module, _ = sk8
    result = subprocess.run(
        ["ruff", "format", "--diff", "--line-length", "100", str(module.path)],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def has_cpp_compiler() -> bool:
    """torch.compile's default backend (inductor) builds C++ on the CPU."""
    candidates = (os.environ.get("CXX"), "c++", "g++", "clang++")
    return any(name and shutil.which(name) for name in candidates)


@pytest.mark.slow
@pytest.mark.skipif(not hasattr(torch, "compile"), reason="torch.compile is unavailable")
@pytest.mark.skipif(not has_cpp_compiler(), reason="torch.compile needs a C++ compiler")
def test_compiled_log_prob_equals_eager(sk8):
    model = sk8[0].Model()
    x = all_configurations(8)
    compiled = torch.compile(model.log_prob, fullgraph=True)  # fullgraph: no graph breaks
    assert torch.allclose(compiled(x), model.log_prob(x), rtol=0, atol=1e-12)


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_equals_cpu(sk8):
    module, stages = sk8
    x = all_configurations(8)
    for dtype in (torch.float64, torch.float32):
        model = module.Model(device="cuda", dtype=dtype)
        on_cpu = module.Model(dtype=dtype)
        atol = 1e-10 if dtype == torch.float64 else 1e-4
        assert torch.allclose(model.log_prob(x.cuda()).cpu(), on_cpu.log_prob(x), atol=atol)
        sample = model.sample(1000, generator=torch.Generator("cuda").manual_seed(0))
        assert sample.device.type == "cuda" and set(sample.unique().tolist()) == {-1.0, 1.0}
    log_q = module.Model(device="cuda").log_prob(x.cuda()).cpu()
    assert (log_q - log_boltzmann(stages.hamiltonian, 1.0, x)).abs().max().item() < 1e-10
