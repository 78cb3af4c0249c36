"""The one exception type arnn-gen raises for bad input.

Every user-facing failure (bad Hamiltonian, unknown system or variant, size limits,
malformed files) is an :class:`ArnnGenError`; the CLI prints its message as one line on
stderr and exits non-zero, so the message must read well on its own.
"""

from __future__ import annotations

__all__ = ["ArnnGenError"]


class ArnnGenError(ValueError):
    """Invalid input to arnn-gen; ``str(err)`` is a complete one-line explanation."""
