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

# `max` is left out of __all__ on purpose: `from pooling import *` must not shadow the builtin.
# Use it as `pooling.max`.
__all__ = [
    "POOLING_FUNCTIONS",
    "PoolingConfig",
    "cls",
    "mean",
    "mean_sqrt_len",
    "normalize",
    "pool",
]
