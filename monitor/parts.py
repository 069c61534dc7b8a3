"""Attributes kept in a part of their object that is made at the first write.

Most live calls never set most of what a call can record (a hot swap, a held leave, errors,
media interruptions, how it ended): slots for all of it in every call cost memory per live
call. Such attributes go in a part, a small object of their own made when one of them is first
set to something other than its default; until then they read as their defaults, from one
shared part nobody writes to.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Generic, TypeVar, overload

T = TypeVar("T")


class Part:
    """Where a group of attributes lives: the owner's slot holding the part (None until made),
    how to make one, and the part whose defaults are read while there is none."""

    def __init__(self, slot: str, make: Callable[[], Any]) -> None:
        self.slot = slot
        self.make = make
        self.empty = make()


class InPart(Generic[T]):
    """An attribute of the owner stored in its part (`part`), under the same name."""

    def __init__(self, part: Part) -> None:
        self._part = part
        self._slot = part.slot  # read on every access: kept here, one lookup fewer
        self._empty = part.empty
        self._name = ""

    def __set_name__(self, owner: type, name: str) -> None:
        self._name = name

    @overload
    def __get__(self, owner: None, cls: type) -> InPart[T]: ...

    @overload
    def __get__(self, owner: object, cls: type) -> T: ...

    def __get__(self, owner: object | None, cls: type) -> InPart[T] | T:
        if owner is None:
            return self
        part = getattr(owner, self._slot)
        value: T = getattr(self._empty if part is None else part, self._name)
        return value

    def __set__(self, owner: object, value: T) -> None:
        part = getattr(owner, self._slot)
        if part is None:
            default = getattr(self._empty, self._name)
            if type(value) is type(default) and value == default:
                return  # still the default: no part needed
            part = self._part.make()
            setattr(owner, self._slot, part)
        setattr(part, self._name, value)
