"""Stage 5: render an :class:`~arnn_gen.ir.ArchitectureIR` into a standalone PyTorch module.

Input: the IR (and the Hamiltonian for the sidecar). Output: the module's source text
(:func:`render_module`) and, on request, the files ``<out>/<name>.py`` plus the sidecar
``<name>.npz`` with J and h (:func:`write_module`).

Structure comes from the Jinja templates in ``templates/`` (shipped as the package
``arnn_gen.templates``); every elementwise formula comes from the IR through the strict
torch printer (:mod:`arnn_gen.printing`), never retyped in a template. Rendering is
deterministic: same IR and arnn-gen version, same bytes. The source is compiled before it
is written; files are written atomically and only when their bytes change.
"""

from __future__ import annotations

import tempfile
from importlib.resources import files
from pathlib import Path

import jinja2
import sympy as sp

from .derive import SYMBOLS
from .errors import ArnnGenError
from .files import write_atomically
from .ir import PHI, SHARED_SIGMOID, A, ArchitectureIR, B, C, U, W, Y, Z
from .printing import torch_code
from .simplify import RSYM

__all__ = ["SYMBOL_NAMES", "load_module", "render_module", "write_module", "print_formulas"]

#: Python names the templates give to the symbols of the formulas.
SYMBOL_NAMES: dict[sp.Basic, str] = {
    SYMBOLS.beta: "beta",
    SYMBOLS.N: "N",
    RSYM.J: "J",
    RSYM.h: "h",
    RSYM.n: "n",
    RSYM.k: "k",
    RSYM.M: "M",
    RSYM.sign: "sign",
    RSYM.m: "m",
    RSYM.coupling: "coupling",
    Z: "z",
    A: "a",
    B: "b",
    W: "w",
    C: "c",
    PHI: "phi_site",
    Y: "y",
    U: "u",
    sp.Symbol("xi"): "xi",
}


#: Formulas printed with torch.addcmul where they are b + a z (Note [Fused multiply-add] in
#: printing.py): the input of the replica layers, evaluated on every pair of every sample.
FUSED_MULTIPLY_ADD = frozenset({"layer_input"})

#: Formulas also printed with each operation overwriting the tensor of the one before (Note
#: [In-place] in printing.py): printed name -> (formula, the symbols it may overwrite). The
#: replica layers of eager code on the CPU, where every pass over memory counts; the layer
#: input overwrites z where z is a layer's output no longer needed (not the fields phi).
IN_PLACE = {
    "layer_input_in_place": ("layer_input", frozenset()),
    "layer_input_over_z": ("layer_input", frozenset({Z})),
    "layer_sigmoid_in_place": ("layer_sigmoid", frozenset({U})),
    "layer_of_sigmoid_in_place": ("layer_of_sigmoid", frozenset({SHARED_SIGMOID})),
    "slope_of_sigmoid_in_place": ("slope_of_sigmoid", frozenset({SHARED_SIGMOID})),
}


def _environment() -> jinja2.Environment:
    root = files("arnn_gen.templates")

    def load(name: str) -> str:
        resource = root.joinpath(name)
        if not resource.is_file():
            raise jinja2.TemplateNotFound(name)
        return resource.read_text(encoding="utf-8")

    return jinja2.Environment(
        loader=jinja2.FunctionLoader(load),
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
        autoescape=False,
    )


def print_formulas(ir: ArchitectureIR) -> dict[str, str]:
    """Torch code of every formula and every parameter's initial value of ``ir``.

    Keys: the formula names, and ``init_<parameter>`` for the parameters that are not fixed.
    """
    printed = {
        name: torch_code(
            expr, symbol_names=SYMBOL_NAMES, fused_multiply_add=name in FUSED_MULTIPLY_ADD
        )
        for name, expr in ir.formulas
    }
    formulas = dict(ir.formulas)
    for printed_name, (name, overwritten) in IN_PLACE.items():
        if name in formulas:
            printed[printed_name] = torch_code(
                formulas[name], symbol_names=SYMBOL_NAMES, in_place=overwritten
            )
    for spec in ir.parameters:
        if spec.role != "fixed":  # fixed values come from the formulas, evaluated in place
            printed[f"init_{spec.name}"] = torch_code(spec.initial, symbol_names=SYMBOL_NAMES)
    return printed


def render_module(ir: ArchitectureIR) -> str:
    """The module's source text (compiled once as a check before it is returned)."""
    template = _environment().get_template(ir.template)
    source = template.render(ir=ir, printed=print_formulas(ir), ir_signature=ir.signature())
    try:
        compile(source, f"{ir.name}.py", "exec")
    except SyntaxError as error:  # a template bug, not user input
        raise ArnnGenError(f"emitted code for {ir.name} does not compile: {error}") from error
    return source


def write_module(
    ir: ArchitectureIR, source: str, hamiltonian, out_dir, *, force: bool = False
) -> Path:
    """Write ``<out_dir>/<name>.py`` (and the sidecar .npz) atomically; return the .py path.

    Refuses to replace existing files unless ``force``. The sidecar is written first, so a
    module never points at a missing or stale sidecar.
    """
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise ArnnGenError(f"output directory {out} is a file")
    module = out / f"{ir.name}.py"
    targets = [module] + ([out / ir.provenance.sidecar] if ir.provenance.sidecar else [])
    if not force:
        for target in targets:
            if target.exists():
                raise ArnnGenError(f"{target} exists; use --force to overwrite it")
    out.mkdir(parents=True, exist_ok=True)
    if ir.provenance.sidecar:
        from .systems import save

        with tempfile.TemporaryDirectory(dir=out) as scratch:
            staged = Path(scratch) / ir.provenance.sidecar
            save(hamiltonian, staged)
            write_atomically(out / ir.provenance.sidecar, staged.read_bytes(), only_if_changed=True)
    write_atomically(module, source.encode("utf-8"), only_if_changed=True)
    return module


def load_module(path):
    """Import an emitted module from its file (its sidecar is found beside it)."""
    import importlib.util

    path = Path(path)
    if not path.is_file():
        raise ArnnGenError(f"module file {path} does not exist")
    spec = importlib.util.spec_from_file_location(f"arnn_gen_emitted_{path.stem}", path)
    if spec is None or spec.loader is None:
        raise ArnnGenError(f"{path} is not an importable Python file")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    if not hasattr(module, "Model"):
        raise ArnnGenError(f"{path} defines no Model: is it a module emitted by arnn-gen?")
    return module
