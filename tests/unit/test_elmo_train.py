"""The biLM training objective and loop (minielmo/train.py), on a tiny model and a small slice of
real text. Nothing here trains for more than a few seconds."""

import json
import os
import signal

import pytest
import torch
from torch import nn

import minielmo
from minielmo import train as training
from minielmo.words import split_words
from weights import runs
from weights.elmo_export import export

# Reloading an exported model: the safetensors copy is bit-exact; the hdf5 copy goes through
# TF's layout and back, where subtracting and re-adding the forget bias of 1.0 rounds (~6e-8).
HDF5_ROUNDTRIP_ATOL = 1e-6


@pytest.fixture(scope="module")
def corpus(tmp_path_factory, slice_corpus_factory):
    return slice_corpus_factory(tmp_path_factory.mktemp("corpus"))


def _model_and_batch(corpus):
    torch.manual_seed(0)
    vocab = training.Vocabulary.from_file(corpus / "vocab.txt")
    sentences = training.read_sentences(corpus / "train.txt")[:24]
    bilm = minielmo.BiLM(training.SIZES["tiny"], dropout=training.DROPOUT)
    softmax = training.SharedSoftmax(bilm.config.projection_dim, len(vocab))
    return bilm, softmax, training.tensors_for(sentences, vocab)


def test_targets_are_next_word_forward_and_previous_word_backward(corpus):
    vocab = training.Vocabulary.from_file(corpus / "vocab.txt")
    char_ids, word_ids = training.tensors_for([["She", "smiled", "."]], vocab)
    assert char_ids.shape == (1, 3, 50)
    assert word_ids[0].tolist() == vocab.ids(["She", "smiled", "."])
    assert word_ids[0, 0] == vocab.index["<S>"] and word_ids[0, 4] == vocab.index["</S>"]
    # An n-word sentence gives n + 1 targets per direction: x1..xn, </S> forward; <S>, x1..xn backward.
    bilm, softmax, _ = _model_and_batch(corpus)
    _, _, n = training.bilm_nll(bilm, softmax, char_ids, word_ids, nn.Identity())
    assert n == 4


def test_every_parameter_gets_a_gradient(corpus):
    bilm, softmax, (char_ids, word_ids) = _model_and_batch(corpus)
    forward_nll, backward_nll, n = training.bilm_nll(bilm, softmax, char_ids, word_ids, nn.Dropout(0.1))
    ((forward_nll + backward_nll) / (2 * n)).backward()
    no_grad = [name for name, p in list(bilm.named_parameters()) + list(softmax.named_parameters())
               if p.grad is None or not p.grad.abs().sum() > 0]
    # The padding row of the character embedding (padding_idx=0) is the one parameter slice that
    # never learns; the embedding as a whole still gets a gradient.
    assert no_grad == []


def test_loss_falls_on_a_fixed_batch(corpus):
    bilm, softmax, (char_ids, word_ids) = _model_and_batch(corpus)
    optimizer = torch.optim.Adam(list(bilm.parameters()) + list(softmax.parameters()), lr=1e-2)
    losses = []
    for _ in range(15):
        forward_nll, backward_nll, n = training.bilm_nll(bilm, softmax, char_ids, word_ids, nn.Identity())
        loss = (forward_nll + backward_nll) / (2 * n)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    # Starting near log(400) = 6.0 nats, 15 Adam steps on one batch must learn at least the word
    # frequencies: a drop of 1 nat is far outside step-to-step noise (~0.05 nat).
    assert losses[-1] < losses[0] - 1.0, losses


def test_resumed_run_equals_an_uninterrupted_run(corpus, tmp_path, monkeypatch):
    whole = training.train(corpus, tmp_path / "whole", "tiny", 6000, seed=1, resume=False,
                           checkpoint_every=2)
    # The same run, stopped by a real SIGTERM during step 2: the loop finishes the step, writes a
    # checkpoint and stops with a one-line error; --resume then continues it.
    show = training.Progress.show

    def show_then_terminate(self, step, *args):
        if step == 2:
            os.kill(os.getpid(), signal.SIGTERM)
        return show(self, step, *args)

    monkeypatch.setattr(training.Progress, "show", show_then_terminate)
    with pytest.raises(runs.RunError, match="stopped by SIGTERM at step 2.*--resume"):
        training.train(corpus, tmp_path / "split", "tiny", 6000, seed=1, resume=False, checkpoint_every=100)
    monkeypatch.setattr(training.Progress, "show", show)
    resumed = training.train(corpus, tmp_path / "split", "tiny", 6000, seed=1, resume=True,
                             checkpoint_every=2)
    assert resumed["step"] == whole["step"] and resumed["tokens"] == whole["tokens"]
    a = torch.load(tmp_path / "whole" / "checkpoint.pt", weights_only=True)["bilm"]
    b = torch.load(tmp_path / "split" / "checkpoint.pt", weights_only=True)["bilm"]
    for name in a:
        torch.testing.assert_close(a[name], b[name], rtol=0, atol=0)
    log = (tmp_path / "whole" / "train_log.jsonl").read_text().splitlines()
    assert '"tokens_per_s"' in log[0]
    steps = [json.loads(line)["step"] for line in (tmp_path / "split" / "train_log.jsonl").read_text().splitlines()]
    assert steps == list(range(1, resumed["step"] + 1))  # each step logged once across the resume
    assert not (tmp_path / "split" / "LOCK").exists()  # the lock goes with the run


def test_exported_model_reloads_with_identical_outputs(corpus, tmp_path):
    bilm, _, (char_ids, _) = _model_and_batch(corpus)
    bilm.eval()
    paths = export(bilm, tmp_path / "model")
    from_hdf5 = minielmo.BiLM.from_files(paths["options"], paths["hdf5"])
    from_safetensors = minielmo.BiLM.from_files(paths["options"], paths["safetensors"])
    with torch.no_grad():
        expected = bilm(char_ids)["activations"]
        for layer, a, b in zip(expected, from_hdf5(char_ids)["activations"],
                               from_safetensors(char_ids)["activations"]):
            torch.testing.assert_close(a, layer, rtol=0, atol=HDF5_ROUNDTRIP_ATOL)
            torch.testing.assert_close(b, layer, rtol=0, atol=0)


def test_export_of_a_released_file_reproduces_its_datasets(tmp_path):
    h5py = pytest.importorskip("h5py")
    bilm = minielmo.BiLM.from_pretrained("fixture")
    paths = export(bilm, tmp_path)

    def read(path):
        out = {}
        with h5py.File(path, "r") as f:
            f.visititems(lambda name, item: out.__setitem__(name, item[...])
                         if isinstance(item, h5py.Dataset) else None)
        return out

    original, written = read(minielmo.FIXTURE_WEIGHTS), read(paths["hdf5"])
    assert sorted(original) == sorted(written)
    for name in original:
        torch.testing.assert_close(torch.from_numpy(written[name]), torch.from_numpy(original[name]),
                                   rtol=0, atol=HDF5_ROUNDTRIP_ATOL)


def test_words_are_split_by_the_tokenizers_pre_tokenizer():
    assert split_words("Mr. Darcy's bank, (1813)!") == ["Mr", ".", "Darcy", "'", "s", "bank", ",", "(",
                                                        "1813", ")", "!"]
