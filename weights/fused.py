"""What the fast paths of minibert and minielmo share: fused weights that cannot go stale, and
the hook check that sends a watched model down the readable path.

A fast path multiplies by several parameters at once (query, key and value as one (3D, D)
matrix; both LSTM directions as one batched matmul). A fused *copy* would be a cache, and no
cheap key sees every write to a parameter: a write through `param.data` (AllenNLP's loading
idiom) bumps no version counter and moves no pointer. So `shared_storage` copies nothing it
keeps: it moves the parameters themselves into one flat buffer, each becoming a view of its own
slice (`param.data = buffer[a:b].view(shape)`). The Parameter objects stay (optimizers, hooks
and state_dict keys are unaffected), and every later in-place write, by any route (`.data`,
`copy_`, `load_state_dict`, an optimizer step), lands in the buffer the fast path reads.

What rebuilds the buffer: a parameter that no longer lives at its slice, which is what replacing
its storage does (`param.data = tensor`, `.to(dtype)`, `.to(device)`, `.half()`,
`load_state_dict(assign=True)`, assigning a new Parameter). Every call checks each parameter's
identity, data pointer, dtype, device, shape and contiguity against its slice; while the buffer
is alive its memory belongs to no other tensor, so a parameter that passes *is* the slice.
"""

from __future__ import annotations

import threading
from typing import Sequence

import torch
from torch import nn

# Two threads running the fast path on one model (minibert.fast.map_batches does) may both find
# the buffer missing; one builds it, the other then sees it.
_build_lock = threading.Lock()


def shared_storage(owner: nn.Module, name: str, params: Sequence[nn.Parameter]) -> torch.Tensor:
    """A flat tensor holding `params` back to back, in order, each parameter a view of its slice.
    Kept as the plain attribute `name` of `owner` (never saved, never a parameter)."""
    cached = owner.__dict__.get(name)
    if cached is None or not _still_shared(params, *cached):
        with _build_lock:
            cached = owner.__dict__.get(name)
            if cached is None or not _still_shared(params, *cached):
                cached = (tuple(id(p) for p in params), _move_into_one_buffer(params))
                owner.__dict__[name] = cached
    return cached[1]


def _still_shared(params: Sequence[nn.Parameter], ids: tuple, buffer: torch.Tensor) -> bool:
    if tuple(id(p) for p in params) != ids:
        return False
    address, offset = buffer.data_ptr(), 0
    for p in params:
        if (p.dtype != buffer.dtype or p.device != buffer.device or not p.is_contiguous()
                or p.data_ptr() != address + offset * buffer.element_size()):
            return False
        offset += p.numel()
    return offset == buffer.numel()


def _move_into_one_buffer(params: Sequence[nn.Parameter]) -> torch.Tensor:
    kinds = sorted({(str(p.dtype), str(p.device)) for p in params})
    if len(kinds) > 1:
        raise ValueError(f"the fast path fuses parameters of one dtype on one device, got {kinds}; "
                         "convert the whole model with .to(...)")
    # Outside inference mode: the parameters become views of this buffer, and they must stay
    # ordinary tensors that training can update in place.
    with torch.inference_mode(False), torch.no_grad():
        buffer = torch.empty(sum(p.numel() for p in params), dtype=params[0].dtype, device=params[0].device)
        offset = 0
        for p in params:
            buffer[offset:offset + p.numel()].view(p.shape).copy_(p)
            offset += p.numel()
        offset = 0
        for p in params:
            p.data = buffer[offset:offset + p.numel()].view(p.shape)
            offset += p.numel()
    return buffer


def watched(module: nn.Module) -> bool:
    """True when a forward hook is registered on `module`, on any submodule, or globally.

    The fast paths skip the calls of the modules they fuse, so their hooks would never fire; a
    caller that sees True runs the readable path instead, where every module is called."""
    from torch.nn.modules import module as module_lib

    if module_lib._global_forward_hooks or module_lib._global_forward_pre_hooks:
        return True
    return any(m._forward_hooks or m._forward_pre_hooks for m in module.modules())
