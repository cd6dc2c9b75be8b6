"""Sentence embeddings: tokenizer -> BERT -> masked pooling -> L2 normalisation.

N texts · B batch · T tokens · D hidden size

Sentence-BERT (Reimers & Gurevych 2019, §3) gets one vector per text by pooling BERT's last
hidden states over the real tokens; all-MiniLM-L6-v2 mean-pools and then scales each vector to
unit length, so a dot product is a cosine similarity. The pipeline is described by the
sentence-transformers files next to the weights:
  modules.json                 the stages in order (Transformer, Pooling, optionally Normalize)
  sentence_bert_config.json    max_seq_length (256 for all-MiniLM-L6-v2: longer texts are cut)
  1_Pooling/config.json        which pooling (see pooling/pooling.py)

  config_sentence_transformers.json   prompts (optional)

Checked against sentence-transformers 6.2.0 `SentenceTransformer` (`sentence_transformer/model.py`,
`base/model.py`) on all-MiniLM-L6-v2. Left out (docs/api.md says why): Dense and other extra
modules, multiple processes/devices, quantised output (`precision=`), truncate_dim, text pairs,
output_value=None, model cards.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
import json
import os
import sys
import time
from collections.abc import Iterable, Iterator, Sized
from pathlib import Path

import numpy as np
import torch
from torch import nn

import pooling
from minibert import fast
from minibert.model import BertModel
from minibert.tokenizer import Tokenizer, check_unicode
from weights.common import read_json, read_optional_json, side_file

# The stages of a sentence-transformers modules.json that this encoder implements, by class name.
# modules.json gives each stage's full class path, and sentence-transformers moved the classes:
# older releases write `sentence_transformers.models.Transformer`, 6.2 itself writes
# `sentence_transformers.base.modules.transformer.Transformer` (and `...modules.pooling.Pooling`).
TRANSFORMER, POOLING, NORMALIZE = "Transformer", "Pooling", "Normalize"

OUTPUT_VALUES = ("sentence_embedding", "token_embeddings")
# encode() reads, tokenizes and embeds this many batches of texts at a time: enough batches to
# keep every core busy (fast.map_batches runs one per thread) and to sort texts by length within
# the chunk, few enough that memory stays bounded (tokenizing a long text holds ~145 KB until
# its chunk is embedded).
CHUNK_BATCHES = 16


class SentenceEncoder(nn.Module):
    """Texts -> sentence vectors (N, D), equal to `SentenceTransformer(dir).encode(texts)`.

    An nn.Module, as SentenceTransformer is (`.eval()`, `.to()`, `state_dict()`, parameters()),
    with sentence-transformers' interface and argument names: encode / encode_query /
    encode_document, forward(features) -> dict, tokenize, similarity, save,
    get_sentence_embedding_dimension, get_max_seq_length, .device. docs/api.md lists it all."""

    def __init__(
        self,
        model: BertModel,
        tokenizer: Tokenizer,
        pooling_config: pooling.PoolingConfig,
        max_seq_length: int,
        normalize: bool,
        prompts: dict[str, str] | None = None,
        default_prompt_name: str | None = None,
    ):
        super().__init__()
        if pooling_config.word_embedding_dimension != model.config.hidden_size:
            raise ValueError(
                f"pooling config expects {pooling_config.word_embedding_dimension}-dim token vectors "
                f"but the model's hidden_size is {model.config.hidden_size}"
            )
        self.prompts = _checked_prompts(prompts, default_prompt_name)
        self.default_prompt_name = default_prompt_name
        self.model = model
        self.tokenizer = tokenizer
        self.pooling_config = pooling_config
        self.max_seq_length = max_seq_length
        self.normalize = normalize  # the Normalize stage of modules.json
        self.eval()

    @property
    def dimension(self) -> int:
        return self.pooling_config.output_dimension

    @classmethod
    def from_pretrained(cls, name_or_dir: str | Path, dtype: torch.dtype | str | None = None,
                        device: str | torch.device | None = None) -> SentenceEncoder:
        """Load a sentence-transformers BERT model by name or directory (no network, ever).

        dtype, device: as in BertModel.from_pretrained (default float32 on the CPU)."""
        from weights import resolve  # lazy, as in BertModel.from_pretrained

        # A folder with modules.json may keep the BERT files in a subfolder that modules.json names
        # (older sentence-transformers saved them in 0_Transformer/), so do not ask resolve() for
        # weights at its top level; BertModel.from_pretrained checks the transformer's folder.
        directory = Path(name_or_dir).expanduser() if isinstance(name_or_dir, (str, os.PathLike)) else None
        if directory is None or side_file(directory / "modules.json") is None:
            directory = resolve(name_or_dir)
        transformer_dir, pooling_dir, normalize = _read_modules(directory)

        model = BertModel.from_pretrained(transformer_dir, dtype=dtype, device=device)
        tokenizer = Tokenizer.from_pretrained(transformer_dir)
        if pooling_dir is not None:
            side_file(pooling_dir / "config.json")  # a broken link or FIFO there is named, not "missing"
            pooling_config = pooling.PoolingConfig.from_file(pooling_dir / "config.json")
            sbert = read_optional_json(transformer_dir / "sentence_bert_config.json")
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
        model_config = read_optional_json(directory / "config_sentence_transformers.json")
        return cls(model, tokenizer, pooling_config, max_seq_length, normalize,
                   prompts=model_config.get("prompts"), default_prompt_name=model_config.get("default_prompt_name"))

    def save(self, path: str | Path) -> None:
        """Write a folder that SentenceEncoder.from_pretrained and sentence-transformers'
        SentenceTransformer(path) both load, with the same vectors: the BERT files (config.json,
        model.safetensors, tokenizer) at its top, modules.json, sentence_bert_config.json,
        config_sentence_transformers.json (prompts), 1_Pooling/ and, with Normalize, 2_Normalize/.
        NOTE (deviation): sentence-transformers also writes a model card (README.md); we do not."""
        from weights import bert_hf  # lazy: checkpoint key names live in weights/

        path = Path(path)
        bert_hf.save_checkpoint(self.model, path)
        self.tokenizer.save_pretrained(path)
        stages = [(TRANSFORMER, ""), (POOLING, "1_Pooling")] + ([(NORMALIZE, "2_Normalize")] if self.normalize else [])
        for _, folder in stages[1:]:
            (path / folder).mkdir(exist_ok=True)
        _write_json(path / "modules.json", [{"idx": i, "name": str(i), "path": folder, "type": f"sentence_transformers.models.{name}"}
                                            for i, (name, folder) in enumerate(stages)])
        _write_json(path / "sentence_bert_config.json",
                    {"max_seq_length": self.max_seq_length, "do_lower_case": self.tokenizer.lowercase_first})
        _write_json(path / "config_sentence_transformers.json", {
            "prompts": self.prompts, "default_prompt_name": self.default_prompt_name, "similarity_fn_name": "cosine"})
        modes = self.pooling_config.pooling_modes
        _write_json(path / "1_Pooling" / "config.json", {
            "embedding_dimension": self.pooling_config.word_embedding_dimension,
            "pooling_mode": modes[0] if len(modes) == 1 else list(modes), "include_prompt": True})

    # ----- sentence-transformers' interface ---------------------------------------------------

    def get_sentence_embedding_dimension(self) -> int:
        """D, the length of one sentence vector (as `SentenceTransformer` names it)."""
        return self.dimension

    get_embedding_dimension = get_sentence_embedding_dimension  # sentence-transformers 6's name

    def get_max_seq_length(self) -> int:
        """Word pieces per text, [CLS] and [SEP] included; longer texts are cut."""
        return self.max_seq_length

    @property
    def device(self) -> torch.device:
        return self.model.embeddings.word_embeddings.weight.device

    @staticmethod
    def similarity(embeddings1, embeddings2) -> torch.Tensor:
        """Cosine similarity of every row of embeddings1 with every row of embeddings2.

        (N, D) or (D,) arrays or tensors -> (N, M) float32 tensor, as `SentenceTransformer.similarity`
        gives with its default "cosine" function."""
        a, b = (_as_matrix(e, name) for e, name in ((embeddings1, "embeddings1"), (embeddings2, "embeddings2")))
        if a.shape[1] != b.shape[1]:
            raise ValueError(f"cannot compare {a.shape[1]}-dim with {b.shape[1]}-dim vectors")
        return pooling.normalize(a) @ pooling.normalize(b).T  # (N, D) @ (D, M) -> (N, M)

    def tokenize(self, texts: list[str] | str) -> dict[str, torch.Tensor]:
        """Texts -> the padded batch forward() takes: input_ids, token_type_ids, attention_mask (B, T),
        cut at max_seq_length, as `SentenceTransformer.tokenize` gives."""
        return self.tokenizer(texts, max_length=self.max_seq_length, padding=True, truncation=True)

    def forward(self, features: dict) -> dict:
        """features from tokenize() -> the same dict plus "token_embeddings" (B, T, D) and
        "sentence_embedding" (B, D), as `SentenceTransformer.forward`. The readable modules run
        (hooks fire, gradients flow when not in inference mode); encode() runs the fast path."""
        if not isinstance(features, dict) or "input_ids" not in features:
            raise TypeError("forward takes the dict tokenize() returns (input_ids, attention_mask, ...), "
                            f"got {type(features).__name__}")
        ids = features["input_ids"]
        mask = features.get("attention_mask")
        mask = torch.ones_like(ids) if mask is None else mask
        hidden = self.model(ids, attention_mask=mask, token_type_ids=features.get("token_type_ids")).last_hidden_state
        sentence = pooling.pool(hidden, mask, self.pooling_config.pooling_modes)  # (B, T, D) -> (B, D)
        if self.normalize:
            sentence = pooling.normalize(sentence)
        return {**features, "attention_mask": mask, "token_embeddings": hidden, "sentence_embedding": sentence}

    def encode(
        self,
        sentences: Iterable[str] | str,
        batch_size: int = 32,
        show_progress_bar: bool | None = None,
        output_value: str = "sentence_embedding",
        convert_to_numpy: bool = True,
        convert_to_tensor: bool = False,
        device: str | torch.device | None = None,
        normalize_embeddings: bool = False,
        *,
        prompt_name: str | None = None,
        prompt: str | None = None,
    ):
        """Embed texts in the caller's order, like `SentenceTransformer.encode` (same argument names).

        sentences: one str, or any iterable of str (a list, a generator, lines of a file). It is
            read chunk by chunk (CHUNK_BATCHES batches at a time): each chunk is tokenized, sorted
            by length, embedded and dropped, so memory grows with the batch, not with N (beyond
            the (N, D) result itself; bench/MEMORY.md measures it).
        batch_size: texts per model call. Texts longer than max_seq_length word pieces are cut.
        show_progress_bar: a one-line bar on stderr with the rate and, when N is known, the ETA.
        output_value: "sentence_embedding" (pooled, one vector per text) or "token_embeddings"
            (a list of (T_i, D) tensors, the last hidden state at each text's real tokens).
        convert_to_numpy / convert_to_tensor: a numpy array (N, D) (default; bfloat16 is upcast to
            float32, which numpy lacks), one tensor (N, D) on the model's device, or with both False
            a list of N tensors (D,). Ignored for token embeddings, as in sentence-transformers.
        device: run on this device; the model is moved there (and stays), as in
            sentence-transformers. None: where the model is.
        normalize_embeddings: scale each vector to unit length. The model's own Normalize stage
            (modules.json; all-MiniLM-L6-v2 has one) runs either way, as in sentence-transformers.
        prompt_name / prompt: text put before every text: the prompt of that name in
            config_sentence_transformers.json's "prompts", or the given string (which wins over
            prompt_name, as in sentence-transformers). Neither: the default_prompt_name's, if any.
            NOTE (deviation): keyword-only here; sentence-transformers takes them second and third.

        One str gives one result ((D,) vector or (T, D) tensor); an empty iterable gives (0, D).
        Every argument is checked before anything runs or moves, so a refused call leaves the
        encoder as it was.
        """
        texts, single = _as_texts(sentences)
        prompt = self._resolve_prompt(prompt, prompt_name)
        _check_encode_options(batch_size, output_value, show_progress_bar, convert_to_numpy=convert_to_numpy,
                              convert_to_tensor=convert_to_tensor, normalize_embeddings=normalize_embeddings)
        target = _checked_device(device)
        if target is not None:
            self.to(target)
        self.eval()  # as sentence-transformers' encode does
        tokens_wanted = output_value == "token_embeddings"
        progress = _Progress(len(texts) if isinstance(texts, Sized) else None) if show_progress_bar else None
        chunks = self._embed_chunks(texts, batch_size, prompt, normalize=self.normalize or normalize_embeddings,
                                    tokens=tokens_wanted, progress=progress)
        if progress:
            progress.finish()
        if tokens_wanted:
            listed = [tensor for chunk in chunks for tensor in chunk]
            return listed[0] if single else listed
        vectors = torch.cat(chunks) if chunks else torch.zeros(0, self.dimension, dtype=self._dtype)  # (N, D)
        if single:
            vectors = vectors[0]
        if convert_to_tensor:
            return vectors.to(self.device)
        if convert_to_numpy:
            return _to_numpy(vectors)
        return vectors if single else list(vectors)

    def encode_query(self, sentences: Iterable[str] | str, **kwargs):
        """encode() with the "query" prompt, when the model has one (as in sentence-transformers)."""
        if kwargs.get("prompt_name") is None and kwargs.get("prompt") is None and "query" in self.prompts:
            kwargs["prompt_name"] = "query"
        return self.encode(sentences, **kwargs)

    def encode_document(self, sentences: Iterable[str] | str, **kwargs):
        """encode() with the first of the "document", "passage", "corpus" prompts the model has (as
        in sentence-transformers)."""
        if kwargs.get("prompt_name") is None and kwargs.get("prompt") is None:
            kwargs["prompt_name"] = next((name for name in ("document", "passage", "corpus") if name in self.prompts), None)
        return self.encode(sentences, **kwargs)

    def _resolve_prompt(self, prompt: str | None, prompt_name: str | None) -> str:
        if prompt is not None and not isinstance(prompt, str):
            raise TypeError(f"prompt must be a str, got {type(prompt).__name__}")
        if prompt is not None:
            return prompt
        if prompt_name is None:
            prompt_name = self.default_prompt_name
            if prompt_name is None:
                return ""
        if not isinstance(prompt_name, str) or prompt_name not in self.prompts:
            raise ValueError(f"prompt_name {prompt_name!r} is not one of this model's prompts {sorted(self.prompts)} "
                             "(config_sentence_transformers.json)")
        return self.prompts[prompt_name]

    @property
    def _dtype(self) -> torch.dtype:
        return self.model.embeddings.word_embeddings.weight.dtype

    def _embed_chunks(self, texts: Iterable[str], batch_size: int, prompt: str, normalize: bool, tokens: bool,
                      progress: _Progress | None) -> list:
        """Per chunk of texts: (chunk, D) vectors, or a list of (T_i, D) tensors, in the caller's order."""
        embed = functools.partial(self._embed_batch, normalize=normalize, tokens=tokens)
        results: list = []
        with torch.inference_mode():
            for chunk in chunks(texts, batch_size * CHUNK_BATCHES):
                batches, id_lists = self._grouped_ids([prompt + text for text in chunk] if prompt else chunk, batch_size)
                # The model runs several batches in parallel, one thread each (see fast.map_batches);
                # each batch is padded in its worker, so padded ids exist only while embedded.
                in_order = [None] * len(chunk) if tokens else None
                for batch_ids, outputs in zip(batches, fast.map_batches(embed, id_lists)):
                    if tokens:  # a list of (T_i, D) tensors
                        for i, output in zip(batch_ids, outputs):
                            in_order[i] = output
                    else:  # (B, D), written back at its texts' rows; allocated in the model's dtype
                        if in_order is None:
                            in_order = outputs.new_empty(len(chunk), outputs.shape[1])  # (chunk, D)
                        in_order[torch.tensor(batch_ids, device=outputs.device)] = outputs
                    if progress:
                        progress.advance(len(batch_ids))
                results.append(in_order)
                del batches, id_lists
                release_free_memory()
        return results

    def tokenized_batches(self, texts: list[str], batch_size: int) -> tuple[list[list[int]], list[dict]]:
        """Group texts into padded batches of similar length: (text indices per batch, batches).

        The texts are tokenized first; then the longest texts go first, so each batch holds texts
        of similar length and little padding (encode() does this per chunk of texts).
        NOTE (deviation): sentence-transformers sorts all N texts before batching; sorting within
        a chunk keeps memory bounded, and costs a little more padding at chunk edges.
        NOTE (deviation): sentence-transformers sorts by character count, which leaves more padding
        where texts differ in characters per word piece; the vectors differ only by float rounding (a text's
        vector does not depend on its batch-mates beyond that). Callers write each batch's vectors
        back at its texts' own rows, which keeps the caller's order."""
        batches, id_lists = self._grouped_ids(texts, batch_size)
        return batches, [self.tokenizer.pad(ids) for ids in id_lists]

    def _grouped_ids(self, texts: list[str], batch_size: int) -> tuple[list[list[int]], list[list[list[int]]]]:
        """tokenized_batches before padding: (text indices per batch, word-piece ids per text per batch)."""
        pieces = self.tokenizer.encode_each(texts, max_length=self.max_seq_length)
        order = sorted(range(len(texts)), key=lambda i: -len(pieces[i]))
        batches = [order[start : start + batch_size] for start in range(0, len(texts), batch_size)]
        return batches, [[pieces[i] for i in ids] for ids in batches]

    def _embed_batch(self, id_lists: list[list[int]], normalize: bool, tokens: bool = False):
        """One batch of word-piece ids, padded, through model, pooling and normalisation.
        -> (B, D); with tokens=True, B tensors (T_i, D): the last hidden state at each text's real tokens."""
        batch = self.tokenizer.pad(id_lists)
        device = self.device
        ids, mask, types = (batch[k].to(device) for k in ("input_ids", "attention_mask", "token_type_ids"))
        if fast.watched(self.model):  # a forward hook is registered: run every module, so it fires
            hidden = self.model(ids, attention_mask=mask, token_type_ids=types).last_hidden_state
        else:  # minibert/fast.py: the same maths, padding packed away, fused kernels (pinned by a test)
            hidden = fast.last_hidden_state(self.model, ids, mask, types)  # (B, T) -> (B, T, D)
        if tokens:
            return [row[real] for row, real in zip(hidden, mask.bool())]  # B x (T_i, D)
        sentence = pooling.pool(hidden, mask, self.pooling_config.pooling_modes)  # (B, T, D) -> (B, D)
        return pooling.normalize(sentence) if normalize else sentence


def _read_modules(directory: Path) -> tuple[Path, Path | None, bool]:
    """modules.json -> (folder of the transformer, folder of the pooling config or None, normalize?)."""
    modules_file = side_file(directory / "modules.json")
    if modules_file is None:
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


def _write_json(path: Path, value) -> None:
    path.write_text(json.dumps(value, indent=2) + "\n", encoding="utf-8")


def _checked_prompts(prompts, default_prompt_name) -> dict[str, str]:
    """config_sentence_transformers.json's "prompts" (name -> text) and "default_prompt_name"."""
    prompts = {} if prompts is None else prompts
    if not isinstance(prompts, dict) or not all(isinstance(k, str) and isinstance(v, (str, type(None)))
                                                for k, v in prompts.items()):
        raise ValueError(f"prompts must map names to prompt texts (str), got {prompts!r:.80}")
    prompts = {name: text or "" for name, text in prompts.items()}  # null means "", as in sentence-transformers
    if default_prompt_name is not None and default_prompt_name not in prompts:
        raise ValueError(f"default_prompt_name {default_prompt_name!r} is not one of the prompts {sorted(prompts)}")
    return prompts


def _as_texts(sentences) -> tuple[Iterable[str], bool]:
    """encode's input -> (an iterable of texts, whether one str was given)."""
    if isinstance(sentences, (bytes, bytearray)):
        raise TypeError(f"sentences must be a str or an iterable of str, got {type(sentences).__name__}"
                        " (decode bytes first)")
    if isinstance(sentences, str):
        return [sentences], True
    if not isinstance(sentences, Iterable):
        raise TypeError(f"sentences must be a str or an iterable of str, got {type(sentences).__name__}")
    return sentences, False


def _check_encode_options(batch_size, output_value, show_progress_bar, **flags) -> None:
    if output_value not in OUTPUT_VALUES:
        raise ValueError(f"output_value must be one of {list(OUTPUT_VALUES)}, got {output_value!r}")
    if not isinstance(batch_size, int) or isinstance(batch_size, bool) or batch_size < 1:
        raise ValueError(f"batch_size must be a positive int, got {batch_size!r}")
    for name, value in [("show_progress_bar", show_progress_bar), *flags.items()]:
        if not isinstance(value, (bool, np.bool_)) and not (value is None and name == "show_progress_bar"):
            raise TypeError(f"{name} must be True or False, got {value!r:.40}")


def _checked_device(device) -> torch.device | None:
    """encode's device= -> a torch.device that can compute, checked before the model moves there."""
    if device is None:
        return None
    try:
        device = torch.device(device)
    except (RuntimeError, TypeError) as error:
        raise ValueError(f"device {device!r:.40} is not a device torch knows ({str(error).splitlines()[0]})") from None
    if device.type == "meta":
        raise ValueError("device='meta' holds shapes but no values, so nothing can be computed there; "
                         "use 'cpu' or an accelerator such as 'cuda'")
    try:
        torch.empty(0, device=device)  # an absent accelerator or index fails here, not halfway through .to()
    except (RuntimeError, AssertionError) as error:
        raise ValueError(f"device {str(device)!r} is not available here ({str(error).splitlines()[0]})") from None
    return device


def _glibc_malloc_trim():
    """glibc's malloc_trim, or None where the C library is not glibc (macOS, musl, Windows)."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        return ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6").malloc_trim
    except (OSError, AttributeError):
        return None


# Set to None to keep freed memory in the process (bench/memory.py's "encode-no-trim" does, to
# measure what the trim is worth).
MALLOC_TRIM = _glibc_malloc_trim()


def release_free_memory() -> None:
    """Return the memory freed while embedding a chunk to the operating system, where the C
    allocator allows it (glibc's malloc_trim; elsewhere nothing happens).

    glibc keeps freed blocks in per-thread arenas for reuse; the batch worker threads leave their
    activations there, so without a trim the process stays at its peak after encode returns, and
    the arenas fragment as chunks go by. bench/MEMORY.md measures the difference."""
    if MALLOC_TRIM is not None:
        MALLOC_TRIM(0)


def chunks(texts: Iterable, size: int) -> Iterator[list[str]]:
    """Lists of up to `size` texts, read lazily from any iterable; each item checked to be a str."""
    chunk: list[str] = []
    for i, text in enumerate(texts):
        if not isinstance(text, str):
            raise TypeError(f"sentences[{i}] is {type(text).__name__} ({text!r:.40}), expected str")
        chunk.append(text)
        if len(chunk) == size:
            check_unicode(chunk, "sentences", start=i + 1 - size)  # errors name the caller's index
            yield chunk
            chunk = []
    if chunk:
        check_unicode(chunk, "sentences", start=i + 1 - len(chunk))
        yield chunk


def _to_numpy(vectors: torch.Tensor) -> np.ndarray:
    """As sentence-transformers: numpy has no bfloat16, so bfloat16 becomes float32."""
    if vectors.dtype == torch.bfloat16:
        vectors = vectors.float()
    return vectors.cpu().numpy()


def _as_matrix(embeddings, name: str) -> torch.Tensor:
    """(N, D) or (D,) numpy array / tensor / list of vectors -> a float32 (N, D) tensor."""
    if isinstance(embeddings, (list, tuple)) and embeddings and isinstance(embeddings[0], torch.Tensor):
        embeddings = torch.stack(list(embeddings))
    matrix = torch.as_tensor(np.asarray(embeddings) if not isinstance(embeddings, torch.Tensor) else embeddings)
    if not matrix.dtype.is_floating_point or matrix.dim() not in (1, 2):
        raise ValueError(f"{name} must be vectors (N, D) or one vector (D,), got dtype {matrix.dtype} "
                         f"and shape {tuple(matrix.shape)}")
    return (matrix if matrix.dim() == 2 else matrix.unsqueeze(0)).float()  # (D,) -> (1, D)


class _Progress:
    """A one-line progress bar on stderr, redrawn in place: texts done, rate and ETA (when N is known)."""

    def __init__(self, total: int | None, width: int = 30):
        self.total, self.width, self.done = total, width, 0
        self.start = time.perf_counter()

    def advance(self, texts: int) -> None:
        self.done += texts
        elapsed = time.perf_counter() - self.start
        rate = self.done / elapsed if elapsed > 0 else 0.0
        if self.total:
            filled = self.width * self.done // self.total
            eta = (self.total - self.done) / rate if rate > 0 else 0.0
            line = (f"encoding [{'#' * filled}{'.' * (self.width - filled)}] {self.done}/{self.total} texts, "
                    f"{rate:.1f} texts/s, ETA {_clock(eta)}")
        else:
            line = f"encoding {self.done} texts, {rate:.1f} texts/s, {_clock(elapsed)} elapsed"
        sys.stderr.write("\r" + line)
        sys.stderr.flush()

    def finish(self) -> None:
        if self.done == 0:
            self.advance(0)
        sys.stderr.write("\n")
        sys.stderr.flush()


def _clock(seconds: float) -> str:
    minutes, seconds = divmod(int(round(seconds)), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}:{minutes:02d}:{seconds:02d}"
