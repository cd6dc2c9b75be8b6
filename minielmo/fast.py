"""The fast paths for the biLM, beside the readable modules in bilm.py (which stay the reference):
this file's inference path, and what it shares with the training path (minielmo/fast_grad.py).

Shape legend: B batch · T tokens · W chars/token · E char-emb · K_i filters of width w_i ·
In LSTM input · P projection · C cell · 2 directions (forward, backward)

Same maths as `CharCNN` and `LstmCellWithProjection` (Peters et al. 2018 §3.4; Sak et al. 2014),
with the work reordered so that fewer, larger operations do it:
  - CharCNN: the padding columns after the batch's longest word are skipped (trim_fill: the
    windows there are all equal), and each convolution is one matmul over unfolded character windows
    (n*(W-w+1), w*E) @ (w*E, K_i), on chunks of n tokens small enough that the outputs are
    max-pooled while still in cache (PyTorch's conv1d is slow for channels this few).
  - Highway: each layer's gate and nonlinear matmuls as one, the gate arithmetic in place.
  - biLSTM: the input half of every gate, W x_t, is one matmul per chunk of time steps (into
    a bounded workspace shared by the layers), not one per step. The backward direction reads
    each row reversed *within its own length*, so both directions step forward together and
    each step is one batched matmul (2, B, P) @ (2, P, 4C) for the pair.
  - The time loop is TorchScript where available (less per-op overhead, which is most of the
    time for small models); where scripting fails it runs as the same plain Python function.
The layer loop itself is BiLM.bilstm_stack's, with `bilstm_layer` below as its layer.

Stacked weights are no copies, on both fast paths: on first use the parameters they stack are
moved into one buffer and become views of it (weights/fused.py says exactly what rebuilds it), so
every write to a weight, `.data` included, is what the fast paths read. Under autocast the LSTM
runs in autocast's dtype on a cast copy of them (`compute_dtype`).

tests/unit/test_elmo_fast.py pins this path to the readable one within 1e-5 on padded batches,
stateless and stateful; tests/unit/test_elmo_autocast.py all three paths under bf16 autocast.
"""

import warnings
from functools import partial
from typing import List, NamedTuple, Optional

import torch
import torch.nn.functional as F
from torch import nn

from weights import fused

# ---------------------------------------------------------------------------------- char CNN


# Tokens per chunk of the convolutions, on both fast paths, are chosen so that one chunk's
# convolution outputs (and, on the training path, its window matrix) stay near this many bytes:
# small enough to be max-pooled while still in cache.
CNN_CHUNK_BYTES = 4 * 2**20
# torch's max over the middle dim of (n, positions, columns) is several times slower below 32
# columns on CPU; `python -m bench.profile` measures where the char CNN's time goes (bench/PROFILE.md).
AMAX_MIN_COLUMNS = 32


def trim_fill(char_ids: torch.Tensor, widest: int) -> torch.Tensor:
    """char_ids (N, W) -> its first W' columns, with exactly the same max-pooled convolutions.

    Every token ends in a run of one fill id (padding after </w>; 0 for a padded token). Past the
    last column where any token differs from its own fill, each token's windows all read the same
    characters, so they all give the same convolution values: one such window per width gives
    the max over all of them. Real words are much shorter than W = 50, so this skips most of the
    padding columns."""
    W = char_ids.shape[1]
    differs = (char_ids != char_ids[:, -1:]).any(dim=0).nonzero()  # columns where some token is not yet at its fill
    last = int(differs[-1]) + 1 if len(differs) else 0
    return char_ids[:, :min(W, last + widest)]  # every width keeps at least one all-fill window


def char_cnn(cnn: nn.Module, char_ids: torch.Tensor) -> torch.Tensor:
    """Drop-in for `cnn(char_ids)` (a bilm.CharCNN): char_ids (B, T, W) -> (B, T, P)."""
    B, T, _ = char_ids.shape
    widest = max(conv.kernel_size[0] for conv in cnn.convs)
    flat = trim_fill(char_ids.reshape(B * T, -1), widest)  # (B, T, W) -> (B*T, W'), W' <= W
    W = flat.shape[1]
    E = cnn.char_embedding.embedding_dim
    K = sum(conv.out_channels for conv in cnn.convs)
    chunk = min(B * T, 1024, max(16, CNN_CHUNK_BYTES // (4 * W * K)))
    # (K_i, E, w) -> (w*E, K_i): the kernel as a matrix over one unfolded window, with zero columns
    # up to AMAX_MIN_COLUMNS (the max-pool below is several times slower over fewer columns; the
    # extra columns are sliced off unread).
    kernels = [F.pad(conv.weight.permute(2, 1, 0).reshape(-1, conv.out_channels),
                     (0, max(0, AMAX_MIN_COLUMNS - conv.out_channels))) for conv in cnn.convs]
    widths = [conv.kernel_size[0] for conv in cnn.convs]
    # Scratch space reused by every chunk and width: a fresh multi-MB tensor per matmul would be
    # mapped and page-faulted anew by the allocator, which at small sizes costs more than the maths.
    window_scratch = kernels[0].new_empty(max(chunk * (W - w + 1) * w * E for w in widths))
    output_scratch = window_scratch.new_empty(max(chunk * (W - w + 1) * k.shape[1] for w, k in zip(widths, kernels)))
    pooled = window_scratch.new_empty(B * T, K)  # max over character positions, per filter
    for start in range(0, B * T, chunk):
        chars = cnn.char_embedding(flat[start:start + chunk])  # (n, W) -> (n, W, E)
        n = chars.shape[0]
        column = 0
        for width, kernel, conv in zip(widths, kernels, cnn.convs):
            positions, columns = W - width + 1, kernel.shape[1]
            windows = window_scratch[:n * positions * width * E].view(n, positions, width, E)
            windows.copy_(chars.unfold(1, width, 1).transpose(2, 3))  # (n, W, E) -> (n, W-w+1, w, E)
            convolved = output_scratch[:n * positions * columns].view(n * positions, columns)
            torch.mm(windows.view(-1, width * E), kernel, out=convolved)  # (n*(W-w+1), w*E) @ (w*E, K_i)
            # max over character positions: (n, W-w+1, K_i) -> (n, K_i)
            K_i = conv.out_channels
            pooled[start:start + n, column:column + K_i] = convolved.view(n, positions, columns).amax(dim=1)[:, :K_i]
            column += K_i
    # max(x + b) == max(x) + b exactly (rounding is monotonic), so the biases are added after.
    token = pooled.add_(torch.cat([conv.bias for conv in cnn.convs]))  # (B*T, K)
    token = token.relu_() if cnn.activation == "relu" else token.tanh_()
    token = cnn.projection(highway(cnn.highway, token))  # (B*T, K) -> (B*T, P)
    return token.view(B, T, -1)  # (B*T, P) -> (B, T, P)


def highway(module: nn.Module, hidden: torch.Tensor) -> torch.Tensor:
    """Drop-in for `module(hidden)` (a bilm.Highway): hidden (N, K) -> (N, K).

    Each layer's two matmuls (transform gate and nonlinear part) are one matmul against stacked
    weights, and the gate arithmetic runs in place on its output: at the released sizes these
    (N, K) passes cost as much as the matmuls when every one allocates a fresh tensor."""
    K = hidden.shape[1]
    for gate, nonlinear in zip(module.transform_gate, module.nonlinear):
        storage = fused.shared_storage(gate, "_fused_highway", (gate.weight, nonlinear.weight, gate.bias, nonlinear.bias))
        weight = storage[:2 * K * K].view(2 * K, K).t()  # 2 x (K, K) -> (K, 2K), a view
        bias = storage[2 * K * K:]  # 2 x (K,) -> (2K,)
        both = torch.addmm(bias, hidden, weight)  # (N, K) @ (K, 2K) -> (N, 2K)
        gate = both[:, :K].sigmoid_()  # t
        nonlinear = both[:, K:].relu_()
        # t * relu(h) + (1 - t) * x, written as x + t * (relu(h) - x): two passes instead of four
        hidden = torch.addcmul(hidden, gate, nonlinear.sub_(hidden))
    return hidden


# ---------------------------------------------------------------------------------- biLSTM


# Steps of W x_t computed per matmul are chosen so that one matmul covers about this many
# rows (batch rows x steps): enough for the matmul to run near full speed (it reads the input
# weights once per chunk), and a bounded workspace, (2, rows, 4C) floats, however long the
# sentences are. Precomputing every step at once needs (2, T*B, 4C) floats, freshly mapped (and
# page-faulted) by every layer. How this trades off is measured
# by `python -m bench` (bench/RESULTS.md) and `python -m bench.profile` (bench/PROFILE.md).
CHUNK_ROWS = 256


def chunk_steps(batch_size: int) -> int:
    """Time steps per input matmul: CHUNK_ROWS rows of (batch rows x steps)."""
    return max(1, CHUNK_ROWS // batch_size)


def gate_workspace(batch_size: int, steps: int, cell_size: int, like: torch.Tensor) -> torch.Tensor:
    """A flat buffer for one chunk of input products plus one step's gates, shared by the layers
    of one forward pass: reused memory, where a fresh multi-MB tensor per step would be mapped
    and page-faulted again and again."""
    return like.new_empty(_workspace_size(batch_size, steps, cell_size))


def _workspace_size(batch_size: int, steps: int, cell_size: int) -> int:
    return 2 * (min(steps, chunk_steps(batch_size)) + 1) * batch_size * 4 * cell_size  # (2, chunk + 1, B, 4C)


def recurrence(inputs: torch.Tensor, w_input: torch.Tensor, bias: torch.Tensor, mask: torch.Tensor,
               all_active: List[bool], hidden: torch.Tensor, memory: torch.Tensor,
               hidden_to_gates: torch.Tensor, projection: torch.Tensor, cell_clip: float,
               proj_clip: float, workspace: torch.Tensor, chunk: int):
    """The time loop for both directions at once, time-major. (Positional tensors, not a
    LayerWeights: this is the function TorchScript compiles; bilstm_layer is its one caller.)

    inputs (2, T, B, P); w_input (2, P, 4C) and bias (2, 1, 4C), gate order (i, f, g, o);
    mask (T, B) bool; all_active[t] is True when every row is real at step t; hidden (2, B, P);
    memory (2, B, C); hidden_to_gates (2, P, 4C); projection (2, C, P); a clip of 0 means no
    clipping; workspace: a flat buffer of 2 * (min(chunk, T) + 1) * B * 4C floats (gate_workspace);
    chunk: steps per input matmul.
    Returns outputs (T, 2, B, P), zero where mask is False, and the final hidden and memory.
    """
    T, B, P = inputs.shape[1], inputs.shape[2], inputs.shape[3]
    C = memory.shape[2]
    outputs = inputs.new_empty(T, 2, B, P)
    step = workspace[workspace.numel() - 2 * B * 4 * C:].view(2, B, 4 * C)  # the last block: one step
    # Views of the step's gates, made once: every step writes the same memory, so at small sizes
    # (where per-op overhead is the cost) the loop does no slicing of its own.
    input_and_forget = step.narrow(2, 0, 2 * C)  # i, f: one sigmoid for the two, (2, B, 2C)
    input_gate, forget_gate = step.narrow(2, 0, C), step.narrow(2, C, C)
    candidate, output_gate = step.narrow(2, 2 * C, C), step.narrow(2, 3 * C, C)  # g, o: (2, B, C)
    gates = workspace[:0].view(2, 0, 4 * C)
    for t in range(T):
        k = t % chunk
        if k == 0:  # W x for the next n steps in one matmul: (2, n*B, P) @ (2, P, 4C)
            n = min(chunk, T - t)
            gates = workspace[:2 * n * B * 4 * C].view(2, n * B, 4 * C)
            torch.bmm(inputs[:, t:t + n].reshape(2, n * B, P), w_input, out=gates)
        # W x_t + b, copied out of the chunk into the contiguous step block (a strided one would make
        # the next matmul run once per direction), then += U h_{t-1}: (2, B, P) @ (2, P, 4C).
        torch.add(gates.narrow(1, k * B, B), bias, out=step).baddbmm_(hidden, hidden_to_gates)
        input_and_forget.sigmoid_()
        candidate.tanh_()
        output_gate.sigmoid_()
        new_memory = torch.addcmul(forget_gate * memory, input_gate, candidate)
        if cell_clip > 0:
            new_memory = new_memory.clamp_(-cell_clip, cell_clip)
        new_hidden = outputs[t]  # (2, B, P), written in place by the projection below
        torch.bmm(torch.tanh(new_memory).mul_(output_gate), projection, out=new_hidden)  # (2, B, C) @ (2, C, P)
        if proj_clip > 0:
            new_hidden.clamp_(-proj_clip, proj_clip)
        if all_active[t]:
            hidden, memory = new_hidden, new_memory
        else:
            # Rows past their end keep their state, as in LstmCellWithProjection.forward.
            active = mask[t].view(1, -1, 1)  # (B,) -> (1, B, 1)
            hidden = torch.where(active, new_hidden, hidden)
            memory = torch.where(active, new_memory, memory)
            new_hidden.masked_fill_(~active, 0.0)
    return outputs, hidden, memory


def _script(fn):
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # torch 2.x flags TorchScript as deprecated; it still works
            return torch.jit.script(fn)
    except Exception:  # no TorchScript in this build: the plain function computes the same thing
        return fn


compiled_recurrence = _script(recurrence)


# ---------------------------------------------------------------------------------- shared by both fast paths


def watched(bilm: nn.Module) -> bool:
    """True when neither fast path may compute a call of `bilm`: a forward hook is registered on
    it, on one of its modules or globally (weights.fused.watched). Both fast paths call none of the
    modules they fuse, so the hook would never fire; BiLM.path then picks the readable modules."""
    return fused.watched(bilm)


class LayerWeights(NamedTuple):
    """Both directions' weights of one biLSTM layer, laid out for a time loop, gate order (i, f, g, o)."""
    input: torch.Tensor  # (2, In, 4C): W
    bias: torch.Tensor  # (2, 1, 4C): b
    hidden: torch.Tensor  # (2, P, 4C): U
    projection: torch.Tensor  # (2, C, P): W_P


def cell_parameters(cell: nn.Module) -> tuple:
    """A cell's parameters in the order `fused_weights` stacks them."""
    return (cell.input_to_gates.weight, cell.hidden_to_gates.weight, cell.hidden_to_gates.bias,
            cell.projection.weight)


def fused_weights(forward_cell: nn.Module, backward_cell: nn.Module, dtype: torch.dtype) -> LayerWeights:
    """Both directions' weights stacked, as views of the storage the cells' parameters themselves
    live in (weights/fused.py), so no write can leave them stale; cast (a copy) where `dtype`
    differs from theirs.

    Both fast paths read weights this way. The alternative, a stacked copy per call, copies every
    layer's weights on every call, and kept as a cache across calls it could go stale.
    Autograd does not see through the views: the training path hands the parameters themselves
    to its autograd.Function, which returns their gradients (fast_grad.BiLstmLayer)."""
    C, P = forward_cell.cell_size, forward_cell.projection_dim
    In = forward_cell.input_to_gates.in_features
    storage = fused.shared_storage(forward_cell, "_fused_bilstm",
                                   [p for group in zip(*map(cell_parameters, (forward_cell, backward_cell)))
                                    for p in group])  # each parameter's forward twin, then its backward one
    w_input, w_hidden, bias, projection = storage.split([2 * 4 * C * In, 2 * 4 * C * P, 2 * 4 * C, 2 * P * C])
    return LayerWeights(input=w_input.view(2, 4 * C, In).transpose(1, 2).to(dtype),  # 2 x (4C, In) -> (2, In, 4C)
                        bias=bias.view(2, 1, 4 * C).to(dtype),  # 2 x (4C,) -> (2, 1, 4C)
                        hidden=w_hidden.view(2, 4 * C, P).transpose(1, 2).to(dtype),  # 2 x (4C, P) -> (2, P, 4C)
                        projection=projection.view(2, P, C).transpose(1, 2).to(dtype))  # 2 x (P, C) -> (2, C, P)


def clips(cell: nn.Module) -> tuple[float, float]:
    """(cell_clip, proj_clip) as the time loops take them: 0.0 means off (None or 0 in the config)."""
    return float(cell.cell_clip or 0.0), float(cell.proj_clip or 0.0)


def compute_dtype(like: torch.Tensor) -> torch.dtype:
    """The dtype the fast biLSTM layers compute in: autocast's where autocast is on for `like`'s
    device (the dtype the readable cells' matmuls, and so their states, take there), else `like`'s.
    The layers run with autocast off, on inputs, states and weights cast to it, because their
    time loops write into preallocated buffers, which autocast's casts would not match."""
    device = like.device.type
    if hasattr(torch, "get_autocast_dtype"):  # torch >= 2.4 asks by device type
        on, dtype = torch.is_autocast_enabled(device), torch.get_autocast_dtype(device)
    elif device == "cpu":  # torch 2.2 and 2.3 (pyproject allows them) ask per device family
        on, dtype = torch.is_autocast_cpu_enabled(), torch.get_autocast_cpu_dtype()
    else:
        on, dtype = torch.is_autocast_enabled(), torch.get_autocast_gpu_dtype()
    return dtype if on else like.dtype


def reverse_within_length(x: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
    """Reverse each row's first lengths[b] positions and leave its padding in place: (B, T, ...)."""
    B, T = x.shape[:2]
    positions = torch.arange(T, device=x.device).unsqueeze(0)  # (1, T)
    flipped = lengths.unsqueeze(1) - 1 - positions  # (B, T): row b reads position len_b - 1 - t
    index = torch.where(flipped >= 0, flipped, positions)  # padding reads itself
    return x.gather(1, index.view(B, T, *([1] * (x.dim() - 2))).expand_as(x))


def time_major(forward_input: torch.Tensor, backward_input: torch.Tensor, lengths: torch.Tensor,
               dtype: torch.dtype) -> torch.Tensor:
    """Both directions' inputs, each (B, T, In), as one (2, T, B, In) tensor in `dtype`, the
    backward one reversed within each row's length so that both directions step forward together."""
    inputs = torch.stack([forward_input, reverse_within_length(backward_input, lengths)])  # (2, B, T, In)
    return inputs.transpose(1, 2).to(dtype).contiguous()  # (2, B, T, In) -> (2, T, B, In)


def batch_major(outputs: torch.Tensor, lengths: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The inverse of time_major for the outputs: (2, T, B, P) -> forward_out, backward_out (B, T, P),
    each in memory order (B, T, P): dropout on the next layer's input draws its mask in memory
    order, so this keeps the training path's masks those of the readable path."""
    outputs = outputs.transpose(1, 2).contiguous()  # (2, T, B, P) -> (2, B, T, P)
    return outputs[0], reverse_within_length(outputs[1], lengths)  # back to left-to-right positions


def initial_state(states, B: int, P: int, C: int, like: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """states (forward, backward), each (hidden (B, P), memory (B, C)) or None for zeros ->
    hidden (2, B, P), memory (2, B, C) in `like`'s dtype."""
    zeros = (like.new_zeros(B, P), like.new_zeros(B, C))
    hidden, memory = ([(zeros if state is None else state)[which] for state in states] for which in (0, 1))
    return torch.stack(hidden).to(like.dtype), torch.stack(memory).to(like.dtype)


def final_states(hidden: torch.Tensor, memory: torch.Tensor) -> tuple:
    """hidden (2, B, P), memory (2, B, C) -> ((hidden, memory) forward, (hidden, memory) backward)."""
    return (hidden[0], memory[0]), (hidden[1], memory[1])


# ---------------------------------------------------------------------------------- the inference layer


def bilstm_layer(forward_cell: nn.Module, backward_cell: nn.Module, forward_input: torch.Tensor,
                 backward_input: torch.Tensor, mask: torch.Tensor, states,
                 workspace: Optional[torch.Tensor] = None):
    """Both directions of one layer at inference: a drop-in for bilm.bilstm_layer, the layer of
    BiLM.bilstm_stack.

    forward_input, backward_input (B, T, P); mask (B, T) bool, a prefix per row;
    states (forward, backward), each (hidden (B, P), memory (B, C)) or None for zeros;
    workspace: from gate_workspace (pass one to every layer of a forward pass), None for a new one.
    Returns forward_out, backward_out (B, T, P) and ((hidden, memory) forward, ... backward).
    """
    B, T, P = forward_input.shape
    C = forward_cell.cell_size
    dtype = compute_dtype(forward_input)
    lengths = mask.sum(dim=1)  # (B, T) -> (B,)
    inputs = time_major(forward_input, backward_input, lengths, dtype)  # (2, T, B, P)
    if workspace is None:
        workspace = gate_workspace(B, T, C, inputs)
    elif workspace.numel() < _workspace_size(B, T, C):
        raise ValueError(f"workspace of {workspace.numel()} floats is too small for B={B}, T={T}, C={C}; "
                         f"make it with gate_workspace")
    hidden, memory = initial_state(states, B, P, C, inputs)  # (2, B, P), (2, B, C)
    weights = fused_weights(forward_cell, backward_cell, dtype)
    with torch.autocast(inputs.device.type, enabled=False):
        outputs, hidden, memory = compiled_recurrence(
            inputs, weights.input, weights.bias, mask.t().contiguous(), mask.all(dim=0).tolist(), hidden, memory,
            weights.hidden, weights.projection, *clips(forward_cell), workspace, chunk_steps(B))
    outputs = outputs.transpose(0, 1)  # (T, 2, B, P) -> (2, T, B, P)
    return (*batch_major(outputs, lengths), final_states(hidden, memory))


def layer_sharing_a_workspace(token_embedding: torch.Tensor, cell_size: int):
    """bilstm_layer with one gate workspace for every layer of the forward pass over
    token_embedding (B, T, P), as BiLM.bilstm_stack's layer."""
    B, T, _ = token_embedding.shape
    like = token_embedding.new_empty(0, dtype=compute_dtype(token_embedding))  # the layers' dtype
    return partial(bilstm_layer, workspace=gate_workspace(B, T, cell_size, like))
