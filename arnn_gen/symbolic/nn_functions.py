"""SymPy functions of the neural-network vocabulary: sigmoid, logsigmoid, logsumexp, logaddexp.

The derivation and the reduced forms are written with these so that the LaTeX reads like
the paper (sigma, log sigma, logsumexp) and the torch printer can map each one to a single
stable torch call. Each function also rewrites into elementary functions
(:func:`to_elementary`), which is how tests evaluate them numerically with ``lambdify``.
"""

from __future__ import annotations

from dataclasses import dataclass

import sympy as sp
from sympy.concrete.expr_with_limits import ExprWithLimits
from sympy.printing.latex import LatexPrinter

__all__ = ["Equation", "PLUS_MINUS", "sigmoid", "logsigmoid", "logaddexp", "LogSumExp", "latex",
           "to_elementary"]  # fmt: skip


class sigmoid(sp.Function):  # noqa: N801 (SymPy convention: functions are lower case)
    r"""The logistic function :math:`\sigma(z) = 1 / (1 + e^{-z})`."""

    nargs = 1

    @classmethod
    def eval(cls, z):
        if z.is_zero:
            return sp.Rational(1, 2)
        return None

    def fdiff(self, argindex=1):
        s = sigmoid(self.args[0])
        return s * (1 - s)

    def _eval_rewrite_as_exp(self, z, **kwargs):
        return 1 / (1 + sp.exp(-z))

    def _eval_evalf(self, prec):
        return self._eval_rewrite_as_exp(self.args[0])._eval_evalf(prec)

    def _latex(self, printer, exp=None):
        arg = printer._print(self.args[0])
        base = r"\sigma\left(%s\right)" % arg
        return base if exp is None else r"\sigma^{%s}\left(%s\right)" % (exp, arg)


class logsigmoid(sp.Function):  # noqa: N801
    r""":math:`\log\sigma(z) = -\log(1 + e^{-z})`, the building block of the replica forms."""

    nargs = 1

    @classmethod
    def eval(cls, z):
        if z.is_zero:
            return -sp.log(2)
        return None

    def fdiff(self, argindex=1):
        return 1 - sigmoid(self.args[0])

    def _eval_rewrite_as_exp(self, z, **kwargs):
        return -sp.log(1 + sp.exp(-z))

    def _eval_evalf(self, prec):
        return self._eval_rewrite_as_exp(self.args[0])._eval_evalf(prec)

    def _latex(self, printer, exp=None):
        arg = printer._print(self.args[0])
        base = r"\log\sigma\left(%s\right)" % arg
        return base if exp is None else r"\left(%s\right)^{%s}" % (base, exp)


class logaddexp(sp.Function):  # noqa: N801
    r""":math:`\log(e^{a} + e^{b})`, the log-sum-exp of two terms (CW_N's binomial recursion,
    docs/physics.md section 3); ``torch.logaddexp`` evaluates it without overflow."""

    nargs = 2

    def fdiff(self, argindex=1):
        a, b = self.args
        return sigmoid(a - b) if argindex == 1 else sigmoid(b - a)

    def _eval_rewrite_as_exp(self, a, b, **kwargs):
        return sp.log(sp.exp(a) + sp.exp(b))

    def _eval_evalf(self, prec):
        return self._eval_rewrite_as_exp(*self.args)._eval_evalf(prec)

    def _latex(self, printer, exp=None):
        a, b = (printer._print(arg) for arg in self.args)
        base = r"\operatorname{logaddexp}\left(%s, %s\right)" % (a, b)
        return base if exp is None else r"\left(%s\right)^{%s}" % (base, exp)


class LogSumExp(ExprWithLimits):
    r"""``LogSumExp(f, (k, a, b))`` = :math:`\log \sum_{k=a}^{b} e^{f(k)}`, unevaluated.

    It binds ``k`` like :class:`sympy.Sum`; ``doit()`` returns the explicit
    ``log(Sum(exp(f)))`` (evaluated when the limits are numbers).
    """

    __slots__ = ()

    def doit(self, **hints):
        f = self.function
        if hints.get("deep", True):
            f = f.doit(**hints)
        return sp.log(sp.Sum(sp.exp(f), *self.limits).doit(**hints))

    def _eval_rewrite_as_exp(self, *args, **kwargs):
        return sp.log(sp.Sum(sp.exp(self.function), *self.limits))

    def _latex(self, printer, exp=None):
        (var, lo, hi), *rest = self.limits
        if rest:
            raise NotImplementedError("LogSumExp prints one summation index")
        body = printer._print(self.function)
        text = r"\operatorname{logsumexp}_{%s=%s}^{%s}\left(%s\right)" % (
            printer._print(var),
            printer._print(lo),
            printer._print(hi),
            body,
        )
        return text if exp is None else r"\left(%s\right)^{%s}" % (text, exp)


class _PlusMinus(sp.Symbol):
    """The sign +-1 of rho^{+-} when both are written at once: prints as \\pm / +-."""

    def _latex(self, printer):
        return r"\pm"

    def _sympystr(self, printer):
        return "(+-)"


#: Stands for "+ or -" in displayed formulas (never in formulas that are evaluated).
PLUS_MINUS = _PlusMinus("pm")


def to_elementary(expr: sp.Expr) -> sp.Expr:
    """Rewrite every sigmoid, logsigmoid, logaddexp and LogSumExp of ``expr`` with exp and
    log."""
    replacements = {}
    for node in sp.preorder_traversal(expr):
        if isinstance(node, LogSumExp):
            replacements[node] = sp.log(sp.Sum(sp.exp(to_elementary(node.function)), *node.limits))
    expr = expr.xreplace(replacements) if replacements else expr
    return expr.replace(
        lambda e: isinstance(e, (sigmoid, logsigmoid, logaddexp)),
        lambda e: e._eval_rewrite_as_exp(*(to_elementary(arg) for arg in e.args)),
    )


class _LatexPrinter(LatexPrinter):
    """SymPy's LaTeX printer, with multi-index sums written as nested sums.

    SymPy folds ``Sum(Sum(f, a), b)`` into one ``Sum`` and prints its limits with
    ``\\substack``, which matplotlib's mathtext cannot render; nested ``\\sum`` signs read
    the same as the paper and render everywhere.
    """

    def _print_exp(self, expr, exp=None):
        # exp(...) rather than e^{...}: long exponents stay legible at full size.
        text = r"\exp\left(%s\right)" % self._print(expr.args[0])
        return text if exp is None else r"%s^{%s}" % (text, exp)

    def _print_Sum(self, expr):
        text = ""
        for var, lo, hi in reversed(expr.limits):
            text += r"\sum_{%s=%s}^{%s} " % (self._print(var), self._print(lo), self._print(hi))
        function = expr.function
        if isinstance(function, sp.Add):
            return text + r"\left(%s\right)" % self._print(function)
        return text + self._print(function)


def latex(expr) -> str:
    """LaTeX of ``expr`` as every arnn-gen stage writes it (see :class:`_LatexPrinter`)."""
    return _LatexPrinter().doprint(expr)


@dataclass(frozen=True)
class Equation:
    """One displayed equation ``lhs = rhs``, in LaTeX and in plain text."""

    lhs_latex: str
    rhs_latex: str
    lhs_text: str
    rhs_text: str

    @classmethod
    def of(cls, lhs, rhs, *, lhs_text: str | None = None) -> Equation:
        """From SymPy objects (``lhs`` may be a LaTeX string, then give ``lhs_text``)."""
        if isinstance(lhs, str):
            return cls(lhs, latex(rhs), lhs_text or lhs, sp.sstr(rhs))
        return cls(latex(lhs), latex(rhs), lhs_text or sp.sstr(lhs), sp.sstr(rhs))

    def latex(self) -> str:
        return f"{self.lhs_latex} = {self.rhs_latex}"

    def text(self) -> str:
        return f"{self.lhs_text} = {self.rhs_text}"
