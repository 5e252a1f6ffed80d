"""The bad-input matrix of the Python API: one ``Case`` per input, run by one parametrised test per file.

A case is ``(id, call, expected)``. ``expected`` is either ``raises(ErrorClass, *parts)``: the call
raises that class (or a subclass) and the message contains every part (what was given and what
was expected), or a function that receives the call's result and asserts it is correct (against
a reference computed another way, never its shape alone).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Callable

import pytest


@dataclass(frozen=True)
class Raises:
    error: type
    parts: tuple[str, ...]


@dataclass(frozen=True)
class Case:
    id: str
    call: Callable[[], Any]
    expected: Raises | Callable[[Any], None]


def raises(error: type, *parts: str) -> Raises:
    """The call raises ``error`` with a message containing every one of ``parts``."""
    return Raises(error, parts)


# messages that come from torch's internals or Python's, not from a boundary check
INTERNAL = re.compile(r"has no attribute|object is not|not subscriptable|mkldnn|expected m1 and m2|Cannot copy out of meta|"
                      r"probability tensor|fill_\(\)|must be real number|unsupported operand")


def run_case(case: Case) -> None:
    if isinstance(case.expected, Raises):
        with pytest.raises(Exception) as info:
            case.call()
        err = info.value
        message = str(err)
        assert isinstance(err, case.expected.error), f"expected {case.expected.error.__name__}, got {type(err).__name__}: {message}"
        missing = [p for p in case.expected.parts if p not in message]
        assert not missing, f"the message does not say {missing}: {message!r}"
        assert not INTERNAL.search(message), f"an internal error reached the user: {message!r}"
    else:
        case.expected(case.call())


def parametrize(cases: list[Case]):
    ids = [c.id for c in cases]
    assert len(ids) == len(set(ids)), "case ids must be unique"
    return pytest.mark.parametrize("case", cases, ids=ids)


def outcome_counts(cases: list[Case]) -> dict[str, int]:
    """How many cases expect each outcome: ``"result"`` or the error class's name."""
    counts: dict[str, int] = {}
    for c in cases:
        key = c.expected.error.__name__ if isinstance(c.expected, Raises) else "result"
        counts[key] = counts.get(key, 0) + 1
    return counts
