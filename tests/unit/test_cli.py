"""`python -m minibert`: the similarity main job, verify dispatch, and clear errors."""

import re
import subprocess
import sys

import numpy as np
import pytest

import minibert.verify
from minibert.__main__ import SEED_SENTENCES, format_matrix, main

pytestmark = pytest.mark.usefixtures("torch_single_thread")

# The printed matrix has 3 decimals, so it can be off from the reference by half a unit in the
# last place (5e-4), plus the 1e-5 float32 bound between minibert and sentence-transformers.
PRINTED_ATOL = 5e-4 + 1e-5


def parse_matrix(output: str) -> np.ndarray:
    rows = [line for line in output.splitlines() if re.match(r"\[\d+\]", line)]
    return np.array([[float(v) for v in row.split()[-len(rows) :]] for row in rows])


def test_main_job_runs_as_a_module_without_reference_libraries():
    """The README's command, in a fresh interpreter; `-X importtime` lists every module imported,
    which shows that the library never pulls in transformers or sentence-transformers."""
    result = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "minibert", "similarity"],
        capture_output=True, text=True, timeout=300,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert parse_matrix(result.stdout).shape == (4, 4)
    for sentence in SEED_SENTENCES:
        assert sentence in result.stdout
    imported = {line.rsplit("|", 1)[-1].strip() for line in result.stderr.splitlines() if "|" in line}
    assert {"torch", "tokenizers", "minibert.sentence"} <= imported  # the listing was parsed
    assert not imported & {"transformers", "sentence_transformers"}


def test_similarity_matches_sentence_transformers(capsys, minilm_dir):
    from sentence_transformers import SentenceTransformer

    assert main(["similarity"]) == 0
    printed = parse_matrix(capsys.readouterr().out)
    reference = SentenceTransformer(str(minilm_dir), device="cpu").encode(SEED_SENTENCES)
    np.testing.assert_allclose(printed, reference @ reference.T, rtol=0, atol=PRINTED_ATOL)


def test_similarity_on_given_texts_with_model_option(capsys, minilm_dir):
    assert main(["similarity", "--model", str(minilm_dir), "a cat", "a kitten", ""]) == 0
    printed = parse_matrix(capsys.readouterr().out)
    assert printed.shape == (3, 3)
    np.testing.assert_allclose(np.diag(printed), 1.0, rtol=0, atol=PRINTED_ATOL)
    assert printed[0, 1] > printed[0, 2]  # cat ~ kitten more than cat ~ empty text


def test_format_matrix_shortens_long_and_blank_texts():
    text = format_matrix(["x" * 100, "   "], np.eye(2))
    assert "x" * 43 + "…" in text and "x" * 44 not in text
    assert "'   '" in text  # a blank text is shown as its repr, so the row is not unlabelled


def test_verify_dispatches_to_run_verify(monkeypatch):
    calls = []
    monkeypatch.setattr(minibert.verify, "run_verify", lambda texts, name: calls.append((texts, name)) or 7)
    assert main(["verify", "one text", "two", "--model", "some-dir"]) == 7
    assert main(["verify"]) == 7
    assert calls == [(["one text", "two"], "some-dir"), (SEED_SENTENCES, "all-MiniLM-L6-v2")]


def test_missing_weights_is_a_message_not_a_traceback(capsys, tmp_path):
    assert main(["similarity", "--model", str(tmp_path / "nowhere")]) == 1
    err = capsys.readouterr().err
    assert "could not find model" in err and "Looked at" in err and "Traceback" not in err
    assert main(["similarity", "--model", str(tmp_path)]) == 1
    assert "has no model.safetensors" in capsys.readouterr().err


@pytest.mark.parametrize(
    "argv,message",
    [([], "the following arguments are required"), (["bogus"], "invalid choice"), (["similarity", "--nope"], "unrecognized")],
)
def test_bad_usage_prints_usage(capsys, argv, message):
    with pytest.raises(SystemExit) as exit_info:
        main(argv)
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert "usage: python -m minibert" in err and message in err
