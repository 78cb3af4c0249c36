"""Strict SymPy -> torch printer: the formulas of the emitted modules as Python source.

Input: SymPy expressions built from the derivation and the reduced forms (DESIGN.md stage
5). Output: Python expression strings over ``torch`` and ``math`` (:func:`torch_code`).
Templates paste these strings into the generated modules.

Note [Strict printing]
    Dispatch follows SymPy's ``_print_<Class>`` convention along the expression type's MRO,
    but only to the ``_print_`` methods written in :class:`TorchPrinter` itself (and in its
    subclasses). The hundreds of methods inherited from SymPy's Python and string printers
    are never reached from dispatch, so any node without a torch translation (``Sum``,
    ``Integral``, undefined functions, equalities, booleans, infinities, a ``Piecewise``
    undefined somewhere, ``LogSumExp``...) raises :class:`~arnn_gen.errors.ArnnGenError`
    naming its type instead of silently printing ``str(expr)``. Reductions such as ``LogSumExp`` are
    deliberately unsupported: the templates write them, with the right ``dim``.

Note [Numbers]
    Integers print as ints, rationals as ``p / q`` (parenthesised only where precedence
    needs it), floats as ``repr(float)``, ``pi`` and ``E`` as ``math.pi`` and ``math.e``.
    A function or power of pure numbers (``log(2)``, ``sqrt(2)``, ``sigmoid(1)``) is
    evaluated with ``evalf(30)`` and printed as the ``repr`` of the nearest float, because
    torch functions do not accept Python numbers.

Note [Tensors and floats]
    Sums, products, powers and constants work whether the symbols are bound to tensors or
    to Python floats. Every function (``torch.exp``, ``torch.sigmoid``, ``torch.lgamma``...)
    needs at least a tensor argument: bind symbols that appear inside functions to tensors.

Note [Fused multiply-add]
    With ``fused_multiply_add=True`` a sum of exactly two terms, one of them a product of
    exactly two factors and no term a number (``b + a z``), prints as
    ``torch.addcmul(b, a, z)``: one pass over memory instead of two, which matters for the
    elementwise layers of the emitted networks. All three must be tensors there (Note
    [Tensors and floats]); other sums print as usual.

Note [In-place]
    With ``in_place`` (a set of symbols, possibly empty) the formula prints so that each
    operation overwrites the tensor the one before it made: ``log(sigmoid(u))`` with
    ``in_place={u}`` as ``u.sigmoid_().log_()``, ``1 - s`` with ``{s}`` as
    ``s.neg_().add_(1)``, ``b + a z`` as ``(a * z).add_(b)``, or with ``{z}`` as
    ``z.mul_(a).add_(b)`` (no new tensor at all), and ``phi + J x`` with ``{phi}`` as
    ``phi.addcmul_(J, x)`` (a product of two factors added without a tensor of its own).
    Eager torch code then makes one new tensor per formula instead of one per operation; on
    the CPU, where each pass over a cache-sized block costs about as much as its arithmetic,
    that is up to twice as fast (docs/performance.md). The symbols listed may be
    overwritten: each must occur at most once, and stand for a tensor the caller no longer
    needs. Sums, products and functions of other symbols make new tensors, which the next
    operation overwrites; a bare symbol that is not listed is never written to. Operands
    overwritten must be tensors (Note [Tensors and floats]), and an in-place receiver must
    already have the result's shape (``a * z`` above has it where b broadcasts against it,
    and ``z`` where a does).

Note [Layout]
    Operators are spaced the way ``ruff format`` (and black) write them (``2 * x``,
    ``x / 2``, ``x**2``, ``(a + b) ** 2``) and parentheses appear only where precedence
    requires them, so short generated lines are left unchanged by the formatter.
"""

from __future__ import annotations

import ast
import keyword
import math
import re
from collections.abc import Callable, Mapping

import sympy as sp
from sympy.concrete.expr_with_limits import ExprWithLimits
from sympy.core.function import AppliedUndef
from sympy.core.mul import _keep_coeff
from sympy.printing.precedence import PRECEDENCE, precedence
from sympy.printing.pycode import PythonCodePrinter

from arnn_gen.errors import ArnnGenError

__all__ = ["TorchPrinter", "torch_code"]

# Names the emitted code needs for itself; a symbol printed under one of them would shadow it.
_RESERVED_NAMES = frozenset({"torch", "math"})

# What ruff format / black treat as a "simple" power operand (printed ``x**2``, no spaces):
# a name, a dotted attribute chain or a numeric literal.
_SIMPLE_POWER_OPERAND = re.compile(
    r"[A-Za-z_][A-Za-z_0-9]*(\.[A-Za-z_][A-Za-z_0-9]*)*|\d+(\.\d*)?([eE][+-]?\d+)?"
)

# Python expressions that never need parentheses around them: x, a.b, x[i], f(x), 1.5.
_PRIMARY_NODES = (ast.Name, ast.Attribute, ast.Subscript, ast.Call, ast.Constant)

_MESSAGE_LIMIT = 200


def _shorten(text: str) -> str:
    """``text`` cut to one readable line for an error message."""
    text = " ".join(text.split())
    return text if len(text) <= _MESSAGE_LIMIT else text[: _MESSAGE_LIMIT - 3] + "..."


def _is_identifier(name: str) -> bool:
    """True when ``name`` can be written as a plain Python variable in emitted code."""
    return name.isidentifier() and not keyword.iskeyword(name) and name not in _RESERVED_NAMES


def _unary(qualified_name: str) -> Callable[[TorchPrinter, sp.Expr], str]:
    """A ``_print_<Class>`` method printing a one-argument function as ``qualified_name(x)``."""

    def _print_call(self: TorchPrinter, expr: sp.Expr) -> str:
        (arg,) = expr.args
        return self._call(qualified_name, self._print(arg))

    _print_call.__doc__ = f"``{qualified_name}(x)``."
    return _print_call


class TorchPrinter(PythonCodePrinter):
    """Strict SymPy -> torch expression printer (see Note [Strict printing]).

    Any node without a ``_print_`` method of this class raises :class:`ArnnGenError`
    naming the node type. ``symbol_names`` maps SymPy objects (usually ``Symbol``, also
    ``IndexedBase``, ``Indexed`` or any sub-expression) to the Python expression that
    stands for them, e.g. ``{beta: "self.beta", M: "magnetization"}``; unmapped symbols
    print by name when it is a valid Python identifier. The modules the printed code uses
    are collected in :attr:`imports` (top-level names such as ``"torch"``, ``"math"``).

    With ``strict=False`` unsupported nodes print as ``str(expr)`` and are collected in
    :attr:`unsupported` instead (for diagnostics only; never emit such code).
    """

    printmethod = "_torchcode"
    language = "PyTorch"
    #: How error messages name the printer.
    label = "torch printer"

    def __init__(
        self,
        *,
        symbol_names: Mapping[sp.Basic, str] | None = None,
        strict: bool = True,
        fused_multiply_add: bool = False,
        in_place: frozenset[sp.Symbol] | None = None,
    ) -> None:
        super().__init__({"strict": strict})
        self.strict = strict
        self.fused_multiply_add = fused_multiply_add
        self.in_place = None if in_place is None else frozenset(in_place)
        self.imports: set[str] = set()
        self.unsupported: list[sp.Basic] = []
        self._names = self._validate_names(symbol_names or {})
        self._numbers: dict[sp.Basic, float] = {}
        self._methods = frozenset(
            name
            for cls in type(self).__mro__
            if issubclass(cls, TorchPrinter)
            for name in vars(cls)
            if name.startswith("_print_")
        )

    # -- entry points -------------------------------------------------------------------

    def doprint(self, expr: sp.Basic, assign_to: str | None = None) -> str:
        """``expr`` as one Python expression (or ``"name = expr"`` with ``assign_to``)."""
        expr = _sympify(expr, self.label)
        if self.in_place is None:
            code = self._print(expr)
        else:
            for symbol in sorted(self.in_place, key=str):
                if expr.count(symbol) > 1:
                    raise ArnnGenError(
                        f"{self.label}: {symbol} occurs more than once in "
                        f"{_shorten(sp.sstr(expr))}; it cannot be overwritten in place"
                    )
            code = self._in_place(expr)
        if assign_to is None:
            return code
        if not _is_identifier(assign_to):
            raise ArnnGenError(f"{self.label}: {assign_to!r} is not a valid Python name")
        return f"{assign_to} = {code}"

    # -- dispatch -----------------------------------------------------------------------

    def _print(self, expr, **kwargs) -> str:
        """Dispatch to this class's ``_print_<Class>`` methods only (Note [Strict printing])."""
        if isinstance(expr, sp.Basic):
            mapped = self._names.get(expr)
            if mapped is not None:
                return mapped
        method = self._method_for(expr)
        if method is None:
            return self._unsupported(expr)
        if _is_numeric_call(expr):
            # Print it once only to check that every node inside is supported, then
            # replace it by its value (Note [Numbers]); the call's imports are not needed.
            saved = set(self.imports)
            method(expr, **kwargs)
            self.imports = saved
            return repr(self._numeric_value(expr))
        return method(expr, **kwargs)

    def _method_for(self, expr) -> Callable[..., str] | None:
        classes = type(expr).__mro__
        if AppliedUndef in classes:  # f(x) for an undefined f: never printable
            return None
        for cls in classes:
            name = "_print_" + cls.__name__
            if name in self._methods:
                return getattr(self, name)
        return None

    def _unsupported(self, expr) -> str:
        if isinstance(expr, AppliedUndef):
            kind = f"undefined function {type(expr).__name__}"
        else:
            kind = type(expr).__name__
        message = f"{self.label}: cannot print {kind} ({_shorten(sp.sstr(expr))})"
        if isinstance(expr, ExprWithLimits):
            message += "; reductions are written by the templates, not printed"
        if self.strict:
            raise ArnnGenError(message)
        self.unsupported.append(expr)
        return sp.sstr(expr)

    # -- precedence ---------------------------------------------------------------------

    def _precedence(self, expr: sp.Basic) -> int:
        """Precedence of ``expr`` *as this printer writes it* (sympy's, with exceptions)."""
        if isinstance(expr, sp.Basic) and expr in self._names:
            return PRECEDENCE["Atom"]  # mapped strings are parenthesised when stored
        if _is_numeric_call(expr):
            value = self._numeric_value(expr)
            return PRECEDENCE["Add"] if math.copysign(1.0, value) < 0 else PRECEDENCE["Atom"]
        if isinstance(expr, sp.log) and _is_log_binomial(expr):
            return PRECEDENCE["Add"]  # printed as a difference of lgammas
        if isinstance(expr, sp.Pow) and expr.exp.is_Rational and expr.exp.is_negative:
            return PRECEDENCE["Mul"]  # printed as 1 / ...
        if isinstance(expr, sp.Pow) and expr.exp is sp.S.Half:
            return PRECEDENCE["Atom"]  # printed as torch.sqrt(...)
        return precedence(expr)

    def parenthesize(self, item, level, strict=False) -> str:
        """``item`` printed, in parentheses when its precedence is below ``level``."""
        prec = self._precedence(item)
        if prec < level or (not strict and prec <= level):
            return f"({self._print(item)})"
        return self._print(item)

    # -- atoms --------------------------------------------------------------------------

    def _print_Integer(self, expr: sp.Integer) -> str:
        """An int literal."""
        return str(int(expr))

    def _print_Rational(self, expr: sp.Rational) -> str:
        """``p / q``: true division of two ints, exactness visible in the source."""
        return f"{expr.p} / {expr.q}"

    def _print_Float(self, expr: sp.Float) -> str:
        """``repr`` of the nearest Python float."""
        value = float(expr)
        if not math.isfinite(value):
            return self._unsupported(expr)
        return repr(value)

    def _print_Pi(self, expr: sp.Expr) -> str:
        """``math.pi``."""
        self.imports.add("math")
        return "math.pi"

    def _print_Exp1(self, expr: sp.Expr) -> str:
        """``math.e``."""
        self.imports.add("math")
        return "math.e"

    def _print_Symbol(self, expr: sp.Symbol) -> str:
        """An unmapped symbol: its name, when that is a usable Python identifier."""
        if isinstance(expr, (sp.Dummy, sp.Wild)):
            raise ArnnGenError(
                f"{self.label}: cannot print {type(expr).__name__} {expr.name!r}; "
                "map it in symbol_names"
            )
        if not _is_identifier(expr.name):
            raise ArnnGenError(
                f"{self.label}: symbol name {expr.name!r} is not a valid Python identifier "
                "(or is a keyword, 'torch' or 'math'); map it in symbol_names"
            )
        return expr.name

    def _print_Idx(self, expr: sp.Idx) -> str:
        """An index prints as its label."""
        return self._print(expr.label)

    def _print_Indexed(self, expr: sp.Indexed) -> str:
        """``base[i, j]`` when the IndexedBase is mapped in ``symbol_names``."""
        if expr.base not in self._names:
            return self._unsupported(expr)
        indices = ", ".join(self._print(index) for index in expr.indices)
        return f"{self._names[expr.base]}[{indices}]"

    # -- arithmetic ---------------------------------------------------------------------

    def _print_Add(self, expr: sp.Add) -> str:
        """Terms in SymPy's canonical order, negative terms written with ``-``; with
        ``fused_multiply_add``, ``c + x y`` as ``torch.addcmul(c, x, y)`` (Note [Fused
        multiply-add])."""
        if self.fused_multiply_add:
            fused = self._addcmul(expr)
            if fused is not None:
                return fused
        level = PRECEDENCE["Add"]
        pieces: list[str] = []
        for term in expr.as_ordered_terms():
            text = self._print(term)
            if text.startswith("-"):
                sign, text = "-", text[1:]
            else:
                sign = "+"
            if self._precedence(term) < level:
                text = f"({text})"
            pieces.extend([sign, text])
        first = pieces.pop(0)
        return ("-" if first == "-" else "") + " ".join(pieces)

    def _addcmul(self, expr: sp.Add) -> str | None:
        """``torch.addcmul(c, x, y)`` for ``c + x y`` with x, y not numbers, else None."""
        if len(expr.args) != 2:
            return None
        for product, addend in (expr.args, expr.args[::-1]):
            if isinstance(product, sp.Mul) and len(product.args) == 2:
                x, y = product.args
                if not (x.is_number or y.is_number or addend.is_number):
                    return self._call(
                        "torch.addcmul", self._print(addend), self._print(x), self._print(y)
                    )
        return None

    def _print_Mul(self, expr: sp.Mul) -> str:
        """Numerator factors, then ``/`` and the denominator (SymPy's CodePrinter layout)."""
        level = PRECEDENCE["Mul"]
        coeff, rest = expr.as_coeff_Mul()
        sign = ""
        if coeff.is_negative:
            expr, sign = _keep_coeff(-coeff, rest), "-"
        numerator: list[sp.Expr] = []
        denominator: list[sp.Expr] = []
        for factor in expr.as_ordered_factors():
            if factor.is_Rational and not factor.is_Integer:
                if factor.p != 1:
                    numerator.append(sp.Integer(factor.p))
                denominator.append(sp.Integer(factor.q))
            elif (
                factor.is_commutative
                and factor.is_Pow
                and factor.exp.is_Rational
                and factor.exp.is_negative
            ):
                if factor.exp == -1:
                    denominator.append(factor.base)
                else:
                    denominator.append(sp.Pow(factor.base, -factor.exp, evaluate=False))
            else:
                numerator.append(factor)
        numerator = numerator or [sp.S.One]
        if sign and len(numerator) == 1:
            # Python's unary minus binds between * and **.
            top = [self.parenthesize(numerator[0], (PRECEDENCE["Pow"] + level) / 2)]
        else:
            top = [self.parenthesize(factor, level) for factor in numerator]
        bottom = [self.parenthesize(factor, level) for factor in denominator]
        text = sign + " * ".join(top)
        if len(bottom) == 1:
            text += " / " + bottom[0]
        elif bottom:
            text += " / (" + " * ".join(bottom) + ")"
        return text

    def _print_Pow(self, expr: sp.Pow) -> str:
        """``torch.sqrt`` for square roots, ``1 / ...`` for negative rational exponents."""
        base, exponent = expr.base, expr.exp
        if exponent is sp.S.Half:
            return self._call("torch.sqrt", self._print(base))
        if expr.is_commutative and exponent.is_Rational and exponent.is_negative:
            if exponent == -1:
                return "1 / " + self.parenthesize(base, PRECEDENCE["Mul"])
            return "1 / " + self.parenthesize(
                sp.Pow(base, -exponent, evaluate=False), PRECEDENCE["Mul"]
            )
        level = PRECEDENCE["Pow"]
        base_text = self.parenthesize(base, level)
        exponent_text = self.parenthesize(exponent, level)
        simple = _SIMPLE_POWER_OPERAND.fullmatch
        operator = "**" if simple(base_text) and simple(exponent_text) else " ** "
        return base_text + operator + exponent_text

    # -- functions ----------------------------------------------------------------------

    _print_exp = _unary("torch.exp")
    _print_expm1 = _unary("torch.expm1")  # sympy.codegen.cfunctions.expm1
    _print_log1p = _unary("torch.log1p")  # sympy.codegen.cfunctions.log1p
    _print_sinh = _unary("torch.sinh")
    _print_cosh = _unary("torch.cosh")
    _print_tanh = _unary("torch.tanh")
    _print_Abs = _unary("torch.abs")
    _print_sign = _unary("torch.sign")

    def _print_Min(self, expr: sp.Min) -> str:
        """``torch.minimum(x, y)``, nested for more arguments (elementwise, tensors only)."""
        return self._extremum("torch.minimum", expr)

    def _print_Max(self, expr: sp.Max) -> str:
        """``torch.maximum(x, y)``, nested for more arguments (elementwise, tensors only)."""
        return self._extremum("torch.maximum", expr)

    def _extremum(self, qualified_name: str, expr: sp.Expr) -> str:
        first, *rest = expr.args
        code = self._print(first)
        for argument in rest:
            code = self._call(qualified_name, code, self._print(argument))
        return code

    _print_loggamma = _unary("torch.lgamma")
    _print_sigmoid = _unary("torch.sigmoid")
    _print_logsigmoid = _unary("torch.nn.functional.logsigmoid")

    def _print_logaddexp(self, expr: sp.Function) -> str:
        """``torch.logaddexp(a, b)``, log(e^a + e^b) without overflow; both must be tensors
        (Note [Tensors and floats]).

        >>> from arnn_gen.symbolic.nn_functions import logaddexp
        >>> a, b = sp.symbols("a b")
        >>> torch_code(logaddexp(a, -b / 2))
        'torch.logaddexp(a, -b / 2)'
        """
        first, second = expr.args
        return self._call("torch.logaddexp", self._print(first), self._print(second))

    def _print_Piecewise(self, expr: sp.Piecewise) -> str:
        """``torch.where(condition, value, otherwise)``, nested for more pieces. The last
        piece must hold everywhere (condition True): a value left undefined somewhere has
        no torch translation. Conditions are inequalities (``_print_inequality``)."""
        *pieces, (otherwise, condition) = expr.args
        if condition is not sp.true or not pieces:
            return self._unsupported(expr)
        text = self._print(otherwise)
        for value, condition in reversed(pieces):
            text = self._call("torch.where", self._print(condition), self._print(value), text)
        return text

    def _print_inequality(self, expr: sp.core.relational.Relational) -> str:
        """``a > b``, ``a >= b``, ``a < b``, ``a <= b``: elementwise on tensors. Equalities of
        floats (``Eq``, ``Ne``) are not printed."""
        level = PRECEDENCE["Relational"]
        lhs, rhs = (self.parenthesize(side, level) for side in expr.args)
        return f"{lhs} {expr.rel_op} {rhs}"

    _print_StrictGreaterThan = _print_inequality
    _print_GreaterThan = _print_inequality
    _print_StrictLessThan = _print_inequality
    _print_LessThan = _print_inequality

    def _print_log(self, expr: sp.log) -> str:
        """``torch.log``; log(binomial) and log(factorial) as stable lgamma forms."""
        (arg,) = expr.args
        if isinstance(arg, sp.binomial):
            return self._log_binomial(*arg.args)
        if isinstance(arg, sp.factorial):
            return self._print(sp.loggamma(arg.args[0] + 1, evaluate=False))
        return self._call("torch.log", self._print(arg))

    def _print_binomial(self, expr: sp.binomial) -> str:
        """``torch.exp`` of the lgamma difference (symbolic n, k)."""
        return self._call("torch.exp", self._log_binomial(*expr.args))

    def _print_factorial(self, expr: sp.factorial) -> str:
        """``torch.exp(torch.lgamma(n + 1))``."""
        return self._call("torch.exp", self._print(sp.loggamma(expr.args[0] + 1, evaluate=False)))

    # -- in place (Note [In-place]) -----------------------------------------------------

    #: SymPy functions whose torch function has an in-place method of the same name + "_".
    _IN_PLACE_METHODS = {
        "exp": "exp_",
        "expm1": "expm1_",
        "log1p": "log1p_",
        "tanh": "tanh_",
        "sinh": "sinh_",
        "cosh": "cosh_",
        "Abs": "abs_",
        "sign": "sign_",
        "sigmoid": "sigmoid_",
        "log": "log_",
    }

    def _owned(self, expr: sp.Basic) -> bool:
        """Whether the code of ``expr`` yields a tensor the formula may overwrite: a symbol
        listed in ``in_place``, or anything computed (not a number, a bare symbol or a
        name from ``symbol_names``)."""
        if expr in self.in_place:
            return True
        if expr.is_number or expr in self._names:
            return False
        return not isinstance(expr, (sp.Symbol, sp.Indexed, sp.Idx))

    def _in_place(self, expr: sp.Basic) -> str:
        """``expr`` printed with its operations done in place where their receiver is owned
        (Note [In-place]); anything else as usual, making a new tensor."""
        if expr in self.in_place or not self._owned(expr) or _is_numeric_call(expr):
            return self._print(expr)
        method = self._IN_PLACE_METHODS.get(type(expr).__name__)
        # log of a binomial or factorial prints as lgamma forms (_print_log), not in place
        lgamma = isinstance(expr, sp.log) and isinstance(expr.args[0], (sp.binomial, sp.factorial))
        if method and len(expr.args) == 1 and self._owned(expr.args[0]) and not lgamma:
            return f"{self._receiver(expr.args[0])}.{method}()"
        if isinstance(expr, sp.Add):
            return self._in_place_add(expr)
        if isinstance(expr, sp.Mul):
            coefficient, rest = expr.as_coeff_Mul()
            if coefficient != 1 and self._owned(rest):
                if coefficient == -1:
                    return f"{self._receiver(rest)}.neg_()"
                return f"{self._receiver(rest)}.mul_({self._print(coefficient)})"
            holders = [f for f in expr.as_ordered_factors() if f.free_symbols & self.in_place]
            if coefficient == 1 and holders:  # z * a with z listed: z.mul_(a)
                others = list(expr.as_ordered_factors())
                others.remove(holders[0])
                return f"{self._receiver(holders[0])}.mul_({self._print(sp.Mul(*others))})"
        return self._print(expr)

    def _in_place_add(self, expr: sp.Add) -> str:
        """A sum accumulated into one owned term: the one holding a symbol listed in
        ``in_place``, else the first computed one; the others added or subtracted."""
        terms = expr.as_ordered_terms()
        holders = [term for term in terms if term.free_symbols & self.in_place]
        owned = [term for term in terms if self._owned(term)]
        if not (holders or owned):
            return self._print(expr)
        base = (holders or owned)[0]
        code = self._receiver(base)
        rest = list(terms)
        rest.remove(base)
        for term in rest:
            coefficient, product = term.as_coeff_Mul()
            factors = product.args if isinstance(product, sp.Mul) else ()
            if abs(coefficient) == 1 and len(factors) == 2 and not term.has(*self.in_place):
                # x y added in one pass, without a tensor for the product
                first, second = (self._print(factor) for factor in factors)
                value = ", value=-1" if coefficient.is_negative else ""
                code += f".addcmul_({first}, {second}{value})"
            elif coefficient.is_negative:
                code += f".sub_({self._print(-term)})"
            else:
                code += f".add_({self._print(term)})"
        return code

    def _receiver(self, expr: sp.Basic) -> str:
        """``expr`` in place, parenthesised unless a Python primary (``x``, ``f(x)``...)."""
        code = self._in_place(expr)
        if isinstance(ast.parse(code, mode="eval").body, _PRIMARY_NODES):
            return code
        return f"({code})"

    # -- helpers ------------------------------------------------------------------------

    def _log_binomial(self, n: sp.Expr, k: sp.Expr) -> str:
        """log C(n, k) = lgamma(n + 1) - lgamma(k + 1) - lgamma(n - k + 1), unparenthesised."""
        # evaluate=False: SymPy rewrites loggamma of a nonnegative integer as log(gamma(.)).
        terms = tuple(sp.loggamma(arg, evaluate=False) for arg in (n + 1, k + 1, n - k + 1))
        texts = []
        for position, term in enumerate(terms):
            text = self._print(term)
            # A subtracted term must bind tighter than "-" (e.g. a negative number).
            if position and self._precedence(term) <= PRECEDENCE["Add"]:
                text = f"({text})"
            texts.append(text)
        return " - ".join(texts)

    def _call(self, qualified_name: str, *args: str) -> str:
        """``qualified_name(args)``, recording the top-level module it needs."""
        self.imports.add(qualified_name.split(".", 1)[0])
        return f"{qualified_name}({', '.join(args)})"

    def _numeric_value(self, expr: sp.Expr) -> float:
        """The nearest float to a function or power of pure numbers (Note [Numbers])."""
        value = self._numbers.get(expr)
        if value is None:
            evaluated = expr.evalf(30)
            value = float(evaluated) if evaluated.is_Float else math.nan
            if not math.isfinite(value):
                raise ArnnGenError(
                    f"{self.label}: cannot print "
                    f"{_shorten(sp.sstr(expr))}: it is not a finite real number"
                )
            self._numbers[expr] = value
        return value

    @classmethod
    def _validate_names(cls, symbol_names: Mapping[sp.Basic, str]) -> dict[sp.Basic, str]:
        """Check ``symbol_names`` and parenthesise values that are not Python primaries."""
        names: dict[sp.Basic, str] = {}
        for key, code in symbol_names.items():
            if not isinstance(key, sp.Basic):
                raise ArnnGenError(
                    f"{cls.label}: symbol_names keys must be SymPy objects, got {key!r}"
                )
            if not isinstance(code, str):
                raise ArnnGenError(
                    f"{cls.label}: symbol_names[{key}] must be a string, got {code!r}"
                )
            try:
                tree = ast.parse(code.strip(), mode="eval")
            except SyntaxError:
                raise ArnnGenError(
                    f"{cls.label}: symbol_names[{key}] = {code!r} is not a Python expression"
                ) from None
            code = code.strip()
            names[key] = code if isinstance(tree.body, _PRIMARY_NODES) else f"({code})"
        return names


def _sympify(expr, label: str = TorchPrinter.label) -> sp.Basic:
    try:
        return sp.sympify(expr, strict=True)
    except (sp.SympifyError, TypeError) as err:
        raise ArnnGenError(f"{label}: not a SymPy expression: {expr!r}") from err


def _is_numeric_call(expr) -> bool:
    """A function or power of pure numbers, printed as its value (Note [Numbers])."""
    return isinstance(expr, (sp.Function, sp.Pow)) and bool(expr.is_number)


def _is_log_binomial(expr: sp.log) -> bool:
    return isinstance(expr.args[0], sp.binomial)


def torch_code(
    expr: sp.Expr,
    *,
    symbol_names: Mapping[sp.Basic, str] | None = None,
    fused_multiply_add: bool = False,
    in_place: frozenset[sp.Symbol] | None = None,
) -> str:
    """``expr`` as one Python expression over ``torch`` and ``math`` (strict printing);
    ``fused_multiply_add``: see Note [Fused multiply-add]; ``in_place``: Note [In-place].

    >>> a, b = sp.symbols("a b")
    >>> torch_code(sp.exp(-a) / 2 + b**2, symbol_names={b: "self.b"})
    'self.b**2 + torch.exp(-a) / 2'
    >>> torch_code(a * b + 1 + sp.log(a), fused_multiply_add=True)
    'a * b + torch.log(a) + 1'
    >>> torch_code(a * b + sp.log(a), fused_multiply_add=True)
    'torch.addcmul(torch.log(a), a, b)'
    >>> torch_code(a * b + sp.log(a), in_place=frozenset())
    '(a * b).add_(torch.log(a))'
    >>> torch_code(1 - sp.exp(-a), in_place=frozenset({a}))
    'a.neg_().exp_().neg_().add_(1)'
    >>> torch_code(a + b * sp.Symbol("c"), in_place=frozenset({a}))
    'a.addcmul_(b, c)'
    """
    printer = TorchPrinter(
        symbol_names=symbol_names, fused_multiply_add=fused_multiply_add, in_place=in_place
    )
    return printer.doprint(expr)
