"""argparse types for numbers on the command line: a bad value is one line saying what was expected."""

from __future__ import annotations

import argparse
from typing import Callable, TypeVar

T = TypeVar("T", int, float)


def bounded(parse: Callable[[str], T], expected: str, ok: Callable[[T], bool]) -> Callable[[str], T]:
    """An argparse type that parses the text and checks the value (argparse turns the error into one line)."""

    def convert(text: str) -> T:
        try:
            value = parse(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected {expected}, got {text!r}") from None
        if not ok(value):  # written so that NaN fails too
            raise argparse.ArgumentTypeError(f"expected {expected}, got {text!r}")
        return value

    return convert


count = bounded(int, "a whole number >= 0", lambda v: v >= 0)
share = bounded(float, "a share between 0 and 1", lambda v: 0.0 <= v <= 1.0)
amount = bounded(float, "an amount >= 0", lambda v: v >= 0.0)
