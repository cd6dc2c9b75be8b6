"""BERT with its masked-language-model head (Devlin et al. 2019, §3.1 "Task #1: Masked LM").

Legend: B batch · T tokens · N chosen positions · D hidden · V vocab

The encoder is minibert.model.BertModel, unchanged. On top of its last hidden state the MLM head
predicts, at every position, which word piece belongs there:

    logits = LayerNorm(GELU(hidden W_t + b_t)) E^T + b        (B, T, D) -> (B, T, V)

where E is the word-embedding matrix itself: the decoder is *tied* to the input embeddings (Press
& Wolf 2017), with a bias of its own. The paper describes the head only as "an output softmax over
the vocabulary"; the transform (dense + GELU + LayerNorm) and the tying are in Google's BERT code
(google-research/bert run_pretraining.py, get_masked_lm_output), which transformers follows.

Checked against transformers 5.25 `BertForMaskedLM` (tests/equivalence/test_bert_mlm.py).
Left out: next-sentence prediction (see minibert/train_mlm.py), the pooler (BertForMaskedLM has none).
This file imports only torch; checkpoints are read by `weights/`, called lazily in `from_pretrained`.
"""

from __future__ import annotations

import torch
from torch import nn

from minibert.config import BertConfig
from minibert.model import ACTIVATIONS, BertModel, LayerNorm, floating_dtype


class MaskedLMHead(nn.Module):
    """dense + activation + LayerNorm, then a decoder that reuses the word embeddings (tied)."""

    def __init__(self, config: BertConfig):
        super().__init__()
        self.dense = nn.Linear(config.hidden_size, config.hidden_size)
        self.activation = ACTIVATIONS[config.hidden_act]
        self.norm = LayerNorm(config.hidden_size, config.layer_norm_eps)
        # The decoder's only own parameter: one bias per word piece. Its weight is the embedding
        # matrix, passed in at call time, so there is exactly one copy of it to train and save.
        self.bias = nn.Parameter(torch.zeros(config.vocab_size))

    def forward(self, hidden: torch.Tensor, word_embeddings: torch.Tensor) -> torch.Tensor:
        """hidden (..., D), word_embeddings (V, D) -> logits (..., V). Any leading shape: the
        training loop passes only the N chosen positions (N, D)."""
        hidden = self.norm(self.activation(self.dense(hidden)))       # (..., D) -> (..., D)
        return hidden @ word_embeddings.T + self.bias                  # (..., D) @ (D, V) -> (..., V)


class BertForMaskedLM(nn.Module):
    def __init__(self, config: BertConfig):
        super().__init__()
        self.config = config
        self.bert = BertModel(config, add_pooler=False)  # the pooler serves NSP, which MLM does not need
        self.mlm_head = MaskedLMHead(config)

    @classmethod
    def from_pretrained(cls, name_or_dir, dtype=None, device=None) -> "BertForMaskedLM":
        """Load a BertForMaskedLM checkpoint (config.json + model.safetensors) by name or directory,
        e.g. "minicontext-bert-small" (see `weights.resolve`). Eval mode; dtype and device as for
        BertModel.from_pretrained. The load report is kept as `model.load_report`."""
        dtype = floating_dtype(dtype)
        from weights import bert_hf  # lazy: the modules themselves never touch a file

        return bert_hf.load_pretrained(name_or_dir, BertConfig.from_json, lambda config, tensors: cls(config),
                                       bert_hf.load_mlm_weights, dtype, device)

    def forward(self, input_ids, attention_mask=None, token_type_ids=None) -> torch.Tensor:
        """input_ids, attention_mask, token_type_ids (B, T) as for BertModel -> logits (B, T, V),
        unnormalised scores for every word piece at every position."""
        hidden = self.bert(input_ids, attention_mask, token_type_ids).last_hidden_state  # (B, T, D)
        return self.mlm_head(hidden, self.bert.embeddings.word_embeddings.weight)         # (B, T, V)
