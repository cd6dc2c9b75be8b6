"""BertConfig: the hyper-parameters of a BERT encoder, under Hugging Face's `config.json` field names.

Checked against transformers 5.24 `BertConfig`; field names and defaults match it, so a
`config.json` written by transformers (or shipped with all-MiniLM-L6-v2) reads in one line.
Left out: every field the encoder does not use (`architectures`, `use_cache`, ...). Configs that
ask for a decoder (`is_decoder`, `add_cross_attention`) are refused, not ignored: transformers would
then mask attention causally or add cross-attention, which this encoder does not implement.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path

# The activations our FeedForward implements (see minibert/model.py: ACTIVATIONS).
# HF's "gelu" is the exact erf form; "gelu_new" and "gelu_pytorch_tanh" are two codings of the
# tanh approximation (they differ only in float rounding).
SUPPORTED_ACTIVATIONS = ("gelu", "gelu_new", "gelu_pytorch_tanh", "relu")

# HF config flags that turn BertModel into a decoder, with what transformers then does differently.
DECODER_FLAGS = {
    "is_decoder": "causal self-attention, each token sees only those before it",
    "add_cross_attention": "extra cross-attention sublayers over an encoder's output",
}


@dataclass(frozen=True)
class BertConfig:
    vocab_size: int = 30522
    hidden_size: int = 768
    num_hidden_layers: int = 12
    num_attention_heads: int = 12
    intermediate_size: int = 3072
    hidden_act: str = "gelu"
    hidden_dropout_prob: float = 0.1
    attention_probs_dropout_prob: float = 0.1
    max_position_embeddings: int = 512
    type_vocab_size: int = 2
    layer_norm_eps: float = 1e-12
    pad_token_id: int = 0
    position_embedding_type: str = "absolute"

    def __post_init__(self):
        # Sizes first: a zero head count would otherwise fail below as a ZeroDivisionError.
        for name in ("vocab_size", "hidden_size", "num_hidden_layers", "num_attention_heads",
                     "intermediate_size", "max_position_embeddings", "type_vocab_size"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"{name} must be a positive integer, got {value!r}")
        for name in ("hidden_dropout_prob", "attention_probs_dropout_prob", "layer_norm_eps"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value < 1:
                raise ValueError(f"{name} must be a number in [0, 1), got {value!r}")
        for name in ("hidden_act", "position_embedding_type"):
            if not isinstance(getattr(self, name), str):
                raise ValueError(f"{name} must be a string, got {getattr(self, name)!r}")
        if self.hidden_size % self.num_attention_heads != 0:
            raise ValueError(
                f"hidden_size ({self.hidden_size}) must be divisible by num_attention_heads "
                f"({self.num_attention_heads}): each head gets hidden_size / num_attention_heads dims"
            )
        if self.hidden_act not in SUPPORTED_ACTIVATIONS:
            raise ValueError(
                f"hidden_act {self.hidden_act!r} is not supported; expected one of {SUPPORTED_ACTIVATIONS}"
            )
        if self.position_embedding_type != "absolute":
            raise ValueError(
                f"position_embedding_type {self.position_embedding_type!r} is not supported; "
                "only 'absolute' (learned position embeddings, as in the BERT paper) is implemented"
            )

    @property
    def head_dim(self) -> int:
        return self.hidden_size // self.num_attention_heads

    def to_dict(self) -> dict:
        """The fields as a transformers config.json holds them (model_type "bert", BertModel)."""
        return {"architectures": ["BertModel"], "model_type": "bert", **dataclasses.asdict(self)}

    @classmethod
    def from_dict(cls, values: dict) -> "BertConfig":
        """Keep the fields we know; HF configs carry many unrelated keys, which are ignored."""
        if not isinstance(values, dict):
            raise ValueError(f"expected a JSON object of config fields, got {type(values).__name__}")
        model_type = values.get("model_type", "bert")
        if model_type != "bert":
            # RoBERTa & co. share BERT's key names but not its position ids; refuse rather than
            # compute something silently different.
            raise ValueError(f"config has model_type {model_type!r}; minibert only implements 'bert'")
        for flag in DECODER_FLAGS:
            if values.get(flag, False):
                raise ValueError(
                    f"config has {flag}=True (a BERT decoder: {DECODER_FLAGS[flag]}); minibert implements "
                    "only the bidirectional encoder, so it would silently compute something else"
                )
        known = {field.name for field in dataclasses.fields(cls)}
        return cls(**{key: value for key, value in values.items() if key in known})

    @classmethod
    def from_json(cls, path: str | Path) -> "BertConfig":
        from weights.common import read_json  # lazy: a model file imports only torch at its top

        path = Path(path)
        values = read_json(path, expected=object)  # any JSON value: from_dict names a non-object itself
        try:
            return cls.from_dict(values)
        except ValueError as error:
            raise ValueError(f"{path}: {error}") from None
