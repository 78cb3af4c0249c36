"""Stage 5: render an :class:`~arnn_gen.codegen.ir.ArchitectureIR` into a standalone
PyTorch module.

Input: the IR (and the Hamiltonian for the sidecar). Output: the module's source text
(:func:`render_module`) and, on request, the files ``<out>/<name>.py`` plus the sidecar
``<name>.npz`` with J and h (:func:`write_module`).

Structure comes from the Jinja templates in ``templates/`` (shipped as the package
``arnn_gen.templates``); every elementwise formula comes from the IR through the strict
torch printer (:mod:`arnn_gen.codegen.printing`), with the symbol table and the print
options the IR carries (the emitter imports nothing from the symbolic stages). Rendering is
deterministic: same IR and arnn-gen version, same bytes. The source is compiled before it
is written; files are written atomically and only when their bytes change.
"""

from __future__ import annotations

import contextlib
from collections.abc import Mapping
from importlib.resources import files
from pathlib import Path

import jinja2

from arnn_gen.codegen.ir import ArchitectureIR
from arnn_gen.codegen.printing import torch_code
from arnn_gen.codegen.triton_printing import triton_code
from arnn_gen.errors import ArnnGenError
from arnn_gen.files import replace_together, stage

__all__ = ["load_module", "render_module", "write_module", "print_formulas"]


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
    names = dict(ir.symbol_names)
    printed = {
        name: torch_code(expr, symbol_names=names, fused_multiply_add=name in ir.fused_multiply_add)
        for name, expr in ir.formulas
    }
    formulas = dict(ir.formulas)
    for printed_name, name, overwritten in ir.in_place:
        if name in formulas:
            printed[printed_name] = torch_code(
                formulas[name], symbol_names=names, in_place=frozenset(overwritten)
            )
    for spec in ir.parameters:
        if spec.role != "fixed":  # fixed values come from the formulas, evaluated in place
            printed[f"init_{spec.name}"] = torch_code(spec.initial, symbol_names=names)
    return printed


class TritonFormulas(Mapping):
    """The formulas of an IR printed for Triton kernels (``printed_triton`` in the
    templates), each on first use: a template that asks for a formula the Triton printer
    cannot print fails there, naming it."""

    def __init__(self, ir: ArchitectureIR) -> None:
        self._formulas = dict(ir.formulas)
        self._names = dict(ir.symbol_names)
        self._printed: dict[str, str] = {}

    def __getitem__(self, name: str) -> str:
        if name not in self._printed:
            if name not in self._formulas:
                raise KeyError(name)
            try:
                code = triton_code(self._formulas[name], symbol_names=self._names)
            except ArnnGenError as error:
                raise ArnnGenError(f"formula {name!r} for Triton: {error}") from None
            self._printed[name] = code
        return self._printed[name]

    def __iter__(self):
        return iter(self._formulas)

    def __len__(self) -> int:
        return len(self._formulas)


def render_module(ir: ArchitectureIR) -> str:
    """The module's source text (compiled once as a check before it is returned)."""
    template = _environment().get_template(ir.template)
    names = dict(ir.symbol_names)
    constants = [(name, torch_code(value, symbol_names=names)) for name, value in ir.constants]
    source = template.render(
        ir=ir,
        printed=print_formulas(ir),
        printed_triton=TritonFormulas(ir),
        constants=constants,
        ir_signature=ir.signature(),
    )
    try:
        compile(source, f"{ir.name}.py", "exec")
    except SyntaxError as error:  # a template bug, not user input
        raise ArnnGenError(f"emitted code for {ir.name} does not compile: {error}") from error
    return source


def write_module(
    ir: ArchitectureIR, source: str, hamiltonian, out_dir, *, force: bool = False
) -> Path:
    """Write ``<out_dir>/<name>.py`` and its sidecar .npz as one unit; return the .py path.

    Refuses to replace existing files unless ``force``. Both files are staged as synced
    temporaries first, then renamed together (:func:`arnn_gen.files.replace_together`): a
    failure at any point leaves the old pair as it was (or no pair). Files whose bytes
    would not change are left alone.
    """
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise ArnnGenError(f"output directory {out} is a file")
    module = out / f"{ir.name}.py"
    sidecar = out / ir.provenance.sidecar if ir.provenance.sidecar else None
    targets = [module] + ([sidecar] if sidecar else [])
    for target in targets:
        if target.is_dir():
            raise ArnnGenError(f"cannot write {target}: it is a directory")
        if target.exists() and not force:
            raise ArnnGenError(f"{target} exists; use --force to overwrite it")
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise ArnnGenError(f"cannot create {out}: {error.strerror or error}") from None
    data = source.encode("utf-8")
    with contextlib.ExitStack() as stack:
        staged: list[tuple[Path, Path]] = []
        if sidecar is not None:
            handle, temporary = stack.enter_context(stage(sidecar))
            write_sidecar(ir, hamiltonian, handle)
            staged.append((temporary, sidecar))
        handle, module_temporary = stack.enter_context(stage(module))
        handle.write(data)
    staged.append((module_temporary, module))
    if all(target.is_file() and _same_bytes(staged_file, target) for staged_file, target in staged):
        for staged_file, _ in staged:
            staged_file.unlink(missing_ok=True)
        return module
    replace_together(staged)
    return module


def write_sidecar(ir: ArchitectureIR, hamiltonian, handle) -> None:
    """The module's sidecar .npz: J and h of a dense system (stacked, [K, N, N] and [K, N],
    for a module of K instances); the edges, weights, fields and site order of a frontier
    network (ir.site_order names how the order is chosen; it is
    computed again here, deterministically, from the system)."""
    if ir.instances:
        from arnn_gen.systems.instances import write_instances_npz

        write_instances_npz(hamiltonian, handle)
        return
    if not ir.site_order:
        from arnn_gen.systems import write_npz

        write_npz(hamiltonian, handle)
        return
    from arnn_gen.systems.ordering import order_signature, site_order
    from arnn_gen.systems.sparse import write_sparse_npz

    order = site_order(hamiltonian, ir.site_order)
    if ir.order_signature and order_signature(order) != ir.order_signature:
        raise ArnnGenError(
            f"the {ir.site_order} order of this system differs from the one the module "
            "was built for (another scipy version?): emit it again"
        )
    write_sparse_npz(hamiltonian, handle, extra={"order": order.astype("<i8")})


def _same_bytes(first: Path, second: Path) -> bool:
    if first.stat().st_size != second.stat().st_size:
        return False
    with open(first, "rb") as a, open(second, "rb") as b:
        while True:
            block = a.read(1 << 20)
            if block != b.read(1 << 20):
                return False
            if not block:
                return True


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
    try:
        spec.loader.exec_module(module)
    except Exception as error:  # noqa: BLE001 (a user's file: any failure is bad input)
        raise ArnnGenError(
            f"cannot load {path}: {type(error).__name__}: {error}".rstrip(": ")
        ) from None
    if not hasattr(module, "Model"):
        raise ArnnGenError(f"{path} defines no Model: is it a module emitted by arnn-gen?")
    return module
