"""Hugging Face BERT checkpoints (model.safetensors) -> minibert.BertModel, as one key table.

Checked against the keys written by transformers 5.24 (`BertModel`, `BertForPreTraining`,
`BertForMaskedLM`) and by the all-MiniLM-L6-v2 release (transformers 4.8.2). HF stores
nn.Linear weights as (out, in) exactly as PyTorch does, so every transform here is `identity`;
the table is still the one place that says which source tensor fills which of our parameters.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch

from weights.common import WEIGHTS_FILE, LoadReport, Row, expand_rows, load_strict, read_safetensors

# Our parameter (minibert/model.py names)  <-  HF key (without the "bert." prefix).
BERT_TABLE = [
    Row("embeddings.word_embeddings.weight", "embeddings.word_embeddings.weight"),
    Row("embeddings.position_embeddings.weight", "embeddings.position_embeddings.weight"),
    Row("embeddings.token_type_embeddings.weight", "embeddings.token_type_embeddings.weight"),
    # HF keeps the capitalised attribute name `LayerNorm` from the TF port; ours is `norm`. Files
    # converted from TF early on (bert-base-uncased's own) call its scale and shift gamma and beta;
    # transformers 5.24 renames those on load ("legacy" in conversion_mapping.py), so we accept them.
    Row("embeddings.norm.weight", "embeddings.LayerNorm.weight", legacy="embeddings.LayerNorm.gamma"),
    Row("embeddings.norm.bias", "embeddings.LayerNorm.bias", legacy="embeddings.LayerNorm.beta"),
    # HF splits one attention block into BertSelfAttention (`attention.self`: q, k, v) and
    # BertSelfOutput (`attention.output`: the output projection and the residual's LayerNorm).
    Row("encoder.layers.{i}.attn.query.weight", "encoder.layer.{i}.attention.self.query.weight"),
    Row("encoder.layers.{i}.attn.query.bias", "encoder.layer.{i}.attention.self.query.bias"),
    Row("encoder.layers.{i}.attn.key.weight", "encoder.layer.{i}.attention.self.key.weight"),
    Row("encoder.layers.{i}.attn.key.bias", "encoder.layer.{i}.attention.self.key.bias"),
    Row("encoder.layers.{i}.attn.value.weight", "encoder.layer.{i}.attention.self.value.weight"),
    Row("encoder.layers.{i}.attn.value.bias", "encoder.layer.{i}.attention.self.value.bias"),
    Row("encoder.layers.{i}.attn.out_proj.weight", "encoder.layer.{i}.attention.output.dense.weight"),
    Row("encoder.layers.{i}.attn.out_proj.bias", "encoder.layer.{i}.attention.output.dense.bias"),
    Row("encoder.layers.{i}.attn_norm.weight", "encoder.layer.{i}.attention.output.LayerNorm.weight",
        legacy="encoder.layer.{i}.attention.output.LayerNorm.gamma"),
    Row("encoder.layers.{i}.attn_norm.bias", "encoder.layer.{i}.attention.output.LayerNorm.bias",
        legacy="encoder.layer.{i}.attention.output.LayerNorm.beta"),
    # The feed-forward is BertIntermediate (`intermediate.dense`, up to F) + BertOutput (`output`).
    Row("encoder.layers.{i}.ffn.ffn_in.weight", "encoder.layer.{i}.intermediate.dense.weight"),
    Row("encoder.layers.{i}.ffn.ffn_in.bias", "encoder.layer.{i}.intermediate.dense.bias"),
    Row("encoder.layers.{i}.ffn.ffn_out.weight", "encoder.layer.{i}.output.dense.weight"),
    Row("encoder.layers.{i}.ffn.ffn_out.bias", "encoder.layer.{i}.output.dense.bias"),
    Row("encoder.layers.{i}.ffn_norm.weight", "encoder.layer.{i}.output.LayerNorm.weight",
        legacy="encoder.layer.{i}.output.LayerNorm.gamma"),
    Row("encoder.layers.{i}.ffn_norm.bias", "encoder.layer.{i}.output.LayerNorm.bias",
        legacy="encoder.layer.{i}.output.LayerNorm.beta"),
]
POOLER_TABLE = [
    Row("pooler.dense.weight", "pooler.dense.weight"),
    Row("pooler.dense.bias", "pooler.dense.bias"),
]

# Source keys we deliberately do not load (glob pattern -> reason).
IGNORED = {
    "embeddings.position_ids": "a buffer holding arange(max_positions), not a weight; we build positions on the fly",
    "bert.embeddings.position_ids": "a buffer holding arange(max_positions), not a weight; we build positions on the fly",
    "cls.*": "pre-training heads (masked LM / next sentence); the encoder does not use them",
    "classifier.*": "a fine-tuning task head (BertForSequenceClassification & co.); the encoder does not use it",
    "qa_outputs.*": "the answer-span head of BertForQuestionAnswering (start/end logits); the encoder does not use it",
}
POOLER_IGNORED = {
    "pooler.*": "this model was built without a pooler",
    "bert.pooler.*": "this model was built without a pooler",
}


def checkpoint_prefix(tensors: dict[str, torch.Tensor]) -> str:
    """"bert." for checkpoints saved from a model with heads (BertForPreTraining, ...), where the
    encoder is the attribute `bert`; "" for a bare BertModel (all-MiniLM-L6-v2)."""
    return "bert." if any(key.startswith("bert.") for key in tensors) else ""


def save_checkpoint(model: torch.nn.Module, model_dir: Path) -> None:
    """Write config.json and model.safetensors as transformers' BertModel.save_pretrained does,
    so that transformers, sentence-transformers and BertModel.from_pretrained read them back.
    The key table is read backwards: every transform in it is `identity`."""
    from safetensors.torch import save_file

    model_dir = Path(model_dir)
    model_dir.mkdir(parents=True, exist_ok=True)
    table = BERT_TABLE + (POOLER_TABLE if model.pooler is not None else [])
    state = model.state_dict()
    # clone(): the fast path may have moved parameters into one shared buffer, and safetensors
    # refuses tensors that share storage.
    tensors = {row.source: state[row.target].detach().cpu().clone()
               for row in expand_rows(table, i=range(model.config.num_hidden_layers))}
    (model_dir / "config.json").write_text(json.dumps(model.config.to_dict(), indent=2), encoding="utf-8")
    save_file(tensors, str(model_dir / WEIGHTS_FILE), metadata={"format": "pt"})


def has_pooler(tensors: dict[str, torch.Tensor]) -> bool:
    """The pooler exists iff the checkpoint carries its weights (BertForMaskedLM, for one, has none)."""
    prefix = checkpoint_prefix(tensors)
    return any(key.startswith(prefix + "pooler.dense.") for key in tensors)


def read_checkpoint(model_dir: Path) -> dict[str, torch.Tensor]:
    return read_safetensors(Path(model_dir) / WEIGHTS_FILE)


def load_bert_weights(model: torch.nn.Module, tensors: dict[str, torch.Tensor], where: str = "checkpoint") -> LoadReport:
    """Fill a minibert.BertModel from HF BERT tensors, strictly; returns the LoadReport."""
    prefix = checkpoint_prefix(tensors)
    table = BERT_TABLE + (POOLER_TABLE if model.pooler is not None else [])
    rows = [Row(row.target, prefix + row.source, row.transform, row.legacy and prefix + row.legacy)
            for row in expand_rows(table, i=range(model.config.num_hidden_layers))]
    ignored = IGNORED if model.pooler is not None else {**IGNORED, **POOLER_IGNORED}
    return load_strict(model, tensors, rows, ignored, where=where,
                       hint="Is it a checkpoint of another architecture?")
