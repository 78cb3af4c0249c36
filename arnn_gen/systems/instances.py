"""A stack of disorder instances of one size, for the batched modules (``emit --instances``).

:class:`InstanceStack` holds K systems of the same N and kind (the SK instances of several
seeds, several couplings files, or Curie-Weiss systems of several J and h), each with its
label (the seed, or the index); a batched module trains them as one network with a leading
instance dimension (docs/design.md, "Many instances in one module").
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import IO

import numpy as np

from arnn_gen.errors import ArnnGenError
from arnn_gen.systems.archive import write_npz_archive
from arnn_gen.systems.dense import CurieWeiss, Hamiltonian

__all__ = ["InstanceStack", "MAX_INSTANCES", "write_instances_npz"]

#: Most instances one batched module holds.
MAX_INSTANCES = 1024


@dataclass(frozen=True, eq=False)
class InstanceStack:
    """K systems of one N and kind, in order, and their labels (strings): dense systems
    (:class:`Hamiltonian`), or Curie-Weiss systems by their numbers (:class:`CurieWeiss`,
    whose modules embed J and h: no [K, N, N] couplings are built)."""

    members: tuple[Hamiltonian, ...] | tuple[CurieWeiss, ...]
    labels: tuple[str, ...]

    def __post_init__(self) -> None:
        members, labels = tuple(self.members), tuple(str(label) for label in self.labels)
        if not members:
            raise ArnnGenError("a stack of instances needs at least one system")
        if len(members) > MAX_INSTANCES:
            raise ArnnGenError(f"at most {MAX_INSTANCES} instances, got {len(members)}")
        if len(labels) != len(members) or len(set(labels)) != len(labels):
            raise ArnnGenError(f"the instances need distinct labels, one each: {labels}")
        if not (all(isinstance(member, Hamiltonian) for member in members)
                or all(isinstance(member, CurieWeiss) for member in members)):  # fmt: skip
            raise ArnnGenError("the instances must be dense systems (Hamiltonian), or all "
                               "Curie-Weiss systems (CurieWeiss)")  # fmt: skip
        sizes = {member.N for member in members}
        if len(sizes) != 1:
            raise ArnnGenError(f"the instances must have one size, got N = {sorted(sizes)}")
        object.__setattr__(self, "members", members)
        object.__setattr__(self, "labels", labels)

    @property
    def N(self) -> int:  # noqa: N802
        return self.members[0].N

    @property
    def count(self) -> int:
        return len(self.members)

    @property
    def kind(self) -> str:
        kinds = {member.kind for member in self.members}
        return kinds.pop() if len(kinds) == 1 else "general"

    @property
    def provenance(self) -> dict:
        """The provenance the members share (an SK stack: J and h, not the seeds)."""
        first = dict(self.members[0].provenance)
        return {k: v for k, v in first.items()
                if all(m.provenance.get(k) == v for m in self.members)}  # fmt: skip

    @property
    def couplings(self) -> np.ndarray:
        """[K, N, N] float64 (dense systems)."""
        return np.stack([self._dense(member).J for member in self.members])

    @property
    def fields(self) -> np.ndarray:
        """[K, N] float64 (dense systems)."""
        return np.stack([self._dense(member).h for member in self.members])

    @staticmethod
    def _dense(member) -> Hamiltonian:
        if isinstance(member, CurieWeiss):
            raise ArnnGenError("a stack of Curie-Weiss systems holds their numbers, not "
                               "[K, N, N] couplings")  # fmt: skip
        return member

    def signature(self) -> str:
        """sha256 of the members' signatures and labels, in order."""
        digest = hashlib.sha256(b"arnn-gen-instances-v1\0")
        for label, member in zip(self.labels, self.members, strict=True):
            digest.update(f"{label}\0{member.signature()}\0".encode())
        return digest.hexdigest()

    @classmethod
    def of(cls, members: Sequence[Hamiltonian], labels: Sequence) -> InstanceStack:
        return cls(tuple(members), tuple(str(label) for label in labels))


def write_instances_npz(stack: InstanceStack, handle: IO[bytes]) -> None:
    """The batched module's sidecar: J [K, N, N], h [K, N], the labels (JSON) and the
    stack's signature, deterministically."""
    import json

    members = {
        "J": stack.couplings.astype("<f8"),
        "h": stack.fields.astype("<f8"),
        "labels": np.array(json.dumps(list(stack.labels))),
        "signature": np.array(stack.signature()),
    }
    write_npz_archive(members, handle)
