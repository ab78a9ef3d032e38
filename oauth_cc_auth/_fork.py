"""What a forked child must not inherit from its parent.

The parent's threads do not exist in the child, but the objects they used do: a flight
another thread was running, locks it held, keep-alive connections the parent keeps using.
Objects that hold such state register here and are reset, in the child, right after
``fork()`` (``os.register_at_fork``; on POSIX only).
"""

from __future__ import annotations

import os
import weakref
from typing import Protocol

__all__ = ["after_fork_in_child", "reset_in_child"]


class Resettable(Protocol):
    def reset_after_fork(self) -> None:
        """Forget what belongs to the parent (runs in the child, one thread only)."""


# Every registered object alive (a weak set: registering keeps nothing alive).
_registered: weakref.WeakSet[Resettable] = weakref.WeakSet()


def reset_in_child(obj: Resettable) -> None:
    """Call ``obj.reset_after_fork()`` in the child of every later ``fork()``."""
    _registered.add(obj)


def after_fork_in_child() -> None:
    """Reset every registered object (what ``os.register_at_fork`` runs in the child)."""
    for obj in list(_registered):
        obj.reset_after_fork()


if hasattr(os, "register_at_fork"):  # POSIX
    os.register_at_fork(after_in_child=after_fork_in_child)
