"""Fixtures shared by the sentence-embedding equivalence tests: our encoder and the reference
sentence-transformers model, both on the packaged all-MiniLM-L6-v2 files."""

import pytest


@pytest.fixture(scope="module")
def ours():
    from minibert import SentenceEncoder

    return SentenceEncoder.from_pretrained("all-MiniLM-L6-v2")


@pytest.fixture(scope="module")
def reference(minilm_dir):
    from sentence_transformers import SentenceTransformer

    return SentenceTransformer(str(minilm_dir), device="cpu")
