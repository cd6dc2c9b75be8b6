"""BertForMaskedLM (minibert/mlm.py), its weight table and export (weights/bert_hf.py), fill-mask
(minibert/fill_mask.py) and `python -m minibert fill-mask`, on tiny random models."""

from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file

import weights
from minibert import BertConfig, BertForMaskedLM, BertModel, FillMask, Tokenizer, fill_mask
from minibert import train_mlm
from minibert.__main__ import main
from weights.bert_hf import save_mlm

pytestmark = pytest.mark.usefixtures("torch_single_thread")

SLICE = Path(__file__).parents[1] / "fixtures" / "text_slice"
CONFIG = BertConfig(vocab_size=300, hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
                    intermediate_size=37, max_position_embeddings=24, type_vocab_size=1)


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    """A tiny random BertForMaskedLM exported with a vocabulary trained on the test slice."""
    vocabulary, folder = tmp_path_factory.mktemp("vocabulary"), tmp_path_factory.mktemp("mlm")
    sentences = [line.split() for line in (SLICE / "train.txt").read_text(encoding="utf-8").splitlines()]
    train_mlm.save_tokenizer(train_mlm.train_wordpiece(sentences, CONFIG.vocab_size), vocabulary)
    torch.manual_seed(0)
    model = BertForMaskedLM(CONFIG)
    train_mlm.init_weights(model)
    train_mlm.export_model(model, vocabulary, folder)
    return folder


def test_the_decoder_is_the_word_embedding_matrix():
    torch.manual_seed(0)
    model = BertForMaskedLM(CONFIG)
    # One copy of the matrix: nothing in the state dict besides the embeddings has shape (V, D).
    assert [name for name, t in model.state_dict().items() if t.shape == (CONFIG.vocab_size, CONFIG.hidden_size)] \
        == ["bert.embeddings.word_embeddings.weight"]
    input_ids = torch.randint(0, CONFIG.vocab_size, (2, 5))
    logits = model(input_ids)
    assert logits.shape == (2, 5, CONFIG.vocab_size)
    # The output row of a piece that never appears in the input still trains the embedding.
    absent = next(i for i in range(CONFIG.vocab_size) if i not in input_ids)
    logits[..., absent].sum().backward()
    assert model.bert.embeddings.word_embeddings.weight.grad[absent].abs().sum() > 0


def test_export_then_load_is_exact_and_keeps_hf_key_names(model_dir, tmp_path):
    ours = BertForMaskedLM.from_pretrained(model_dir)
    tensors = load_file(str(model_dir / "model.safetensors"))
    assert "cls.predictions.bias" in tensors and "cls.predictions.transform.LayerNorm.weight" in tensors
    assert not any(key.startswith("cls.predictions.decoder") for key in tensors)  # tied, as transformers writes
    assert set(ours.load_report.loaded.values()) == set(tensors)
    save_mlm(ours, tmp_path)
    again = load_file(str(tmp_path / "model.safetensors"))
    assert sorted(again) == sorted(tensors)
    for key in tensors:
        torch.testing.assert_close(again[key], tensors[key], rtol=0, atol=0)


def test_loading_refuses_an_untied_decoder_and_a_bare_encoder(model_dir, tmp_path):
    tensors = load_file(str(model_dir / "model.safetensors"))
    untied = {**tensors, "cls.predictions.decoder.weight": tensors["bert.embeddings.word_embeddings.weight"] + 1}
    with pytest.raises(ValueError, match="decoder.weight differs from the word embeddings"):
        weights.bert_hf.load_mlm_weights(BertForMaskedLM(CONFIG), untied)
    # The same tensor written out (older transformers did) is accepted and ignored with its reason.
    tied = {**tensors, "cls.predictions.decoder.weight": tensors["bert.embeddings.word_embeddings.weight"].clone()}
    report = weights.bert_hf.load_mlm_weights(BertForMaskedLM(CONFIG), tied)
    assert "tied" in report.ignored["cls.predictions.decoder.weight"]
    bare = {key.removeprefix("bert."): t for key, t in tensors.items() if key.startswith("bert.")}
    with pytest.raises(ValueError, match="no masked-LM head"):
        weights.bert_hf.load_mlm_weights(BertForMaskedLM(CONFIG), bare)
    # ...while the encoder alone loads from the MLM checkpoint, the head ignored.
    assert BertModel.from_pretrained(model_dir).pooler is None


def test_export_refuses_non_finite_weights(tmp_path):
    model = BertForMaskedLM(CONFIG)
    with torch.no_grad():
        model.mlm_head.bias[3] = float("nan")
    with pytest.raises(ValueError, match="refusing to export: mlm_head.bias"):
        save_mlm(model, tmp_path)
    assert not (tmp_path / "model.safetensors").exists()


def test_the_shipped_name_is_known_and_its_absence_explained():
    try:
        folder = weights.resolve("minicontext-bert-small")
    except FileNotFoundError as error:
        assert "minibert.train_mlm" in str(error) and "data/bert_small" in str(error)
    else:
        assert folder.parts[-2:] == ("data", "bert_small")


# ----- fill-mask ----------------------------------------------------------------------------------

def test_fill_mask_returns_top_k_per_mask_with_probabilities(model_dir):
    result = fill_mask("We sat on the [MASK] of the [MASK] .", top_k=4, model=model_dir)
    assert len(result) == 2 and all(len(row) == 4 for row in result)
    ours = FillMask.from_pretrained(model_dir)
    for row in result:
        scores = [candidate["score"] for candidate in row]
        assert scores == sorted(scores, reverse=True) and 0 < sum(scores) <= 1 + 1e-6
    # The probabilities are the softmax of the model's logits at the mask.
    batch = ours.tokenizer("We sat on the [MASK] of the [MASK] .")
    position = batch["input_ids"][0].tolist().index(ours.mask_id)
    with torch.no_grad():
        probs = ours.model(batch["input_ids"])[0, position].softmax(-1)
    assert result[0][0]["token"] == int(probs.argmax())
    assert result[0][1]["sequence"].count("[MASK]") == 1  # the other mask stays written


@pytest.mark.parametrize("text, message", [
    ("no mask here .", "no \\[MASK\\] in the text"),
    ("   ", "the text is empty"),
    ("word " * 30 + "[MASK]", "word pieces with \\[CLS\\] and \\[SEP\\]; this model reads at most 24"),
])
def test_fill_mask_refuses_bad_text_clearly(model_dir, text, message):
    with pytest.raises(ValueError, match=message):
        fill_mask(text, model=model_dir)


def test_fill_mask_command_prints_and_errs_in_one_line(model_dir, capsys):
    assert main(["fill-mask", "We sat on the [MASK] .", "--model", str(model_dir), "--top-k", "3"]) == 0
    out = capsys.readouterr().out
    assert out.count("\n  ") == 3 and "filled: We sat on the " in out
    assert main(["fill-mask", "no mask", "--model", str(model_dir)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "no [MASK] in the text" in err
