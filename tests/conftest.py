"""Shared pytest fixtures. Each area adds its fixtures in its own clearly headed section."""


# ---------------------------------------------------------------------------------------------
# minielmo (owner: elmo)
# ---------------------------------------------------------------------------------------------
import json as _json
from pathlib import Path as _Path

import pytest as _pytest
import torch as _torch

ELMO_FIXTURES = _Path(__file__).parent / "fixtures" / "elmo"


@_pytest.fixture
def elmo_single_thread():
    """The biLM's time loop runs thousands of tiny ops; on a shared 2-core machine extra intra-op
    threads only add contention (measured 3.6 s vs 0.2 s for one 50-token batch)."""
    threads = _torch.get_num_threads()
    _torch.set_num_threads(1)
    yield
    _torch.set_num_threads(threads)


@_pytest.fixture(scope="session")
def elmo_fixture_dir() -> _Path:
    return ELMO_FIXTURES


@_pytest.fixture(scope="session")
def elmo_sentences() -> list[list[str]]:
    """sentences.json: 3 lists of 10 whitespace-tokenised sentences (see PROVENANCE.md)."""
    return _json.loads((ELMO_FIXTURES / "sentences.json").read_text(encoding="utf-8"))


@_pytest.fixture
def tiny_bilm():
    """A fresh, stateless BiLM on the tiny fixture model (fresh: stateful tests must not share)."""
    import minielmo

    return minielmo.BiLM.from_files(minielmo.FIXTURE_OPTIONS, minielmo.FIXTURE_WEIGHTS)
