"""Strict SymPy -> Triton printer: the formulas of the replica layers as expressions inside a
``@triton.jit`` kernel.

Input: the same SymPy expressions the torch printer prints (:mod:`arnn_gen.codegen.printing`).
Output: one expression over ``tl`` (``triton.language``) per formula (:func:`triton_code`),
which the Triton templates paste into their kernels, where the symbols are register tiles
(or scalars) of the kernel.

Note [Triton printing]
    Strict as the torch printer (Note [Strict printing]): any node without a translation
    raises :class:`~arnn_gen.errors.ArnnGenError`. Only what ``triton.language`` itself
    provides on every backend (and in Triton's interpreter) is printed: ``+ - * /``,
    comparisons, ``tl.exp``, ``tl.log``, ``tl.abs``, ``tl.sqrt``, ``tl.sigmoid``,
    ``tl.minimum``, ``tl.maximum`` and ``tl.where``. Functions that would need a vendor
    library (``expm1``, ``log1p``, ``tanh``, ``lgamma``...) are refused: a kernel takes the
    formulas written without them (the replica family offers both forms, e.g. the slope
    ``1 - sigmoid(u)`` beside ``-expm1(y)``).
    - ``logsigmoid(u)`` prints as the SymPy expression ``Min(u, 0) - log(1 + exp(-|u|))``,
      which never overflows; it differs from log sigma(u) by less than one unit in the
      last place of 1 when sigma(u) is near 1, an absolute error, like torch's.
    - Integer powers print as products (``x * x``: Triton tensors have no ``**``), square
      roots as ``tl.sqrt``, negative powers as ``1 / ...``.
    - A rational number on its own prints as a float literal (``0.5``, not ``1 / 2``), in a
      product as the torch printer lays it out (``3 * a / 4``); ``pi`` and ``E`` print as
      their float values. Python numbers are weakly typed in Triton, so a kernel's
      arithmetic takes the dtype of its tensors.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import sympy as sp

from arnn_gen.codegen.printing import TorchPrinter
from arnn_gen.errors import ArnnGenError
from arnn_gen.symbolic.nn_functions import logsigmoid

__all__ = ["TritonPrinter", "triton_code"]

#: The largest integer power printed as a product of factors.
_MAX_PRODUCT_POWER = 4


def _refused(self: TritonPrinter, expr: sp.Expr) -> str:
    """A function with no portable triton.language counterpart (Note [Triton printing])."""
    return self._unsupported(expr)


class TritonPrinter(TorchPrinter):
    """Strict SymPy -> Triton expression printer (Note [Triton printing]). ``symbol_names``
    as in :class:`~arnn_gen.codegen.printing.TorchPrinter`."""

    printmethod = "_tritoncode"
    language = "Triton"
    label = "triton printer"

    def __init__(self, *, symbol_names: Mapping[sp.Basic, str] | None = None) -> None:
        super().__init__(symbol_names=symbol_names)

    # -- numbers ------------------------------------------------------------------------

    def _print_Integer(self, expr: sp.Integer) -> str:
        """An int literal (Python ints stay weakly typed against the kernel's tensors)."""
        return str(int(expr))

    def _print_Rational(self, expr: sp.Rational) -> str:
        """The nearest float: a literal, not a division of two ints."""
        return repr(expr.p / expr.q)

    def _print_Pi(self, expr: sp.Expr) -> str:
        """pi as a float literal (a kernel reads no module globals)."""
        return repr(math.pi)

    def _print_Exp1(self, expr: sp.Expr) -> str:
        """e as a float literal."""
        return repr(math.e)

    # -- arithmetic ---------------------------------------------------------------------

    def _print_Pow(self, expr: sp.Pow) -> str:
        """``tl.sqrt`` for square roots, products for small positive integer powers,
        ``1 / ...`` for negative ones; any other power is refused."""
        base, exponent = expr.base, expr.exp
        if exponent is sp.S.Half:
            return self._call("tl.sqrt", self._print(base))
        if exponent.is_Integer and exponent.is_negative:
            inverse = base if exponent == -1 else sp.Pow(base, -exponent, evaluate=False)
            return "1 / " + self.parenthesize(inverse, self._mul_level)
        if exponent.is_Integer and 1 < int(exponent) <= _MAX_PRODUCT_POWER:
            factor = self.parenthesize(base, self._mul_level, strict=True)
            return " * ".join([factor] * int(exponent))
        return self._unsupported(expr)

    @property
    def _mul_level(self) -> int:
        from sympy.printing.precedence import PRECEDENCE

        return PRECEDENCE["Mul"]

    def _precedence(self, expr: sp.Basic) -> int:
        """As the torch printer's, with integer powers printed as products (Mul level)."""
        from sympy.printing.precedence import PRECEDENCE

        if (
            isinstance(expr, sp.Pow)
            and expr.exp.is_Integer
            and 1 < int(expr.exp) <= _MAX_PRODUCT_POWER
            and expr not in self._names
        ):
            return PRECEDENCE["Mul"]
        if isinstance(expr, logsigmoid) and expr not in self._names:
            return PRECEDENCE["Add"]  # printed as a difference
        return super()._precedence(expr)

    # -- functions ----------------------------------------------------------------------

    def _print_exp(self, expr: sp.Expr) -> str:
        """``tl.exp(x)``."""
        return self._call("tl.exp", self._print(expr.args[0]))

    def _print_log(self, expr: sp.log) -> str:
        """``tl.log(x)``."""
        (arg,) = expr.args
        if isinstance(arg, (sp.binomial, sp.factorial)):
            return self._unsupported(expr)
        return self._call("tl.log", self._print(arg))

    def _print_Abs(self, expr: sp.Expr) -> str:
        """``tl.abs(x)``."""
        return self._call("tl.abs", self._print(expr.args[0]))

    def _print_sigmoid(self, expr: sp.Expr) -> str:
        """``tl.sigmoid(x)``."""
        return self._call("tl.sigmoid", self._print(expr.args[0]))

    def _print_logsigmoid(self, expr: sp.Expr) -> str:
        """log sigma(u) as ``Min(u, 0) - log(1 + exp(-|u|))``, printed (Note [Triton
        printing])."""
        (u,) = expr.args
        stable = sp.Add(sp.Min(u, 0), -sp.log(1 + sp.exp(-sp.Abs(u))), evaluate=False)
        return self._print_Add(stable)

    def _extremum(self, qualified_name: str, expr: sp.Expr) -> str:
        name = {"torch.minimum": "tl.minimum", "torch.maximum": "tl.maximum"}[qualified_name]
        return super()._extremum(name, expr)

    def _print_Piecewise(self, expr: sp.Piecewise) -> str:
        """``tl.where(condition, value, otherwise)``, nested; the last piece must hold
        everywhere."""
        *pieces, (otherwise, condition) = expr.args
        if condition is not sp.true or not pieces:
            return self._unsupported(expr)
        text = self._print(otherwise)
        for value, condition in reversed(pieces):
            text = self._call("tl.where", self._print(condition), self._print(value), text)
        return text

    _print_expm1 = _refused
    _print_log1p = _refused
    _print_sinh = _refused
    _print_cosh = _refused
    _print_tanh = _refused
    _print_sign = _refused
    _print_loggamma = _refused
    _print_logaddexp = _refused
    _print_binomial = _refused
    _print_factorial = _refused


def triton_code(expr: sp.Expr, *, symbol_names: Mapping[sp.Basic, str] | None = None) -> str:
    """``expr`` as one expression over ``tl`` for a Triton kernel (Note [Triton printing]).

    >>> a, b, u = sp.symbols("a b u")
    >>> triton_code(a * b + sp.exp(-a) / 2)
    'a * b + tl.exp(-a) / 2'
    >>> triton_code(logsigmoid(u))
    '-tl.log(1 + tl.exp(-tl.abs(u))) + tl.minimum(0, u)'
    >>> triton_code(a**2 + sp.Rational(1, 3))
    'a * a + 0.3333333333333333'
    >>> triton_code(sp.tanh(a))
    Traceback (most recent call last):
    ...
    arnn_gen.errors.ArnnGenError: triton printer: cannot print tanh (tanh(a))
    """
    if not isinstance(expr, sp.Basic):
        raise ArnnGenError(f"triton printer: not a SymPy expression: {expr!r}")
    return TritonPrinter(symbol_names=symbol_names).doprint(expr)
