"""A trained biLM with its LM head: `python -m minielmo predict` and `python -m minielmo.evaluate
--text`, on a tiny model trained for a few steps (minielmo.train exports the head with it)."""

import json
import math
import shutil
from pathlib import Path

import pytest
import torch

from minielmo import evaluate, predict, pretrained
from minielmo import train as training
from minielmo.lm_head import SharedSoftmax

SLICE = Path(__file__).parents[1] / "fixtures" / "text_slice"
# Probabilities from log_prob().exp() sum to 1 up to float32 rounding over 400 words.
PROBABILITY_SUM_ATOL = 1e-4


@pytest.fixture(scope="module")
def run(tmp_path_factory, slice_corpus_factory):
    corpus = slice_corpus_factory(tmp_path_factory.mktemp("corpus"))
    out = tmp_path_factory.mktemp("run")
    training.train(corpus, out, "tiny", 3000, seed=0, resume=False)
    return out


def test_the_exported_head_reloads_and_scores_like_the_trained_one(run):
    bilm, head, vocab, label = evaluate.load_model(run=run)
    shipped, words = SharedSoftmax.from_folder(run / "model")
    assert words == vocab.words and label == f"run {run}"
    hidden = torch.randn(7, bilm.config.projection_dim)
    torch.testing.assert_close(shipped.log_prob(hidden), head.log_prob(hidden), rtol=0, atol=0)
    assert torch.allclose(head.log_prob(hidden).exp().sum(-1), torch.ones(7), atol=PROBABILITY_SUM_ATOL)


def test_a_reordered_vocabulary_is_refused_for_the_head(run, tmp_path):
    folder = tmp_path / "model"
    shutil.copytree(run / "model", folder)
    words = (folder / "vocab.txt").read_text(encoding="utf-8").split("\n")[:-1]
    words[4], words[5] = words[5], words[4]
    (folder / "vocab.txt").write_text("".join(w + "\n" for w in words), encoding="utf-8")
    with pytest.raises(ValueError, match="not the vocabulary"):
        SharedSoftmax.from_folder(folder)


def test_text_perplexity_splits_text_as_training_did(run):
    bilm, head, vocab, _ = evaluate.load_model(run=run)
    raw = evaluate.text_perplexity(bilm, head, vocab, ["Mr. Darcy didn't come.", "", "She smiled!"])
    split = training.perplexity(bilm, head, [["Mr", ".", "Darcy", "didn", "'", "t", "come", "."],
                                             ["She", "smiled", "!"]], vocab)
    assert raw == split and raw["targets"] == 8 + 1 + 3 + 1
    with pytest.raises(ValueError, match="empty"):
        evaluate.text_perplexity(bilm, head, vocab, ["", "  "])


def test_predict_gives_next_and_previous_words_with_probabilities(run):
    bilm, head, vocab, _ = evaluate.load_model(run=run)
    result = predict.next_and_previous(bilm, head, vocab.words, "I deposited the money in the", top_k=4)
    assert result["words"] == ["I", "deposited", "the", "money", "in", "the"]
    for direction in ("next", "previous"):
        probabilities = [p for _, p in result[direction]]
        assert len(probabilities) == 4 and probabilities == sorted(probabilities, reverse=True)
        assert all(0 < p <= 1 for p in probabilities) and all(w in vocab.index for w, _ in result[direction])
    with pytest.raises(ValueError, match="at least one word"):
        predict.next_and_previous(bilm, head, vocab.words, "   ")


def test_evaluate_text_prints_one_json_line(run, tmp_path, capsys, monkeypatch):
    text = tmp_path / "text.txt"
    text.write_text("She smiled .\nHe left .\n", encoding="utf-8")
    evaluate.main(["--text", str(text), "--run", str(run)])
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 1
    result = json.loads(lines[0])
    assert result["targets"] == 8 and math.isfinite(result["forward"]) and math.isfinite(result["backward"])


@pytest.mark.parametrize("argv, message", [
    ([], "one of the arguments --text --corpus is required"),
    (["--text", "/no/such/file"], "/no/such/file"),
    (["--text", str(SLICE / "heldout.txt"), "--model", "nonesuch"], "unknown model 'nonesuch'"),
])
def test_evaluate_errors_are_one_line(argv, message, capsys):
    with pytest.raises(SystemExit) as exit_:
        evaluate.main(argv)
    err = capsys.readouterr().err.strip()
    assert exit_.value.code == 2 and "\n" not in err and message in err


def test_a_model_without_a_head_says_so_in_one_line(capsys):
    if (pretrained.SMALL_DIR / "lm_head.safetensors").is_file():
        pytest.fail("the shipped small now has an LM head: test predict on it instead")
    with pytest.raises(SystemExit) as exit_:
        predict.main(["the bank"])
    err = capsys.readouterr().err.strip()
    assert exit_.value.code == 2 and "has no LM head" in err and "\n" not in err
