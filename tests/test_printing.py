"""Tests of arnn_gen.codegen.printing: exact strings, executed numbers, cse blocks, strictness."""

from __future__ import annotations

import math
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
import sympy as sp
import torch
from sympy.codegen.cfunctions import log1p

from arnn_gen.codegen.printing import TorchPrinter, torch_code
from arnn_gen.errors import ArnnGenError
from arnn_gen.symbolic.nn_functions import (
    LogSumExp,
    logaddexp,
    logsigmoid,
    sigmoid,
    to_elementary,
)

REPO = Path(__file__).resolve().parents[1]

a, b, c, n, k, x = sp.symbols("a b c n k x")
beta, M = sp.symbols("beta M")

# -- exact strings -------------------------------------------------------------------------

EXACT = [
    (sp.Integer(3), "3"),
    (sp.Integer(-3), "-3"),
    (sp.Rational(1, 2), "1 / 2"),
    (sp.Float(0.1), "0.1"),
    (sp.pi, "math.pi"),
    (sp.E, "math.e"),
    (a / 2, "a / 2"),
    (3 * a / 2, "3 * a / 2"),
    (x + sp.Rational(1, 3), "x + 1 / 3"),
    (a * sp.Rational(3, 2) ** b, "(3 / 2) ** b * a"),
    (a + 2 * b, "a + 2 * b"),
    (a - b, "a - b"),
    (-a * b, "-a * b"),
    (-sp.Float(0.5) * a, "-0.5 * a"),
    ((a + b) * c, "c * (a + b)"),
    ((a + b) ** 2, "(a + b) ** 2"),
    (a**2, "a**2"),
    ((-a) ** b, "(-a) ** b"),
    (a ** (b**c), "a ** (b**c)"),
    (1 / a, "1 / a"),
    (1 / (a + b), "1 / (a + b)"),
    (1 / (2 * a), "1 / (2 * a)"),
    (a / b, "a / b"),
    (a / (b * c), "a / (b * c)"),
    (a / b**2, "a / b**2"),
    (sp.sqrt(a), "torch.sqrt(a)"),
    (1 / sp.sqrt(a), "1 / torch.sqrt(a)"),
    (a ** sp.Rational(3, 2), "a ** (3 / 2)"),
    (a ** sp.Rational(-3, 2), "1 / a ** (3 / 2)"),
    (-sp.pi / 2, "-math.pi / 2"),
    (sigmoid(2 * beta * x), "torch.sigmoid(2 * beta * x)"),
    (logsigmoid(a), "torch.nn.functional.logsigmoid(a)"),
    (logaddexp(a, -b / 2), "torch.logaddexp(a, -b / 2)"),
    (a - logaddexp(0, 1), "a - 1.3132616875182228"),
    (sp.exp(-a), "torch.exp(-a)"),
    (sp.log(a), "torch.log(a)"),
    (sp.tanh(a) * sp.cosh(b), "torch.cosh(b) * torch.tanh(a)"),
    (sp.Abs(a) * sp.sign(b), "torch.abs(a) * torch.sign(b)"),
    (sp.log(2), repr(math.log(2))),
    (sp.log(sp.binomial(5, 2)), repr(math.log(10))),
    (sp.sqrt(2) * a, f"{math.sqrt(2)!r} * a"),
    (a + logsigmoid(1), "a - 0.3132616875182228"),
    (logsigmoid(1) ** a, "(-0.3132616875182228) ** a"),
    (
        sp.log(sp.binomial(n, k)),
        "torch.lgamma(n + 1) - torch.lgamma(k + 1) - torch.lgamma(-k + n + 1)",
    ),
    (
        -a * sp.log(sp.binomial(n, k)),
        "-a * (torch.lgamma(n + 1) - torch.lgamma(k + 1) - torch.lgamma(-k + n + 1))",
    ),
    (
        sp.binomial(n, k),
        "torch.exp(torch.lgamma(n + 1) - torch.lgamma(k + 1) - torch.lgamma(-k + n + 1))",
    ),
    (sp.log(sp.factorial(n)), "torch.lgamma(n + 1)"),
    (sp.loggamma(a), "torch.lgamma(a)"),
    (log1p(sp.exp(-sp.Abs(a))), "torch.log1p(torch.exp(-torch.abs(a)))"),
    (sp.Piecewise((a, a > 0), (1, True)) / (1 + a), "torch.where(a > 0, a, 1) / (a + 1)"),
    (
        sp.Piecewise((a, a + b >= 1), (b, a < b), (0, True)),
        "torch.where(a + b >= 1, a, torch.where(a < b, b, 0))",
    ),
    (sp.Piecewise((a, -a > b - c), (b, True)), "torch.where(a < -b + c, a, b)"),
]


@pytest.mark.parametrize(("expr", "expected"), EXACT, ids=[str(e) for e, _ in EXACT])
def test_exact_strings(expr, expected):
    assert torch_code(expr) == expected


def test_symbol_names_mapping():
    names = {beta: "self.beta", M: "magnetization"}
    assert torch_code(beta * M, symbol_names=names) == "magnetization * self.beta"
    assert torch_code(beta**2, symbol_names=names) == "self.beta**2"
    # Non-primary Python expressions are parenthesised; subscripts are not.
    assert torch_code(a**2, symbol_names={a: "x[:, 0]"}) == "x[:, 0] ** 2"
    assert torch_code(2 * a, symbol_names={a: "u + v"}) == "2 * (u + v)"
    # Indexed through its IndexedBase, or as a whole expression.
    X, i = sp.IndexedBase("X"), sp.Idx("i")
    code = torch_code(2 * X[i] + 1, symbol_names={X: "self.x", i: "site"})
    assert code == "2 * self.x[site] + 1"
    assert torch_code(X[i] ** 2, symbol_names={X[i]: "xi"}) == "xi**2"


def test_bad_symbol_names_mapping():
    with pytest.raises(ArnnGenError, match="not a Python expression"):
        torch_code(a, symbol_names={a: "u +"})
    with pytest.raises(ArnnGenError, match="must be a string"):
        torch_code(a, symbol_names={a: 1.0})


def test_imports_recorded():
    printer = TorchPrinter()
    printer.doprint(sp.pi * a)
    assert printer.imports == {"math"}
    printer = TorchPrinter()
    printer.doprint(logsigmoid(a) + sp.E)
    assert printer.imports == {"math", "torch"}
    # A function of numbers is printed as its value: no torch needed.
    printer = TorchPrinter()
    assert printer.doprint(sp.sqrt(2) * a) == f"{math.sqrt(2)!r} * a"
    assert printer.imports == set()


def test_printed_code_is_ruff_formatted():
    """Short printed lines are left unchanged by ``ruff format`` (generated files must be)."""
    ruff = shutil.which("ruff")
    if ruff is None:
        pytest.skip("ruff not installed")
    source = "".join(f"y = {expected}\n" for _, expected in EXACT)
    formatted = subprocess.run(
        [ruff, "format", "--isolated", "--line-length", "100", "-"],
        input=source,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert formatted == source


# -- executed numbers ----------------------------------------------------------------------

NUMERIC = [
    sigmoid(2 * a * b - sp.log(b)),
    logsigmoid(a - 3 * b / 2),
    logsigmoid(sigmoid(a) * b) + sigmoid(-logsigmoid(b)),
    a**3 - 2 * a * b**2 + b / 7,
    (a + b) ** sp.Rational(-3, 2),
    sp.sqrt(a * b) / (1 + a),
    sp.exp(-(a**2) / 2) / sp.sqrt(2 * sp.pi),
    sp.log(sp.binomial(5, 2)) + a,
    sp.log(sp.binomial(n, k)),
    -a * sp.log(sp.binomial(n, k)) + b,
    sp.binomial(n, k) / (1 + n),
    sp.log(sp.binomial(n, 3)) - sp.log(sp.factorial(n)) + sp.loggamma(a + 1),
    sp.tanh(a) * sp.cosh(b) - sp.sinh(a * b),
    sp.Abs(a - b) * sp.sign(b - a),
    sp.E**a + sp.pi * b - sp.Rational(1, 3),
    1 / (a - b - 3) ** 2,
    2**a * sigmoid(1) + a**b,
    (-logsigmoid(1)) ** (a * b) + a ** logsigmoid(-b),
    log1p(a * b) - log1p(sp.exp(-b)),
    logaddexp(a * b, logsigmoid(b) - 2 * a) - a,
    sp.Piecewise((a * b, a > b), (a - b, True)) + sp.Piecewise((a, a <= 1), (b, True)),
]

_REFERENCE_FUNCTIONS = {
    "binomial": np.vectorize(lambda n, k: float(math.comb(int(n), int(k)))),
    "factorial": np.vectorize(lambda n: float(math.factorial(int(n)))),
    "loggamma": np.vectorize(math.lgamma),
}


def _values():
    rng = np.random.default_rng(1234)
    n_values = rng.integers(3, 40, size=64).astype(np.float64)
    return {
        a: rng.uniform(0.5, 2.0, size=64),
        b: rng.uniform(0.5, 2.0, size=64),
        n: n_values,
        k: np.floor(rng.uniform(0, 1, size=64) * (n_values + 1)).clip(0, n_values),
    }


@pytest.mark.parametrize("expr", NUMERIC, ids=[str(e) for e in NUMERIC])
def test_printed_code_evaluates_like_sympy(expr):
    values = _values()
    symbols = sorted(expr.free_symbols, key=str)
    reference = sp.lambdify(symbols, to_elementary(expr), modules=[_REFERENCE_FUNCTIONS, "numpy"])(
        *(values[s] for s in symbols)
    )
    namespace = {"torch": torch, "math": math}
    namespace.update({s.name: torch.from_numpy(values[s]) for s in symbols})
    result = eval(torch_code(expr), namespace)
    result = result.numpy() if isinstance(result, torch.Tensor) else result
    np.testing.assert_allclose(result, np.broadcast_to(reference, (64,)), rtol=1e-12, atol=0)


def test_logaddexp_prints_without_overflow():
    """exp(800) overflows a float64; torch.logaddexp does not."""
    code = torch_code(logaddexp(a, b))
    double = torch.float64
    values = {
        "a": torch.tensor([800.0, -800.0], dtype=double),
        "b": torch.tensor([800.0, -801.0], dtype=double),
    }
    result = eval(code, {"torch": torch, **values})
    expected = [800 + math.log(2), -800 + math.log1p(math.exp(-1))]
    np.testing.assert_allclose(result.numpy(), expected, rtol=1e-15)


def test_arithmetic_works_on_python_floats():
    expr = (a + b) ** 2 / 3 - a * sp.pi + sp.Rational(1, 7) * b**-1 + sp.log(2)
    code = torch_code(expr)
    got = eval(code, {"math": math, "a": 0.75, "b": 1.25})
    assert got == pytest.approx(float(expr.subs({a: 0.75, b: 1.25})), rel=1e-14)


def test_min_and_max_print_as_elementwise_torch_functions():
    """Min and Max (the lowest input of a layer over an interval) as torch.minimum and
    torch.maximum, nested beyond two arguments, elementwise over tensors."""
    c = sp.Symbol("c")
    assert torch_code(sp.Min(a, b)) == "torch.minimum(a, b)"
    code = torch_code(sp.Max(a, b, c))
    values = {"a": torch.tensor([1.0, -2.0]), "b": torch.tensor([0.5, 3.0]), "c": torch.tensor(2.5)}
    got = eval(code, {"torch": torch, **values})
    assert torch.equal(got, torch.tensor([2.5, 3.0]))


# -- strictness ----------------------------------------------------------------------------

UNSUPPORTED = [
    (sp.Sum(a * k, (k, 0, n)), "cannot print Sum"),
    (sp.Piecewise((a, a > 0)), "cannot print Piecewise"),  # undefined for a <= 0
    (sp.Piecewise((a, sp.Eq(a, b)), (b, True)), "cannot print Equality"),
    (sp.Function("f")(a), "cannot print undefined function f"),
    (sp.Eq(a, b), "cannot print Equality"),
    (LogSumExp(a * k, (k, 0, 3)), "cannot print LogSumExp"),
    (sp.Integral(a, a), "cannot print Integral"),
    (sp.floor(a), "cannot print floor"),
    (sp.true, "cannot print BooleanTrue"),
    (sp.oo * a, "cannot print Infinity"),
    (sp.I * a, "cannot print ImaginaryUnit"),
    (sp.IndexedBase("X")[k], "cannot print Indexed"),
    (sp.log(sp.Sum(k, (k, 1, 3))), "cannot print Sum"),
    (sp.exp(2000), "not a finite real number"),
    (sp.Symbol("x y") + a, "not a valid Python identifier"),
    (sp.Symbol("lambda"), "not a valid Python identifier"),
    (sp.Symbol("torch"), "not a valid Python identifier"),
    (sp.Dummy("d"), "cannot print Dummy"),
]


@pytest.mark.parametrize(("expr", "message"), UNSUPPORTED, ids=[m for _, m in UNSUPPORTED])
def test_strict_errors(expr, message):
    with pytest.raises(ArnnGenError, match=message):
        torch_code(expr)


def test_error_is_a_value_error_with_one_line():
    with pytest.raises(ValueError) as info:
        torch_code(sp.Sum(a * k, (k, 0, n)) + b)
    assert "\n" not in str(info.value)
    assert str(info.value).startswith("torch printer: cannot print Sum (")


def test_non_strict_collects_unsupported():
    printer = TorchPrinter(strict=False)
    code = printer.doprint(sp.Sum(a, (k, 0, n)) + b)
    assert code == "b + Sum(a, (k, 0, n))"
    assert printer.unsupported == [sp.Sum(a, (k, 0, n))]


def test_rejects_non_sympy_input():
    with pytest.raises(ArnnGenError, match="not a SymPy expression"):
        torch_code("a + b")


def test_log_binomial_of_integer_symbols_stays_lgamma():
    """SymPy rewrites loggamma(n + 1) as log(gamma(n + 1)) when n is a nonnegative integer
    symbol; the printer must still give the stable lgamma difference."""
    n, k = sp.symbols("n k", integer=True, nonnegative=True)
    assert torch_code(sp.log(sp.binomial(n, k))) == (
        "torch.lgamma(n + 1) - torch.lgamma(k + 1) - torch.lgamma(-k + n + 1)"
    )
    assert torch_code(sp.log(sp.factorial(n))) == "torch.lgamma(n + 1)"


# -- in place (Note [In-place]) -------------------------------------------------------------

u, s, z = sp.symbols("u s z")

IN_PLACE = [
    (b + a * z, frozenset(), "(a * z).add_(b)"),
    (b + a * z, frozenset({z}), "z.mul_(a).add_(b)"),
    (sp.exp(a * b * z), frozenset({z}), "z.mul_(a * b).exp_()"),
    (sigmoid(u), frozenset({u}), "u.sigmoid_()"),
    (sp.log(sigmoid(u)), frozenset({u}), "u.sigmoid_().log_()"),
    (sp.log(s), frozenset({s}), "s.log_()"),
    (1 - s, frozenset({s}), "s.neg_().add_(1)"),
    (2 * sp.exp(u) - b, frozenset({u}), "u.exp_().mul_(2).sub_(b)"),
    # nothing listed: functions of bare symbols make new tensors, which the rest overwrites
    (1 - sigmoid(u), frozenset(), "torch.sigmoid(u).neg_().add_(1)"),
    (sp.log(s), frozenset(), "torch.log(s)"),
    (a * b, frozenset({a}), "a.mul_(b)"),
    (a * b, frozenset(), "a * b"),
]


@pytest.mark.parametrize("expr, in_place, expected", IN_PLACE, ids=[str(e[0]) for e in IN_PLACE])
def test_in_place_strings(expr, in_place, expected):
    assert torch_code(expr, in_place=in_place) == expected


@pytest.mark.parametrize("expr, in_place, expected", IN_PLACE, ids=[str(e[0]) for e in IN_PLACE])
def test_in_place_code_computes_the_formula_and_keeps_the_other_inputs(expr, in_place, expected):
    """The in-place code gives the plain code's numbers, and writes to no input but the
    ones listed."""
    generator = torch.Generator().manual_seed(0)
    symbols = sorted(expr.free_symbols, key=str)
    values = {sym: torch.rand(3, 5, generator=generator, dtype=torch.float64) for sym in symbols}
    if b in values:  # b broadcasts against the in-place receiver
        values[b] = values[b][:1]

    def run(code):
        inputs = {sym.name: value.clone() for sym, value in values.items()}
        return eval(code, {"torch": torch, "math": math, **inputs}), inputs

    plain, _ = run(torch_code(expr))
    result, inputs = run(torch_code(expr, in_place=in_place))
    torch.testing.assert_close(result, plain, rtol=1e-15, atol=1e-15)
    for sym in symbols:
        if sym not in in_place:
            assert torch.equal(inputs[sym.name], values[sym]), sym


def test_in_place_refuses_a_symbol_used_twice():
    with pytest.raises(ArnnGenError, match="occurs more than once"):
        torch_code(u * sigmoid(u), in_place=frozenset({u}))
