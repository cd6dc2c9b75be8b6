"""The masked-LM objective and training loop (minibert/train_mlm.py), on a tiny model and a small
slice of the corpus. Nothing here trains for more than a few seconds."""

import json
import math
from pathlib import Path

import pytest
import torch

from minibert import BertForMaskedLM, Tokenizer
from minibert import train_mlm as training
from weights.runs import RunError, RunLock

pytestmark = pytest.mark.usefixtures("torch_single_thread")

SLICE = Path(__file__).parents[1] / "fixtures" / "text_slice"
VOCAB = 300       # small enough that a WordPiece vocabulary trains in well under a second
RUN = dict(size="tiny", total_words=9000, seed=3, checkpoint_every=4)
BATCH_PIECES = 800  # smaller batches than a real run: more steps (and checkpoints) per epoch


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    """The corpus folder layout of python -m minielmo.corpus, with a validation split."""
    folder = tmp_path_factory.mktemp("corpus")
    heldout = (SLICE / "heldout.txt").read_text(encoding="utf-8").splitlines(keepends=True)
    (folder / "train.txt").write_text((SLICE / "train.txt").read_text(encoding="utf-8"), encoding="utf-8")
    (folder / "valid.txt").write_text("".join(heldout[:20]), encoding="utf-8")
    (folder / "heldout.txt").write_text("".join(heldout[20:]), encoding="utf-8")
    return folder


@pytest.fixture(autouse=True)
def small_batches(monkeypatch):
    monkeypatch.setattr(training, "TOKENS_PER_BATCH", BATCH_PIECES)


@pytest.fixture(scope="module")
def sequences(corpus):
    sentences = training.read_sentences(corpus / "train.txt")
    tokenizer = training.train_wordpiece(sentences, VOCAB)
    ids, _ = training.encode_sentences(tokenizer, sentences)
    return tokenizer, ids


@pytest.fixture(scope="module")
def vocabulary(sequences, tmp_path_factory):
    """One saved vocabulary for every run here (the trainer may break ties differently each time)."""
    folder = tmp_path_factory.mktemp("tokenizer")
    training.save_tokenizer(sequences[0], folder)
    return folder


@pytest.fixture
def run(vocabulary):
    return {**RUN, "tokenizer": vocabulary}


def _special(tokenizer):
    return {name: tokenizer.token_to_id(f"[{name.upper()}]") for name in ("pad", "cls", "sep", "mask")}


# ----- masking ------------------------------------------------------------------------------------

def test_masking_chooses_15_percent_and_corrupts_80_10_10(sequences):
    tokenizer, ids = sequences
    special = _special(tokenizer)
    batch = ids * 20  # ~6,000 sentences, ~100,000 pieces: shares measured to a few tenths of a percent
    input_ids, attention_mask, maskable = training.tensors_for(batch, special["cls"], special["sep"], special["pad"])
    corrupted, chosen = training.choose_and_corrupt(input_ids, maskable, special["mask"], VOCAB,
                                                    torch.Generator().manual_seed(0))
    # [CLS], [SEP] and [PAD] are never chosen, and each row gets round(15%) of its pieces, at least 1.
    assert not (chosen & ~maskable).any()
    expected = (maskable.sum(1) * 0.15).round().clamp(min=1)
    assert torch.equal(chosen.sum(1), expected.long())
    assert torch.equal(corrupted[~chosen], input_ids[~chosen])  # nothing else changes
    n = int(chosen.sum())
    masked = (corrupted[chosen] == special["mask"]).float().mean().item()
    kept = (corrupted[chosen] == input_ids[chosen]).float().mean().item()
    # 5 binomial standard deviations at these n: a true share of 0.8 (or 0.1) is never outside.
    tolerance = 5 * math.sqrt(0.8 * 0.2 / n)
    assert abs(masked - 0.8) < tolerance
    # Unchanged: the 10% left alone, plus the random 10% that drew the original piece (1 / VOCAB).
    assert abs(kept - (0.1 + 0.1 / VOCAB)) < tolerance


def test_loss_counts_the_chosen_pieces_only(sequences):
    tokenizer, ids = sequences
    special = _special(tokenizer)
    torch.manual_seed(0)
    model = BertForMaskedLM(training.config_for("tiny", tokenizer.get_vocab_size())).eval()
    input_ids, attention_mask, maskable = training.tensors_for(ids[:8], special["cls"], special["sep"], special["pad"])
    corrupted, chosen = training.choose_and_corrupt(input_ids, maskable, special["mask"], VOCAB,
                                                    torch.Generator().manual_seed(0))
    nll, _, n = training.mlm_loss(model, corrupted, attention_mask, input_ids, chosen)
    assert n == int(chosen.sum())
    # The same sum from the full (B, T, V) logits, at the chosen positions: the gather changes nothing.
    with torch.no_grad():
        logits = model(corrupted, attention_mask)
    full = torch.nn.functional.cross_entropy(logits[chosen], input_ids[chosen], reduction="sum")
    torch.testing.assert_close(nll.detach(), full, rtol=1e-6, atol=1e-5)  # float32 sums in another order
    # A different original piece at an unchosen position does not move the loss.
    changed = input_ids.clone()
    changed[~chosen & maskable] = 7
    torch.testing.assert_close(training.mlm_loss(model, corrupted, attention_mask, changed, chosen)[0], nll,
                               rtol=0, atol=0)


def test_every_parameter_gets_a_gradient_and_the_loss_falls(sequences):
    tokenizer, ids = sequences
    special = _special(tokenizer)
    torch.manual_seed(0)
    model = BertForMaskedLM(training.config_for("tiny", tokenizer.get_vocab_size()))
    training.init_weights(model)
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)
    input_ids, attention_mask, maskable = training.tensors_for(ids[:32], special["cls"], special["sep"], special["pad"])
    corrupted, chosen = training.choose_and_corrupt(input_ids, maskable, special["mask"], VOCAB,
                                                    torch.Generator().manual_seed(0))
    losses = []
    for step in range(30):
        nll, _, n = training.mlm_loss(model, corrupted, attention_mask, input_ids, chosen)
        optimizer.zero_grad()
        (nll / n).backward()
        if step == 0:
            assert [name for name, p in model.named_parameters() if p.grad is None or not p.grad.abs().sum() > 0] == []
        optimizer.step()
        losses.append((nll / n).item())
    # BERT's initialisation starts at about log(VOCAB) = 5.7 nats; 30 Adam steps on one batch must
    # learn at least the piece frequencies: a drop of 1 nat is far outside step-to-step noise.
    assert abs(losses[0] - math.log(VOCAB)) < 0.5, losses[0]
    assert losses[-1] < losses[0] - 1.0, losses


def test_learning_rate_warms_up_then_decays_to_zero():
    total = 1000
    warmup = int(training.WARMUP_SHARE * total)
    rates = [training.learning_rate(words, total) for words in range(total + 1)]
    assert rates[0] < rates[warmup // 2] < rates[warmup] == pytest.approx(training.PEAK_LR)
    assert rates[-1] == 0.0 and all(a >= b for a, b in zip(rates[warmup:], rates[warmup + 1:]))


def test_the_vocabulary_is_cased_and_read_alike_by_minibert(sequences, tmp_path):
    tokenizer, _ = sequences
    assert tokenizer.get_vocab_size() == VOCAB and tokenizer.token_to_id("[PAD]") == 0
    training.save_tokenizer(tokenizer, tmp_path)
    ours = Tokenizer.from_pretrained(tmp_path)
    assert ours.tokenize("The") != ours.tokenize("the")
    assert ours("She smiled .")["input_ids"][0].tolist() == tokenizer.encode("She smiled .").ids


# ----- the training run ---------------------------------------------------------------------------

def _log(out: Path) -> list[dict]:
    return [json.loads(line) for line in (out / "train_log.jsonl").read_text().splitlines()]


def test_an_interrupted_and_resumed_run_equals_an_uninterrupted_one(corpus, tmp_path, monkeypatch, run):
    whole = training.train(corpus, tmp_path / "whole", resume=False, **run)

    show = training.Progress.show

    def interrupt_at_step_10(self, step, *args):
        show(self, step, *args)
        if step == 10:
            raise KeyboardInterrupt  # Ctrl-C after step 10; the last checkpoint holds step 8
    monkeypatch.setattr(training.Progress, "show", interrupt_at_step_10)
    with pytest.raises(KeyboardInterrupt):
        training.train(corpus, tmp_path / "split", resume=False, **run)
    monkeypatch.setattr(training.Progress, "show", show)
    assert torch.load(tmp_path / "split" / "checkpoint.pt", weights_only=True)["step"] == 8
    resumed = training.train(corpus, tmp_path / "split", resume=True, **run)

    assert resumed["step"] == whole["step"] and resumed["words"] == whole["words"]
    a = torch.load(tmp_path / "whole" / "checkpoint.pt", weights_only=True)
    b = torch.load(tmp_path / "split" / "checkpoint.pt", weights_only=True)
    for name in a["model"]:
        torch.testing.assert_close(b["model"][name], a["model"][name], rtol=0, atol=0)
    assert a["best"] == b["best"]
    # The log holds each step once, in order, whatever the interruption; loss and validation
    # records are the same as the uninterrupted run's.
    whole_log, split_log = _log(tmp_path / "whole"), _log(tmp_path / "split")
    steps = [record["step"] for record in split_log if "loss" in record]
    assert steps == list(range(1, whole["step"] + 1))
    strip = lambda log: [{k: v for k, v in r.items() if k not in ("pieces_per_s", "elapsed_s", "final")} for r in log]
    assert strip(split_log) == strip(whole_log)
    assert "valid" in whole_log[-2] and "final" in whole_log[-1]


def test_the_export_is_the_best_validation_checkpoint(corpus, tmp_path, run):
    result = training.train(corpus, tmp_path, resume=False, **run)
    best = torch.load(tmp_path / "best.pt", weights_only=True)
    # The log rounds to 4 decimals.
    assert best["best"]["loss"] == pytest.approx(min(r["valid"]["loss"] for r in _log(tmp_path) if "valid" in r), abs=1e-4)
    assert result["best_valid"] == best["best"]
    exported = BertForMaskedLM.from_pretrained(tmp_path / "model")
    for name, tensor in exported.state_dict().items():
        torch.testing.assert_close(tensor, best["model"][name], rtol=0, atol=0)
    assert json.loads((tmp_path / "model" / "config.json").read_text())["architectures"] == ["BertForMaskedLM"]
    # --resume on a finished run says so and trains nothing more.
    again = training.train(corpus, tmp_path, resume=True, **run)
    assert again == result


def test_a_non_finite_loss_stops_without_writing(corpus, tmp_path, monkeypatch, run):
    loss = training.mlm_loss
    calls = []

    def nan_at_step_6(*args):
        nll, correct, n = loss(*args)
        calls.append(1)
        return (nll * float("nan") if len(calls) == 6 else nll), correct, n
    monkeypatch.setattr(training, "mlm_loss", nan_at_step_6)
    with pytest.raises(training.TrainingError, match=r"step 6: the loss is nan; .*checkpoint.pt \(step 4\) is intact"):
        training.train(corpus, tmp_path, resume=False, **run)
    state = torch.load(tmp_path / "checkpoint.pt", weights_only=True)
    assert state["step"] == 4 and all(torch.isfinite(t).all() for t in state["model"].values())
    assert not (tmp_path / "model").exists()


def test_resume_refuses_another_run_in_one_line(corpus, tmp_path, monkeypatch, run):
    monkeypatch.setattr(training.Progress, "show", lambda self, step, *a: (_ for _ in ()).throw(KeyboardInterrupt)
                        if step == 5 else None)
    with pytest.raises(KeyboardInterrupt):
        training.train(corpus, tmp_path, resume=False, **run)
    with pytest.raises(RunError, match=r"belongs to another run: seed 3 in the checkpoint, 4 now"):
        training.train(corpus, tmp_path, resume=True, **{**run, "seed": 4})
    (tmp_path / "checkpoint.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(RunError, match="not a readable checkpoint"):
        training.train(corpus, tmp_path, resume=True, **run)
    with pytest.raises(training.TrainingError, match="exists: pass --resume"):
        training.train(corpus, tmp_path, resume=False, **run)


def test_two_runs_on_one_folder_refuse_each_other(corpus, tmp_path, run):
    with RunLock(tmp_path):  # another run, alive, holds the folder
        with pytest.raises(RunError, match="in use by another training run"):
            training.train(corpus, tmp_path, resume=False, **run)
    assert not (tmp_path / "LOCK").exists()
    training.train(corpus, tmp_path, resume=False, **{**run, "total_words": 300})  # free once it ends
    assert not (tmp_path / "LOCK").exists()  # the lock goes with the run


def _error_line(capsys, argv) -> str:
    assert training.main(argv) == 2
    lines = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert len(lines) == 1, lines
    return lines[0]


def test_bad_inputs_get_one_line_errors(corpus, tmp_path, capsys):
    common = ["--size", "tiny", "--words", "100", "--vocab-size", str(VOCAB)]
    no_valid = tmp_path / "no_valid"
    no_valid.mkdir()
    (no_valid / "train.txt").write_text("a b c .\n")
    assert "valid.txt not found" in _error_line(capsys, ["--corpus", str(no_valid), "--out", str(tmp_path / "o"), *common])
    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "train.txt").write_text("\n \n")
    (empty / "valid.txt").write_text("austen a b .\n")
    assert "holds no sentences" in _error_line(capsys, ["--corpus", str(empty), "--out", str(tmp_path / "o"), *common])
    assert "not found" in _error_line(capsys, ["--corpus", str(tmp_path / "nowhere"), *common])
    blocker = tmp_path / "a_file"
    blocker.write_text("")  # --out below a file: no folder can be made there, even as root
    assert "cannot create" in _error_line(capsys, ["--corpus", str(corpus), "--out", str(blocker / "run"), *common])


def test_bf16_autocast_trains_on_cpu(corpus, tmp_path, run):
    result = training.train(corpus, tmp_path, resume=False, bf16=True, **{**run, "total_words": 3000})
    assert math.isfinite(result["best_valid"]["loss"]) and result["bf16"] is True


# ----- cost ---------------------------------------------------------------------------------------

# How close "matched" compute must be. Both cost models are estimates from corpus averages (pieces
# per word, attention length, the adaptive softmax's tail shares), and ELMo's own count moved by
# 2.8% when its softmax clusters were re-sized; 3% keeps the two within that.
COST_MATCH = 0.03


def test_small_matches_elmo_small_in_training_flop_per_word(capsys):
    from bench import mlm_cost

    mlm_cost.main(["--words", "1000000"])
    report = capsys.readouterr().out
    row = next(line for line in report.splitlines() if line.startswith("training MFLOP per word"))
    bert, elmo = (float(value) for value in row.split()[-2:])
    assert abs(bert - elmo) / elmo < COST_MATCH, report
    assert "ELMo small (per word" in report and "MLM head (15% of pieces)" in report


def test_a_corpus_of_one_word_trains(tmp_path):
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    (corpus / "train.txt").write_text("Hello\n")
    (corpus / "valid.txt").write_text("austen Hello\n")
    result = training.train(corpus, tmp_path / "run", "tiny", total_words=3, seed=0, resume=False, vocab_size=VOCAB)
    assert result["words"] == 3 and result["best_valid"]["targets"] == 1  # one piece, always the one chosen


def test_sigterm_stops_at_a_step_with_a_checkpoint_and_resume_continues(corpus, tmp_path, vocabulary):
    import os
    import signal
    import subprocess
    import sys
    import time

    out = tmp_path / "run"
    command = [sys.executable, "-m", "minibert.train_mlm", "--corpus", str(corpus), "--out", str(out), "--size", "tiny",
               "--words", "100000000", "--checkpoint-every", "1", "--tokenizer", str(vocabulary), "--threads", "1"]
    process = subprocess.Popen(command, cwd=Path(__file__).parents[2], stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 300
    while not (out / "checkpoint.pt").exists() and process.poll() is None and time.time() < deadline:
        time.sleep(0.2)
    process.send_signal(signal.SIGTERM)
    _, err = process.communicate(timeout=120)
    assert process.returncode == 2
    # It stops at the next step boundary, writes a checkpoint there and says so in one line.
    last = err.strip().splitlines()[-1]
    step = torch.load(out / "checkpoint.pt", weights_only=True)["step"]
    assert last.endswith(f"stopped by SIGTERM at step {step}; checkpoint written to {out / 'checkpoint.pt'}; "
                         "continue with --resume"), last
    # Resumed with a budget already reached, the run scores, finishes and exports at once.
    result = training.train(corpus, out, "tiny", total_words=1, seed=0, resume=True, checkpoint_every=1)
    assert result["step"] == step and os.path.isdir(out / "model")


def test_the_objective_teaches_context_on_a_synthetic_task():
    """Sequences of consecutive ids: a masked piece is known only from its neighbours. After 300
    steps the tiny model predicts far above the best context-free guess, so masking, attention and
    loss fit together (measured: ~50% right, from 1.6% at the start)."""
    torch.manual_seed(0)
    V = 60
    model = BertForMaskedLM(training.config_for("tiny", V))
    training.init_weights(model)
    optimizer = torch.optim.AdamW(model.parameters(), lr=3e-3)
    generator = torch.Generator().manual_seed(0)
    right = chosen_count = 0
    for step in range(300):
        starts = torch.randint(5, V - 12, (64,), generator=generator).tolist()
        input_ids, attention_mask, maskable = training.tensors_for([list(range(s, s + 10)) for s in starts], 2, 3, 0)
        corrupted, chosen = training.choose_and_corrupt(input_ids, maskable, 4, V, generator)
        nll, correct, n = training.mlm_loss(model, corrupted, attention_mask, input_ids, chosen)
        optimizer.zero_grad()
        (nll / n).backward()
        optimizer.step()
        if step >= 250:
            right, chosen_count = right + correct, chosen_count + n
    # Without context the best guess is the most frequent id: at most 10 of the 43 start values
    # cover any one id, so under 10/43 = 23% right; the trained model must clearly beat that.
    assert right / chosen_count > 0.35, right / chosen_count
