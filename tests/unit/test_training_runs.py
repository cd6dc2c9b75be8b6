"""A training run survives what users and machines do to it (minielmo/train.py with
weights/runs.py): kills, corrupt files, the wrong corpus or vocabulary, two runs at once, empty
data and a diverging loss. Every refusal is one line; a good checkpoint is never overwritten."""

import math
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from minielmo import train as training
from weights import runs



@pytest.fixture
def corpus(tmp_path, slice_corpus_factory):
    return slice_corpus_factory(tmp_path / "corpus")


def _train(corpus, out, tokens=3000, resume=False, **kw):
    return training.train(corpus, out, "tiny", tokens, seed=1, resume=resume, checkpoint_every=1, **kw)


def test_array_batches_equal_the_readable_ones(corpus):
    vocab = training.Vocabulary.from_file(corpus / "vocab.txt")
    sentences = training.read_sentences(corpus / "train.txt")[:40] + [["unseen-word", "Zyx"]]
    arrays = training.TokenArrays(sentences, vocab)
    picked = [3, 0, 40, 17, 5]
    char_ids, word_ids = arrays.batch(picked)
    expected_chars, expected_words = training.tensors_for([sentences[i] for i in picked], vocab)
    assert torch.equal(char_ids, expected_chars) and torch.equal(word_ids, expected_words)


def test_learning_rate_warms_up_then_decays_to_its_floor():
    assert training.learning_rate(0, 0.0) == pytest.approx(training.LEARNING_RATE / training.WARMUP_STEPS)
    assert training.learning_rate(10_000, 0.0) == pytest.approx(training.LEARNING_RATE)
    assert training.learning_rate(10_000, 0.5) == pytest.approx(
        training.LEARNING_RATE * (training.FINAL_LR_FRACTION + (1 - training.FINAL_LR_FRACTION) / 2))
    assert training.learning_rate(10_000, 1.0) == pytest.approx(training.LEARNING_RATE * training.FINAL_LR_FRACTION)


@pytest.mark.parametrize("content", [b"", b"garbage, not a zip file", "truncated"])
def test_a_broken_checkpoint_is_one_line_naming_the_file(corpus, tmp_path, content):
    out = tmp_path / "run"
    _train(corpus, out)
    checkpoint = out / "checkpoint.pt"
    data = checkpoint.read_bytes()
    checkpoint.write_bytes(data[: len(data) // 2] if content == "truncated" else content)
    with pytest.raises(runs.RunError) as error:
        _train(corpus, out, tokens=6000, resume=True)
    assert str(checkpoint) in str(error.value) and "\n" not in str(error.value)


def test_a_checkpoint_of_another_trainer_is_refused(corpus, tmp_path):
    out = tmp_path / "run"
    out.mkdir()
    torch.save({"weights": torch.zeros(2)}, out / "checkpoint.pt")
    with pytest.raises(runs.RunError, match="not a checkpoint of this trainer"):
        _train(corpus, out, resume=True)


def test_the_same_words_in_another_order_are_refused(corpus, tmp_path):
    out = tmp_path / "run"
    _train(corpus, out)
    words = (corpus / "vocab.txt").read_text(encoding="utf-8").split("\n")[:-1]
    words[5], words[6] = words[6], words[5]  # same size, same words, other rows
    (corpus / "vocab.txt").write_text("\n".join(words) + "\n", encoding="utf-8")
    with pytest.raises(runs.RunError, match="belongs to another run: vocab_sha256"):
        _train(corpus, out, tokens=6000, resume=True)


def test_another_corpus_size_or_seed_is_refused_naming_each_difference(corpus, tmp_path):
    out = tmp_path / "run"
    _train(corpus, out)
    with open(corpus / "train.txt", "a", encoding="utf-8") as file:
        file.write("one more line .\n")
    with pytest.raises(runs.RunError, match="corpus_sha256.*") as error:
        training.train(corpus, out, "tiny", 6000, seed=2, resume=True)
    assert "seed 1 in the checkpoint, 2 now" in str(error.value)


def test_resuming_a_finished_run_says_so_and_a_larger_target_continues_it(corpus, tmp_path, capsys):
    out = tmp_path / "run"
    first = _train(corpus, out)
    again = _train(corpus, out, resume=True)
    assert again["finished"] and again["step"] == first["step"]
    assert "is finished" in capsys.readouterr().err
    more = _train(corpus, out, tokens=6000, resume=True)
    assert more["step"] > first["step"]


def test_a_non_finite_loss_never_reaches_the_weights_or_the_checkpoint(corpus, tmp_path, monkeypatch):
    out = tmp_path / "run"
    _train(corpus, out)
    before = (out / "checkpoint.pt").read_bytes()
    real = training.bilm_nll

    def diverged(*args):
        forward, backward, n = real(*args)
        return forward * float("nan"), backward, n

    monkeypatch.setattr(training, "bilm_nll", diverged)
    with pytest.raises(runs.RunError, match="non-finite loss or gradient"):
        _train(corpus, out, tokens=60000, resume=True)
    assert (out / "checkpoint.pt").read_bytes() == before


def test_non_finite_weights_are_never_written(tmp_path):
    with pytest.raises(runs.RunError, match="non-finite"):
        runs.save_checkpoint(tmp_path / "c.pt", {"model": {"w": torch.tensor([1.0, math.inf])}}, ("model",))
    assert not (tmp_path / "c.pt").exists()


def test_two_runs_on_one_folder_refuse_each_other(corpus, tmp_path):
    out = tmp_path / "run"
    out.mkdir()
    other = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        (out / "LOCK").write_text(str(other.pid))
        with pytest.raises(runs.RunError, match="in use by another training run"):
            _train(corpus, out)
    finally:
        other.kill()
        other.wait()
    _train(corpus, out)  # the lock of a process that has gone is taken over
    assert not (out / "LOCK").exists()


@pytest.mark.parametrize("name, text, message", [
    ("train.txt", "", "has no sentences to train on"),
    ("valid.txt", "\n\n", "has no sentences to evaluate on"),
    ("vocab.txt", None, "not found"),
    ("vocab.txt", "a\nb\n", "must start with"),
])
def test_bad_corpus_files_are_one_line(corpus, tmp_path, name, text, message):
    if text is None:
        (corpus / name).unlink()
    else:
        (corpus / name).write_text(text, encoding="utf-8")
    with pytest.raises(runs.RunError, match=message):
        _train(corpus, tmp_path / "run")


def test_a_one_word_corpus_trains(corpus, tmp_path):
    (corpus / "train.txt").write_text("Hello\n", encoding="utf-8")
    result = _train(corpus, tmp_path / "run", tokens=4)
    assert result["step"] == 2 and math.isfinite(result["valid_perplexity"]["forward"])


def test_an_unwritable_out_folder_is_one_line(corpus, tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("x")
    with pytest.raises(runs.RunError, match="cannot create"):
        _train(corpus, blocker / "run")


def test_the_command_line_prints_one_line_and_exits_2(corpus, tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_:
        training.main(["--corpus", str(tmp_path / "nowhere"), "--out", str(tmp_path / "run")])
    assert exit_.value.code == 2
    lines = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert len(lines) == 1 and "not found" in lines[0]


def test_sigint_from_outside_stops_at_a_step_with_a_checkpoint(corpus, tmp_path):
    out = tmp_path / "run"
    command = [sys.executable, "-m", "minielmo.train", "--corpus", str(corpus), "--out", str(out),
               "--size", "tiny", "--tokens", "100000000", "--checkpoint-every", "1000", "--threads", "1"]
    process = subprocess.Popen(command, stderr=subprocess.PIPE, text=True, cwd=Path(__file__).parents[2])
    log = out / "train_log.jsonl"
    for _ in range(600):  # wait (at most a minute) for the first steps
        if log.is_file() and log.read_text().count("\n") >= 2:
            break
        process.poll()
        assert process.returncode is None, process.stderr.read()
        import time
        time.sleep(0.1)
    process.send_signal(2)  # SIGINT, as Ctrl-C
    _, err = process.communicate(timeout=120)
    assert process.returncode == 2
    assert "stopped by SIGINT" in err and "--resume" in err and "Traceback" not in err
    state = torch.load(out / "checkpoint.pt", weights_only=True)
    assert state["run"]["step"] >= 2 and not (out / "LOCK").exists()
