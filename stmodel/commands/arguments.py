"""Argument types shared by the commands: counts that must be positive or not negative."""

from __future__ import annotations

import argparse


def positive_int(text: str) -> int:
    return _int_at_least(text, 1, "a positive whole number")


def non_negative_int(text: str) -> int:
    return _int_at_least(text, 0, "a whole number, 0 or more")


def _int_at_least(text: str, smallest: int, expected: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = None
    if value is None or value < smallest:
        raise argparse.ArgumentTypeError(f"expected {expected}, got {text!r}")
    return value
