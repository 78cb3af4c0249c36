"""The driver: chains stages 1-5 and keeps every intermediate.

    systems   (system, N, J, h, seed | couplings file)  -> Hamiltonian
    derive    ()                                          -> Derivation (generic N, i)
    simplify  (system, variant, k, Derivation)            -> Reduction
    ir        (Hamiltonian, Reduction, beta, name, dtype) -> ArchitectureIR
    emit      (ArchitectureIR)                            -> source text

:func:`lower` returns all five in one named tuple, :class:`Stages`, so that tests, the CLI
and debugging can look at any stage. Writing files is :func:`arnn_gen.emit.write_module`'s.
"""

from __future__ import annotations

import keyword
import math
import shlex
import sys
from typing import NamedTuple

from . import systems
from .checks import check_spins
from .derive import Derivation, derive_conditional
from .emit import render_module
from .errors import ArnnGenError
from .ir import ArchitectureIR, build_ir
from .simplify import Reduction, reduce_conditional, resolve_variant

__all__ = [
    "Stages",
    "lower",
    "shell_word",
    "check_module_name",
    "build_system",
    "default_size",
    "MAX_H2ARNN_N",
    "emit_command",
]

#: The enumerating exact variants (H2ARNN) hold 2^N configurations: at most 20 spins.
MAX_H2ARNN_N = 20


class Stages(NamedTuple):
    hamiltonian: systems.Hamiltonian
    derivation: Derivation
    reduction: Reduction
    ir: ArchitectureIR
    source: str


def build_system(
    system: str,
    N: int | None,  # noqa: N803
    *,
    J: float = 1.0,  # noqa: N803
    h: float = 0.0,
    seed: int = 0,
    couplings: str | None = None,
    default_n: int,
    max_n: int | None = None,
    purpose: str = "",
) -> systems.Hamiltonian | systems.CurieWeiss:
    """Stage 1 from the CLI's options: a couplings file (system general), or the CW / SK
    system of N spins (``default_n`` when N is None).

    A Curie-Weiss system comes as :class:`~arnn_gen.systems.CurieWeiss` (its three numbers,
    no matrix). ``max_n`` bounds the size for the operation ``purpose`` names (e.g. exact
    enumeration); it is checked before any [N, N] array exists."""
    if N is not None:
        check_spins(N, "N")
    size = default_n if N is None else N
    if max_n is not None and couplings is None and size > max_n:
        raise ArnnGenError(
            f"{purpose or 'this operation'} is limited to N <= {max_n}, got N={size}"
        )
    if couplings is not None:
        if system != "general":
            raise ArnnGenError(f"--couplings applies to --system general, not {system}")
        hamiltonian = systems.load(couplings, max_n=max_n, purpose=purpose)
        if N is not None and N != hamiltonian.N:
            raise ArnnGenError(f"-N {N} disagrees with the {hamiltonian.N} spins of {couplings}")
        return hamiltonian
    if system == "general":
        raise ArnnGenError("--system general needs --couplings FILE (.npz or edge list)")
    if system == "cw":
        return systems.CurieWeiss(size, J, h)
    return systems.sherrington_kirkpatrick(size, J=J, h=h, seed=seed)


def default_size(system: str, variant: str) -> int:
    """DESIGN.md: 100, or 20 for the enumerating exact variants of general and sk."""
    return MAX_H2ARNN_N if (variant == "exact" and system != "cw") else 100


def _format_number(value: float) -> str:
    return repr(float(value))


def shell_word(text: str) -> str:
    """``text`` as one POSIX shell word on one line: ``shlex.quote`` for printable text,
    else bash's ``$'...'`` with every non-printable character escaped (a newline in a path
    can never end the header comment the command is written into)."""
    text = str(text)
    if text.isprintable():
        return shlex.quote(text)
    escaped = []
    for char in text:
        if char in "\\'":
            escaped.append("\\" + char)
        elif char.isprintable():
            escaped.append(char)
        elif ord(char) < 0x100:
            escaped.append(f"\\x{ord(char):02x}")
        elif ord(char) < 0x10000:
            escaped.append(f"\\u{ord(char):04x}")
        else:
            escaped.append(f"\\U{ord(char):08x}")
    return "$'" + "".join(escaped) + "'"


def check_module_name(name: str) -> str:
    """A module name given by the user: an identifier that is no keyword and shadows neither
    torch nor a standard-library module (the emitted file imports them)."""
    if not isinstance(name, str) or not name.isidentifier() or not name.isascii():
        raise ArnnGenError(f"--name must be a Python identifier (it is a module name): {name!r}")
    if keyword.iskeyword(name) or keyword.issoftkeyword(name):
        raise ArnnGenError(f"--name {name!r} is a Python keyword; choose another module name")
    if name in sys.stdlib_module_names or name in ("torch", "numpy", "arnn_gen"):
        raise ArnnGenError(f"--name {name!r} would shadow the module {name}; choose another name")
    return name


def emit_command(
    *,
    system,
    variant,
    N,
    k,
    beta,
    J,
    h,
    seed,
    couplings,
    name,  # noqa: N803
) -> str:
    """The ``arnn-gen emit`` command line that remakes a module (recorded in its header)."""
    parts = ["arnn-gen emit", f"--system {system}", f"--variant {variant}", f"-N {N}"]
    if variant == "krsb":
        parts.append(f"-k {k}")
    parts.append(f"--beta {_format_number(beta)}")
    if couplings is not None:
        parts.append(f"--couplings {shell_word(couplings)}")
    else:
        parts += [f"--J {_format_number(J)}", f"--h {_format_number(h)}"]
        if system == "sk":
            parts.append(f"--seed {seed}")
    if name is not None:
        parts.append(f"--name {name}")
    return " ".join(parts)


def lower(
    system: str,
    *,
    variant: str | None = None,
    N: int | None = None,  # noqa: N803
    k: int = 1,
    beta: float = 1.0,
    J: float = 1.0,  # noqa: N803
    h: float = 0.0,
    seed: int = 0,
    couplings: str | None = None,
    name: str | None = None,
    dtype: str | None = None,
    derivation: Derivation | None = None,
) -> Stages:
    """Run stages 1-5 for one architecture and return every intermediate."""
    variant = resolve_variant(system, variant)
    if isinstance(k, bool) or not isinstance(k, int) or k < 0:
        raise ArnnGenError(f"the RSB depth k must be an integer >= 0, got {k!r}")
    if not (isinstance(beta, int | float) and math.isfinite(beta) and beta > 0):
        raise ArnnGenError(f"beta must be finite and > 0, got {beta!r}")
    if name is not None:
        check_module_name(name)
    hamiltonian = build_system(
        system, N, J=J, h=h, seed=seed, couplings=couplings, default_n=default_size(system, variant)
    )
    if variant == "exact" and system != "cw" and hamiltonian.N > MAX_H2ARNN_N:
        raise ArnnGenError(
            f"the exact variant of {system} (H2ARNN) enumerates 2^N states and is limited to "
            f"N <= {MAX_H2ARNN_N}; got N={hamiltonian.N} (use --variant krsb or rs)"
        )

    derivation = derivation or derive_conditional()
    reduction = reduce_conditional(system, variant, k=k, derivation=derivation)
    command = emit_command(
        system=system,
        variant=variant,
        N=hamiltonian.N,
        k=k,
        beta=beta,
        J=J,
        h=h,
        seed=seed,
        couplings=couplings,
        name=name,
    )
    ir = build_ir(hamiltonian, reduction, beta=float(beta), name=name, dtype=dtype, command=command)
    return Stages(hamiltonian, derivation, reduction, ir, render_module(ir))
