"""The driver: a request is resolved once (defaults, bounds, one set of messages), lower()
returns every stage, and the command a module records remakes it byte for byte."""

from __future__ import annotations

import subprocess

import pytest
from click.testing import CliRunner

from arnn_gen import systems
from arnn_gen.checks import MAX_CW_TABLE_N, MAX_DENSE_N
from arnn_gen.cli import main
from arnn_gen.errors import ArnnGenError
from arnn_gen.pipeline import MAX_H2ARNN_N, Request, lower, resolve


@pytest.mark.parametrize(
    "system, variant, N, k",
    [
        ("sk", "krsb", 100, 1),
        ("general", "krsb", None, 1),
        ("cw", "exact", 100, 1),
        ("sk", "exact", 20, 1),
        ("cw", "inf", 100, 1),
        ("sk", "rs", 100, 1),
    ],  # fmt: skip
)
def test_defaults_follow_the_design_table(system, variant, N, k):  # noqa: N803
    options = {"couplings": "c.npz"} if system == "general" else {}
    request = resolve(system, variant=None if variant in ("krsb",) else variant, **options)
    assert (request.system, request.variant, request.N, request.k) == (system, variant, N, k)
    assert request.beta == 1.0 and request.dtype is None


@pytest.mark.parametrize(
    "system, options, fragment",
    [
        ("ising", {}, "unknown system 'ising'"),
        ("sk", {"variant": "inf"}, "unknown variant 'inf' for system 'sk'"),
        ("sk", {"k": -1}, "k must be an integer >= 0"),
        ("sk", {"k": 15}, "k must be an integer <= 14"),
        ("sk", {"k": True}, "k must be an integer"),
        ("sk", {"N": 0}, "N must be an integer >= 1"),
        ("sk", {"N": 10**21}, "N must be an integer <= 1000000"),
        ("sk", {"variant": "exact", "N": MAX_H2ARNN_N + 1}, f"N <= {MAX_H2ARNN_N}"),
        ("cw", {"N": MAX_CW_TABLE_N + 1}, "CW_N tabulates"),
        ("sk", {"N": MAX_DENSE_N + 1}, f"N <= {MAX_DENSE_N}"),
        ("sk", {"beta": 0.0}, "beta must be a finite number > 0"),
        ("sk", {"beta": float("nan")}, "beta must be a finite number > 0"),
        ("sk", {"J": float("inf")}, "--J must be a finite number"),
        ("sk", {"seed": -1}, "--seed must be an integer >= 0"),
        ("sk", {"name": "class"}, "keyword"),
        ("sk", {"name": "os"}, "shadow"),
        ("sk", {"name": "a-b"}, "identifier"),
        ("sk", {"dtype": "float16"}, "dtype must be float32 or float64"),
        ("sk", {"couplings": "c.npz"}, "--couplings applies to --system general"),
        ("general", {}, "needs --couplings"),
    ],
)
def test_every_bad_request_is_one_message(system, options, fragment):
    with pytest.raises(ArnnGenError) as error:
        resolve(system, **options)
    assert fragment in str(error.value)
    assert "\n" not in str(error.value)


def test_a_symbolic_request_needs_no_couplings_and_cw_goes_to_a_million_spins():
    assert resolve("general", symbolic=True).variant == "krsb"
    assert resolve("cw", variant="inf", N=10**6).N == 10**6
    assert resolve("cw", variant="krsb", N=10**6).N == 10**6


def test_lower_takes_a_request_or_its_options():
    request = resolve("sk", variant="rs", N=12, seed=3, beta=0.7)
    by_request, by_options = lower(request), lower("sk", variant="rs", N=12, seed=3, beta=0.7)
    assert by_request.source == by_options.source
    assert by_request.hamiltonian == systems.sherrington_kirkpatrick(12, seed=3)
    assert by_request.ir.beta == 0.7 and by_request.reduction.variant == "rs"
    with pytest.raises(ArnnGenError, match="not both"):
        lower(request, seed=4)


def test_a_couplings_file_is_sized_by_the_variant(tmp_path):
    """The exact variant of a file: H2ARNN up to N = 20, beyond only a frontier of width at
    most 20 (a dense graph of N spins has width N - 2); the replica variants at any N."""
    path = tmp_path / "c.txt"
    systems.save(systems.sherrington_kirkpatrick(MAX_H2ARNN_N + 3, seed=1), path)
    with pytest.raises(ArnnGenError, match=f"N <= {MAX_H2ARNN_N}.*width 21"):
        lower("general", variant="exact", couplings=str(path))
    assert lower("general", couplings=str(path)).ir.N == MAX_H2ARNN_N + 3


def _remake(header_command: str, cwd) -> bytes:
    """Run a header's command as a shell would split it (bash), through the CLI."""
    split = subprocess.run(
        ["bash", "-c", f"printf '%s\\0' {header_command}"], capture_output=True, cwd=cwd
    )
    words = split.stdout.decode().split("\0")[:-1]
    assert words[:2] == ["arnn-gen", "emit"]
    result = CliRunner().invoke(main, [*words[1:], "--out", "remade"])
    assert result.exit_code == 0, result.output
    return (cwd / result.stdout.strip()).read_bytes()


@pytest.mark.parametrize(
    "couplings, options",
    [
        (None, ["--system", "sk", "-N", "9", "--seed", "5", "--beta", "0.4"]),
        (None, ["--system", "cw", "--variant", "inf", "-N", "33", "--h", "0.25"]),
        (None, ["--system", "sk", "-N", "7", "-k", "2", "--name", "my_model"]),
        ("instance 1.npz", ["--system", "general", "--variant", "rs"]),
        ("it's\n$(touch INJECTED)\t.npz", ["--system", "general"]),
    ],
)
def test_the_recorded_command_remakes_the_module(couplings, options, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    if couplings is not None:
        systems.save(systems.sherrington_kirkpatrick(6, seed=8), couplings)
        options = [*options, "--couplings", couplings]
    result = CliRunner().invoke(main, ["emit", *options, "--out", "first"])
    assert result.exit_code == 0, result.output
    source = (tmp_path / result.stdout.strip()).read_bytes()
    headers = [line for line in source.decode().splitlines() if line.startswith("# Remake with:")]
    assert len(headers) == 1
    assert _remake(headers[0].removeprefix("# Remake with: "), tmp_path) == source
    assert not (tmp_path / "INJECTED").exists()


def test_request_is_plain_data():
    request = resolve("sk", N=10)
    assert isinstance(request, Request)
    with pytest.raises(AttributeError):
        request.N = 11  # frozen


def _imports(path) -> set[str]:
    import ast

    tree = ast.parse(path.read_text())
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module:
            found.add(node.module)
        elif isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
    return found


def test_data_flows_one_way():
    from pathlib import Path

    import arnn_gen

    package = Path(arnn_gen.__file__).parent
    for path in package.rglob("*.py"):
        imports = _imports(path)
        if path.name not in ("__main__.py", "cli.py", "regenerate.py"):  # drivers of the CLI
            assert "arnn_gen.cli" not in imports, path  # no stage imports the CLI
        if path.parent.name == "symbolic":  # the symbolic stages know nothing downstream
            assert not any(m.startswith(("arnn_gen.codegen", "arnn_gen.learn")) for m in imports)
    # The emitter renders the IR it is given: symbol table and print options come with it.
    emit = _imports(package / "codegen" / "emit.py")
    assert not any(module.startswith("arnn_gen.symbolic") for module in emit), emit
