"""Masked pooling: token vectors (B, T, D) and a padding mask (B, T) -> one vector per text (B, D).

B batch · T tokens · D vector size (any encoder: BERT hidden states, ELMo representations)

Sentence-BERT (Reimers & Gurevych 2019, §3) turns a variable number of token vectors into one
fixed-size sentence vector by pooling: the [CLS] vector, the mean, or the element-wise max over
the real tokens. Padding positions must never take part, or a text's vector would depend on how
long its batch neighbours are.

Checked against sentence-transformers 6.2.0, `sentence_transformer/modules/pooling.py`
(`Pooling._forward_padded`, `_LEGACY_POOLING_MODE_KWARGS`) and `base/modules/normalize.py`.
Left out: the `weightedmean` and `lasttoken` modes, prompt exclusion, and flattened (FlashAttention
unpadded) inputs.

Every function here is pure: it never writes into the caller's tensors.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import torch


def _check_inputs(token_embeddings: torch.Tensor, attention_mask: torch.Tensor) -> None:
    for name, value in (("token_embeddings", token_embeddings), ("attention_mask", attention_mask)):
        if not isinstance(value, torch.Tensor):
            raise TypeError(f"{name} must be a torch.Tensor, got {type(value).__name__}"
                            + (" (convert it with torch.tensor(...))" if isinstance(value, (list, tuple)) else ""))
    if not token_embeddings.dtype.is_floating_point:
        raise TypeError(f"token_embeddings must hold floats, got dtype {token_embeddings.dtype}")
    if attention_mask.dtype.is_complex:
        raise TypeError(f"attention_mask must hold 1 (token) and 0 (padding), got dtype {attention_mask.dtype}")
    if token_embeddings.dim() != 3:
        raise ValueError(
            f"token_embeddings must be (B, T, D), got shape {tuple(token_embeddings.shape)}"
        )
    if attention_mask.shape != token_embeddings.shape[:2]:
        raise ValueError(
            f"attention_mask must be (B, T) = {tuple(token_embeddings.shape[:2])} to match "
            f"token_embeddings {tuple(token_embeddings.shape)}, got {tuple(attention_mask.shape)}"
        )


def _masked_sum_and_count(
    token_embeddings: torch.Tensor, attention_mask: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Sum of the real token vectors and how many there are, both (B, D) / (B, 1)."""
    mask = attention_mask.unsqueeze(-1).to(token_embeddings.dtype)  # (B, T) -> (B, T, 1)
    summed = (token_embeddings * mask).sum(dim=1)  # (B, T, D) -> (B, D)
    # A text with no real token would divide by zero; sentence-transformers clamps the count to
    # 1e-9, which turns that row into zeros. We do the same.
    count = mask.sum(dim=1).clamp(min=1e-9)  # (B, T, 1) -> (B, 1)
    return summed, count


def mean(token_embeddings: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
    """Average of the real (mask == 1) token vectors. (B, T, D), (B, T) -> (B, D)."""
    _check_inputs(token_embeddings, attention_mask)
    summed, count = _masked_sum_and_count(token_embeddings, attention_mask)
    return summed / count


def mean_sqrt_len(token_embeddings: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
    """Sum of the real token vectors divided by sqrt(number of real tokens).

    sentence-transformers' `mean_sqrt_len_tokens`: between a plain sum and a mean, so longer texts
    get somewhat larger vectors. (B, T, D), (B, T) -> (B, D).
    """
    _check_inputs(token_embeddings, attention_mask)
    summed, count = _masked_sum_and_count(token_embeddings, attention_mask)
    return summed / torch.sqrt(count)


def cls(token_embeddings: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
    """The vector of each text's first real token ([CLS] for BERT). (B, T, D), (B, T) -> (B, D).

    With right padding (ours) that is position 0. Like sentence-transformers we take the first
    position where the mask is 1, so left-padded batches give the same answer.
    """
    _check_inputs(token_embeddings, attention_mask)
    B = token_embeddings.shape[0]
    first_real = attention_mask.to(torch.int32).argmax(dim=1)  # (B, T) -> (B,)
    return token_embeddings[torch.arange(B, device=token_embeddings.device), first_real]  # (B, D)


def max(token_embeddings: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:  # noqa: A001
    """Element-wise maximum over the real token vectors. (B, T, D), (B, T) -> (B, D).

    Padded positions are replaced by -inf in a *new* tensor before the max, so they can never win,
    whatever values the encoder left there. A row with no real token at all comes out as -inf,
    the max of an empty set; sentence-transformers 6.2 does the same.
    """
    # NOTE (deviation): sentence-transformers before v3 wrote -1e9 into the caller's tensor in place
    # (`token_embeddings[mask == 0] = -1e9`), so pooling changed the model output it was given.
    # We never mutate inputs; `masked_fill` (not `masked_fill_`) returns a copy, as in ST 6.2.
    _check_inputs(token_embeddings, attention_mask)
    is_padding = (attention_mask == 0).unsqueeze(-1)  # (B, T) -> (B, T, 1)
    real_only = token_embeddings.masked_fill(is_padding, float("-inf"))  # (B, T, D)
    return real_only.amax(dim=1)  # (B, T, D) -> (B, D)


def normalize(embeddings: torch.Tensor, eps: float = 1e-12) -> torch.Tensor:
    """Scale each vector along the last dimension to unit L2 length: x / max(||x||, eps).

    Same formula and default eps as `torch.nn.functional.normalize(x, p=2, dim=-1)`, which
    sentence-transformers' Normalize module calls. A zero vector stays zero. (..., D) -> (..., D).
    """
    length = embeddings.norm(p=2, dim=-1, keepdim=True).clamp_min(eps)  # (..., D) -> (..., 1)
    return embeddings / length


# sentence-transformers' mode names, in the order its Pooling concatenates them when a config
# turns on several (`_LEGACY_POOLING_MODE_KWARGS` in 6.2.0): cls, max, mean, mean_sqrt_len.
POOLING_FUNCTIONS = {
    "cls": cls,
    "max": max,
    "mean": mean,
    "mean_sqrt_len_tokens": mean_sqrt_len,
}

# Legacy boolean flags in `1_Pooling/config.json` and the mode each turns on (same order).
_LEGACY_FLAGS = {
    "pooling_mode_cls_token": "cls",
    "pooling_mode_max_tokens": "max",
    "pooling_mode_mean_tokens": "mean",
    "pooling_mode_mean_sqrt_len_tokens": "mean_sqrt_len_tokens",
    "pooling_mode_weightedmean_tokens": "weightedmean",
    "pooling_mode_lasttoken": "lasttoken",
}


def pool(
    token_embeddings: torch.Tensor, attention_mask: torch.Tensor, modes: tuple[str, ...]
) -> torch.Tensor:
    """Apply each pooling mode and concatenate the results. (B, T, D), (B, T) -> (B, len(modes) * D).

    modes: names from POOLING_FUNCTIONS (sentence-transformers' names), e.g. ("mean",); one name
    alone may be given as a str."""
    modes = _checked_modes(modes, "modes")
    _check_inputs(token_embeddings, attention_mask)
    return torch.cat([POOLING_FUNCTIONS[m](token_embeddings, attention_mask) for m in modes], dim=-1)


def _checked_modes(modes, source: str) -> tuple[str, ...]:
    """A mode name or a sequence of them -> a non-empty tuple of names this module implements."""
    if isinstance(modes, str):
        modes = (modes,)
    if not isinstance(modes, (list, tuple)) or not all(isinstance(m, str) for m in modes):
        raise TypeError(f"{source} must be a pooling mode name or a list of them "
                        f"(valid: {list(POOLING_FUNCTIONS)}), got {modes!r:.60}")
    if not modes:
        raise ValueError(f"{source} names no pooling mode; give at least one of {list(POOLING_FUNCTIONS)}")
    unknown = [m for m in modes if m not in POOLING_FUNCTIONS]
    if unknown:
        raise ValueError(f"{source}: unknown pooling mode(s) {unknown}; valid modes are {list(POOLING_FUNCTIONS)}")
    return tuple(modes)


@dataclass(frozen=True)
class PoolingConfig:
    """The contents of a sentence-transformers `1_Pooling/config.json`, with its field names."""

    word_embedding_dimension: int
    pooling_modes: tuple[str, ...] = ("mean",)  # sentence-transformers' names, in concat order

    @property
    def output_dimension(self) -> int:
        return len(self.pooling_modes) * self.word_embedding_dimension

    @classmethod
    def from_file(cls, path: str | Path) -> PoolingConfig:
        """Read a pooling config; `path` is the JSON file or the folder holding `config.json`."""
        path = Path(path)
        if path.is_dir():
            path = path / "config.json"
        if not path.is_file():
            # A broken symlink or a FIFO is there but unreadable: say so rather than "no config".
            there = path.is_symlink() or path.exists()
            raise (ValueError if there else FileNotFoundError)(
                f"{path} is not a regular file (a broken symlink, FIFO or folder)" if there
                else f"no sentence-transformers pooling config at {path}")
        try:
            return cls.from_dict(json.loads(path.read_text(encoding="utf-8")), source=str(path))
        except (json.JSONDecodeError, UnicodeDecodeError) as error:
            raise ValueError(f"{path} is not valid JSON: {error}") from None
        except PermissionError:
            raise PermissionError(f"cannot read {path}: permission denied") from None

    @classmethod
    def from_dict(cls, raw: dict, source: str = "pooling config") -> PoolingConfig:
        if not isinstance(raw, dict):
            raise ValueError(f"{source}: expected a JSON object, got {type(raw).__name__}")
        # sentence-transformers >= 6 writes `embedding_dimension` and `pooling_mode` (a name or a
        # list); older files, all-MiniLM-L6-v2's included, write one boolean flag per mode.
        dim = raw.get("word_embedding_dimension", raw.get("embedding_dimension"))
        if not isinstance(dim, int) or dim <= 0:
            raise ValueError(f"{source}: needs a positive integer word_embedding_dimension, got {dim!r}")
        if "pooling_mode" in raw:
            mode = raw["pooling_mode"]
            # NOTE (deviation): sentence-transformers 6.2 accepts `"pooling_mode": []` and fails
            # only at the first encode (torch.cat of nothing); an empty or null mode is refused here.
            if mode is None or (isinstance(mode, (list, tuple)) and not mode):
                raise ValueError(f"{source}: field \"pooling_mode\" is {json.dumps(mode)}, which names no pooling "
                                 f"mode; give one of {list(POOLING_FUNCTIONS)}")
        else:
            # With no flag set, sentence-transformers falls back to mean pooling.
            mode = [m for flag, m in _LEGACY_FLAGS.items() if raw.get(flag, False)] or ["mean"]
        unsupported = [m for m in ([mode] if isinstance(mode, str) else mode if isinstance(mode, list) else [])
                       if isinstance(m, str) and m in _LEGACY_FLAGS.values() and m not in POOLING_FUNCTIONS]
        if unsupported:
            raise ValueError(
                f"{source}: pooling mode(s) {unsupported} are not implemented here; "
                f"supported: {list(POOLING_FUNCTIONS)}"
            )
        try:
            modes = _checked_modes(mode, f"{source}: field \"pooling_mode\"")
        except TypeError as error:
            raise ValueError(str(error)) from None
        if raw.get("include_prompt") is False:
            raise ValueError(f"{source}: include_prompt=false (prompt exclusion) is not implemented here")
        return cls(word_embedding_dimension=dim, pooling_modes=modes)
