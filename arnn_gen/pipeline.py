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

import numpy as np

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


#: Systems on a lattice: their size is -L [-W], never -N (N = L W, or L^3).
LATTICES = ("ea2d", "ea3d", "ising2d")
#: Systems whose couplings are held sparse (edge arrays) from generation on.
SPARSE_SYSTEMS = (*LATTICES, "rrg")
BOUNDARIES = ("periodic", "open")
DISORDERS = ("gaussian", "pm1")
FORMATS = ("auto", "npz", "edges", "gset", "sgb")
ORDERS = ("auto", "natural", "rcm")
#: The frontier networks of a general couplings file are chosen when their padded pair
#: tables, N max_i |F^+_i|, hold at most this fraction of the dense networks' pairs
#: N (N - 1) / 2: a frontier pair costs more than a dense one (gathers), docs/performance.md.
FRONTIER_FRACTION = 0.25
#: The exact network of a sparse system holds 2^|F_i| configurations per site.
MAX_FRONTIER_EXACT_WIDTH = 20
MAX_FRONTIER_EXACT_ENTRIES = 2**26
#: Parameters of a frontier replica network, 2 (2k + 3) N max_i |F^+_i| (1 GiB in float32).
MAX_FRONTIER_PARAMETERS = 2**28


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
    L: int | None = None,  # noqa: N803
    W: int | None = None,  # noqa: N803
    boundary: str = "periodic",
    disorder: str = "gaussian",
    degree: int = 3,
    fmt: str = "auto",
):
    """Stage 1 from the CLI's options: a couplings file (system general, read sparse), the
    CW / SK system of N spins (``default_n`` when N is None), a lattice of -L [-W] sites or a
    random regular graph (sparse, docs/physics.md section 7).

    A Curie-Weiss system comes as :class:`~arnn_gen.systems.CurieWeiss` (its three numbers,
    no matrix). ``max_n`` bounds the size for the operation ``purpose`` names (e.g. exact
    enumeration); it is checked before any [N, N] array exists."""
    if N is not None:
        check_spins(N, "N")
    if system in LATTICES:
        if N is not None:
            raise ArnnGenError(f"--system {system} takes its size from -L (and -W), not -N")
        size = lattice_size(system, L, W)
    else:
        if L is not None or W is not None:
            raise ArnnGenError(
                f"-L and -W apply to the lattices ({', '.join(LATTICES)}), not {system}"
            )
        size = default_n if N is None else N
    if max_n is not None and couplings is None and size > max_n:
        raise ArnnGenError(
            f"{purpose or 'this operation'} is limited to N <= {max_n}, got N={size}"
        )
    if couplings is not None:
        if system != "general":
            raise ArnnGenError(f"--couplings applies to --system general, not {system}")
        hamiltonian = systems.read_couplings(couplings, fmt, max_n=max_n or MAX_SPINS)
        if N is not None and N != hamiltonian.N:
            raise ArnnGenError(f"-N {N} disagrees with the {hamiltonian.N} spins of {couplings}")
        return hamiltonian
    if system == "general":
        raise ArnnGenError("--system general needs --couplings FILE (.npz or edge list)")
    if system == "cw":
        return systems.CurieWeiss(size, J, h)
    if system == "sk":
        return systems.sherrington_kirkpatrick(size, J=J, h=h, seed=seed)
    if system == "ea2d":
        return systems.ea2d(L, W, boundary=boundary, disorder=disorder, h=h, seed=seed)
    if system == "ea3d":
        return systems.ea3d(L, boundary=boundary, disorder=disorder, h=h, seed=seed)
    if system == "ising2d":
        return systems.ising2d(L, W, boundary=boundary, J=J, h=h)
    return systems.rrg(size, degree=degree, disorder=disorder, h=h, seed=seed)


def lattice_size(system: str, L: int | None, W: int | None) -> int:  # noqa: N803
    """N of a lattice, checked before anything is built: L W (2D) or L^3 (ea3d)."""
    if L is None:
        raise ArnnGenError(f"--system {system} needs -L")
    L = check_int("-L", L, 1, MAX_SPINS)  # noqa: N806
    if system == "ea3d":
        if W is not None:
            raise ArnnGenError("--system ea3d is an L x L x L cube: -W does not apply")
        size = L**3
    else:
        size = L * check_int("-W", L if W is None else W, 1, MAX_SPINS)
    if size > MAX_SPINS:
        raise ArnnGenError(f"the lattice has {size} spins; the limit is N <= {MAX_SPINS}")
    return size


def default_size(system: str, variant: str) -> int:
    """DESIGN.md: 100, or 20 for the enumerating exact variants of general and sk; the
    lattices' default side is in :func:`default_side`."""
    return MAX_H2ARNN_N if (variant == "exact" and system != "cw") else 100


def default_side(system: str, variant: str) -> int:
    """The default -L of a lattice: about 100 spins (10 x 10, 5^3), or a small system for
    the exact networks, whose tables grow as 2^width (4 x 4, 3^3)."""
    if variant == "exact":
        return 3 if system == "ea3d" else 4
    return 5 if system == "ea3d" else 10


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

    ``N`` is the requested size (the default of the variant when none was given; L W or L^3
    for a lattice), or None for a couplings file, whose size the file decides. :func:`resolve`
    is the only constructor the CLI and the API use; every check and error message lives
    there.
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
    L: int | None = None  # noqa: N815
    W: int | None = None  # noqa: N815
    boundary: str = "periodic"
    disorder: str = "gaussian"
    degree: int = 3
    format: str = "auto"
    order: str = "auto"
    #: A batched module of several instances: the SK seeds, or the couplings files (the
    #: first of which is ``couplings``); () for a module of one system.
    instances: tuple[int, ...] = ()
    instance_files: tuple[str, ...] = ()
    #: Curie-Weiss systems of one module: each instance's (J, h), the first of which are J
    #: and h.
    instance_scalars: tuple[tuple[float, float], ...] = ()
    #: The module's kernels: "torch", or "triton" (the replica forms: Triton kernels where
    #: they can run, the torch code elsewhere).
    backend: str = "torch"

    def is_batched(self) -> bool:
        return bool(self.instances or self.instance_files or self.instance_scalars)

    def size_limit(self) -> int:
        """The most spins this architecture can take (checked before J is built)."""
        if self.variant == "exact" and self.system in ("general", "sk"):
            return MAX_H2ARNN_N  # a file's N: the frontier's width decides (_layout)
        if self.variant == "exact" and self.system == "cw":
            return MAX_CW_TABLE_N
        if self.system in ("cw", "general") or self.system in SPARSE_SYSTEMS:
            return MAX_SPINS
        return MAX_DENSE_N

    def system_options(self) -> dict:
        """The keyword options of :func:`build_system` this request sets."""
        return {
            "J": self.J, "h": self.h, "seed": self.seed, "couplings": self.couplings,
            "L": self.L, "W": self.W, "boundary": self.boundary, "disorder": self.disorder,
            "degree": self.degree, "fmt": self.format,
        }  # fmt: skip

    def command(self, N: int, site_order: str = "") -> str:  # noqa: N803
        """The ``arnn-gen emit`` command line that remakes the module (its header records
        it); every word from the user is shell-quoted on one line (:func:`shell_word`).
        ``site_order``: the order a frontier network was emitted with."""
        parts = ["arnn-gen emit", f"--system {self.system}", f"--variant {self.variant}"]
        if self.system in LATTICES:
            parts.append(f"-L {self.L}")
            if self.system != "ea3d":
                parts.append(f"-W {self.W}")
            parts.append(f"--boundary {self.boundary}")
        elif self.couplings is None or self.N is not None:
            parts.append(f"-N {N}")
        if self.variant == "krsb":
            parts.append(f"-k {self.k}")
        parts.append(f"--beta {_format_number(self.beta)}")
        if self.instance_files:
            parts.append(f"--couplings {' '.join(shell_word(f) for f in self.instance_files)}")
            if self.format != "auto":
                parts.append(f"--format {self.format}")
        elif self.couplings is not None:
            parts.append(f"--couplings {shell_word(self.couplings)}")
            if self.format != "auto":
                parts.append(f"--format {self.format}")
        elif self.system == "rrg":
            parts.append(f"--degree {self.degree}")
        if self.system in ("ea2d", "ea3d", "rrg"):
            parts.append(f"--disorder {self.disorder}")
        if self.instance_scalars:
            for option, column in (("--J", 0), ("--h", 1)):
                numbers = ",".join(_format_number(pair[column]) for pair in self.instance_scalars)
                parts.append(f"{option} {numbers}")
        else:
            if self.system in ("cw", "sk", "ising2d"):
                parts.append(f"--J {_format_number(self.J)}")
            if self.couplings is None:
                parts.append(f"--h {_format_number(self.h)}")
        if self.instances:
            parts.append(f"--instances {instances_text(self.instances)}")
        elif self.system in ("sk", "ea2d", "ea3d", "rrg"):
            parts.append(f"--seed {self.seed}")
        if site_order:
            parts.append(f"--order {site_order}")
        if self.backend != "torch":
            parts.append(f"--backend {self.backend}")
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
    L: int | None = None,  # noqa: N803
    W: int | None = None,  # noqa: N803
    boundary: str = "periodic",
    disorder: str = "gaussian",
    degree: int = 3,
    format: str = "auto",  # noqa: A002 (the CLI's --format)
    order: str = "auto",
    instances=None,
    backend: str = "torch",
) -> Request:
    """Validate a request and fill in its defaults, once (DESIGN.md, "The request, resolved
    once"): the system and variant (DESIGN.md's table), the RSB depth, the size against the
    variant's bound, beta, the coupling scale and field, the seed, the couplings file and
    its format, the lattice and graph options, the site order, the module name and the
    dtype. ``symbolic``: a request for the formulas only (``arnn-gen derive``), which needs
    no couplings file.

    >>> request = resolve("sk", beta=1.5)
    >>> request.variant, request.k, request.N
    ('krsb', 1, 100)
    >>> resolve("sk", variant="exact").N  # H2ARNN enumerates: 20 by default
    20
    >>> resolve("cw", variant="inf", N=10**6).N
    1000000
    >>> resolve("ea2d", L=32).N  # a 32 x 32 lattice
    1024
    >>> resolve("sk", instances="0-9", N=50).instances  # one module of ten SK instances
    (0, 1, 2, 3, 4, 5, 6, 7, 8, 9)

    ``instances`` (SK seeds: "A-B", "a,b,c" or integers) or several ``couplings`` files (a
    sequence) ask for one batched module of those instances (variants rs and krsb); for
    Curie-Weiss, a sequence of values of ``J`` or ``h`` (the other one value, or as many)
    asks for one module of those systems (variants inf, rs and krsb).

    >>> resolve("cw", variant="inf", N=100, h=(0.0, 0.1)).instance_scalars
    ((1.0, 0.0), (1.0, 0.1))

    ``backend``: "torch" (the default) or "triton" (Triton kernels of the replica forms;
    the family decides whether it has them, when the IR is built).
    """
    from arnn_gen.codegen.ir import BACKENDS

    if backend not in BACKENDS:
        raise ArnnGenError(f"--backend must be one of {', '.join(BACKENDS)}, got {backend!r}")
    if _several(J) or _several(h):
        return _curie_weiss_instances(system, variant=variant, N=N, k=k, beta=beta, J=J, h=h,
                                      seed=seed, couplings=couplings, name=name, dtype=dtype,
                                      symbolic=symbolic, instances=instances,
                                      backend=backend)  # fmt: skip
    if couplings is not None and not isinstance(couplings, str):
        files = tuple(str(file) for file in couplings)
        if not files:
            raise ArnnGenError("--couplings needs a file")
        if len(files) > 1:
            if instances is not None or seed != 0:
                raise ArnnGenError("several --couplings files are the instances: give neither "
                                   "--instances nor --seed with them")  # fmt: skip
            request = resolve(system, variant=variant, N=N, k=k, beta=beta, J=J, h=h, seed=seed,
                              couplings=files[0], name=name, dtype=dtype, symbolic=symbolic,
                              format=format, order=order, L=L, W=W, backend=backend)  # fmt: skip
            _check_batched(request, len(files))
            return replace(request, instance_files=files)
        couplings = files[0]
    if instances is not None:
        if system != "sk":
            raise ArnnGenError(f"--instances takes SK seeds (--system sk), not {system}; "
                               "several instances of a general system are several --couplings "
                               "files")  # fmt: skip
        if seed != 0:
            raise ArnnGenError("give either --seed or --instances, not both")
        seeds = parse_instances(instances)
        request = resolve(system, variant=variant, N=N, k=k, beta=beta, J=J, h=h, name=name,
                          dtype=dtype, symbolic=symbolic, backend=backend)  # fmt: skip
        _check_batched(request, len(seeds))
        return replace(request, instances=seeds)
    variant = resolve_variant(system, variant)
    k = check_int("the RSB depth k", k, 0, MAX_RSB_DEPTH)
    beta = check_beta(beta)
    J, h = check_real("--J", J), check_real("--h", h)  # noqa: N806
    seed = check_int("--seed", seed, 0)
    if dtype is not None and dtype not in ("float32", "float64"):
        raise ArnnGenError(f"dtype must be float32 or float64, got {dtype!r}")
    if name is not None:
        check_module_name(name)
    choices_of = {"--boundary": (boundary, BOUNDARIES), "--disorder": (disorder, DISORDERS),
                  "--format": (format, FORMATS), "--order": (order, ORDERS)}  # fmt: skip
    for option, (value, choices) in choices_of.items():
        if value not in choices:
            raise ArnnGenError(f"{option} must be one of {', '.join(choices)}, got {value!r}")
    degree = check_int("--degree", degree, 1)
    if couplings is not None and system != "general":
        raise ArnnGenError(f"--couplings applies to --system general, not {system}")
    if format != "auto" and couplings is None:
        raise ArnnGenError("--format applies to a --couplings file")
    if couplings is None and system == "general" and not symbolic:
        raise ArnnGenError("--system general needs --couplings FILE (.npz or edge list)")
    if order != "auto" and system not in (*SPARSE_SYSTEMS, "general"):
        raise ArnnGenError(f"--order applies to sparse systems, not {system}")
    request = Request(system, variant, k, None, beta, J, h, seed, couplings, name, dtype,
                      None, None, boundary, disorder, degree, format, order,
                      backend=backend)  # fmt: skip
    if system in LATTICES:
        if N is not None:
            raise ArnnGenError(f"--system {system} takes its size from -L (and -W), not -N")
        L = default_side(system, variant) if L is None else L  # noqa: N806
        size = lattice_size(system, L, W)
        if system != "ea3d":
            W = L if W is None else W  # noqa: N806
        return replace(request, N=size, L=int(L), W=None if W is None else int(W))
    if L is not None or W is not None:
        raise ArnnGenError(f"-L and -W apply to the lattices ({', '.join(LATTICES)}), not {system}")
    if couplings is not None:
        if N is not None:
            check_spins(N, "N")
        return replace(request, N=N)
    size = default_size(system, variant) if N is None else check_spins(N, "N")
    if size > request.size_limit():
        raise ArnnGenError(_too_large(request, size))
    return replace(request, N=size)


def _several(value) -> bool:
    """Whether an option's value is a sequence of numbers (one module of several systems)."""
    return isinstance(value, tuple | list)


def _curie_weiss_instances(system, *, J, h, seed, couplings, instances, **options) -> Request:  # noqa: N803
    """The request of one module of several Curie-Weiss systems: J and h each one number or
    K of them (checked before anything is built)."""
    from arnn_gen.systems.instances import MAX_INSTANCES

    if system != "cw":
        raise ArnnGenError(f"several values of --J or --h make one module of several "
                           f"Curie-Weiss systems (--system cw), not {system}")  # fmt: skip
    if instances is not None or couplings is not None or seed != 0:
        raise ArnnGenError("several values of --J or --h are the instances: give neither "
                           "--instances, --couplings nor --seed with them")  # fmt: skip
    columns = {}
    for option, value in (("--J", J), ("--h", h)):
        numbers = tuple(value) if _several(value) else (value,)
        if not numbers or len(numbers) > MAX_INSTANCES:
            raise ArnnGenError(f"{option} takes 1 to {MAX_INSTANCES} numbers, got {len(numbers)}")
        columns[option] = tuple(check_real(option, number) for number in numbers)
    count = max(len(numbers) for numbers in columns.values())
    for option, numbers in columns.items():
        if len(numbers) not in (1, count):
            raise ArnnGenError(f"{option} gives {len(numbers)} numbers for {count} instances: "
                               "give one for all, or one per instance")  # fmt: skip
        columns[option] = numbers * count if len(numbers) == 1 else numbers
    pairs = tuple(zip(columns["--J"], columns["--h"], strict=True))
    request = resolve(system, J=pairs[0][0], h=pairs[0][1], **options)
    if request.variant == "exact":
        raise ArnnGenError("a module of several Curie-Weiss systems takes the variants inf, rs "
                           "and krsb (CW_inf, SK_RS, SK_kRSB), not exact")  # fmt: skip
    _check_batched(request, count)
    return replace(request, instance_scalars=pairs)


def instances_text(seeds) -> str:
    """Seeds as ``--instances`` takes them: "A-B" for a run of consecutive seeds, else
    comma-separated."""
    seeds = list(seeds)
    if len(seeds) > 1 and seeds == list(range(seeds[0], seeds[0] + len(seeds))):
        return f"{seeds[0]}-{seeds[-1]}"
    return ",".join(str(seed) for seed in seeds)


def parse_instances(text) -> tuple[int, ...]:
    """SK seeds from "A-B" (both included), "a,b,c" or a sequence of integers: distinct,
    in [0, 2^64), at most MAX_INSTANCES of them (checked before any system is built).

    >>> parse_instances("3-5"), parse_instances("7,2")
    ((3, 4, 5), (7, 2))
    """
    from arnn_gen.systems.instances import MAX_INSTANCES

    bad = f"--instances takes seeds as A-B or a,b,c; got {text!r}"
    if isinstance(text, str):
        text = text.strip()
        if "-" in text and "," not in text:
            first, _, last = text.partition("-")
            if not (first.strip().isdigit() and last.strip().isdigit()):
                raise ArnnGenError(bad)
            first, last = int(first), int(last)
            if last < first:
                raise ArnnGenError(f"--instances {text}: the range is empty")
            if last - first >= MAX_INSTANCES:
                raise ArnnGenError(f"--instances {text}: at most {MAX_INSTANCES} instances")
            seeds = tuple(range(first, last + 1))
        else:
            items = [item.strip() for item in text.split(",")]
            if not all(item.isdigit() for item in items):
                raise ArnnGenError(bad)
            seeds = tuple(int(item) for item in items)
    else:
        try:
            seeds = tuple(int(check_int("--instances", seed, 0)) for seed in text)
        except TypeError:
            raise ArnnGenError(bad) from None
    if not seeds or len(set(seeds)) != len(seeds):
        raise ArnnGenError(f"--instances needs distinct seeds, got {text!r}")
    if len(seeds) > MAX_INSTANCES:
        raise ArnnGenError(f"--instances: at most {MAX_INSTANCES} instances, got {len(seeds)}")
    for seed in seeds:
        check_int("--instances", seed, 0, 2**64 - 1)
    return seeds


def _check_batched(request: Request, count: int) -> None:
    """A batched module holds the replica forms of dense systems: K [N, N] couplings and K
    times the parameters, bounded before anything is built."""
    variants = ("rs", "krsb", "inf") if request.system == "cw" else ("rs", "krsb")
    if request.variant not in variants:
        raise ArnnGenError(f"a module of several instances takes the variants rs and krsb "
                           f"(SK_RS, SK_kRSB) and, for Curie-Weiss, inf (CW_inf); not "
                           f"{request.variant}")  # fmt: skip
    if request.N is not None and count * request.N**2 > MAX_DENSE_N**2:
        raise ArnnGenError(f"{count} instances of N = {request.N} exceed {MAX_DENSE_N**2} "
                           "couplings in all; emit fewer instances per module")  # fmt: skip


def _instance_stack(request: Request):
    """The systems of a batched request, checked against one another."""
    from arnn_gen.systems.instances import InstanceStack

    if request.instance_scalars:  # Curie-Weiss: CW_inf embeds the numbers, the others read J
        members = [systems.CurieWeiss(request.N, J, h) for J, h in request.instance_scalars]
        if request.variant != "inf":
            members = [member.dense() for member in members]
        return InstanceStack.of(members, range(len(members)))
    if request.instances:
        members = [systems.sherrington_kirkpatrick(request.N, J=request.J, h=request.h, seed=seed)
                   for seed in request.instances]  # fmt: skip
        return InstanceStack.of(members, request.instances)
    members = []
    for file in request.instance_files:
        member = systems.read_couplings(file, request.format, max_n=MAX_DENSE_N)
        if members and member.N != members[0].N:
            raise ArnnGenError(f"the couplings files hold different sizes: {members[0].N} in "
                               f"{request.instance_files[0]}, {member.N} in {file}")  # fmt: skip
        if request.N is not None and member.N != request.N:
            raise ArnnGenError(f"-N {request.N} disagrees with the {member.N} spins of {file}")
        if len(request.instance_files) * member.N**2 > MAX_DENSE_N**2:
            raise ArnnGenError(f"{len(request.instance_files)} instances of N = {member.N} "
                               f"exceed {MAX_DENSE_N**2} couplings in all")  # fmt: skip
        members.append(member.to_dense())
    return InstanceStack.of(members, range(len(members)))


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
    if request.is_batched():  # one module of several instances: the dense replica forms
        stack = _instance_stack(request)
        derivation = derivation or derive_conditional()
        reduction = reduce_conditional(request.system, request.variant, k=request.k,
                                       derivation=derivation)  # fmt: skip
        ir = build_ir(stack, reduction, beta=request.beta, name=request.name,
                      dtype=request.dtype, command=request.command(stack.N),
                      backend=request.backend)  # fmt: skip
        return Stages(stack, derivation, reduction, ir, render_module(ir))
    limit = MAX_SPINS if request.couplings is not None else request.size_limit()
    hamiltonian = build_system(
        request.system, None if request.system in LATTICES else request.N,
        default_n=default_size(request.system, request.variant),
        max_n=limit, purpose=_purpose(request), **request.system_options(),
    )  # fmt: skip
    layout = _layout(request, hamiltonian)
    hamiltonian = layout.system
    derivation = derivation or derive_conditional()
    reduction = reduce_conditional(request.system, request.variant, k=request.k,
                                   derivation=derivation, layout=layout.layout)  # fmt: skip
    ir = build_ir(hamiltonian, reduction, beta=request.beta, name=request.name,
                  dtype=request.dtype, command=request.command(hamiltonian.N, layout.site_order),
                  site_order=layout.site_order, frontier_width=layout.width,
                  backend=request.backend)  # fmt: skip
    return Stages(hamiltonian, derivation, reduction, ir, render_module(ir))


class Layout(NamedTuple):
    """How a system's network is laid out (:func:`_layout`)."""

    system: object  # the Hamiltonian the network is built for (sparse, or made dense)
    layout: str  # "dense" or "frontier"
    site_order: str = ""  # a frontier network's order: "natural" or "rcm"
    width: int = 0  # its frontier width max_i |F_i|


def _layout(request: Request, hamiltonian) -> Layout:
    """The layout of the network: the frontier networks of a sparse system, in the requested
    site order ("auto": row-major on the lattices, else the order of natural and reverse
    Cuthill-McKee with the smaller frontier, docs/physics.md section 7); the dense ones
    otherwise. A couplings file is read sparse and takes the frontier replica networks when
    their padded pair tables N max_i |F^+_i| hold at most FRONTIER_FRACTION of the dense
    pairs N (N - 1) / 2, else it becomes dense; its exact variant is H2ARNN up to N = 20, the
    frontier exact network beyond, up to width MAX_FRONTIER_EXACT_WIDTH and
    MAX_FRONTIER_EXACT_ENTRIES configurations. Sizes are checked here, before the module
    allocates its tables."""
    if not isinstance(hamiltonian, systems.SparseHamiltonian):
        return Layout(hamiltonian, "dense")
    method, order, frontier = _site_order(request, hamiltonian)
    N = hamiltonian.N  # noqa: N806
    if request.variant == "exact":
        if request.system == "general" and N <= MAX_H2ARNN_N:
            return Layout(hamiltonian.to_dense(), "dense")
        entries = int(np.sum(2.0 ** frontier.sizes()))
        if frontier.width > MAX_FRONTIER_EXACT_WIDTH or entries > MAX_FRONTIER_EXACT_ENTRIES:
            raise ArnnGenError(
                f"the exact variant enumerates 2^N states (H2ARNN, N <= {MAX_H2ARNN_N}) or "
                f"the 2^|F_i| states of each frontier (width <= {MAX_FRONTIER_EXACT_WIDTH}, "
                f"sum_i 2^|F_i| <= {MAX_FRONTIER_EXACT_ENTRIES}); got N = {N}, width "
                f"{frontier.width}, {entries} states in the {method} order "
                "(use --variant krsb or rs; arnn-gen exact for the reference)"
            )
    else:
        padded = N * max(1, int(systems.frontier_plus_sizes(hamiltonian, order).max(initial=0)))
        if request.system == "general" and padded > FRONTIER_FRACTION * N * (N - 1) / 2:
            return Layout(hamiltonian.to_dense(), "dense")
        numbers = 2 * (2 * request.k + 3) * padded
        if numbers > MAX_FRONTIER_PARAMETERS:
            raise ArnnGenError(
                f"the frontier network of N = {N} sites (width {frontier.width} in the "
                f"{method} order) would hold {numbers} parameters; the limit is "
                f"{MAX_FRONTIER_PARAMETERS}: use a narrower order or a smaller system"
            )
    return Layout(hamiltonian, "frontier", method, frontier.width)


def _site_order(request: Request, hamiltonian):
    """(method, order, Frontier) of the site order a frontier network takes: the requested
    one, or with "auto" systems.site_order's choice (row-major on a lattice, else the
    narrower of natural and reverse Cuthill-McKee)."""
    if request.order != "auto":
        method = request.order
        order = systems.site_order(hamiltonian, method)
    elif request.system in LATTICES:
        method = "natural"
        order = systems.site_order(hamiltonian, method)
    else:
        order = systems.site_order(hamiltonian, "auto")
        method = "natural" if bool((order == np.arange(hamiltonian.N)).all()) else "rcm"
    return method, order, systems.frontier(hamiltonian, order)
