"""What a forked child must never free: the parent's device memory.

A child forked from a process that used CUDA cannot touch CUDA (``cudaErrorInitializationError``),
and freeing a CUDA tensor or a pinned host buffer is touching it: the caching allocator's
destructor aborts the child (``terminate called after throwing c10::AcceleratorError``), which
is how a forked worker of a serving engine would die.  So ``after_fork`` hooks hand the
parent's buffers, streams and pending samples here instead of dropping them: the child keeps
them referenced, unused, until it exits.
"""

from __future__ import annotations

from typing import Any

__all__ = ["abandon"]

_ABANDONED: list[Any] = []


def abandon(*objects: Any) -> None:
    """Keep ``objects`` (the parent's, in a forked child) alive and untouched for the child's lifetime."""
    _ABANDONED.append(objects)
