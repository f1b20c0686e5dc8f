"""Exact least squares and feature scaling from one pass over row chunks.

Pure functions: the data enter only through ``reduce``, a reducer from
:mod:`elastic_nb.engine` (or any callable with its interface), so each is tested against
numpy with a reducer over one in-memory block.
"""

from .gram import (
    GRAM_CONDITION_LIMIT,
    RANK_RTOL,
    Gram,
    NormalSystem,
    gram,
    gram_kernel,
    mean_squared_error_from_gram,
    normal_system,
    solve_normal_system,
)
from .scaling import Moments, Scaling, column_scaling, moments, moments_kernel, to_original
from .tsqr import QRPart, chunk_qr, solve_tsqr, tsqr

__all__ = [
    "GRAM_CONDITION_LIMIT",
    "RANK_RTOL",
    "Gram",
    "Moments",
    "NormalSystem",
    "QRPart",
    "Scaling",
    "chunk_qr",
    "column_scaling",
    "gram",
    "gram_kernel",
    "mean_squared_error_from_gram",
    "moments",
    "moments_kernel",
    "normal_system",
    "solve_normal_system",
    "solve_tsqr",
    "to_original",
    "tsqr",
]
