"""A fast inference path for BertModel, beside the explicit one in model.py (which stays the reference).

Legend: B batch · T tokens · D hidden · H heads · Dh head dim · F ffn dim · N real tokens in a batch

Same maths as `BertModel.forward` (Devlin et al. 2019 §3; Vaswani et al. 2017 Eq. 1 and 2), with
the work reordered and fused:
  - query, key and value come from one matmul against a stacked (3D, D) weight;
  - attention is `F.scaled_dot_product_attention` (no probabilities are materialised);
  - LayerNorm and GELU are PyTorch's fused kernels (`F.layer_norm`, `F.gelu`), the twins that
    tests/unit/test_bert_ops.py pins the hand-written ops to;
  - the position-wise layers (projections, feed-forward, LayerNorm) run on the N real tokens
    only: padding is packed away before them and scattered back for attention.
The stacked QKV weight is no copy: on first use query, key and value are moved into one buffer
and become views of it (weights/fused.py says exactly what rebuilds it), so every write to them,
`.data` included, is what the fast path reads (model.py's docstring says what that does to
the parameters). `map_batches` runs whole batches in parallel, one thread each, which uses a few
cores better than splitting every small op (`python -m bench`, bench/RESULTS.md).

Inference only: no dropout, no attention maps, no hidden states. tests/unit/test_bert_fast.py
pins it to the explicit path within 1e-5 on padded batches.
"""

from __future__ import annotations

from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import torch
import torch.nn.functional as F
from torch import nn

from weights import fused


def watched(model: nn.Module) -> bool:
    """True when this path may not compute a call of `model`: a forward hook is registered on it,
    on one of its modules or globally (weights.fused.watched). The path calls none of the modules
    it fuses, so the hook would never fire; the caller runs the explicit model instead."""
    return fused.watched(model)


def fused_qkv(attn: nn.Module) -> tuple[torch.Tensor, torch.Tensor]:
    """(3D, D) weight and (3D,) bias stacking query, key, value. They are views of the storage
    the six parameters themselves live in (weights/fused.py), so no write can leave them stale."""
    params = (attn.query.weight, attn.key.weight, attn.value.weight,
              attn.query.bias, attn.key.bias, attn.value.bias)
    storage = fused.shared_storage(attn, "_fused_qkv", params)
    D = attn.query.weight.shape[0]
    return storage[:3 * D * D].view(3 * D, D), storage[3 * D * D:]  # 3 x (D, D) -> (3D, D); 3 x (D,) -> (3D,)


def layer_norm(x: torch.Tensor, norm: nn.Module) -> torch.Tensor:
    return F.layer_norm(x, norm.weight.shape, norm.weight, norm.bias, norm.eps)


def activation(x: torch.Tensor, ffn: nn.Module, name: str) -> torch.Tensor:
    """F.gelu (exact erf form) for BERT's "gelu"; any other activation as the model computes it."""
    return F.gelu(x) if name == "gelu" else ffn.activation(x)


def last_hidden_state(model: nn.Module, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None,
                      token_type_ids: torch.Tensor | None = None) -> torch.Tensor:
    """`model(input_ids, attention_mask, token_type_ids).last_hidden_state`, computed faster.

    input_ids, attention_mask, token_type_ids (B, T), with the same defaults and input checks as
    BertModel.forward -> (B, T, D). Padded positions of the result hold zeros (the explicit path
    leaves values there that no caller uses; pooling masks them either way)."""
    attention_mask, token_type_ids = model.checked_inputs(input_ids, attention_mask, token_type_ids)
    config = model.config
    B, T = input_ids.shape
    H, Dh = config.num_attention_heads, config.hidden_size // config.num_attention_heads
    D = config.hidden_size
    emb = model.embeddings
    real = attention_mask.bool()  # (B, T)
    packed = real.reshape(-1).nonzero().squeeze(1)  # (N,) flat indices of real tokens
    positions = torch.arange(T, device=input_ids.device).expand(B, T).reshape(-1)[packed]  # (N,)
    ids, types = input_ids.reshape(-1)[packed], token_type_ids.reshape(-1)[packed]  # (N,)

    # Same order of additions as model.Embeddings: word + type, then + position.
    hidden = emb.word_embeddings(ids) + emb.token_type_embeddings(types)  # (N, D)
    hidden = layer_norm(hidden + emb.position_embeddings(positions), emb.norm)  # (N, D)

    N = packed.numel()
    if N < B * T:
        attn_mask = torch.zeros(B, 1, 1, T, dtype=hidden.dtype, device=hidden.device)
        attn_mask.masked_fill_(~real[:, None, None, :], torch.finfo(hidden.dtype).min)  # (B, 1, 1, T)
        rectangle = hidden.new_zeros(B * T, 3 * D)  # reused by every layer; padding rows stay zero
    else:  # no padding at all: nothing to pack, and attention needs no mask
        attn_mask = rectangle = None
    for layer in model.encoder.layers:
        attn = layer.attn
        weight, bias = fused_qkv(attn)
        qkv = F.linear(hidden, weight, bias)  # (N, D) -> (N, 3D)
        if rectangle is not None:
            rectangle[packed] = qkv  # (N, 3D) -> (B*T, 3D): back to rectangles for attention
            qkv = rectangle
        q, k, v = qkv.view(B, T, 3, H, Dh).permute(2, 0, 3, 1, 4)  # (B*T, 3D) -> 3 x (B, H, T, Dh)
        context = F.scaled_dot_product_attention(q, k, v, attn_mask=attn_mask)  # (B, H, T, Dh)
        del qkv, q, k, v  # free before the feed-forward block allocates its (N, F) tensors
        context = context.transpose(1, 2)  # (B, H, T, Dh) -> (B, T, H, Dh), a view
        # One gather straight to the real tokens (a reshape first would copy all B*T rows once more).
        context = (context[real] if rectangle is not None else context).reshape(N, D)  # -> (N, H, Dh) -> (N, D)
        # out_proj(context) + hidden, summed in place (same sum as x + attn(x), one tensor fewer)
        hidden = layer_norm(attn.out_proj(context).add_(hidden), layer.attn_norm)  # (N, D)
        del context
        ffn = layer.ffn
        inner = activation(ffn.ffn_in(hidden), ffn, config.hidden_act)  # (N, D) -> (N, F)
        hidden = layer_norm(ffn.ffn_out(inner).add_(hidden), layer.ffn_norm)  # (N, F) -> (N, D)
        del inner

    if rectangle is None:
        return hidden.view(B, T, D)  # (N, D) -> (B, T, D)
    out = hidden.new_zeros(B * T, D)
    out[packed] = hidden
    return out.view(B, T, D)  # (N, D) -> (B, T, D)


def map_batches(fn, batches: list) -> Iterator:
    """Yield fn(batch) for each batch, in order, computing one single-threaded batch per thread.

    On a few cores, many of a batch's ops (GELU, LayerNorm, attention's small matmuls) are too
    small to split across threads efficiently, so whole batches in parallel use the cores better
    than intra-op threads do. Each batch is computed exactly as it would be alone, in inference
    mode. torch's thread setting is global to the process; the caller's value is put back.
    """
    threads = torch.get_num_threads()
    if threads < 2 or len(batches) < 2:
        for batch in batches:
            with torch.inference_mode():
                yield fn(batch)
        return

    def single_threaded(batch):
        torch.set_num_threads(1)  # this worker's ops run on its own core
        with torch.inference_mode():  # grad mode is per thread; the caller's does not carry over
            return fn(batch)

    try:
        with ThreadPoolExecutor(max_workers=min(threads, len(batches))) as pool:
            yield from pool.map(single_threaded, batches)
    finally:
        torch.set_num_threads(threads)
