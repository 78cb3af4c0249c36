"""The driver: chains stages 1-5 and keeps every intermediate.

    systems   (system, N, J, h, seed | couplings file)  -> Hamiltonian
    derive    ()                                          -> Derivation (generic N, i)
    simplify  (system, variant, k, Derivation)            -> Reduction
    ir        (Hamiltonian, Reduction, beta, name, dtype) -> ArchitectureIR
    emit      (ArchitectureIR)                            -> source text

:func:`lower` returns all five in one named tuple, :class:`Stages`, so that tests, the CLI
and debugging can look at any stage. Writing files is :func:`arnn_gen.codegen.emit.write_module`'s.
"""

from __future__ import annotations

import keyword
import shlex
import sys
from dataclasses import dataclass, replace
from typing import NamedTuple

from arnn_gen import systems
from arnn_gen.checks import (
    MAX_CW_TABLE_N,
    MAX_DENSE_N,
    MAX_SPINS,
    check_beta,
    check_int,
    check_real,
    check_spins,
)
from arnn_gen.codegen.emit import render_module
from arnn_gen.codegen.families import build_ir
from arnn_gen.codegen.ir import ArchitectureIR
from arnn_gen.errors import ArnnGenError
from arnn_gen.symbolic.derive import Derivation, derive_conditional
from arnn_gen.symbolic.simplify import (
    MAX_RSB_DEPTH,
    Reduction,
    reduce_conditional,
    resolve_variant,
)

__all__ = [
    "Request",
    "resolve",
    "Stages",
    "lower",
    "build_system",
    "default_size",
    "shell_word",
    "check_module_name",
    "MAX_H2ARNN_N",
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


def _purpose(request: Request) -> str:
    if request.variant == "exact" and request.system != "cw":
        return "the exact variant (H2ARNN, 2^N states)"
    return "a dense system"


def _format_number(value: float) -> str:
    return repr(float(value))


def shell_word(text: str) -> str:
    """``text`` as one POSIX shell word on one line: ``shlex.quote`` for printable text,
    else bash's ``$'...'`` with every non-printable character escaped (a newline in a path
    can never end the header comment the command is written into).

    >>> shell_word("couplings of run 1.npz")
    "'couplings of run 1.npz'"
    >>> print(shell_word("x\\n#.npz"))
    $'x\\x0a#.npz'
    """
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


@dataclass(frozen=True)
class Request:
    """One architecture to build, validated: what ``arnn-gen emit`` (and ``derive``) asks.

    ``N`` is the requested size (the default of the variant when none was given), or None
    for a couplings file, whose size the file decides. :func:`resolve` is the only
    constructor the CLI and the API use; every check and error message lives there.
    """

    system: str
    variant: str
    k: int
    N: int | None  # noqa: N815
    beta: float = 1.0
    J: float = 1.0  # noqa: N815
    h: float = 0.0
    seed: int = 0
    couplings: str | None = None
    name: str | None = None
    dtype: str | None = None

    def size_limit(self) -> int:
        """The most spins this architecture can take (checked before J is built)."""
        if self.variant == "exact" and self.system != "cw":
            return MAX_H2ARNN_N
        if self.variant == "exact":
            return MAX_CW_TABLE_N
        return MAX_SPINS if self.system == "cw" else MAX_DENSE_N

    def command(self, N: int) -> str:  # noqa: N803
        """The ``arnn-gen emit`` command line that remakes the module (its header records
        it); every word from the user is shell-quoted on one line (:func:`shell_word`)."""
        parts = ["arnn-gen emit", f"--system {self.system}", f"--variant {self.variant}", f"-N {N}"]
        if self.variant == "krsb":
            parts.append(f"-k {self.k}")
        parts.append(f"--beta {_format_number(self.beta)}")
        if self.couplings is not None:
            parts.append(f"--couplings {shell_word(self.couplings)}")
        else:
            parts += [f"--J {_format_number(self.J)}", f"--h {_format_number(self.h)}"]
            if self.system == "sk":
                parts.append(f"--seed {self.seed}")
        if self.name is not None:
            parts.append(f"--name {self.name}")
        return " ".join(parts)


def resolve(
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
    symbolic: bool = False,
) -> Request:
    """Validate a request and fill in its defaults, once (DESIGN.md, "The request, resolved
    once"): the system and variant (DESIGN.md's table), the RSB depth, the size against the
    variant's bound, beta, the coupling scale and field, the seed, the couplings file, the
    module name and the dtype. ``symbolic``: a request for the formulas only (``arnn-gen
    derive``), which needs no couplings file.

    >>> request = resolve("sk", beta=1.5)
    >>> request.variant, request.k, request.N
    ('krsb', 1, 100)
    >>> resolve("sk", variant="exact").N  # H2ARNN enumerates: 20 by default
    20
    >>> resolve("cw", variant="inf", N=10**6).N
    1000000
    """
    variant = resolve_variant(system, variant)
    k = check_int("the RSB depth k", k, 0, MAX_RSB_DEPTH)
    beta = check_beta(beta)
    J, h = check_real("--J", J), check_real("--h", h)  # noqa: N806
    seed = check_int("--seed", seed, 0)
    if dtype is not None and dtype not in ("float32", "float64"):
        raise ArnnGenError(f"dtype must be float32 or float64, got {dtype!r}")
    if name is not None:
        check_module_name(name)
    if couplings is not None and system != "general":
        raise ArnnGenError(f"--couplings applies to --system general, not {system}")
    if couplings is None and system == "general" and not symbolic:
        raise ArnnGenError("--system general needs --couplings FILE (.npz or edge list)")
    request = Request(system, variant, k, None, beta, J, h, seed, couplings, name, dtype)
    if couplings is not None:
        if N is not None:
            check_spins(N, "N")
        return replace(request, N=N)
    size = default_size(system, variant) if N is None else check_spins(N, "N")
    if size > request.size_limit():
        raise ArnnGenError(_too_large(request, size))
    return replace(request, N=size)


def _too_large(request: Request, N: int) -> str:  # noqa: N803
    limit = request.size_limit()
    if request.variant == "exact" and request.system != "cw":
        return (
            f"the exact variant of {request.system} (H2ARNN) enumerates 2^N states and is "
            f"limited to N <= {limit}; got N={N} (use --variant krsb or rs)"
        )
    if request.variant == "exact":
        return (
            f"CW_N tabulates [N, 2N + 1] logits and is limited to N <= {limit}; got N={N} "
            "(use --variant inf, CW_inf, for larger N)"
        )
    return (
        f"the couplings of {request.system} of N = {N} spins need {8 * N * N / 1024**3:.3g} GiB "
        f"(J is [N, N] float64); the limit is N <= {limit}"
    )


def lower(
    system: str | Request,
    *,
    derivation: Derivation | None = None,
    **options,
) -> Stages:
    """Run stages 1-5 for one architecture and return every intermediate. ``system`` is a
    :class:`Request`, or a system name with the options of :func:`resolve`."""
    request = system if isinstance(system, Request) else resolve(system, **options)
    if isinstance(system, Request) and options:
        raise ArnnGenError(f"lower() takes a Request or options, not both: {sorted(options)}")
    hamiltonian = build_system(
        request.system, request.N, J=request.J, h=request.h, seed=request.seed,
        couplings=request.couplings, default_n=default_size(request.system, request.variant),
        max_n=request.size_limit(), purpose=_purpose(request),
    )  # fmt: skip
    derivation = derivation or derive_conditional()
    reduction = reduce_conditional(request.system, request.variant, k=request.k,
                                   derivation=derivation)  # fmt: skip
    ir = build_ir(hamiltonian, reduction, beta=request.beta, name=request.name,
                  dtype=request.dtype, command=request.command(hamiltonian.N))  # fmt: skip
    return Stages(hamiltonian, derivation, reduction, ir, render_module(ir))
