"""What a BERT's attention does on a text, and an offline page that shows it.

Legend: L layers · H heads · T word pieces · D hidden · Dh head dim (D / H)

Everything is computed from the model itself:
  - α, the attention probabilities (`output_attentions=True`): softmax(Q K^T / sqrt(Dh)) of
    Vaswani et al. 2017, Eq. 1;
  - q and k of every head, from each layer's own `query` / `key` modules and its own head split,
    so a reader can redo softmax(q·k / sqrt(Dh)) and land on α (the page's neuron view does);
  - value-weighted norms (Kobayashi et al. 2020, "Attention is not only a weight", §3): layer l's
    attention output for token i is y_i = Σ_h Σ_j α^h_ij f^h(x_j) + b_O with
    f^h(x) = (x W_V^h + b_V^h) W_O^h, so ||α^h_ij f^h(x_j)|| is how much token j actually adds
    through head h, and ||Σ_h α^h_ij f^h(x_j)|| through the whole layer;
  - attention rollout (Abnar & Zuidema 2020, "Quantifying attention flow in transformers", §3):
    per layer Â = 0.5 A + 0.5 I with A the heads' mean attention (the identity stands for the
    residual connection), rows renormalised, and rollout_l = Â_l ··· Â_1.

`explore(model, tokenizer, texts)` bakes one or more texts (a tuple is a sentence pair) into one
self-contained HTML page (template: minibert/explorer.html; data as base64 arrays inside it; no
network, no server). Head, model and neuron views follow bertviz (Vig 2019) in spirit.

Left out: attention flow (the max-flow variant of Abnar & Zuidema), gradient-based attributions,
padded batches (each text is run alone, so there is no padding mask to carry), decoders.
"""

from __future__ import annotations

import base64
import html as html_escape
import json
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import numpy as np
import torch

PLACEHOLDER = "__EXPLORER_DATA__"
# Enough for a paragraph; beyond this the head view's T x T lines stop being readable and the
# file grows as T^2 (see docs/attention_explorer.md for sizes).
MAX_TOKENS = 128
# α is stored as round(α * PROB_SCALE) in a uint16: steps of 1.5e-5, finer than the page's
# 4-decimal shading and well inside the 1e-4 the browser test allows.
PROB_SCALE = 65535


@dataclass
class TextAttention:
    """One text (or sentence pair) through the model; tensors are float32 on the CPU."""

    text: str | tuple[str, str]
    tokens: list[str]
    segments: list[int]           # token type: 0 = first text, 1 = second text of a pair
    probs: torch.Tensor           # (L, H, T, T) α from output_attentions
    queries: torch.Tensor         # (L, H, T, Dh) q = split_heads(query(x))
    keys: torch.Tensor            # (L, H, T, Dh) k = split_heads(key(x))
    value_norms: torch.Tensor     # (L, H, T) ||f^h(x_j)||, so ||α^h_ij f^h(x_j)|| = α^h_ij * value_norms[l, h, j]
    layer_norms: torch.Tensor     # (L, T, T) ||Σ_h α^h_ij f^h(x_j)||
    rollout: torch.Tensor         # (L, T, T) rollout through layers 1..l+1; rows sum to 1


def head_values(attn, hidden_in: torch.Tensor) -> torch.Tensor:
    """f^h(x_j) = (x_j W_V^h + b_V^h) W_O^h for every head and token of one text.

    hidden_in (T, D), the layer's input -> (H, T, D). W_O^h is the slice of `out_proj` that reads
    head h's part of the concatenated context, so Σ_h Σ_j α^h_ij f^h(x_j) + out_proj.bias is the
    attention sublayer's output (a unit test checks this against the module)."""
    H, Dh = attn.num_heads, attn.head_dim
    v = attn.split_heads(attn.value(hidden_in[None]))[0]               # (T, D) -> (1, H, T, Dh) -> (H, T, Dh)
    w_out = attn.out_proj.weight.view(-1, H, Dh).transpose(0, 1)        # (D, D) -> (D, H, Dh) -> (H, D, Dh)
    return v @ w_out.transpose(1, 2)                                    # (H, T, Dh) @ (H, Dh, D) -> (H, T, D)


def attention_rollout(probs: torch.Tensor) -> torch.Tensor:
    """(L, H, T, T) -> (L, T, T): Abnar & Zuidema's rollout after each layer.

    Heads are averaged, the residual connection is modelled as 0.5 I, rows are renormalised
    (already stochastic, but float noise is removed), and layers multiply from the bottom up."""
    L, H, T, _ = probs.shape
    eye = torch.eye(T, dtype=probs.dtype)
    rolled, out = eye, []
    for layer in range(L):
        mixed = 0.5 * probs[layer].mean(0) + 0.5 * eye                 # (H, T, T) -> (T, T)
        mixed = mixed / mixed.sum(-1, keepdim=True)
        rolled = mixed @ rolled                                          # later layers act on the left
        out.append(rolled)
    return torch.stack(out)                                              # L x (T, T) -> (L, T, T)


def _as_text_list(texts) -> list[str | tuple[str, str]]:
    """A str, a (str, str) pair, or a list of those -> a list of texts and pairs."""
    if isinstance(texts, (str, tuple)):
        texts = [texts]
    if not isinstance(texts, list) or not texts:
        raise TypeError(f"texts must be a str, a (str, str) sentence pair, or a non-empty list of those; "
                        f"got {type(texts).__name__}")
    for i, text in enumerate(texts):
        parts = text if isinstance(text, tuple) else (text,)
        if isinstance(text, tuple) and len(text) != 2:
            raise ValueError(f"texts[{i}] is a tuple of {len(text)}; a tuple means a sentence pair (two texts), "
                             "use a list for several texts")
        for part in parts:
            if not isinstance(part, str):
                raise TypeError(f"texts[{i}] holds {type(part).__name__}, expected str")
            if not part.strip():
                raise ValueError(f"texts[{i}] is empty")
    return texts


@torch.no_grad()
def analyse(model, tokenizer, text: str | tuple[str, str], max_tokens: int = MAX_TOKENS) -> TextAttention:
    """Run one text (or a (first, second) pair) through `model` and collect what the explorer shows."""
    if isinstance(text, list):
        raise TypeError("analyse takes one text or one (first, second) pair; explore takes a list")
    (text,) = _as_text_list(text)
    if model.training:
        raise ValueError("the model is in training mode (dropout on); call model.eval() first")
    positions = model.config.max_position_embeddings
    if max_tokens > positions:
        raise ValueError(f"max_tokens={max_tokens} is more than the model's {positions} positions")
    first, second = text if isinstance(text, tuple) else (text, None)
    enc = tokenizer([first], None if second is None else [second], return_offsets=True, truncation=False)
    T = enc["input_ids"].shape[1]
    if T > positions:
        raise ValueError(f"the text has {T} word pieces ([CLS]/[SEP] included); the model reads at most "
                         f"{positions} positions: shorten the text")
    if T > max_tokens:
        raise ValueError(f"the text has {T} word pieces ([CLS]/[SEP] included); the explorer draws at most "
                         f"{max_tokens} (pass max_tokens= to allow more, up to the model's {positions})")
    out = model(enc["input_ids"], attention_mask=enc["attention_mask"], token_type_ids=enc["token_type_ids"],
                output_attentions=True, output_hidden_states=True)
    probs = torch.stack(out.attentions)[:, 0]                           # L x (1, H, T, T) -> (L, H, T, T)

    queries, keys, value_norms, layer_norms = [], [], [], []
    # hidden_states[l] is the input of layer l (the embeddings for layer 0)
    for layer, hidden_in, alpha in zip(model.encoder.layers, out.hidden_states[:-1], probs):
        attn = layer.attn
        queries.append(attn.split_heads(attn.query(hidden_in))[0])      # (1, T, D) -> (1, H, T, Dh) -> (H, T, Dh)
        keys.append(attn.split_heads(attn.key(hidden_in))[0])           # (1, T, D) -> (1, H, T, Dh) -> (H, T, Dh)
        f = head_values(attn, hidden_in[0])                             # (H, T, D)
        value_norms.append(f.norm(dim=-1))                              # (H, T, D) -> (H, T)
        # Σ_h α^h_ij f^h(x_j) for every (i, j), then its norm
        summed = torch.einsum("hij,hjd->ijd", alpha, f)                 # (H, T, T), (H, T, D) -> (T, T, D)
        layer_norms.append(summed.norm(dim=-1))                         # (T, T, D) -> (T, T)

    return TextAttention(
        text=text, tokens=enc["tokens"][0], segments=enc["token_type_ids"][0].tolist(), probs=probs,
        queries=torch.stack(queries), keys=torch.stack(keys), value_norms=torch.stack(value_norms),
        layer_norms=torch.stack(layer_norms), rollout=attention_rollout(probs),
    )


# ----------------------------------------------------------------------------- the page

def _b64(tensor: torch.Tensor, dtype: str = "<f4") -> str:
    """A tensor's values as little-endian `dtype` bytes (float32 by default), flattened in C order,
    then base64: 4/3 characters per byte, and no JSON number parsing in the page."""
    return base64.b64encode(np.ascontiguousarray(tensor.numpy(), dtype=dtype).tobytes()).decode("ascii")


def _entropy(probs: torch.Tensor) -> torch.Tensor:
    """(L, H, T, T) -> (L, H): mean over queries of -Σ_j α log α, in nats."""
    return -(probs * probs.clamp_min(1e-12).log()).sum(-1).mean(-1)


def _text_payload(found: TextAttention, labels: list[list[str]] | None) -> dict:
    L, H, T, _ = found.probs.shape
    if labels is not None and (len(labels) != L or any(len(row) != H for row in labels)):
        raise ValueError(f"head labels must be {L} lists of {H} strings")
    quantised = torch.round(found.probs.clamp(0, 1) * PROB_SCALE)
    return {
        "text": list(found.text) if isinstance(found.text, tuple) else found.text,
        "tokens": found.tokens,
        "segments": found.segments,
        "probs": _b64(quantised, "<u2"),           # (L, H, T, T) uint16
        "queries": _b64(found.queries),             # (L, H, T, Dh) float32
        "keys": _b64(found.keys),                   # (L, H, T, Dh) float32
        "valueNorms": _b64(found.value_norms),      # (L, H, T) float32
        "layerNorms": _b64(found.layer_norms),      # (L, T, T) float32
        "rollout": _b64(found.rollout),             # (L, T, T) float32
        "entropy": [[round(float(e), 4) for e in row] for row in _entropy(found.probs)],
        "labels": labels,
    }


# Characters that mean something to the HTML parser inside a <script> block: "</script" ends it,
# and "<!--" followed by "<script" puts the parser in a state where "</script>" no longer does,
# so the rest of the page becomes data. As \uXXXX escapes they are plain JSON string text.
SCRIPT_UNSAFE = {"<": "\\u003c", ">": "\\u003e", "&": "\\u0026"}


def script_json(payload) -> str:
    """JSON that is safe inside <script type="application/json">, whatever text it holds:
    ASCII only (U+2028/U+2029, NUL and any lone surrogate become \\u escapes) and no <, > or &."""
    blob = json.dumps(payload, ensure_ascii=True, separators=(",", ":"))
    return blob.translate(str.maketrans(SCRIPT_UNSAFE))


class ExplorerPage(str):
    """The explorer's HTML. A str (write it anywhere), with `.html`, `.save(path)`, and
    `_repr_html_` so a notebook cell shows it inline (in a sandboxed iframe, since notebooks do not
    run a full page's script otherwise)."""

    @property
    def html(self) -> str:
        return str(self)

    def save(self, path: str | Path) -> Path:
        path = Path(path)
        path.write_text(self, encoding="utf-8")
        return path

    def _repr_html_(self) -> str:
        return (f'<iframe srcdoc="{html_escape.escape(str(self), quote=True)}" '
                'style="width: 100%; height: 820px; border: 1px solid #ddd" sandbox="allow-scripts"></iframe>')


def render(found: list[TextAttention], *, model_name: str, head_labels=None) -> ExplorerPage:
    """The page for texts already analysed; `head_labels`: None, or per text L lists of H strings
    shown beside each head (e.g. "mostly [SEP]")."""
    if not found:
        raise ValueError("no texts to show")
    L, H, _, Dh = found[0].queries.shape
    if head_labels is not None and len(head_labels) != len(found):
        raise ValueError(f"head_labels has {len(head_labels)} entries for {len(found)} texts")
    payload = {
        "model": model_name, "layers": L, "heads": H, "headDim": Dh, "probScale": PROB_SCALE,
        "texts": [_text_payload(f, None if head_labels is None else head_labels[n]) for n, f in enumerate(found)],
    }
    blob = script_json(payload)
    template = resources.files("minibert").joinpath("explorer.html").read_text(encoding="utf-8")
    return ExplorerPage(template.replace(PLACEHOLDER, blob))


def explore(model, tokenizer, texts, *, model_name: str = "BERT", max_tokens: int = MAX_TOKENS,
            head_labels=None) -> ExplorerPage:
    """The attention explorer for `texts`: a str, a (first, second) sentence pair, or a list of
    those (the page gets a selector). Returns an `ExplorerPage` (a str): `.save("x.html")`, or
    leave it as a notebook cell's value to see it inline.

        page = explore(model, tokenizer, ["The bank was closed.", ("A man eats.", "He is hungry.")])
        page.save("attention_explorer.html")
    """
    texts = _as_text_list(texts)
    return render([analyse(model, tokenizer, t, max_tokens) for t in texts], model_name=model_name,
                  head_labels=head_labels)
