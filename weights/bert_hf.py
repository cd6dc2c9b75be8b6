"""Hugging Face BERT checkpoints (model.safetensors) -> minibert.BertModel, as one key table.

Checked against the keys written by transformers 5.24 (`BertModel`, `BertForPreTraining`,
`BertForMaskedLM`) and by the all-MiniLM-L6-v2 release (transformers 4.8.2). HF stores
nn.Linear weights as (out, in) exactly as PyTorch does, so every transform here is `identity`;
the table is still the one place that says which source tensor fills which of our parameters.
The same rows, read the other way, write a minibert.BertForMaskedLM in BertForMaskedLM's format
(`save_mlm`), which transformers loads.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Callable

import torch

from weights.common import (WEIGHTS_FILE, LoadReport, Row, expand_rows, load_strict, read_safetensors, resolve,
                            without_random_init)

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
# The masked-LM head of BertForMaskedLM / BertForPreTraining (minibert/mlm.py: MaskedLMHead).
# HF calls the dense + GELU + LayerNorm part `transform`, as Google's TF code did.
MLM_HEAD_TABLE = [
    Row("mlm_head.dense.weight", "cls.predictions.transform.dense.weight"),
    Row("mlm_head.dense.bias", "cls.predictions.transform.dense.bias"),
    Row("mlm_head.norm.weight", "cls.predictions.transform.LayerNorm.weight",
        legacy="cls.predictions.transform.LayerNorm.gamma"),
    Row("mlm_head.norm.bias", "cls.predictions.transform.LayerNorm.bias",
        legacy="cls.predictions.transform.LayerNorm.beta"),
    Row("mlm_head.bias", "cls.predictions.bias"),
]

# Source keys we deliberately do not load (glob pattern -> reason).
IGNORED = {
    "embeddings.position_ids": "a buffer holding arange(max_positions), not a weight; we build positions on the fly",
    "bert.embeddings.position_ids": "a buffer holding arange(max_positions), not a weight; we build positions on the fly",
    "cls.*": "pre-training heads (masked LM / next sentence); the encoder does not use them",
    "classifier.*": "a fine-tuning task head (BertForSequenceClassification & co.); the encoder does not use it",
    "qa_outputs.*": "the answer-span head of BertForQuestionAnswering (start/end logits); the encoder does not use it",
}
# What a BertForMaskedLM load leaves out. The two decoder keys are not separate weights: HF ties
# decoder.weight to the word embeddings and decoder.bias to cls.predictions.bias, and transformers
# 5.25 writes neither; files that still carry decoder.weight are checked equal to the embeddings.
MLM_IGNORED = {
    "bert.embeddings.position_ids": IGNORED["bert.embeddings.position_ids"],
    "cls.predictions.decoder.weight": "the decoder is tied to bert.embeddings.word_embeddings.weight (checked equal)",
    "cls.predictions.decoder.bias": "the same tensor as cls.predictions.bias (HF ties them)",
    "cls.seq_relationship.*": "the next-sentence-prediction head of BertForPreTraining; the MLM does not use it",
    "bert.pooler.*": "the pooler feeds next-sentence prediction; BertForMaskedLM has none",
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
    table = BERT_TABLE + (POOLER_TABLE if model.pooler is not None else [])
    state = model.state_dict()
    # clone(): the fast path may have moved parameters into one shared buffer, and safetensors
    # refuses tensors that share storage.
    tensors = {row.source: state[row.target].detach().cpu().clone()
               for row in encoder_rows(table, model.config.num_hidden_layers, source_prefix="")}
    _write_model_folder(model_dir, model.config.to_dict(), tensors)


def _write_model_folder(folder: Path, config: dict, tensors: dict[str, torch.Tensor]) -> Path:
    """config.json and model.safetensors in `folder` (made if missing), as save_pretrained writes them."""
    from safetensors.torch import save_file

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "config.json").write_text(json.dumps(config, indent=2) + "\n", encoding="utf-8")
    save_file(tensors, str(folder / WEIGHTS_FILE), metadata={"format": "pt"})
    return folder


def has_pooler(tensors: dict[str, torch.Tensor]) -> bool:
    """The pooler exists iff the checkpoint carries its weights (BertForMaskedLM, for one, has none)."""
    prefix = checkpoint_prefix(tensors)
    return any(key.startswith(prefix + "pooler.dense.") for key in tensors)


def read_checkpoint(model_dir: Path) -> dict[str, torch.Tensor]:
    return read_safetensors(Path(model_dir) / WEIGHTS_FILE)


def load_pretrained(name_or_dir, read_config: Callable, build: Callable, load_weights: Callable,
                    dtype: torch.dtype, device) -> torch.nn.Module:
    """What a from_pretrained does: find the folder (`resolve`), read its config.json with
    `read_config`, build the model with `build(config, tensors)`, fill it strictly with
    `load_weights` (the report kept as `model.load_report`); eval mode, in `dtype` on `device`."""
    model_dir = resolve(name_or_dir)
    config = read_config(model_dir / "config.json")
    tensors = read_checkpoint(model_dir)
    with without_random_init():  # every value is overwritten next
        model = build(config, tensors)
    model.load_report = load_weights(model, tensors, where=str(model_dir / WEIGHTS_FILE))
    return model.to(device=device, dtype=dtype).eval()


def encoder_rows(table: list[Row], layers: int, source_prefix: str, target_prefix: str = "") -> list[Row]:
    """The table expanded over the layers, with the prefixes each side puts before its keys."""
    return [Row(target_prefix + row.target, source_prefix + row.source, row.transform,
                row.legacy and source_prefix + row.legacy)
            for row in expand_rows(table, i=range(layers))]


def load_bert_weights(model: torch.nn.Module, tensors: dict[str, torch.Tensor], where: str = "checkpoint") -> LoadReport:
    """Fill a minibert.BertModel from HF BERT tensors, strictly; returns the LoadReport."""
    table = BERT_TABLE + (POOLER_TABLE if model.pooler is not None else [])
    rows = encoder_rows(table, model.config.num_hidden_layers, checkpoint_prefix(tensors))
    ignored = IGNORED if model.pooler is not None else {**IGNORED, **POOLER_IGNORED}
    return load_strict(model, tensors, rows, ignored, where=where,
                       hint="Is it a checkpoint of another architecture?")


def mlm_rows(layers: int) -> list[Row]:
    """BertForMaskedLM's rows: the encoder (ours under `bert.`, as theirs) plus the MLM head."""
    return encoder_rows(BERT_TABLE, layers, "bert.", target_prefix="bert.") + MLM_HEAD_TABLE


def load_mlm_weights(model: torch.nn.Module, tensors: dict[str, torch.Tensor], where: str = "checkpoint") -> LoadReport:
    """Fill a minibert.BertForMaskedLM from HF BertForMaskedLM (or BertForPreTraining) tensors,
    strictly; returns the LoadReport. A checkpoint without the MLM head is refused (missing keys)."""
    if checkpoint_prefix(tensors) != "bert.":
        raise ValueError(f"{where} holds a bare BERT encoder (no 'bert.' prefix, no cls.predictions.*): "
                         "it has no masked-LM head; load it with minibert.BertModel instead")
    decoder = tensors.get("cls.predictions.decoder.weight")
    embeddings = tensors.get("bert.embeddings.word_embeddings.weight")
    if decoder is not None and embeddings is not None and not torch.equal(decoder, embeddings):
        raise ValueError(f"{where}: cls.predictions.decoder.weight differs from the word embeddings; "
                         "this model ties them (tie_word_embeddings), so an untied head cannot be loaded")
    rows = mlm_rows(model.config.num_hidden_layers)
    return load_strict(model, tensors, rows, MLM_IGNORED, where=where,
                       hint="Is it a BertForMaskedLM checkpoint of the same size?")


def save_mlm(model: torch.nn.Module, folder: Path) -> Path:
    """Write a minibert.BertForMaskedLM as transformers 5.25 saves BertForMaskedLM: config.json with
    architectures ["BertForMaskedLM"] and model.safetensors under HF's key names (the tied decoder
    keys left out, as transformers leaves them out). Refuses non-finite weights. Returns the folder."""
    import dataclasses

    ours = model.state_dict()
    rows = mlm_rows(model.config.num_hidden_layers)
    if sorted(row.target for row in rows) != sorted(ours):
        raise RuntimeError(f"key table does not match the model: {sorted(set(ours) ^ {r.target for r in rows})}")
    tensors = {}
    for row in rows:  # every transform here is identity (see the module docstring)
        tensor = ours[row.target].detach().to("cpu", torch.float32).contiguous()
        if not torch.isfinite(tensor).all():
            raise ValueError(f"refusing to export: {row.target} holds NaN or infinite values")
        tensors[row.source] = tensor
    config = {"architectures": ["BertForMaskedLM"], "model_type": "bert", "tie_word_embeddings": True,
              **dataclasses.asdict(model.config)}
    return _write_model_folder(folder, config, tensors)
