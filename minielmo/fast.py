"""A fast path for the biLM, beside the readable modules in bilm.py (which stay the reference).

Shape legend: B batch · T tokens · W chars/token · E char-emb · K_i filters of width w_i ·
P projection · C cell · 2 directions (forward, backward)

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
Stacked weights are no copies: on first use the parameters they stack are moved into one buffer
and become views of it (weights/fused.py says exactly what rebuilds it), so every write to a
weight, `.data` included, is what the fast path reads.

tests/unit/test_elmo_fast.py pins this path to the readable one within 1e-5 on padded batches,
stateless and stateful.
"""

import warnings
from typing import List, Optional

import torch
import torch.nn.functional as F
from torch import nn

from weights.fused import shared_storage, watched  # noqa: F401 (watched: BiLM asks fast.watched)

# ---------------------------------------------------------------------------------- char CNN


# Tokens per chunk are chosen so that one chunk's convolution outputs, (tokens, W, K) floats, stay
# near this many bytes: small enough to be max-pooled while still in cache.
CNN_CHUNK_BYTES = 4 * 2**20
# torch's max over the middle dim of (n, positions, columns) is 3-7x slower below 32 columns
# (measured on torch 2.13 CPU: 160 us at 16 columns, 22 us at 32, for 169 tokens x 48 positions).
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
        storage = shared_storage(gate, "_fused_highway", (gate.weight, nonlinear.weight, gate.bias, nonlinear.bias))
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
# weights once per chunk), and a bounded workspace, (2, rows, 4C) floats (33 MB at the released
# "original" size), however long the sentences are. Precomputing every step at once needs
# (2, T*B, 4C): 113 MB at 32 x 27 tokens, freshly mapped (and page-faulted) by every layer.
CHUNK_ROWS = 256


def chunk_steps(batch_size: int) -> int:
    return max(1, CHUNK_ROWS // batch_size)


def gate_workspace(batch_size: int, steps: int, cell_size: int, like: torch.Tensor) -> torch.Tensor:
    """A flat buffer for one chunk of input products plus one step's gates, shared by the layers
    of one forward pass: reused memory, where a fresh multi-MB tensor per step would be mapped
    and page-faulted again and again."""
    return like.new_empty(_workspace_size(batch_size, steps, cell_size))


def _workspace_size(batch_size: int, steps: int, cell_size: int) -> int:
    return 2 * (min(steps, chunk_steps(batch_size)) + 1) * batch_size * 4 * cell_size  # (2, chunk + 1, B, 4C)


def _recurrence(inputs: torch.Tensor, w_input: torch.Tensor, bias: torch.Tensor, mask: torch.Tensor,
                all_active: List[bool], hidden: torch.Tensor, memory: torch.Tensor,
                hidden_to_gates: torch.Tensor, projection: torch.Tensor, cell_clip: float,
                proj_clip: float, workspace: torch.Tensor, chunk: int):
    """The time loop for both directions at once, time-major.

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


_compiled_recurrence = _script(_recurrence)

def fused_weights(forward_cell: nn.Module, backward_cell: nn.Module):
    """Both directions' weights stacked, gate order (i, f, g, o) as in the cells: input (2, P, 4C),
    bias (2, 1, 4C), hidden (2, P, 4C), projection (2, C, P). All are views of the storage the
    cells' parameters themselves live in (weights/fused.py), so no write can leave them stale."""
    C, P = forward_cell.cell_size, forward_cell.projection_dim
    In = forward_cell.input_to_gates.in_features
    cells = (forward_cell, backward_cell)
    storage = shared_storage(forward_cell, "_fused_bilstm", [
        *(c.input_to_gates.weight for c in cells), *(c.hidden_to_gates.weight for c in cells),
        *(c.hidden_to_gates.bias for c in cells), *(c.projection.weight for c in cells)])
    sizes = [2 * 4 * C * In, 2 * 4 * C * P, 2 * 4 * C, 2 * P * C]
    w_input, w_hidden, bias, projection = storage.split(sizes)
    return (w_input.view(2, 4 * C, In).transpose(1, 2),  # 2 x (4C, in) -> (2, in, 4C)
            bias.view(2, 1, 4 * C),  # 2 x (4C,) -> (2, 1, 4C)
            w_hidden.view(2, 4 * C, P).transpose(1, 2),  # 2 x (4C, P) -> (2, P, 4C)
            projection.view(2, P, C).transpose(1, 2))  # 2 x (P, C) -> (2, C, P)


def reverse_within_length(x: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
    """Reverse each row's first lengths[b] positions and leave its padding in place: (B, T, ...)."""
    B, T = x.shape[:2]
    positions = torch.arange(T, device=x.device).unsqueeze(0)  # (1, T)
    flipped = lengths.unsqueeze(1) - 1 - positions  # (B, T): row b reads position len_b - 1 - t
    index = torch.where(flipped >= 0, flipped, positions)  # padding reads itself
    return x.gather(1, index.view(B, T, *([1] * (x.dim() - 2))).expand_as(x))


def bilstm_stack(bilm: nn.Module, token_embedding: torch.Tensor, mask: torch.Tensor, initial_states):
    """Drop-in for BiLM._bilstm_stack at inference (no dropout): token_embedding (B, T, P),
    mask (B, T), initial_states per layer -> L layers (B, T, 2P) and each layer's final states.
    One workspace serves every layer."""
    B, T, _ = token_embedding.shape
    workspace = gate_workspace(B, T, bilm.config.cell_size, token_embedding)
    layers, final_states = [], []
    inputs = (token_embedding, token_embedding)  # both directions read the token embedding
    for layer, cells in enumerate(zip(bilm.forward_layers, bilm.backward_layers)):
        *outputs, states = bilstm_layer(*cells, *inputs, mask, initial_states[layer], workspace)
        if layer > 0 and bilm.config.use_skip_connections:  # residual, as in the readable stack
            outputs = [output + previous for output, previous in zip(outputs, inputs)]  # not in place:
            # the final hidden state is a view of the last step's output
        layers.append(torch.cat(outputs, dim=-1))  # 2 x (B, T, P) -> (B, T, 2P)
        final_states.append(states)
        inputs = outputs
    return layers, final_states


def bilstm_layer(forward_cell: nn.Module, backward_cell: nn.Module, forward_input: torch.Tensor,
                 backward_input: torch.Tensor, mask: torch.Tensor, states,
                 workspace: Optional[torch.Tensor] = None):
    """Both directions of one layer: the two readable loops of one layer of BiLM._bilstm_stack.

    forward_input, backward_input (B, T, P); mask (B, T) bool, a prefix per row;
    states (forward, backward), each (hidden (B, P), memory (B, C)) or None for zeros;
    workspace: from gate_workspace (pass one to every layer of a forward pass), None for a new one.
    Returns forward_out, backward_out (B, T, P) and ((hidden, memory) forward, ... backward).
    """
    B, T, P = forward_input.shape
    C = forward_cell.cell_size
    w_input, bias, w_hidden, w_projection = fused_weights(forward_cell, backward_cell)
    if workspace is None:
        workspace = gate_workspace(B, T, C, forward_input)
    elif workspace.numel() < _workspace_size(B, T, C):
        raise ValueError(f"workspace of {workspace.numel()} floats is too small for B={B}, T={T}, C={C}; "
                         f"make it with gate_workspace")
    lengths = mask.sum(dim=1)  # (B, T) -> (B,)
    inputs = torch.stack([forward_input, reverse_within_length(backward_input, lengths)])  # (2, B, T, P)
    inputs = inputs.transpose(1, 2).contiguous()  # (2, B, T, P) -> (2, T, B, P): time-major

    hidden = torch.stack([_state(states[0], 0, B, P, inputs), _state(states[1], 0, B, P, inputs)])  # (2, B, P)
    memory = torch.stack([_state(states[0], 1, B, C, inputs), _state(states[1], 1, B, C, inputs)])  # (2, B, C)
    all_active = mask.all(dim=0).tolist()  # one bool per step
    outputs, hidden, memory = _compiled_recurrence(
        inputs, w_input, bias, mask.t().contiguous(), all_active, hidden, memory, w_hidden, w_projection,
        float(forward_cell.cell_clip or 0.0), float(forward_cell.proj_clip or 0.0), workspace, chunk_steps(B))
    outputs = outputs.permute(1, 2, 0, 3)  # (T, 2, B, P) -> (2, B, T, P)
    backward_out = reverse_within_length(outputs[1], lengths)  # back to left-to-right positions
    return outputs[0], backward_out, ((hidden[0], memory[0]), (hidden[1], memory[1]))


def _state(state, which: int, B: int, size: int, like: torch.Tensor) -> torch.Tensor:
    return like.new_zeros(B, size) if state is None else state[which]
