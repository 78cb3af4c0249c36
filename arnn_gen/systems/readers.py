"""Coupling files read as sparse systems, without ever building the ``[N, N]`` matrix.

:func:`read_couplings` returns a :class:`~arnn_gen.systems.sparse.SparseHamiltonian` of H(x) =
-sum_{i<j} J_ij x_i x_j - sum_i h_i x_i (docs/physics.md section 1). Formats:

``npz``
    a sparse ``.npz`` (:meth:`SparseHamiltonian.save
    <arnn_gen.systems.sparse.SparseHamiltonian.save>`, array ``edges``) or a dense one
    (:func:`arnn_gen.systems.dense.save`, array ``J``, at most
    :data:`~arnn_gen.checks.MAX_DENSE_N` spins); kind and provenance are the file's.
``edges``
    the text edge list of :mod:`arnn_gen.systems.dense`: ``N n`` (optional), ``i j J_ij``
    (0-based), ``h i value``.
``gset``
    a MaxCut graph (the G-set): a first line ``n m``, then exactly m lines ``i j w`` with
    1-based nodes; read as the Ising system J_ij = -w_ij, h = 0 (a maximum cut is a ground
    state).
``sgb``
    a spin-glass instance: ``i h_i`` lines (field) and ``i j J_ij`` lines (coupling), 0-based,
    in the sign convention above. N is 1 + the largest index, or the header comment
    ``# N = n`` (also ``# N n`` or ``# N: n``, any case) before the first data line.

In the text formats, blank lines and everything after ``#`` are ignored; a pair given twice
with the same value is one edge, and a zero coupling (also ``i i 0``) is no edge. Text files
read as ``"general"`` systems.

``auto`` chooses by these rules, in order: a ``.npz`` suffix or a zip archive -> ``npz``; a
data line starting with ``N`` or ``h`` -> ``edges``; a ``# N = n`` header -> ``sgb``; a first
data line of two integers ``n m`` followed by exactly m lines of three fields -> ``gset`` (by
another number of lines: ambiguous, an error); every data line with three fields -> ``edges``
(it reads the same as ``sgb``); lines of two or three fields after ``#`` header lines ->
``sgb`` (without a header, ``edges``, where a two-field line is an error); anything else is
an error that asks for the format.

Every bad input is one :class:`~arnn_gen.errors.ArnnGenError` line naming the file and, for
text, the line: malformed lines, wrong counts, indices out of range, self-couplings, a pair or a
field given twice with different values, and a number of spins above ``max_n`` (checked before
anything of that size is allocated).
"""

from __future__ import annotations

import os
import re
import zipfile
from array import array
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from arnn_gen.checks import MAX_DENSE_N, MAX_SPINS, check_int
from arnn_gen.errors import ArnnGenError
from arnn_gen.systems import dense
from arnn_gen.systems.sparse import MAX_EDGES, SparseHamiltonian, load_sparse_npz

__all__ = ["FORMATS", "read_couplings", "detect_format"]

FORMATS: tuple[str, ...] = ("auto", "npz", "edges", "gset", "sgb")
"""The ``format`` values of :func:`read_couplings`."""

PathLike = str | os.PathLike[str]

_ZIP_MAGIC = b"PK\x03\x04"
_SGB_HEADER = re.compile(r"^#\s*[Nn]\s*[=:]?\s*(\d+)\s*$")
_NAME_THE_FORMAT = "name the format (--format npz, edges, gset or sgb)"


def read_couplings(
    path: PathLike, format: str = "auto", *, max_n: int = MAX_SPINS
) -> SparseHamiltonian:
    """The system in the couplings file ``path`` (see the module docstring for the formats).

    Args:
        path: the file.
        format: one of :data:`FORMATS`; ``"auto"`` chooses by the module docstring's rules.
        max_n: the most spins accepted (at most :data:`~arnn_gen.checks.MAX_SPINS`); a larger
            system is refused before its arrays are allocated.
    """
    path = Path(path)
    if not isinstance(format, str) or format not in FORMATS:
        raise ArnnGenError(f"the couplings format must be one of {FORMATS}, got {format!r}")
    limit = min(check_int("max_n", max_n, 1), MAX_SPINS)
    if not path.exists():
        raise ArnnGenError(f"couplings file {path} does not exist")
    if path.is_dir():
        raise ArnnGenError(f"couplings file {path} is a directory")
    if format == "auto" and _looks_like_zip(path):
        format = "npz"
    if format == "npz":
        return _read_npz(path, limit)
    lines = _read_lines(path)
    if format == "auto":
        format = _sniff(path, lines)
    parse = {"edges": _parse_edges, "gset": _parse_gset, "sgb": _parse_sgb}[format]
    return parse(path, lines, limit).system(path)


def detect_format(path: PathLike) -> str:
    """The format ``"auto"`` reads ``path`` as (``"npz"``, ``"edges"``, ``"gset"`` or ``"sgb"``)."""
    path = Path(path)
    if not path.is_file():
        raise ArnnGenError(f"couplings file {path} does not exist or is not a file")
    if _looks_like_zip(path):
        return "npz"
    return _sniff(path, _read_lines(path))


# --------------------------------------------------------------------------------------
# npz and format detection
# --------------------------------------------------------------------------------------


def _looks_like_zip(path: Path) -> bool:
    if path.suffix.lower() == ".npz":
        return True
    try:
        with open(path, "rb") as handle:
            return handle.read(4) == _ZIP_MAGIC
    except OSError as err:
        raise ArnnGenError(f"cannot read couplings file {path}: {err}") from None


def _read_npz(path: Path, limit: int) -> SparseHamiltonian:
    try:
        with zipfile.ZipFile(path) as archive:
            names = set(archive.namelist())
    except (OSError, zipfile.BadZipFile) as err:
        raise ArnnGenError(f"cannot read couplings file {path}: {err}") from None
    if "edges.npy" in names or "format.npy" in names:
        return load_sparse_npz(path, max_n=limit)
    if "J.npy" in names:
        hamiltonian = dense.load(path, max_n=min(limit, MAX_DENSE_N))
        return SparseHamiltonian.from_dense(hamiltonian)
    raise ArnnGenError(
        f"couplings file {path} holds neither a sparse system (array 'edges') "
        f"nor a dense one (array 'J')"
    )


#: The largest text couplings file read: MAX_EDGES lines of up to 64 bytes ('i j J_ij'),
#: checked from the file's size before it is read (the lines are held while parsed).
MAX_TEXT_BYTES = 64 * MAX_EDGES


def _read_lines(path: Path) -> list[str]:
    try:
        size = path.stat().st_size
        if size > MAX_TEXT_BYTES:
            raise ArnnGenError(
                f"couplings file {path} has {size} bytes; a text file is limited to "
                f"{MAX_TEXT_BYTES} (MAX_EDGES lines); use a sparse .npz"
            )
        return path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as err:
        raise ArnnGenError(f"cannot read couplings file {path}: {err}") from None


def _data(raw: str) -> str:
    """A line without its ``#`` comment and surrounding blanks."""
    return raw.split("#", 1)[0].strip()


def _is_int(token: str) -> bool:
    try:
        int(token)
    except ValueError:
        return False
    return True


def _sniff(path: Path, lines: list[str]) -> str:
    """The text format of ``lines`` by the module docstring's rules."""
    first: list[str] | None = None
    header_n = False
    header = False  # comment lines before the first data line: the sgb format's header
    counts = {2: 0, 3: 0}  # data lines by number of fields, after the first
    other = 0
    for raw in lines:
        content = _data(raw)
        if not content:
            if first is None and _SGB_HEADER.match(raw.strip()):
                header_n = True
            header = header or (first is None and raw.strip().startswith("#"))
            continue
        tokens = content.split()
        if tokens[0] in ("N", "h"):
            return "edges"
        if first is None:
            first = tokens
        elif len(tokens) in counts:
            counts[len(tokens)] += 1
        else:
            other += 1
    if first is None:
        raise ArnnGenError(f"couplings file {path} has no data lines")
    if header_n:
        return "sgb"
    if len(first) == 2 and all(_is_int(token) for token in first) and counts[2] == other == 0:
        declared = int(first[1])
        if declared == counts[3]:
            return "gset"
        raise ArnnGenError(
            f"couplings file {path} reads as a gset file declaring m = {declared} edges but "
            f"with {counts[3]} edge lines, or as an sgb file; {_NAME_THE_FORMAT}"
        )
    if other == 0 and len(first) in (2, 3):
        # i h_i lines belong to the spin-glass format, which opens with # header lines;
        # without one, the file is an edge list (and a two-field line there is an error)
        return "sgb" if header and (counts[2] or len(first) == 2) else "edges"
    raise ArnnGenError(f"cannot tell the format of couplings file {path}; {_NAME_THE_FORMAT}")


# --------------------------------------------------------------------------------------
# Text formats
# --------------------------------------------------------------------------------------


@dataclass
class _Parsed:
    """What a text file defines, in file order: couplings and fields with their lines."""

    declared_n: int | None = None
    declared_line: int = 0
    edge_first: array = field(default_factory=lambda: array("q"))
    edge_second: array = field(default_factory=lambda: array("q"))
    edge_value: array = field(default_factory=lambda: array("d"))
    edge_line: array = field(default_factory=lambda: array("q"))
    field_index: array = field(default_factory=lambda: array("q"))
    field_value: array = field(default_factory=lambda: array("d"))
    field_line: array = field(default_factory=lambda: array("q"))

    def declare(self, where: str, n_spins: int, line_no: int, limit: int) -> None:
        if n_spins < 1:
            raise ArnnGenError(f"{where}: the number of spins must be >= 1, got {n_spins}")
        if n_spins > limit:
            raise ArnnGenError(f"{where}: N = {n_spins} spins exceeds the limit N <= {limit}")
        if self.declared_n is not None and n_spins != self.declared_n:
            raise ArnnGenError(
                f"{where}: N {n_spins} conflicts with N {self.declared_n} "
                f"on line {self.declared_line}"
            )
        self.declared_n, self.declared_line = n_spins, line_no

    def add_coupling(
        self, where: str, i: int, j: int, value: float, line_no: int, limit: int, hint: str = ""
    ) -> None:
        _check_value(where, value)
        for index in (i, j):
            _check_index(where, index, limit)
        if i == j:
            if value != 0.0:
                raise ArnnGenError(
                    f"{where}: self-coupling J_{i},{i} = {value!r} is not allowed "
                    f"(the diagonal of J must be zero{hint})"
                )
            return
        self.edge_first.append(i)
        self.edge_second.append(j)
        self.edge_value.append(value)
        self.edge_line.append(line_no)

    def add_field(self, where: str, i: int, value: float, line_no: int, limit: int) -> None:
        _check_value(where, value)
        _check_index(where, i, limit)
        self.field_index.append(i)
        self.field_value.append(value)
        self.field_line.append(line_no)

    def system(self, path: Path) -> SparseHamiltonian:
        """The SparseHamiltonian, after the checks that need the whole file."""
        first = np.frombuffer(self.edge_first, dtype=np.int64)
        second = np.frombuffer(self.edge_second, dtype=np.int64)
        values = np.frombuffer(self.edge_value, dtype=np.float64)
        edge_lines = np.frombuffer(self.edge_line, dtype=np.int64)
        fields_at = np.frombuffer(self.field_index, dtype=np.int64)
        field_values = np.frombuffer(self.field_value, dtype=np.float64)
        field_lines = np.frombuffer(self.field_line, dtype=np.int64)
        if first.shape[0] > MAX_EDGES:
            raise ArnnGenError(
                f"couplings file {path} has {first.shape[0]} couplings; the limit is {MAX_EDGES}"
            )
        largest = np.concatenate([np.maximum(first, second), fields_at])  # by line
        lines = np.concatenate([edge_lines, field_lines])
        if self.declared_n is None:
            if largest.size == 0:
                raise ArnnGenError(f"couplings file {path} defines no spins")
            n_spins = 1 + int(largest.max())  # <= limit: every index was checked
        else:
            n_spins = self.declared_n
            outside = np.flatnonzero(largest >= n_spins)
            if outside.size:
                row = outside[np.argmin(lines[outside])]
                raise ArnnGenError(
                    f"{path} line {int(lines[row])}: spin index {int(largest[row])} is out of "
                    f"range for N={n_spins} (declared on line {self.declared_line})"
                )
        low, high = np.minimum(first, second), np.maximum(first, second)
        clash = _first_conflict(low * n_spins + high, values)
        if clash is not None:
            row, earlier = clash
            raise ArnnGenError(
                f"{path} line {int(edge_lines[row])}: coupling J_{int(low[row])},{int(high[row])}"
                f" = {float(values[row])!r} conflicts with {float(values[earlier])!r} on line "
                f"{int(edge_lines[earlier])}"
            )
        clash = _first_conflict(fields_at, field_values)
        if clash is not None:
            row, earlier = clash
            raise ArnnGenError(
                f"{path} line {int(field_lines[row])}: field h_{int(fields_at[row])} = "
                f"{float(field_values[row])!r} conflicts with {float(field_values[earlier])!r} "
                f"on line {int(field_lines[earlier])}"
            )
        fields = np.zeros(n_spins)  # [N]
        fields[fields_at] = field_values
        edges = np.stack([low, high], axis=1)  # [E, 2]
        try:
            return SparseHamiltonian(n_spins, edges, values.copy(), fields)
        except ArnnGenError as err:
            raise ArnnGenError(f"couplings file {path}: {err}") from None


def _check_value(where: str, value: float) -> None:
    if value != value or value in (float("inf"), float("-inf")):
        raise ArnnGenError(f"{where}: values must be finite, got {value!r}")


def _check_index(where: str, index: int, limit: int) -> None:
    if index < 0:
        raise ArnnGenError(f"{where}: spin indices are 0-based and >= 0, got {index}")
    if index >= limit:
        raise ArnnGenError(
            f"{where}: spin index {index} needs N > {index} spins; the limit is N <= {limit}"
        )


def _first_conflict(keys: np.ndarray, values: np.ndarray) -> tuple[int, int] | None:
    """The first row (in file order) whose value differs from an earlier row with the same
    key, and that earlier row (the key's first); None when repeats agree."""
    if keys.size < 2:
        return None
    order = np.argsort(keys, kind="stable")  # by key, then file order
    sorted_keys, sorted_values = keys[order], values[order]
    starts = np.flatnonzero(np.r_[True, sorted_keys[1:] != sorted_keys[:-1]])
    group_first = np.repeat(starts, np.diff(np.r_[starts, sorted_keys.size]))
    bad = np.flatnonzero(sorted_values != sorted_values[group_first])
    if bad.size == 0:
        return None
    rows = order[bad]
    pick = int(np.argmin(rows))
    return int(rows[pick]), int(order[group_first[bad[pick]]])


_EDGES_SYNTAX = "expected 'i j J_ij', 'h i value' or 'N n'"


def _parse_edges(path: Path, lines: list[str], limit: int) -> _Parsed:
    parsed = _Parsed()
    for line_no, raw in enumerate(lines, start=1):
        content = _data(raw)
        if not content:
            continue
        where = f"{path} line {line_no}"
        tokens = content.split()
        try:
            if tokens[0] == "N" and len(tokens) == 2:
                parsed.declare(where, int(tokens[1]), line_no, limit)
            elif tokens[0] == "h" and len(tokens) == 3:
                parsed.add_field(where, int(tokens[1]), float(tokens[2]), line_no, limit)
            elif len(tokens) == 3:
                i, j, value = int(tokens[0]), int(tokens[1]), float(tokens[2])
                parsed.add_coupling(where, i, j, value, line_no, limit)
            else:
                raise ArnnGenError(f"{where}: {_EDGES_SYNTAX}, got {content!r}")
        except ArnnGenError:
            raise
        except ValueError:  # int() or float() of a malformed token
            raise ArnnGenError(f"{where}: {_EDGES_SYNTAX}, got {content!r}") from None
    return parsed


def _parse_sgb(path: Path, lines: list[str], limit: int) -> _Parsed:
    parsed = _Parsed()
    in_header = True
    for line_no, raw in enumerate(lines, start=1):
        content = _data(raw)
        where = f"{path} line {line_no}"
        if not content:
            found = _SGB_HEADER.match(raw.strip()) if in_header else None
            if found:
                parsed.declare(where, int(found.group(1)), line_no, limit)
            continue
        in_header = False
        tokens = content.split()
        try:
            if len(tokens) == 2:
                parsed.add_field(where, int(tokens[0]), float(tokens[1]), line_no, limit)
            elif len(tokens) == 3:
                i, j, value = int(tokens[0]), int(tokens[1]), float(tokens[2])
                hint = "; a field is written 'i h_i'"
                parsed.add_coupling(where, i, j, value, line_no, limit, hint)
            else:
                raise ArnnGenError(f"{where}: expected 'i h_i' or 'i j J_ij', got {content!r}")
        except ArnnGenError:
            raise
        except ValueError:  # int() or float() of a malformed token
            raise ArnnGenError(
                f"{where}: expected 'i h_i' or 'i j J_ij', got {content!r}"
            ) from None
    return parsed


def _parse_gset(path: Path, lines: list[str], limit: int) -> _Parsed:
    parsed = _Parsed()
    declared_m: int | None = None
    header_line = 0
    count = 0
    for line_no, raw in enumerate(lines, start=1):
        content = _data(raw)
        if not content:
            continue
        where = f"{path} line {line_no}"
        tokens = content.split()
        if declared_m is None:
            if len(tokens) != 2 or not all(_is_int(token) for token in tokens):
                raise ArnnGenError(
                    f"{where}: expected the gset header 'n m' (numbers of nodes and edges), "
                    f"got {content!r}"
                )
            n_nodes, declared_m = int(tokens[0]), int(tokens[1])
            if declared_m < 0 or declared_m > MAX_EDGES:
                raise ArnnGenError(f"{where}: the number of edges m must be in [0, {MAX_EDGES}]")
            parsed.declare(where, n_nodes, line_no, limit)
            header_line = line_no
            continue
        if len(tokens) != 3 or not (_is_int(tokens[0]) and _is_int(tokens[1])):
            raise ArnnGenError(f"{where}: expected a gset edge 'i j w', got {content!r}")
        count += 1
        if count > declared_m:
            raise ArnnGenError(
                f"{where}: more edges than the m = {declared_m} declared on line {header_line}"
            )
        i, j = int(tokens[0]), int(tokens[1])
        for node in (i, j):
            if not 1 <= node <= n_nodes:
                raise ArnnGenError(
                    f"{where}: node {node} is out of range 1..{n_nodes} (gset nodes are 1-based)"
                )
        try:
            weight = float(tokens[2])
        except ValueError:
            raise ArnnGenError(f"{where}: expected a gset edge 'i j w', got {content!r}") from None
        # MaxCut maximises sum w_ij (1 - x_i x_j) / 2: the Ising couplings are J_ij = -w_ij.
        parsed.add_coupling(where, i - 1, j - 1, -weight + 0.0, line_no, limit)
    if declared_m is None:
        raise ArnnGenError(f"couplings file {path} has no gset header 'n m'")
    if count != declared_m:
        raise ArnnGenError(
            f"couplings file {path} declares m = {declared_m} edges on line {header_line} "
            f"but has {count}"
        )
    return parsed
