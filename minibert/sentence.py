"""Sentence embeddings: tokenizer -> BERT -> masked pooling -> L2 normalisation.

N texts · B batch · T tokens · D hidden size

Sentence-BERT (Reimers & Gurevych 2019, §3) gets one vector per text by pooling BERT's last
hidden states over the real tokens; all-MiniLM-L6-v2 mean-pools and then scales each vector to
unit length, so a dot product is a cosine similarity. The pipeline is described by the
sentence-transformers files next to the weights:
  modules.json                 the stages in order (Transformer, Pooling, optionally Normalize)
  sentence_bert_config.json    max_seq_length (256 for all-MiniLM-L6-v2: longer texts are cut)
  1_Pooling/config.json        which pooling (see pooling/pooling.py)

Checked against sentence-transformers 6.2.0 `SentenceTransformer.encode`
(`sentence_transformer/model.py`) on all-MiniLM-L6-v2. Left out: Dense and other extra modules,
prompts, multiple processes/devices, precision/quantisation options, text pairs.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import numpy as np
import torch

import pooling
from minibert import fast
from minibert.model import BertModel
from minibert.tokenizer import Tokenizer
from weights.common import read_json

# The stages of a sentence-transformers modules.json that this encoder implements, by class name.
# modules.json gives each stage's full class path, and sentence-transformers moved the classes:
# older releases write `sentence_transformers.models.Transformer`, 6.2 itself writes
# `sentence_transformers.base.modules.transformer.Transformer` (and `...modules.pooling.Pooling`).
TRANSFORMER, POOLING, NORMALIZE = "Transformer", "Pooling", "Normalize"


class SentenceEncoder:
    """Texts -> float32 sentence vectors (N, D), equal to `SentenceTransformer(dir).encode(texts)`."""

    def __init__(
        self,
        model: BertModel,
        tokenizer: Tokenizer,
        pooling_config: pooling.PoolingConfig,
        max_seq_length: int,
        normalize: bool,
    ):
        if pooling_config.word_embedding_dimension != model.config.hidden_size:
            raise ValueError(
                f"pooling config expects {pooling_config.word_embedding_dimension}-dim token vectors "
                f"but the model's hidden_size is {model.config.hidden_size}"
            )
        self.model = model.eval()
        self.tokenizer = tokenizer
        self.pooling_config = pooling_config
        self.max_seq_length = max_seq_length
        self.normalize = normalize  # the default of encode(normalize=None)

    @property
    def dimension(self) -> int:
        return self.pooling_config.output_dimension

    @classmethod
    def from_pretrained(cls, name_or_dir: str | Path) -> SentenceEncoder:
        """Load a sentence-transformers BERT model by name or directory (no network, ever)."""
        from weights import resolve  # lazy, as in BertModel.from_pretrained

        # A folder with modules.json may keep the BERT files in a subfolder that modules.json names
        # (older sentence-transformers saved them in 0_Transformer/), so do not ask resolve() for
        # weights at its top level; BertModel.from_pretrained checks the transformer's folder.
        directory = Path(name_or_dir).expanduser() if isinstance(name_or_dir, (str, os.PathLike)) else None
        if directory is None or not (directory / "modules.json").is_file():
            directory = resolve(name_or_dir)
        transformer_dir, pooling_dir, normalize = _read_modules(directory)

        model = BertModel.from_pretrained(transformer_dir)
        tokenizer = Tokenizer.from_pretrained(transformer_dir)
        if pooling_dir is not None:
            pooling_config = pooling.PoolingConfig.from_file(pooling_dir / "config.json")
            sbert_file = transformer_dir / "sentence_bert_config.json"
            sbert = read_json(sbert_file) if sbert_file.is_file() else {}
        else:
            # No modules.json: a plain BERT checkpoint. sentence-transformers then wraps it with mean
            # pooling and no Normalize, and ignores any sentence_bert_config.json; so do we.
            pooling_config = pooling.PoolingConfig(model.config.hidden_size, ("mean",))
            sbert = {}
        # With no max_seq_length given, sentence-transformers caps at what both the model and the
        # tokenizer can take.
        # NOTE (deviation): a max_seq_length above max_position_embeddings is capped too;
        # sentence-transformers 6.2 keeps it and then fails inside BERT on long texts.
        limits = [model.config.max_position_embeddings, sbert.get("max_seq_length") or tokenizer.model_max_length]
        max_seq_length = min(n for n in limits if n is not None)
        if sbert.get("do_lower_case", False):
            tokenizer.lowercase_before_normalizing()
        return cls(model, tokenizer, pooling_config, max_seq_length, normalize)

    @torch.inference_mode()
    def encode(
        self,
        texts: list[str] | str,
        batch_size: int = 32,
        normalize: bool | None = None,
        show_progress: bool = False,
    ) -> np.ndarray:
        """Embed texts: a list of N str -> float32 array (N, D), in the caller's order.

        A single str gives one vector (D,), as `SentenceTransformer.encode` does. An empty list gives
        an empty (0, D) array. normalize=None follows modules.json (a Normalize stage means unit
        length vectors); normalize=False skips even a Normalize stage, unlike sentence-transformers'
        normalize_embeddings=False, which still runs it. Texts longer than max_seq_length word pieces are cut, as in
        sentence-transformers. show_progress draws a small bar on stderr.
        """
        if isinstance(texts, str):
            return self.encode([texts], batch_size, normalize, show_progress)[0]
        if not isinstance(texts, (list, tuple)):
            raise TypeError(f"texts must be a list of str (or one str), got {type(texts).__name__}")
        for i, text in enumerate(texts):
            if not isinstance(text, str):
                raise TypeError(f"texts[{i}] is {type(text).__name__} ({text!r:.40}), expected str")
        if not isinstance(batch_size, int) or batch_size < 1:
            raise ValueError(f"batch_size must be a positive int, got {batch_size!r}")
        if normalize is None:
            normalize = self.normalize

        vectors = torch.zeros(len(texts), self.dimension)  # (N, D)
        batches, tokenized = self.tokenized_batches(texts, batch_size)
        # The model runs several batches in parallel, one thread each (see fast.map_batches).
        embedded = fast.map_batches(lambda batch: self._embed_batch(batch, normalize), tokenized)
        for b, (batch_ids, batch_vectors) in enumerate(zip(batches, embedded)):
            vectors[batch_ids] = batch_vectors
            if show_progress:
                _draw_progress(b + 1, len(batches))
        return vectors.numpy().astype(np.float32, copy=False)

    def tokenized_batches(self, texts: list[str], batch_size: int) -> tuple[list[list[int]], list[dict]]:
        """Group texts into padded batches of similar length: (text indices per batch, batches).

        Everything is tokenized first (in the calling thread: the tokenizer object is not shared
        across threads); then the longest texts go first, so each batch holds texts of similar
        length and little padding.
        NOTE (deviation): sentence-transformers sorts by character count, which leaves more padding
        (on the bench corpus 11.6% of token slots against 2.9% here); the vectors differ only by
        float rounding (a text's vector does not depend on its batch-mates beyond that). Callers
        write each batch's vectors back at its texts' own rows, which keeps the caller's order."""
        pieces = self.tokenizer.encode_each(texts, max_length=self.max_seq_length)
        order = sorted(range(len(texts)), key=lambda i: -len(pieces[i]))
        batches = [order[start : start + batch_size] for start in range(0, len(texts), batch_size)]
        return batches, [self.tokenizer.pad([pieces[i] for i in ids]) for ids in batches]

    def _embed_batch(self, batch: dict, normalize: bool) -> torch.Tensor:
        """One tokenized, padded batch through model, pooling and normalisation. (B, T) -> (B, D)."""
        ids, mask, types = batch["input_ids"], batch["attention_mask"], batch["token_type_ids"]
        if fast.watched(self.model):  # a forward hook is registered: run every module, so it fires
            hidden = self.model(ids, attention_mask=mask, token_type_ids=types).last_hidden_state
        else:  # minibert/fast.py: the same maths, padding packed away, fused kernels (pinned by a test)
            hidden = fast.last_hidden_state(self.model, ids, mask, types)  # (B, T) -> (B, T, D)
        sentence = pooling.pool(hidden, batch["attention_mask"], self.pooling_config.pooling_modes)  # (B, T, D) -> (B, D)
        return pooling.normalize(sentence) if normalize else sentence


def _read_modules(directory: Path) -> tuple[Path, Path | None, bool]:
    """modules.json -> (folder of the transformer, folder of the pooling config or None, normalize?)."""
    modules_file = directory / "modules.json"
    if not modules_file.is_file():
        return directory, None, False
    modules = read_json(modules_file, expected=list)
    for i, module in enumerate(modules):
        if not isinstance(module, dict) or not isinstance(module.get("type"), str) or not isinstance(module.get("path"), str):
            raise ValueError(f"{modules_file}: stage {i} needs a string \"type\" and a string "
                             f"\"path\", got {json.dumps(module)[:80]}")
    types = [_stage_name(m["type"]) for m in modules]
    supported = [TRANSFORMER, POOLING, NORMALIZE]
    unsupported = [t for t in types if t not in supported]
    if unsupported or types[:2] != [TRANSFORMER, POOLING] or len(set(types)) != len(types):
        raise ValueError(
            f"{modules_file}: SentenceEncoder runs Transformer -> Pooling -> (Normalize); got the "
            f"modules {types}" + (f" ({unsupported} not implemented)" if unsupported else "")
        )
    return directory / modules[0]["path"], directory / modules[1]["path"], NORMALIZE in types


def _stage_name(module_type) -> str:
    """"sentence_transformers.<any.module.path>.Pooling" -> "Pooling"; other types are kept whole."""
    if isinstance(module_type, str) and module_type.startswith("sentence_transformers."):
        return module_type.rsplit(".", 1)[-1]
    return str(module_type)


def _draw_progress(done: int, total: int, width: int = 30) -> None:
    """A one-line progress bar on stderr, redrawn in place with a carriage return."""
    filled = width * done // total
    sys.stderr.write(f"\rencoding [{'#' * filled}{'.' * (width - filled)}] {done}/{total} batches")
    if done == total:
        sys.stderr.write("\n")
    sys.stderr.flush()
