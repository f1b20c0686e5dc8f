"""Argument checks shared by every public entry point.

Each check raises before any work starts and names the argument and what was expected,
so a user sees ``maximum must be >= minimum (3), got 1`` instead of a scheduler traceback.

Hand-written rather than ``sklearn.utils.check_scalar``, which takes ``True`` for the
integer 1 and lets NaN through every bound; these reject both, and allow ``None`` where
a parameter means "default".
"""

from __future__ import annotations

import numbers

import numpy as np


def check_int(name: str, value, *, minimum: int | None = None, allow_none: bool = False):
    """Return ``value`` as an int, or raise TypeError/ValueError naming ``name``."""
    if value is None and allow_none:
        return None
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name} must be an integer, got {value!r} ({type(value).__name__})")
    if minimum is not None and value < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {value}")
    return int(value)


def check_float(
    name: str,
    value,
    *,
    minimum: float | None = None,
    positive: bool = False,
    allow_none: bool = False,
):
    """Return ``value`` as a finite float, or raise TypeError/ValueError naming ``name``."""
    if value is None and allow_none:
        return None
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a number, got {value!r} ({type(value).__name__})")
    value = float(value)
    if not np.isfinite(value):
        raise ValueError(f"{name} must be finite, got {value}")
    if positive and value <= 0:
        raise ValueError(f"{name} must be > 0, got {value}")
    if minimum is not None and value < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {value}")
    return value


def check_choice(name: str, value, choices):
    """Raise ValueError unless ``value`` is one of ``choices``."""
    if value not in choices:
        options = ", ".join(repr(c) for c in choices)
        raise ValueError(f"{name} must be one of {options}; got {value!r}")
    return value
