"""``shallow_copier``: fast shallow copies of slotted dataclasses.

A live read copies each machine's engine state at every read (``MachineAccumulator.edge_minutes``:
its open totals and its counters); ``dataclasses.replace`` goes through ``__init__`` with
every field as a keyword, about 20 times slower than assigning the fields to a new instance,
which is what the copier made here does (generated once per class, as ``dataclasses`` makes
``__init__``).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import fields, is_dataclass
from typing import Any, TypeVar

T = TypeVar("T")


def shallow_copier(cls: type[T]) -> Callable[[T], T]:
    """A function returning a new ``cls`` with the same field values (shared, as
    ``dataclasses.replace(obj)`` shares them); ``cls``: a dataclass without ``__post_init__``
    (nothing but the fields is set up)."""
    if not is_dataclass(cls) or hasattr(cls, "__post_init__"):
        raise TypeError(f"{cls.__name__}: a dataclass without __post_init__ is needed")
    names = [f.name for f in fields(cls)]
    body = "".join(f"    new.{name} = old.{name}\n" for name in names) or "    pass\n"
    namespace: dict[str, Any] = {"_new": object.__new__, "_cls": cls}
    exec(f"def copy(old):\n    new = _new(_cls)\n{body}    return new\n", namespace)  # noqa: S102  # field names only
    copier: Callable[[T], T] = namespace["copy"]
    copier.__qualname__ = copier.__name__ = f"copy_{cls.__name__}"
    return copier
