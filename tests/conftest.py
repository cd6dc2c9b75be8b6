"""Shared pytest fixtures. Each area adds its fixtures in its own clearly headed section."""
import json
import os
from pathlib import Path

import pytest
import torch

# No machine here reaches a model hub; make the reference libraries fail fast instead of
# retrying the network when a test loads them from a local directory.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")


# ---------------------------------------------------------------------------------------------
# minielmo
# ---------------------------------------------------------------------------------------------
ELMO_FIXTURES = Path(__file__).parent / "fixtures" / "elmo"


@pytest.fixture
def elmo_single_thread():
    """The biLM's time loop runs thousands of tiny ops; on a shared 2-core machine extra intra-op
    threads only add contention (measured 3.6 s vs 0.2 s for one 50-token batch)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="session")
def elmo_fixture_dir() -> Path:
    return ELMO_FIXTURES


@pytest.fixture(scope="session")
def elmo_sentences() -> list[list[str]]:
    """sentences.json: 3 lists of 10 whitespace-tokenised sentences (see PROVENANCE.md)."""
    return json.loads((ELMO_FIXTURES / "sentences.json").read_text(encoding="utf-8"))


@pytest.fixture
def tiny_bilm():
    """A fresh, stateless BiLM on the tiny fixture model (fresh: stateful tests must not share)."""
    import minielmo

    return minielmo.BiLM.from_files(minielmo.FIXTURE_OPTIONS, minielmo.FIXTURE_WEIGHTS)
