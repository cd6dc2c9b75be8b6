"""Fill-mask: what a masked-LM BERT predicts for each [MASK] in a text (Devlin et al. 2019 §3.1).

    from minibert import fill_mask
    fill_mask("We sat on the [MASK] of the river .", top_k=5)
    # [[{"score": 0.41, "token": 1234, "token_str": "bank", "sequence": "We sat on the bank of the river ."}, ...]]

The text is tokenized as in training, run once through BertForMaskedLM, and at every [MASK] the
logits are turned into probabilities over the vocabulary (softmax) and the top_k pieces are kept.
Each [MASK] is predicted from the same single pass, with the others still masked: a piece is
scored given the text around it, not given the other predictions.

Checked against transformers 5.25's `pipeline("fill-mask")` (tests/equivalence/test_bert_mlm.py):
the same keys (score, token, token_str, sequence) and, for one [MASK], the same values.
NOTE (deviation): transformers returns a flat list for one [MASK] and a list per [MASK] otherwise;
we always return a list per [MASK]. With several masks, transformers' `sequence` keeps [CLS] and
[SEP]; ours shows only the text, the other masks still written [MASK].
"""

from __future__ import annotations

import os

import torch

from minibert.mlm import BertForMaskedLM
from minibert.tokenizer import Tokenizer

DEFAULT_MODEL = "minicontext-bert-small"
MASK = "[MASK]"


class FillMask:
    """A masked-LM model and its tokenizer, called like transformers' fill-mask pipeline."""

    def __init__(self, model: BertForMaskedLM, tokenizer: Tokenizer):
        self.model = model.eval()
        self.tokenizer = tokenizer
        self.mask_id = tokenizer.backend.token_to_id(MASK)
        if self.mask_id is None:
            raise ValueError(f"the tokenizer has no {MASK} token; fill-mask needs a masked-LM vocabulary")

    @classmethod
    def from_pretrained(cls, name_or_dir: str | os.PathLike = DEFAULT_MODEL) -> "FillMask":
        """The model and tokenizer of one folder (or a name `weights.resolve` knows)."""
        model = BertForMaskedLM.from_pretrained(name_or_dir)
        from weights import resolve  # lazy, as in from_pretrained: no file is read before it is asked for

        return cls(model, Tokenizer.from_pretrained(resolve(name_or_dir)))

    @torch.no_grad()
    def __call__(self, text: str, top_k: int = 5) -> list[list[dict]]:
        """For each [MASK] in `text`, in order, the top_k pieces as dicts: score (probability),
        token (id), token_str (the piece as text) and sequence (the text with that piece filled in)."""
        if not isinstance(text, str):
            raise TypeError(f"text must be a str, got {type(text).__name__}")
        if not text.strip():
            raise ValueError(f"the text is empty; write a sentence with {MASK} where a word should be predicted")
        vocab_size = self.model.config.vocab_size
        if isinstance(top_k, bool) or not isinstance(top_k, int) or not 1 <= top_k <= vocab_size:
            raise ValueError(f"top_k must be an int from 1 to the vocabulary size {vocab_size}, got {top_k!r}")
        batch = self.tokenizer(text, padding=False, truncation=False)
        input_ids = batch["input_ids"]                                          # (1, T)
        limit = self.model.config.max_position_embeddings
        if input_ids.shape[1] > limit:
            raise ValueError(f"the text is {input_ids.shape[1]} word pieces with [CLS] and [SEP]; this model "
                             f"reads at most {limit}: shorten it")
        positions = (input_ids[0] == self.mask_id).nonzero().squeeze(-1)       # (M,)
        if positions.numel() == 0:
            raise ValueError(f"no {MASK} in the text; write {MASK} where a word should be predicted, e.g. "
                             f"'We sat on the {MASK} of the river .'")

        device = self.model.bert.embeddings.word_embeddings.weight.device
        logits = self.model(input_ids.to(device), batch["attention_mask"].to(device),
                            batch["token_type_ids"].to(device))                 # (1, T, V)
        probs = logits[0, positions].float().softmax(dim=-1)                   # (M, V)
        scores, pieces = probs.topk(top_k, dim=-1)                             # (M, k), (M, k)

        single = positions.numel() == 1
        results = []
        for position, row_scores, row_pieces in zip(positions.tolist(), scores.tolist(), pieces.tolist()):
            row = []
            for score, piece in zip(row_scores, row_pieces):
                filled = input_ids[0].clone()
                filled[position] = piece
                # Drop [CLS] and [SEP] but keep the other masks: decode the inside of the frame.
                sequence = self.tokenizer.decode(filled[1:-1], skip_special_tokens=single)
                row.append({"score": score, "token": piece, "token_str": self.tokenizer.decode([piece]),
                            "sequence": sequence})
            results.append(row)
        return results


_LOADED: dict[str, FillMask] = {}


def fill_mask(text: str, top_k: int = 5, model: str | os.PathLike | FillMask = DEFAULT_MODEL) -> list[list[dict]]:
    """FillMask(model)(text, top_k): the top_k pieces for each [MASK] in `text`. `model` is a name
    `weights.resolve` knows, a model folder, or a FillMask; a name or folder is loaded once per process."""
    if not isinstance(model, FillMask):
        key = os.fspath(model)
        if key not in _LOADED:
            _LOADED[key] = FillMask.from_pretrained(key)
        model = _LOADED[key]
    return model(text, top_k)


def format_predictions(text: str, predictions: list[list[dict]]) -> str:
    """The predictions as a small table per [MASK], then the text with every mask's top piece."""
    lines = [text, ""]
    for number, row in enumerate(predictions, 1):
        lines.append(f"[MASK] {number}:")
        lines += [f"  {candidate['score']:7.3f}  {candidate['token_str']}" for candidate in row]
    filled = text.split(MASK)[0]
    for row, after in zip(predictions, text.split(MASK)[1:]):
        piece = row[0]["token_str"]
        # A continuation piece ("##ing") joins the word before it, as WordPiece decoding does.
        filled = (filled.rstrip() + piece[2:] if piece.startswith("##") else filled + piece) + after
    return "\n".join(lines + ["", f"filled: {filled}"])
