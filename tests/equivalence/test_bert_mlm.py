"""minibert.BertForMaskedLM against transformers' BertForMaskedLM, both directions, on a tiny
random model with a WordPiece vocabulary trained on a slice of the corpus; the fill-mask against
transformers' fill-mask pipeline; and the packaged "minicontext-bert-small" once it ships."""

from pathlib import Path

import pytest
import torch

from minibert import BertConfig, BertForMaskedLM, FillMask, Tokenizer
from minibert import train_mlm
from weights import resolve
from weights.bert_hf import save_mlm

transformers = pytest.importorskip("transformers")

SLICE = Path(__file__).parents[1] / "fixtures" / "text_slice"
# float32, two implementations of the same graph on tiny random weights: the rounding noise of
# differently ordered sums, ~1e-6 measured; 1e-5 is the project's float32 tiny-model tolerance.
LOGITS_ATOL = 1e-5
LOGITS_RTOL = 1e-5
# Probabilities from those logits (values in [0, 1]): the same float32 noise, after a softmax.
PROBS_ATOL = 1e-6
TEXTS = ["We sat on the [MASK] of the river .", "She smiled , and [MASK] said nothing .",
         "Mr . Darcy [MASK] [MASK] !", "It is a truth universally acknowledged ."]


@pytest.fixture(scope="module")
def tokenizer_dir(tmp_path_factory):
    folder = tmp_path_factory.mktemp("wordpiece")
    sentences = [line.split() for line in (SLICE / "train.txt").read_text(encoding="utf-8").splitlines()]
    train_mlm.save_tokenizer(train_mlm.train_wordpiece(sentences, vocab_size=400), folder)
    return folder


def _tiny_config(vocab_size: int) -> dict:
    return dict(vocab_size=vocab_size, hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
                intermediate_size=37, max_position_embeddings=64, type_vocab_size=1)


def _inputs(folder: Path) -> dict:
    return Tokenizer.from_pretrained(folder)(TEXTS)  # padded (B, T)


def _assert_logits_equal(ours: torch.Tensor, theirs: torch.Tensor, attention_mask: torch.Tensor) -> None:
    real = attention_mask.bool()  # padded positions are garbage in both; compare real pieces only
    torch.testing.assert_close(ours[real], theirs[real], atol=LOGITS_ATOL, rtol=LOGITS_RTOL)


@pytest.fixture(scope="module")
def our_export(tokenizer_dir, tmp_path_factory):
    """Our random model, initialised as training initialises it, exported in HF format."""
    torch.manual_seed(0)
    vocab_size = len(Tokenizer.from_pretrained(tokenizer_dir).backend.get_vocab())
    model = BertForMaskedLM(BertConfig(**_tiny_config(vocab_size)))
    train_mlm.init_weights(model)
    with torch.no_grad():  # non-trivial head parameters, so a swapped or dropped row would show
        model.mlm_head.bias.normal_(0, 0.5)
        model.mlm_head.norm.weight.normal_(1, 0.2)
    folder = tmp_path_factory.mktemp("ours")
    train_mlm.export_model(model, tokenizer_dir, folder)
    return model.eval(), folder


def test_our_export_loads_in_transformers_with_equal_logits(our_export):
    model, folder = our_export
    reference = transformers.BertForMaskedLM.from_pretrained(folder, attn_implementation="eager").eval()
    assert reference.config.architectures == ["BertForMaskedLM"]
    batch = _inputs(folder)
    with torch.no_grad():
        ours = model(batch["input_ids"], batch["attention_mask"], batch["token_type_ids"])
        theirs = reference(**batch).logits
    _assert_logits_equal(ours, theirs, batch["attention_mask"])
    # The tie survives the round trip: transformers' decoder is its word-embedding matrix.
    assert reference.cls.predictions.decoder.weight.data_ptr() == reference.bert.embeddings.word_embeddings.weight.data_ptr()


def test_transformers_save_loads_in_ours_with_equal_logits(tokenizer_dir, tmp_path):
    torch.manual_seed(1)
    vocab_size = len(Tokenizer.from_pretrained(tokenizer_dir).backend.get_vocab())
    reference = transformers.BertForMaskedLM(transformers.BertConfig(**_tiny_config(vocab_size),
                                                                     attn_implementation="eager")).eval()
    with torch.no_grad():
        reference.cls.predictions.bias.normal_(0, 0.5)
    reference.save_pretrained(tmp_path, safe_serialization=True)
    ours = BertForMaskedLM.from_pretrained(tmp_path)
    assert ours.load_report.loaded["mlm_head.bias"] == "cls.predictions.bias"
    batch = _inputs(tokenizer_dir)
    with torch.no_grad():
        _assert_logits_equal(ours(batch["input_ids"], batch["attention_mask"], batch["token_type_ids"]),
                             reference(**batch).logits, batch["attention_mask"])


def test_both_tokenizers_read_the_trained_vocabulary_alike(our_export):
    _, folder = our_export
    ours = Tokenizer.from_pretrained(folder)
    reference = transformers.AutoTokenizer.from_pretrained(folder)
    texts = TEXTS + ["Bank and bank differ ; naïve café , 1813 .", "  odd\tspacing\n[MASK]"]
    for text in texts:
        assert ours(text)["input_ids"][0].tolist() == reference(text)["input_ids"], text
    # Cased: the vocabulary keeps "Mr" and "Darcy" apart from lowercase spellings.
    assert ours.tokenize("The")[0] != ours.tokenize("the")[0]
    assert reference.mask_token_id == ours.backend.token_to_id("[MASK]")


def test_fill_mask_equals_the_transformers_pipeline(our_export):
    model, folder = our_export
    ours = FillMask(model, Tokenizer.from_pretrained(folder))
    pipeline = transformers.pipeline("fill-mask", model=transformers.BertForMaskedLM.from_pretrained(folder),
                                     tokenizer=transformers.AutoTokenizer.from_pretrained(folder))
    for text in TEXTS[:3]:
        expected = pipeline(text, top_k=5)
        expected = [expected] if isinstance(expected[0], dict) else expected  # one mask: a flat list
        got = ours(text, top_k=5)
        assert len(got) == len(expected)
        for our_row, their_row in zip(got, expected):
            assert [c["token"] for c in our_row] == [c["token"] for c in their_row]
            assert [c["token_str"] for c in our_row] == [c["token_str"] for c in their_row]
            torch.testing.assert_close(torch.tensor([c["score"] for c in our_row]),
                                       torch.tensor([c["score"] for c in their_row]), atol=PROBS_ATOL, rtol=0)
            if len(got) == 1:  # with several masks transformers keeps [CLS]/[SEP] in the text (see fill_mask.py)
                assert [c["sequence"] for c in our_row] == [c["sequence"] for c in their_row]


def _shipped_dir():
    try:
        return resolve("minicontext-bert-small")
    except FileNotFoundError:
        return None


def test_shipped_model_matches_transformers():
    folder = _shipped_dir()
    if folder is None:
        # Until a training run's OUT/model/ ships as minibert/data/bert_small/, the name is known and
        # its absence is one clear line, not a download attempt or a traceback.
        with pytest.raises(FileNotFoundError) as missing:
            resolve("minicontext-bert-small")
        assert "minicontext-bert-small" in str(missing.value) and "\n" not in str(missing.value)
        return
    ours = BertForMaskedLM.from_pretrained("minicontext-bert-small")
    reference = transformers.BertForMaskedLM.from_pretrained(folder, attn_implementation="eager").eval()
    batch = Tokenizer.from_pretrained(folder)(TEXTS)
    with torch.no_grad():
        _assert_logits_equal(ours(batch["input_ids"], batch["attention_mask"], batch["token_type_ids"]),
                             reference(**batch).logits, batch["attention_mask"])
    assert sum(path.stat().st_size for path in folder.iterdir()) < 25e6  # the package's size limit
