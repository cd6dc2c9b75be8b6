"""A BERT encoder (Devlin et al. 2019, §3) written out top to bottom.

Legend: B batch · T tokens · D hidden · H heads · Dh head dim (D / H) · F ffn dim · V vocab

The attention is scaled dot-product attention, Vaswani et al. 2017 Eq. 1:
    Attention(Q, K, V) = softmax(Q K^T / sqrt(Dh)) V
Each encoder layer is post-LN, LayerNorm(x + Sublayer(x)) (Vaswani et al. 2017 §3.1, as BERT uses it):
    x = LayerNorm(x + Attention(x));  x = LayerNorm(x + FFN(x))

Checked against transformers 5.24 `models/bert/modeling_bert.py` (BertModel, eager attention) to
<= 1e-5 max-abs on every hidden state and attention map (tests/equivalence/test_bert_*.py).
Left out: training, the MLM/NSP heads, decoders and cross-attention, KV cache, relative positions.
This file imports only torch; checkpoints are read by `weights/`, called lazily in `from_pretrained`.

Which code runs: calling `BertModel` always runs the modules below, every one as written. The
fast path, minibert/fast.py (the same maths with fused kernels and padding packed away,
inference only), is what `SentenceEncoder.encode` runs by default (minibert/sentence.py); it
runs these modules instead while a forward hook is registered on the model, on one of its
modules or globally, since the fast path calls none of the modules it fuses and the hook would
never fire. tests/unit/test_bert_fast.py pins the two together.

What the first fast call does to the parameters: in every layer it moves the query, key and
value weights and biases into one flat buffer, and each of those six Parameters becomes a view
of its slice (weights/fused.py). The Parameter objects, names, values and gradients stay as they
were, but their storage is now the buffer, and each `MultiHeadSelfAttention` gains a plain
attribute `_fused_qkv` holding it. Any later write to a weight is what the fast path reads;
replacing a weight's storage (`.to()`, `param.data = ...`) rebuilds the buffer on the next call.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields

import torch
import torch.nn.functional as F
from torch import nn

from minibert.config import BertConfig


# ----------------------------------------------------------------------------- hand-written ops
# Each is pinned to its library twin in tests/unit/test_bert_ops.py.

def gelu(x: torch.Tensor) -> torch.Tensor:
    """GELU, exact erf form (Hendrycks & Gimpel 2016): x * Phi(x). HF calls this "gelu"."""
    return 0.5 * x * (1.0 + torch.erf(x / math.sqrt(2.0)))


def gelu_tanh(x: torch.Tensor) -> torch.Tensor:
    """The tanh approximation of GELU used by Google's original BERT and GPT-2 ("gelu_new")."""
    return 0.5 * x * (1.0 + torch.tanh(math.sqrt(2.0 / math.pi) * (x + 0.044715 * x.pow(3))))


ACTIVATIONS = {
    "gelu": gelu,
    "gelu_new": gelu_tanh,
    # Same formula as gelu_new; PyTorch's fused kernel rounds differently, so use it to match HF.
    "gelu_pytorch_tanh": lambda x: F.gelu(x, approximate="tanh"),
    "relu": F.relu,
}


class LayerNorm(nn.Module):
    """Ba et al. 2016: normalise over the last dim, then scale and shift. Biased variance, eps
    inside the square root, exactly as `nn.LayerNorm`."""

    def __init__(self, size: int, eps: float):
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(size))
        self.bias = nn.Parameter(torch.zeros(size))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        mean = x.mean(dim=-1, keepdim=True)
        variance = (x - mean).pow(2).mean(dim=-1, keepdim=True)
        return (x - mean) / torch.sqrt(variance + self.eps) * self.weight + self.bias


def additive_padding_mask(attention_mask: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """(B, T) of 1 = real token, 0 = padding  ->  (B, 1, 1, T) of 0 or a huge negative number.

    Added to the scores before the softmax, so exp() underflows to exactly 0 at padded keys. We
    use torch.finfo(dtype).min because transformers does. minbert's -10000 gives the same
    probabilities for ordinary scores, but stops masking once scores reach ~1e4 and is not the
    reference's value. Padded *query* rows still attend to the real keys; their outputs are
    garbage that callers drop (pooling masks them)."""
    keep = attention_mask[:, None, None, :].to(dtype)                # (B, T) -> (B, 1, 1, T)
    return (1.0 - keep) * torch.finfo(dtype).min


# ----------------------------------------------------------------------------- the model

# The integer dtypes nn.Embedding takes as indices. Narrower ones (int8, int16, uint8) are refused
# rather than widened: a 30k-token id would already have wrapped around in them.
INDEX_DTYPES = (torch.long, torch.int32)

class Embeddings(nn.Module):
    """Input representation (Devlin et al. 2019, Fig. 2): word + position + token type, then LayerNorm."""

    def __init__(self, config: BertConfig):
        super().__init__()
        self.word_embeddings = nn.Embedding(config.vocab_size, config.hidden_size)
        self.position_embeddings = nn.Embedding(config.max_position_embeddings, config.hidden_size)
        self.token_type_embeddings = nn.Embedding(config.type_vocab_size, config.hidden_size)
        self.norm = LayerNorm(config.hidden_size, config.layer_norm_eps)
        self.dropout = nn.Dropout(config.hidden_dropout_prob)

    def forward(self, input_ids: torch.Tensor, token_type_ids: torch.Tensor) -> torch.Tensor:
        """input_ids, token_type_ids (B, T) -> (B, T, D)"""
        B, T = input_ids.shape
        positions = torch.arange(T, device=input_ids.device)             # (T,)
        # Same summation order as transformers (word + type, then + position): float addition is
        # not associative, and this keeps the sum bit-identical before the LayerNorm.
        hidden = self.word_embeddings(input_ids) + self.token_type_embeddings(token_type_ids)
        hidden = hidden + self.position_embeddings(positions)           # (B, T, D) + (T, D) -> (B, T, D)
        return self.dropout(self.norm(hidden))


class MultiHeadSelfAttention(nn.Module):
    """Vaswani et al. 2017 §3.2.2: H heads of scaled dot-product attention, concatenated, projected."""

    def __init__(self, config: BertConfig):
        super().__init__()
        D = config.hidden_size
        self.num_heads = config.num_attention_heads
        self.head_dim = config.head_dim
        self.query = nn.Linear(D, D)
        self.key = nn.Linear(D, D)
        self.value = nn.Linear(D, D)
        self.out_proj = nn.Linear(D, D)
        self.dropout = nn.Dropout(config.attention_probs_dropout_prob)

    def split_heads(self, x: torch.Tensor) -> torch.Tensor:
        B, T, D = x.shape
        return x.view(B, T, self.num_heads, self.head_dim).transpose(1, 2)  # (B, T, D) -> (B, H, T, Dh)

    def forward(self, hidden: torch.Tensor, mask: torch.Tensor, return_probs: bool = False):
        """hidden (B, T, D), mask (B, 1, 1, T) additive -> (B, T, D), and probs (B, H, T, T) or None."""
        B, T, D = hidden.shape
        q = self.split_heads(self.query(hidden))                        # (B, H, T, Dh)
        k = self.split_heads(self.key(hidden))                          # (B, H, T, Dh)
        v = self.split_heads(self.value(hidden))                        # (B, H, T, Dh)

        if return_probs:
            # The textbook path: every intermediate is a tensor you can print or plot.
            # (einsum equivalent, for teachers: torch.einsum("bhqd,bhkd->bhqk", q, k))
            scores = q @ k.transpose(-2, -1) / math.sqrt(self.head_dim)  # (B, H, T, Dh) @ (B, H, Dh, T) -> (B, H, T, T)
            scores = scores + mask                                      # (B, H, T, T) + (B, 1, 1, T)
            probs = torch.softmax(scores, dim=-1)                        # each query row sums to 1 over keys
            context = self.dropout(probs) @ v                           # (B, H, T, T) @ (B, H, T, Dh) -> (B, H, T, Dh)
        else:
            # Fast path beside the one above: the same maths in one fused kernel, which cannot
            # hand back the probabilities (pytorch#119811). A test pins it to the explicit path.
            probs = None
            dropout = self.dropout.p if self.training else 0.0
            context = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, dropout_p=dropout)

        context = context.transpose(1, 2).reshape(B, T, D)               # (B, H, T, Dh) -> (B, T, D)
        return self.out_proj(context), probs


class FeedForward(nn.Module):
    """Vaswani et al. 2017 Eq. 2, position-wise: ffn_out(act(ffn_in(x))), with BERT's GELU."""

    def __init__(self, config: BertConfig):
        super().__init__()
        self.ffn_in = nn.Linear(config.hidden_size, config.intermediate_size)
        self.activation = ACTIVATIONS[config.hidden_act]
        self.ffn_out = nn.Linear(config.intermediate_size, config.hidden_size)

    def forward(self, hidden: torch.Tensor) -> torch.Tensor:
        """(B, T, D) -> (B, T, D)"""
        return self.ffn_out(self.activation(self.ffn_in(hidden)))       # (B, T, D) -> (B, T, F) -> (B, T, D)


class EncoderLayer(nn.Module):
    """One post-LN Transformer encoder block."""

    def __init__(self, config: BertConfig):
        super().__init__()
        self.attn = MultiHeadSelfAttention(config)
        self.attn_norm = LayerNorm(config.hidden_size, config.layer_norm_eps)
        self.ffn = FeedForward(config)
        self.ffn_norm = LayerNorm(config.hidden_size, config.layer_norm_eps)
        self.dropout = nn.Dropout(config.hidden_dropout_prob)

    def forward(self, x: torch.Tensor, mask: torch.Tensor, return_probs: bool = False):
        """x (B, T, D), mask (B, 1, 1, T) -> (B, T, D), and probs (B, H, T, T) or None."""
        attended, probs = self.attn(x, mask, return_probs)
        x = self.attn_norm(x + self.dropout(attended))
        x = self.ffn_norm(x + self.dropout(self.ffn(x)))
        return x, probs


class Encoder(nn.Module):
    def __init__(self, config: BertConfig):
        super().__init__()
        self.layers = nn.ModuleList(EncoderLayer(config) for _ in range(config.num_hidden_layers))

    def forward(self, hidden: torch.Tensor, mask: torch.Tensor, return_probs: bool = False):
        """(B, T, D) -> list of L+1 hidden states (input first), list of L probs (or Nones)."""
        hidden_states, attentions = [hidden], []
        for layer in self.layers:
            hidden, probs = layer(hidden, mask, return_probs)
            hidden_states.append(hidden)
            attentions.append(probs)
        return hidden_states, attentions


class Pooler(nn.Module):
    """The [CLS] vector through dense + tanh, trained for next-sentence prediction. The paper only
    says [CLS] feeds classification (Devlin et al. 2019 §3); this layer is from Google's BERT code
    (google-research/bert modeling.py, the "pooler" scope), which transformers follows."""

    def __init__(self, config: BertConfig):
        super().__init__()
        self.dense = nn.Linear(config.hidden_size, config.hidden_size)

    def forward(self, hidden: torch.Tensor) -> torch.Tensor:
        """(B, T, D) -> (B, D)"""
        return torch.tanh(self.dense(hidden[:, 0]))                     # (B, T, D) -> (B, D)


@dataclass
class BertOutput:
    last_hidden_state: torch.Tensor                                   # (B, T, D)
    pooler_output: torch.Tensor | None = None                         # (B, D), None without a pooler
    hidden_states: tuple[torch.Tensor, ...] | None = None             # L+1 x (B, T, D), embeddings first
    attentions: tuple[torch.Tensor, ...] | None = None                # L x (B, H, T, T)

    # Indexed as transformers' ModelOutput is, over the fields that are not None: out[0] and
    # out[:2] by position, out["last_hidden_state"] by name; iterating gives the names, as a dict.
    def keys(self) -> list[str]:
        return [f.name for f in fields(self) if getattr(self, f.name) is not None]

    def to_tuple(self) -> tuple:
        return tuple(getattr(self, name) for name in self.keys())

    def __getitem__(self, key):
        if isinstance(key, str):
            if key not in self.keys():
                raise KeyError(key)
            return getattr(self, key)
        return self.to_tuple()[key]

    def __iter__(self):
        return iter(self.keys())

    def __len__(self) -> int:
        return len(self.keys())


class BertModel(nn.Module):
    def __init__(self, config: BertConfig, add_pooler: bool = True):
        super().__init__()
        self.config = config
        self.embeddings = Embeddings(config)
        self.encoder = Encoder(config)
        self.pooler = Pooler(config) if add_pooler else None

    @classmethod
    def from_pretrained(cls, name_or_dir, dtype=None, device=None) -> "BertModel":
        """Load a BERT checkpoint (config.json + model.safetensors) by name or directory.

        Eval mode; dtype a floating torch dtype or its name ("bfloat16"), default float32; device
        as for `.to()`, default the CPU. See `weights.resolve` for the names and places searched.
        The report of what was loaded and ignored is kept as `model.load_report`."""
        dtype = floating_dtype(dtype)
        from weights import bert_hf  # lazy: the modules themselves never touch a file

        def build(config, tensors):
            return cls(config, add_pooler=bert_hf.has_pooler(tensors))

        return bert_hf.load_pretrained(name_or_dir, BertConfig.from_json, build, bert_hf.load_bert_weights,
                                       dtype, device)

    def forward(self, input_ids, attention_mask=None, token_type_ids=None,
                output_hidden_states: bool = False, output_attentions: bool = False) -> BertOutput:
        """input_ids (B, T) int; attention_mask (B, T) 1 = token, 0 = pad (default all ones);
        token_type_ids (B, T) segment ids (default all zeros).

        Returns BertOutput: last_hidden_state (B, T, D), pooler_output (B, D) or None,
        hidden_states L+1 x (B, T, D) and attentions L x (B, H, T, T) when asked, else None."""
        attention_mask, token_type_ids = self.checked_inputs(input_ids, attention_mask, token_type_ids)

        dtype = self.embeddings.word_embeddings.weight.dtype
        mask = additive_padding_mask(attention_mask, dtype)            # (B, T) -> (B, 1, 1, T)
        hidden = self.embeddings(input_ids, token_type_ids)             # (B, T) -> (B, T, D)
        hidden_states, attentions = self.encoder(hidden, mask, return_probs=output_attentions)
        last = hidden_states[-1]
        return BertOutput(
            last_hidden_state=last,
            pooler_output=self.pooler(last) if self.pooler is not None else None,
            hidden_states=tuple(hidden_states) if output_hidden_states else None,
            attentions=tuple(attentions) if output_attentions else None,
        )

    def checked_inputs(self, input_ids, attention_mask, token_type_ids) -> tuple[torch.Tensor, torch.Tensor]:
        """-> (attention_mask, token_type_ids), their defaults (all ones, all zeros) filled in. Raises
        a clear error for inputs that would otherwise fail deep inside (or silently)."""
        config = self.config
        if not isinstance(input_ids, torch.Tensor) or input_ids.dim() != 2:
            raise TypeError(f"input_ids must be a (B, T) tensor, got {_describe(input_ids)}")
        if input_ids.dtype not in INDEX_DTYPES:
            # int8/int16/uint8 cannot hold a 30k vocabulary: ids would already have wrapped around.
            raise TypeError(f"input_ids must be a torch.long (or int32) tensor of token ids, got dtype "
                            f"{input_ids.dtype}")
        B, T = input_ids.shape
        if T == 0:
            raise ValueError(f"input_ids has no tokens (shape {tuple(input_ids.shape)}); a text needs at least "
                             "[CLS] and [SEP], which the tokenizer adds")
        if T > config.max_position_embeddings:
            raise ValueError(
                f"sequence length {T} exceeds max_position_embeddings={config.max_position_embeddings}; "
                "truncate the input (the tokenizer's max_length) to at most that many tokens"
            )
        if input_ids.numel() and (input_ids.min() < 0 or input_ids.max() >= config.vocab_size):
            bad = ((input_ids < 0) | (input_ids >= config.vocab_size)).nonzero()[0].tolist()
            raise ValueError(
                f"input_ids[{bad[0]}, {bad[1]}] = {input_ids[bad[0], bad[1]].item()} is outside the "
                f"vocabulary [0, {config.vocab_size}); was it made by another model's tokenizer?"
            )
        for name, tensor in (("attention_mask", attention_mask), ("token_type_ids", token_type_ids)):
            if tensor is not None and (not isinstance(tensor, torch.Tensor) or tensor.shape != input_ids.shape):
                raise ValueError(
                    f"{name} must have the shape of input_ids {tuple(input_ids.shape)}, got {_describe(tensor)}"
                )
        if token_type_ids is not None and token_type_ids.dtype not in INDEX_DTYPES:
            raise TypeError(f"token_type_ids must be a torch.long (or int32) tensor of segment ids (0, 1), "
                            f"got dtype {token_type_ids.dtype}")
        if attention_mask is not None and ((attention_mask != 0) & (attention_mask != 1)).any():
            raise ValueError("attention_mask must hold only 1 (real token) and 0 (padding), "
                             f"got values {attention_mask.unique().tolist()[:10]}")
        if token_type_ids is not None and token_type_ids.numel() and (
            token_type_ids.min() < 0 or token_type_ids.max() >= config.type_vocab_size
        ):
            raise ValueError(
                f"token_type_ids hold {token_type_ids.max().item()} (min {token_type_ids.min().item()}), "
                f"but this model has type_vocab_size={config.type_vocab_size} (valid ids 0..{config.type_vocab_size - 1})"
            )
        if attention_mask is None:
            attention_mask = torch.ones_like(input_ids)
        if token_type_ids is None:
            token_type_ids = torch.zeros_like(input_ids)
        return attention_mask, token_type_ids


def floating_dtype(dtype) -> torch.dtype:
    """None -> float32; a floating torch dtype, or its name ("bfloat16", "torch.float16"), -> itself."""
    if dtype is None:
        return torch.float32
    if isinstance(dtype, str):
        dtype = getattr(torch, dtype.removeprefix("torch."), dtype)
    if not isinstance(dtype, torch.dtype) or not dtype.is_floating_point:
        raise TypeError(f"dtype must be a floating torch dtype such as torch.float32 or torch.bfloat16, got {dtype!r}")
    return dtype


def _describe(value) -> str:
    if isinstance(value, torch.Tensor):
        return f"a tensor of shape {tuple(value.shape)}"
    return f"{type(value).__name__}"
