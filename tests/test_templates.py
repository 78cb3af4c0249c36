"""The templates hold structure, not arithmetic: every formula of an emitted module that
acts on the model's quantities is printed from SymPy.

What counts as a hand-typed formula (Note [Hand-typed arithmetic]): in a function whose
``def`` lies in a physics template (``PHYSICS_TEMPLATES``), outside the printed formulas,

- an arithmetic operator (``+ - * / ** //``, unary ``-``, their augmented assignments) with
  an operand that mentions a model quantity (``MODEL_QUANTITIES``: spins, fields, couplings,
  beta, logits, parameters of the reduced forms...), or
- a call of an elementwise math function or arithmetic method (``MATH_CALLS``: exp, log,
  sigmoid, abs, add_, mul_...) on a model quantity.

Structure is allowed: contractions and reductions (``@``, matmul, addmm, bmm, vecdot, sum,
logsumexp, cumsum, vector norms), the affine first layer ``b + x @ W`` (an addition one of
whose operands is a matrix product: a linear layer, whose weights are printed), masks
(``torch.where``), comparisons, indexing, and arithmetic on sizes and positions (operands
that mention no model quantity, or only through ``.shape``, ``.size()``, ``len`` or an
integer index made with ``.long()``).

Execution machinery (blocks, custom autograd, compile, CUDA graphs) lives in its own
template parts (``MACHINERY_TEMPLATES``) and is not held to this rule, but every template
is one of the two kinds, so a new one must be classified. The checks of the inputs
(``INPUT_CHECKS``: is x made of -1 and +1, is J symmetric) test the user's numbers and
compute nothing of the model; they are not held to it either.

The modules are rendered with every printed formula replaced by a marker name, so that
what remains is exactly what the templates type.
"""

from __future__ import annotations

import ast
import re
from importlib.resources import files

import pytest

from arnn_gen.codegen.emit import _environment
from arnn_gen.codegen.printing import torch_code
from arnn_gen.pipeline import lower

PHYSICS_TEMPLATES = (
    "base.py.j2",
    "h2arnn.py.j2",
    "cw_exact.py.j2",
    "cw_inf.py.j2",
    "cw_inf_instances.py.j2",
    "cw_magnetization.py.j2",
    "count_sampling.py.j2",
    "replica.py.j2",
    "replica_layers.py.j2",
    "replica_rho.py.j2",
    "replica_instances.py.j2",
    "replica_triton.py.j2",
    "frontier_replica.py.j2",
    "frontier_triton.py.j2",
    "frontier_exact.py.j2",
)
MACHINERY_TEMPLATES = (
    "replica_blocks.py.j2",
    "replica_compile.py.j2",
    "replica_gradients.py.j2",
    "replica_cuda_graphs.py.j2",
    "replica_settings.py.j2",
    "replica_instances_blocks.py.j2",
    "replica_triton_methods.py.j2",
    "replica_triton_gradients.py.j2",
    "layout_macros.py.j2",
    "triton_macros.py.j2",
    "frontier_blocks.py.j2",
    "frontier_triton_methods.py.j2",
    "frontier_triton_gradients.py.j2",
    "frontier_system.py.j2",
    "frontier_exact_tables.py.j2",
)

#: Functions that check the inputs (spins, couplings, beta, batch size).
INPUT_CHECKS = frozenset(
    {"_check_spins", "_check_instance_spins", "_system", "_check_beta", "_check_batch_size"}
)

#: Names (variables and attributes) of the model's quantities in the templates.
MODEL_QUANTITIES = frozenset(
    """x spins spin up phi phi_site phi_later field fields J h couplings coupling beta _beta
    logit logits log_rho log_rho_plus log_rho_minus residual weight bias input_bias
    input_weight omega M m a b w z y u s xi coupled to_site later_pairs table log_z plus
    minus energy log_q probability field_bound column_norm z_low a0 a1 a2 b1 b2
    residual_weight residual_bias increments prefix pair_coupling earlier_coupling
    later_coupling""".split()
)

#: Elementwise math functions and arithmetic methods: typed on a model quantity, a formula.
MATH_CALLS = frozenset(
    """exp log log1p expm1 sigmoid logsigmoid softplus tanh sinh cosh sqrt abs sign lgamma
    logaddexp addcmul minimum maximum clamp exp_ log_ log1p_ expm1_ sigmoid_ tanh_ abs_ neg_
    add_ sub_ mul_ div_ addcmul_ addcdiv_ clamp_ pow pow_ neg square reciprocal""".split()
)

_ARITHMETIC = (ast.Add, ast.Sub, ast.Mult, ast.Div, ast.Pow, ast.FloorDiv)

#: (system, options) of one module per family.
CASES = (
    ("sk", {"variant": "exact", "N": 6, "seed": 0}),
    ("cw", {"variant": "exact", "N": 6}),
    ("cw", {"variant": "inf", "N": 6}),
    ("sk", {"variant": "rs", "N": 6, "seed": 0}),
    ("sk", {"variant": "krsb", "k": 2, "N": 6, "seed": 0}),
    ("ea2d", {"variant": "rs", "L": 3, "W": 3, "seed": 0}),
    ("rrg", {"variant": "krsb", "k": 2, "N": 8, "seed": 0}),
    ("ea2d", {"variant": "exact", "L": 3, "W": 3, "seed": 0}),
    ("sk", {"variant": "krsb", "k": 2, "N": 6, "instances": "0-2"}),
    ("cw", {"variant": "inf", "N": 6, "J": (1.0, 0.5), "h": (0.0, 0.1)}),
    ("sk", {"variant": "krsb", "k": 2, "N": 6, "seed": 0, "backend": "triton"}),
    ("rrg", {"variant": "krsb", "k": 2, "N": 8, "seed": 0, "backend": "triton"}),
    ("sk", {"variant": "krsb", "k": 1, "N": 6, "instances": "0-1", "backend": "triton"}),
)


class _Markers(dict):
    """``printed`` and ``printed_triton``: every formula as the name ``_printed_<name>``."""

    def __getitem__(self, name):
        return f"_printed_{name}"

    def __contains__(self, name):
        return True


def _render_with_markers(ir) -> str:
    template = _environment().get_template(ir.template)
    names = dict(ir.symbol_names)
    constants = [(name, torch_code(value, symbol_names=names)) for name, value in ir.constants]
    return template.render(ir=ir, printed=_Markers(), printed_triton=_Markers(),
                           constants=constants, ir_signature="0")  # fmt: skip


def _template_texts() -> dict[str, str]:
    root = files("arnn_gen.templates")
    return {
        entry.name: entry.read_text(encoding="utf-8")
        for entry in root.iterdir()
        if entry.name.endswith(".j2")
    }


def _physics_functions() -> set[str]:
    """Names of the functions and methods defined in the physics templates."""
    texts = _template_texts()
    names = set()
    for name in PHYSICS_TEMPLATES:
        names.update(re.findall(r"^\s*def (\w+)\(", texts[name], flags=re.MULTILINE))
    return names - INPUT_CHECKS


def _mentions_quantity(node: ast.AST) -> bool:
    """Whether ``node`` reads a model quantity other than through its shape or size."""
    if isinstance(node, ast.Attribute) and node.attr in ("shape", "dtype", "device", "ndim"):
        return False
    if isinstance(node, ast.Call):
        function = node.func
        if isinstance(function, ast.Name) and function.id in ("len", "isinstance", "type"):
            return False
        if isinstance(function, ast.Attribute) and function.attr in ("size", "dim", "numel"):
            return False
        if isinstance(function, ast.Attribute) and function.attr == "long":
            return False  # an index made from a quantity (M_<i + N, a table's column)
    if isinstance(node, ast.Name) and node.id in MODEL_QUANTITIES:
        return True
    if isinstance(node, ast.Attribute) and node.attr in MODEL_QUANTITIES:
        return True
    return any(_mentions_quantity(child) for child in ast.iter_child_nodes(node))


def _is_product(node: ast.AST) -> bool:
    return isinstance(node, ast.BinOp) and isinstance(node.op, ast.MatMult)


def hand_typed(source: str, functions: set[str]) -> list[str]:
    """The hand-typed formulas (Note [Hand-typed arithmetic]) of ``source`` inside the
    functions named ``functions``, as "function: line" strings."""
    tree = ast.parse(source)
    lines = source.splitlines()
    found = []
    for function in ast.walk(tree):
        if not isinstance(function, ast.FunctionDef) or function.name not in functions:
            continue
        for node in ast.walk(function):
            typed = False
            if isinstance(node, ast.BinOp) and isinstance(node.op, _ARITHMETIC):
                affine = isinstance(node.op, ast.Add) and (
                    _is_product(node.left) or _is_product(node.right)
                )
                typed = not affine and (
                    _mentions_quantity(node.left) or _mentions_quantity(node.right)
                )
            elif isinstance(node, ast.AugAssign) and isinstance(node.op, _ARITHMETIC):
                typed = _mentions_quantity(node.target) or _mentions_quantity(node.value)
            elif isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub):
                typed = _mentions_quantity(node.operand)
            elif isinstance(node, ast.Call):
                callee = node.func
                name = callee.attr if isinstance(callee, ast.Attribute) else ""
                name = callee.id if isinstance(callee, ast.Name) else name
                typed = name in MATH_CALLS and _mentions_quantity(node)
            if typed:
                found.append(f"{function.name}: {lines[node.lineno - 1].strip()}")
    return sorted(set(found))


def test_every_template_is_classified():
    shipped = set(_template_texts())
    assert shipped == set(PHYSICS_TEMPLATES) | set(MACHINERY_TEMPLATES)


@pytest.mark.parametrize(("system", "options"), CASES, ids=lambda case: str(case))
def test_physics_templates_type_no_formula(system, options):
    ir = lower(system, beta=1.0, **options).ir
    source = _render_with_markers(ir)
    assert hand_typed(source, _physics_functions()) == []


def test_the_check_finds_a_typed_formula():
    """The rule itself: a typed energy, a typed sigmoid and a typed update are found; index
    arithmetic, a contraction, the affine first layer and a printed marker are not."""
    source = """
def energy(self, x):
    return -0.5 * ((x @ self.J) * x).sum(-1)

def sample(self, phi, logit, i, u):
    n = phi.shape[0] - i - 1
    phi_site = self.h + x @ self.J
    p = torch.sigmoid(logit)
    phi[i + 1 :] += self.J[i, i + 1 :] * u
    return _printed_logit.sum(-1), n, p, phi_site
"""
    found = hand_typed(source, {"energy", "sample"})
    assert found == [
        "energy: return -0.5 * ((x @ self.J) * x).sum(-1)",
        "sample: p = torch.sigmoid(logit)",
        "sample: phi[i + 1 :] += self.J[i, i + 1 :] * u",
    ]
