"""Tests of arnn_gen.systems: constructors, validation, energy, files (docs/physics.md,
section 1)."""

from __future__ import annotations

import hashlib
import math
import os
import pickle

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from arnn_gen import systems
from arnn_gen.errors import ArnnGenError
from arnn_gen.systems import (
    KINDS,
    Hamiltonian,
    curie_weiss,
    from_couplings,
    load,
    save,
    sherrington_kirkpatrick,
)


def random_system(N: int, seed: int) -> tuple[np.ndarray, np.ndarray]:  # noqa: N803
    """Random symmetric couplings [N, N] with zero diagonal and random fields [N]."""
    rng = np.random.default_rng(seed)
    a = rng.normal(size=(N, N))
    couplings = np.triu(a, 1) + np.triu(a, 1).T
    return couplings, rng.normal(size=N)


def naive_energy(couplings: np.ndarray, fields: np.ndarray, x: np.ndarray) -> float:
    """H(x) = -sum_{i<j} J_ij x_i x_j - sum_i h_i x_i by explicit loops."""
    n = len(fields)
    total = 0.0
    for i in range(n):
        total -= fields[i] * x[i]
        for j in range(i + 1, n):
            total -= couplings[i, j] * x[i] * x[j]
    return total


def random_spins(shape: tuple[int, ...], seed: int) -> np.ndarray:
    return np.random.default_rng(seed).choice([-1.0, 1.0], size=shape)


# --------------------------------------------------------------------------------------
# Constructors
# --------------------------------------------------------------------------------------


def test_curie_weiss_couplings_and_fields():
    H = curie_weiss(7, J=1.3, h=-0.2)
    off = ~np.eye(7, dtype=bool)
    assert H.kind == "cw" and H.N == 7
    assert np.all(H.J[off] == 1.3 / 7)
    assert np.all(np.diagonal(H.J) == 0.0)
    assert np.all(H.h == -0.2)
    assert dict(H.provenance) == {"J": 1.3, "h": -0.2}
    assert H.couplings is H.J and H.fields is H.h
    assert repr(H) == "Hamiltonian(kind='cw', N=7, J=1.3, h=-0.2)"


def test_curie_weiss_single_spin():
    H = curie_weiss(1, h=0.5)
    assert H.J.shape == (1, 1) and H.J[0, 0] == 0.0
    assert float(H.energy(torch.tensor([-1.0]))) == 0.5


def test_sk_statistics():
    N, scale = 400, 1.7
    H = sherrington_kirkpatrick(N, J=scale, h=0.1, seed=5)
    upper = H.J[np.triu_indices(N, 1)]
    assert abs(upper.std() / (scale / math.sqrt(N)) - 1.0) < 0.05
    assert abs(upper.mean()) < 5.0 * upper.std() / math.sqrt(upper.size)
    assert np.array_equal(H.J, H.J.T) and np.all(np.diagonal(H.J) == 0.0)
    assert np.all(H.h == 0.1)
    assert repr(H) == "Hamiltonian(kind='sk', N=400, J=1.7, h=0.1, seed=5)"


def test_sk_seed_reproducibility():
    a = sherrington_kirkpatrick(30, seed=11)
    b = sherrington_kirkpatrick(30, seed=11)
    c = sherrington_kirkpatrick(30, seed=12)
    assert np.array_equal(a.J, b.J) and a == b and a.signature() == b.signature()
    assert not np.array_equal(a.J, c.J) and a != c


def test_sk_matches_independent_row_major_fill():
    N, scale, seed = 9, 0.8, 42
    values = np.random.default_rng(seed).normal(0.0, scale / math.sqrt(N), size=N * (N - 1) // 2)
    expected = np.zeros((N, N))
    k = 0
    for i in range(N):
        for j in range(i + 1, N):
            expected[i, j] = expected[j, i] = values[k]
            k += 1
    assert np.array_equal(sherrington_kirkpatrick(N, J=scale, seed=seed).J, expected)


def test_sk_single_spin_and_zero_scale():
    assert sherrington_kirkpatrick(1).J.shape == (1, 1)
    assert np.all(sherrington_kirkpatrick(5, J=0.0).J == 0.0)


def test_from_couplings_defaults_and_broadcast():
    couplings, fields = random_system(5, 0)
    H = from_couplings(couplings)
    assert H.kind == "general" and dict(H.provenance) == {}
    assert np.all(H.h == 0.0)
    assert np.all(from_couplings(couplings, 0.25).h == 0.25)
    assert np.array_equal(from_couplings(torch.tensor(couplings), torch.tensor(fields)).h, fields)
    assert repr(H) == "Hamiltonian(kind='general', N=5)"


def test_arrays_are_private_read_only_copies():
    couplings, fields = random_system(4, 1)
    H = from_couplings(couplings, fields)
    couplings[0, 1] = 99.0
    fields[0] = 99.0
    assert H.J[0, 1] != 99.0 and H.h[0] != 99.0
    with pytest.raises(ValueError):
        H.J[0, 1] = 1.0
    with pytest.raises(ValueError):
        H.h[0] = 1.0
    with pytest.raises(TypeError):
        H.provenance["J"] = 2.0  # type: ignore[index]
    assert H.J.dtype == np.float64 and H.h.dtype == np.float64


def test_small_asymmetry_is_symmetrised_exactly():
    couplings, _ = random_system(4, 2)
    couplings[0, 1] += 1e-14
    H = from_couplings(couplings)
    assert np.array_equal(H.J, H.J.T)
    assert H.J[0, 1] == (couplings[0, 1] + couplings[1, 0]) / 2


def test_equality_hash_signature_and_pickle():
    couplings, fields = random_system(6, 3)
    a = from_couplings(couplings, fields)
    b = from_couplings(couplings.copy(), fields.copy())
    assert a == b and hash(a) == hash(b) and a.signature() == b.signature()
    assert len(a.signature()) == 64
    assert a != from_couplings(couplings, fields, provenance={"tag": 1})
    # Provenance 1 (int) and 1.0 (float) differ, consistently in == and signature().
    one_int = from_couplings(couplings, provenance={"x": 1})
    one_float = from_couplings(couplings, provenance={"x": 1.0})
    assert one_int != one_float and one_int.signature() != one_float.signature()
    # Signed zeros are canonical.
    neg = couplings.copy()
    neg[neg == 0.0] = -0.0
    assert from_couplings(neg).signature() == from_couplings(couplings).signature()
    assert pickle.loads(pickle.dumps(a)) == a


def test_signature_is_pinned():
    # sha256 of the canonical bytes: the same on every machine, in every process. A change
    # here invalidates every recorded signature (generated files, checkpoints).
    # A Curie-Weiss system is signed by its numbers (N, J, h), so that N = 10^6 needs no
    # matrix; the dense and the matrix-free forms agree.
    expected_cw = hashlib.sha256(
        b"arnn-gen-curie-weiss-v1\0(('J', 'float', 1.0), ('h', 'float', 0.5))\x003\0"
    ).hexdigest()
    assert curie_weiss(3, J=1.0, h=0.5).signature() == expected_cw
    assert systems.CurieWeiss(3, 1.0, 0.5).signature() == expected_cw
    assert sherrington_kirkpatrick(4, seed=0).signature() == (
        "743d641d78c7a99419a93213b2ab1ce195cac2c09f0afdf839efcd19e5e83599"
    )


# --------------------------------------------------------------------------------------
# Validation
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("call", "match"),
    [
        (lambda: curie_weiss(0), r"N must be >= 1, got N=0"),
        (lambda: curie_weiss(-3), r"N must be >= 1, got N=-3"),
        (lambda: curie_weiss(True), r"N must be an integer, got True"),
        (lambda: curie_weiss(2.0), r"N must be an integer, got 2\.0"),
        (lambda: curie_weiss(4, J=math.nan), r"Curie-Weiss coupling J must be finite, got nan"),
        (lambda: curie_weiss(4, h=math.inf), r"Curie-Weiss field h must be finite, got inf"),
        (lambda: curie_weiss(4, J="x"), r"Curie-Weiss coupling J must be a real number"),
        (lambda: sherrington_kirkpatrick(0), r"N must be >= 1"),
        (lambda: sherrington_kirkpatrick(4, J=-1.0), r"SK coupling scale J must be >= 0"),
        (lambda: sherrington_kirkpatrick(4, J=math.inf), r"SK coupling scale J must be finite"),
        (lambda: sherrington_kirkpatrick(4, h=math.nan), r"SK field h must be finite"),
        (lambda: sherrington_kirkpatrick(4, seed=-1), r"SK seed must be an integer >= 0"),
        (lambda: from_couplings(np.zeros((0, 0))), r"N must be >= 1, got N=0"),
        (lambda: from_couplings(np.zeros((2, 3))), r"square 2-D array, got shape \(2, 3\)"),
        (lambda: from_couplings(np.zeros(3)), r"square 2-D array, got shape \(3,\)"),
        (lambda: from_couplings(np.zeros((2, 2)), np.zeros(3)), r"shape \(2,\).*got shape \(3,\)"),
        (lambda: from_couplings(np.zeros((2, 2)), np.zeros((2, 1))), r"fields h must have shape"),
        (lambda: from_couplings([[0.0, 1.0], [2.0, 0.0]]), r"symmetric.*J\[0, 1\] = 1\.0"),
        (lambda: from_couplings([[1.0, 0.0], [0.0, 0.0]]), r"zero diagonal.*J\[0, 0\] = 1\.0"),
        (lambda: from_couplings([[0.0, math.nan], [math.nan, 0]]), r"finite.*J\[0, 1\] = nan"),
        (lambda: from_couplings([[0.0, math.inf], [math.inf, 0]]), r"finite.*J\[0, 1\] = inf"),
        (lambda: from_couplings(np.zeros((2, 2)), [0.0, math.nan]), r"finite.*h\[1\] = nan"),
        (lambda: from_couplings(np.zeros((2, 2)), math.inf), r"field h must be finite"),
        (lambda: from_couplings(np.zeros((2, 2)), kind="spin-glass"), r"unknown.*'spin-glass'"),
        (lambda: from_couplings(np.zeros((2, 2)), kind="cw"), r"'cw' system needs provenance"),
        (lambda: from_couplings([["a", "b"], ["c", "d"]]), r"J must be a real array"),
        (
            lambda: from_couplings(np.zeros((2, 2)), kind="cw", provenance={"J": 1.0, "h": 0.0}),
            r"J_ij = J/N = 0\.5",
        ),
        (
            lambda: Hamiltonian(np.zeros((2, 2)), np.zeros(2), "sk", {"J": 1.0, "h": 0.0}),
            r"'sk' system needs provenance keys.*missing \['seed'\]",
        ),
        (lambda: from_couplings(np.zeros((2, 2)), provenance={"x": "y"}), r"int or a float"),
        (lambda: from_couplings(np.zeros((2, 2)), provenance={"x": math.nan}), r"finite"),
    ],
)
def test_validation_errors(call, match):
    with pytest.raises(ArnnGenError, match=match):
        call()


def test_kinds_constant():
    assert KINDS == ("general", "cw", "sk", "ea2d", "ea3d", "ising2d", "rrg")


# --------------------------------------------------------------------------------------
# Energy
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize(("dtype", "rtol"), [(torch.float64, 1e-12), (torch.float32, 1e-5)])
def test_energy_matches_naive_double_loop(dtype, rtol):
    couplings, fields = random_system(9, 4)
    H = from_couplings(couplings, fields)
    x = random_spins((16, 9), 5)
    expected = np.array([naive_energy(couplings, fields, row) for row in x])
    got = H.energy(torch.tensor(x, dtype=dtype))
    assert got.shape == (16,) and got.dtype == dtype
    np.testing.assert_allclose(got.numpy(), expected, rtol=rtol, atol=rtol * 10)
    single = H.energy(torch.tensor(x[3], dtype=dtype))
    assert single.shape == ()
    assert float(single) == pytest.approx(expected[3], rel=rtol, abs=rtol * 10)


def test_energy_integer_input_and_batch_dims():
    couplings, fields = random_system(4, 6)
    H = from_couplings(couplings, fields)
    x = random_spins((2, 3, 4), 7)
    got = H.energy(torch.tensor(x, dtype=torch.int64))
    assert got.dtype == torch.float64 and got.shape == (2, 3)
    expected = [[naive_energy(couplings, fields, row) for row in block] for block in x]
    np.testing.assert_allclose(got.numpy(), expected, rtol=1e-12)


@pytest.mark.parametrize(
    ("x", "match"),
    [
        (torch.zeros(2, 4), r"only -1 and \+1, found 0\.0"),
        (torch.tensor([[1.0, -1.0, 0.5, 1.0]]), r"only -1 and \+1, found 0\.5"),
        (torch.tensor([[1.0, -1.0, math.nan, 1.0]]), r"only -1 and \+1, found nan"),
        (torch.ones(2, 5), r"shape \[B, 4\] or \[4\], got \[2, 5\]"),
        (torch.tensor(1.0), r"shape \[B, 4\] or \[4\], got \[\]"),
    ],
)
def test_energy_rejects_bad_spins(x, match):
    H = curie_weiss(4)
    with pytest.raises(ArnnGenError, match=match):
        H.energy(x)


@settings(max_examples=60, deadline=None)
@given(
    n=st.integers(min_value=1, max_value=8),
    seed=st.integers(min_value=0, max_value=2**32 - 1),
)
def test_energy_global_flip_properties(n, seed):
    couplings, fields = random_system(n, seed)
    x = torch.tensor(random_spins((5, n), seed + 1))
    with_fields = from_couplings(couplings, fields)
    no_fields = from_couplings(couplings)
    # H(-x) = H(x) + 2 h.x, and H is invariant under x -> -x when h = 0.
    torch.testing.assert_close(no_fields.energy(-x), no_fields.energy(x), rtol=0, atol=1e-12)
    expected = with_fields.energy(x) + 2.0 * x @ torch.tensor(fields)
    torch.testing.assert_close(with_fields.energy(-x), expected, rtol=0, atol=1e-12)


# --------------------------------------------------------------------------------------
# Files
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "system",
    [
        curie_weiss(5, J=1.1, h=0.3),
        sherrington_kirkpatrick(12, J=0.9, h=-0.1, seed=3),
        from_couplings(*random_system(6, 8), provenance={"tag": 7}),
    ],
    ids=["cw", "sk", "general"],
)
def test_npz_round_trip(tmp_path, system):
    path = tmp_path / "system.npz"
    save(system, path)
    loaded = load(path)
    assert loaded == system and loaded.kind == system.kind
    assert dict(loaded.provenance) == dict(system.provenance)
    assert loaded.signature() == system.signature()
    # Plain numpy can read it without pickles; saving again gives the same bytes.
    with np.load(path, allow_pickle=False) as archive:
        assert np.array_equal(archive["J"], system.J)
        assert str(archive["kind"][()]) == system.kind
    first = path.read_bytes()
    system.save(path)
    assert path.read_bytes() == first


@pytest.mark.parametrize(
    "system",
    [
        curie_weiss(5, J=1.1, h=0.3),
        sherrington_kirkpatrick(12, J=0.9, h=-0.1, seed=3),
        from_couplings(*random_system(6, 8)),
    ],
    ids=["cw", "sk", "general"],
)
def test_text_round_trip(tmp_path, system):
    path = tmp_path / "system.edges"
    save(system, path)
    loaded = load(path)
    # Exact arrays (repr floats); a text file is always a "general" system.
    assert np.array_equal(loaded.J, system.J) and np.array_equal(loaded.h, system.h)
    assert loaded.kind == "general" and dict(loaded.provenance) == {}
    lines = path.read_text().splitlines()
    assert lines[0] == f"N {system.N}" and lines[1].startswith(f"# kind={system.kind}")


def test_text_round_trip_keeps_isolated_spins(tmp_path):
    couplings = np.zeros((4, 4))
    couplings[0, 1] = couplings[1, 0] = 0.5
    system = from_couplings(couplings)
    save(system, tmp_path / "s.txt")
    assert load(tmp_path / "s.txt") == system  # N comes from the 'N 4' line


def test_plain_npz_is_general(tmp_path):
    couplings, fields = random_system(3, 9)
    np.savez(tmp_path / "plain.npz", J=couplings, h=fields)
    assert load(tmp_path / "plain.npz") == from_couplings(couplings, fields)
    np.savez(tmp_path / "no_h.npz", J=couplings)
    assert np.all(load(tmp_path / "no_h.npz").h == 0.0)


def test_edge_list_parsing(tmp_path):
    path = tmp_path / "couplings.txt"
    path.write_text(
        "# a comment line\n"
        "\n"
        "N 5   # five spins, spin 4 isolated\n"
        "0 1 0.5\n"
        "1 0 0.5      # the same pair in the other direction\n"
        "1 3 -1.25\n"
        "2 2 0.0\n"
        "h 0 0.1\n"
        "h 3 -2e-3\n"
    )
    H = load(path)
    expected = np.zeros((5, 5))
    expected[0, 1] = expected[1, 0] = 0.5
    expected[1, 3] = expected[3, 1] = -1.25
    assert H.N == 5 and H.kind == "general"
    assert np.array_equal(H.J, expected)
    assert np.array_equal(H.h, [0.1, 0.0, 0.0, -2e-3, 0.0])


def test_edge_list_without_n_line(tmp_path):
    path = tmp_path / "couplings.txt"
    path.write_text("0 2 1.0\nh 3 0.5\n")
    H = load(path)
    assert H.N == 4 and H.J[0, 2] == 1.0 and H.h[3] == 0.5


@pytest.mark.parametrize(
    ("text", "match"),
    [
        ("0 1 0.5\n1 0 0.6\n", r"line 2: coupling J_0,1 = 0\.6 conflicts with 0\.5 on line 1"),
        ("0 0 1.0\n", r"line 1: self-coupling J_00 = 1\.0"),
        ("N 3\n0 3 1.0\n", r"line 2: spin index 3 is out of range for N=3"),
        ("N 3\nh 5 1.0\n", r"line 2: spin index 5 is out of range for N=3"),
        ("0 1\n", r"line 1: expected 'i j J_ij', 'h i value' or 'N n', got '0 1'"),
        ("0 1 x\n", r"line 1: expected 'i j J_ij'.*got '0 1 x'"),
        ("# ok\n0.5 1 2\n", r"line 2: expected 'i j J_ij'.*got '0\.5 1 2'"),
        ("N 2 3\n", r"line 1: expected .*got 'N 2 3'"),
        ("h 1\n", r"line 1: expected .*got 'h 1'"),
        ("-1 0 1.0\n", r"line 1: spin indices are 0-based and >= 0, got -1"),
        ("0 1 nan\n", r"line 1: values must be finite, got nan"),
        ("N 0\n", r"line 1: the number of spins must be >= 1, got 0"),
        ("N 3\nN 4\n", r"line 2: N 4 conflicts with N 3 on line 1"),
        ("h 0 1.0\nh 0 2.0\n", r"line 2: field h_0 = 2\.0 conflicts with h_0 = 1\.0 on line 1"),
        ("# nothing here\n\n", r"defines no spins"),
        ("", r"defines no spins"),
    ],
)
def test_edge_list_errors(tmp_path, text, match):
    path = tmp_path / "bad.txt"
    path.write_text(text)
    with pytest.raises(ArnnGenError, match=match) as info:
        load(path)
    assert str(path) in str(info.value)


def test_missing_and_unreadable_files(tmp_path):
    with pytest.raises(ArnnGenError, match=r"couplings file .*nope\.txt does not exist"):
        load(tmp_path / "nope.txt")
    with pytest.raises(ArnnGenError, match=r"couplings file .*nope\.npz does not exist"):
        load(tmp_path / "nope.npz")
    corrupt = tmp_path / "corrupt.npz"
    corrupt.write_bytes(b"PK\x03\x04 this is not a zip archive")
    with pytest.raises(ArnnGenError, match=r"cannot read couplings file .*corrupt\.npz: "):
        load(corrupt)
    binary = tmp_path / "binary.txt"
    binary.write_bytes(b"\xff\xfe\x00\x81")
    with pytest.raises(ArnnGenError, match=r"cannot read couplings file .*binary\.txt: "):
        load(binary)
    no_j = tmp_path / "no_j.npz"
    np.savez(no_j, h=np.zeros(3))
    with pytest.raises(ArnnGenError, match=r"couplings file .*no_j\.npz has no array 'J'"):
        load(no_j)
    asymmetric = tmp_path / "asym.npz"
    np.savez(asymmetric, J=np.array([[0.0, 1.0], [0.0, 0.0]]))
    with pytest.raises(ArnnGenError, match=r"couplings file .*asym\.npz: .*symmetric"):
        load(asymmetric)
    bad_provenance = tmp_path / "bad_provenance.npz"
    np.savez(bad_provenance, J=np.zeros((2, 2)), provenance=np.array("{not json"))
    with pytest.raises(ArnnGenError, match=r"provenance is not valid JSON"):
        load(bad_provenance)


def test_save_is_atomic_and_leaves_no_temp_file(tmp_path, monkeypatch):
    system = sherrington_kirkpatrick(8, seed=1)
    for name in ("s.npz", "s.txt"):
        save(system, tmp_path / name)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["s.npz", "s.txt"]

    # A failure while writing leaves neither a temp file nor a changed target.
    before = (tmp_path / "s.npz").read_bytes()

    def explode(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(np.lib.format, "write_array", explode)
    with pytest.raises(ArnnGenError, match=r"cannot write .*s\.npz: disk full"):
        save(curie_weiss(3), tmp_path / "s.npz")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["s.npz", "s.txt"]
    assert (tmp_path / "s.npz").read_bytes() == before


def test_save_errors(tmp_path):
    with pytest.raises(ArnnGenError, match=r"is not a directory"):
        save(curie_weiss(2), tmp_path / "missing" / "s.npz")
    with pytest.raises(ArnnGenError, match=r"needs a Hamiltonian, got dict"):
        save({}, tmp_path / "s.npz")  # type: ignore[arg-type]


def test_saved_file_is_readable_by_others(tmp_path):
    path = tmp_path / "s.txt"
    save(curie_weiss(2), path)
    assert os.stat(path).st_mode & 0o777 == 0o644
