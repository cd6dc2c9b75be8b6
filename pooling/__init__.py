"""Sentence pooling over token vectors, as sentence-transformers does it."""

from pooling.pooling import (
    POOLING_FUNCTIONS,
    PoolingConfig,
    cls,
    max,
    mean,
    mean_sqrt_len,
    normalize,
    pool,
)

__all__ = [
    "POOLING_FUNCTIONS",
    "PoolingConfig",
    "cls",
    "max",
    "mean",
    "mean_sqrt_len",
    "normalize",
    "pool",
]
