"""A fast path for *training* the biLM, beside the readable modules in bilm.py (still the reference).

Shape legend: N tokens (B*T) · W chars/token · E char-emb · K_i filters of width w · L = W-w+1
positions · B batch · T steps · In LSTM input · P projection · C cell · 2 directions

Same maths as `CharCNN` and `LstmCellWithProjection` (Peters et al. 2018 §3.4), differentiable, with
backpropagation written out by hand where autograd's op-by-op version wastes most of the work:

  - Convolution + max-pool over character positions, as unfolded matmuls (Conv1d's own
    backward pass is slow at E = 16 channels): the forward pass runs in cache-sized chunks and
    keeps only each max and where it was, not the (N*L, w*E) window matrix autograd would keep;
    the backward pass puts each gradient back at its window and runs the two products as matmuls.
    Both skip the padding columns past the batch's longest word (fast.trim_fill).
  - The biLSTM layer, both directions at once: backpropagation through time (the LSTM gradients
    of Greff et al. 2017, "LSTM: A Search Space Odyssey", appendix; with clipping and the
    projection of Sak et al. 2014). The time loop does only what must be sequential: per step,
    the recurrent products U h_{t-1} and W_P (o * tanh c) forward and their transposes backward.
    The weight gradients, dW = sum_t x_t^T dgates_t and the like, are summed over all steps in ONE
    matmul each after the loop, where autograd would do one small matmul per step.

Everything else (embedding, highway, projection, dropout, the residual connection) runs through
the readable modules under autograd. tests/unit/test_elmo_fast_grad.py pins outputs and every
gradient to the readable path and checks the hand-written backward with gradcheck in float64.
NOTE (deviation): a clipped value's gradient is zero where |value| == clip exactly (the readable
clamp passes it there); rounding makes this a measure-zero event. Second derivatives are not
available on this path: set `bilm.fast_path = False` for double backward.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.autograd.function import once_differentiable

from .fast import reverse_within_length, trim_fill

# Tokens per chunk of the convolution's forward pass: one chunk's window matrix and outputs stay
# near this many bytes, small enough to be max-pooled while still in cache (as in fast.py).
CNN_CHUNK_BYTES = 4 * 2**20

# ---------------------------------------------------------------------------------- char CNN


class ConvMaxPool(torch.autograd.Function):
    """max over character positions of conv1d(chars, weight), bias left out:
    chars (N, W, E), weight (K_i, E, w) -> (N, K_i). The bias is added after the max by the
    caller: max(x + b) == max(x) + b exactly, and its gradient is then plain autograd."""

    @staticmethod
    def forward(ctx, chars: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
        N, W, E = chars.shape
        K_i, _, w = weight.shape
        L = W - w + 1
        # (K_i, E, w) -> (E*w, K_i): unfold lays a window out E-major, w-minor, as the weight is.
        kernel = weight.reshape(K_i, E * w).t()  # (K_i, E, w) -> (K_i, E*w) -> (E*w, K_i)
        values = chars.new_empty(N, K_i)
        index = torch.empty(N, K_i, dtype=torch.long, device=chars.device)
        chunk = max(1, CNN_CHUNK_BYTES // (4 * L * max(E * w, K_i)))
        for start in range(0, N, chunk):
            windows = chars[start:start + chunk].unfold(1, w, 1)  # (n, W, E) -> (n, L, E, w)
            n = windows.shape[0]
            convolved = windows.reshape(n * L, E * w) @ kernel  # (n*L, E*w) @ (E*w, K_i)
            best = convolved.view(n, L, K_i).max(dim=1)  # (n, L, K_i) -> (n, K_i), and where
            values[start:start + n], index[start:start + n] = best.values, best.indices
        ctx.save_for_backward(chars, weight, index)
        return values

    @staticmethod
    @once_differentiable
    def backward(ctx, grad: torch.Tensor):
        """grad (N, K_i) -> gradients for chars (N, W, E) and weight (K_i, E, w)."""
        chars, weight, index = ctx.saved_tensors
        N, W, E = chars.shape
        K_i, _, w = weight.shape
        L = W - w + 1
        # The max passed each (token, filter) gradient to one position: the convolution's output
        # gradient is zero elsewhere. (N, K_i) -> (N, L, K_i)
        grad_convolved = chars.new_zeros(N, L, K_i).scatter_(1, index.unsqueeze(1), grad.unsqueeze(1))
        grad_convolved = grad_convolved.view(N * L, K_i)  # (N, L, K_i) -> (N*L, K_i)
        grad_chars = grad_weight = None
        if ctx.needs_input_grad[1]:
            windows = chars.unfold(1, w, 1).reshape(N * L, E * w)  # (N, W, E) -> (N, L, E, w) -> (N*L, E*w)
            grad_weight = (grad_convolved.t() @ windows).view(K_i, E, w)  # (K_i, N*L) @ (N*L, E*w)
        if ctx.needs_input_grad[0]:
            # (N*L, K_i) @ (K_i, E*w) -> (N, L, E, w): each window's gradient, then summed back into
            # the characters it covers (window l, tap j reads character l + j)
            grad_windows = (grad_convolved @ weight.reshape(K_i, E * w)).view(N, L, E, w)
            grad_chars = chars.new_zeros(N, W, E)
            for j in range(w):
                grad_chars[:, j:j + L] += grad_windows[..., j]
        return grad_chars, grad_weight


def char_cnn(cnn: nn.Module, char_ids: torch.Tensor) -> torch.Tensor:
    """Drop-in for `cnn(char_ids)` (a bilm.CharCNN) under autograd: char_ids (B, T, W) -> (B, T, P)."""
    B, T, W = char_ids.shape
    widest = max(conv.kernel_size[0] for conv in cnn.convs)
    flat = trim_fill(char_ids.reshape(B * T, W), widest)  # (B, T, W) -> (N, W'), W' <= W
    chars = cnn.char_embedding(flat)  # (N, W') -> (N, W', E)
    activation = torch.relu if cnn.activation == "relu" else torch.tanh
    # max then bias then activation, per width, as CharCNN does (bias after the max: see ConvMaxPool)
    features = [activation(ConvMaxPool.apply(chars, conv.weight) + conv.bias) for conv in cnn.convs]
    token = cnn.projection(cnn.highway(torch.cat(features, dim=-1)))  # (N, K) -> (N, P)
    return token.view(B, T, -1)  # (N, P) -> (B, T, P)


# ---------------------------------------------------------------------------------- biLSTM


def _forward_steps(gates, bias, mask, all_active, hidden, memory, w_hidden, w_projection, cell_clip: float,
                   proj_clip: float, cells, tanh_cells, cell_outputs, outputs):
    """The time loop, both directions together (direction-major buffers, each step a [:, t] view).

    gates (2, T, B, 4C) holds W x_t on entry and the activated gates (i, f, g, o) on return;
    bias (2, 1, 4C);
    cells, tanh_cells, cell_outputs (2, T, B, C) and outputs (2, T, B, P) are filled with c_t,
    tanh(c_t), o * tanh(c_t) and the clipped h_t (unmasked). Returns the final hidden, memory.
    """
    C = memory.shape[-1]
    for t in range(gates.shape[1]):
        step = gates[:, t].add_(bias).baddbmm_(hidden, w_hidden)  # W x_t + b + U h_{t-1}: (2, B, P) @ (2, P, 4C)
        step[..., :2 * C].sigmoid_()  # i, f
        step[..., 2 * C:3 * C].tanh_()  # g
        step[..., 3 * C:].sigmoid_()  # o
        input_gate, forget_gate, candidate, output_gate = step.chunk(4, dim=-1)  # 4 x (2, B, C)
        cell = torch.mul(forget_gate, memory, out=cells[:, t]).addcmul_(input_gate, candidate)
        if cell_clip > 0:
            cell.clamp_(-cell_clip, cell_clip)
        cell_output = torch.mul(output_gate, torch.tanh(cell, out=tanh_cells[:, t]), out=cell_outputs[:, t])
        new_hidden = torch.bmm(cell_output, w_projection, out=outputs[:, t])  # (2, B, C) @ (2, C, P)
        if proj_clip > 0:
            new_hidden.clamp_(-proj_clip, proj_clip)
        if all_active[t]:
            hidden, memory = new_hidden, cell
        else:  # rows past their end keep their state, as in LstmCellWithProjection.forward
            active = mask[t].view(1, -1, 1)  # (B,) -> (1, B, 1)
            hidden, memory = torch.where(active, new_hidden, hidden), torch.where(active, cell, memory)
    return hidden, memory


# The derivative of a nonlinearity from its output, in one pass (the kernels autograd itself uses):
# _sigmoid_backward(g, s) = g * s * (1 - s) for s = sigmoid(x); _tanh_backward(g, y) = g * (1 - y^2).
_sigmoid_backward, _tanh_backward = torch.ops.aten.sigmoid_backward, torch.ops.aten.tanh_backward


def _backward_steps(grad_outputs, grad_hidden, grad_memory, mask, all_active, memory0, gates, cells,
                    tanh_cells, outputs, w_hidden, w_projection, cell_clip: float, proj_clip: float,
                    grad_gates, grad_projected):
    """Backpropagation through the time loop, last step first.

    grad_outputs (2, T, B, P): gradient of the (masked) outputs; grad_hidden (2, B, P), grad_memory
    (2, B, C): of the final state. Fills grad_gates (2, T, B, 4C) with the gradient of the gate
    pre-activations and grad_projected (2, T, B, P) with that of W_P (o * tanh c) before the clip.
    Returns the gradient of the initial state (hidden, memory).
    """
    for t in reversed(range(gates.shape[1])):
        # The state after step t feeds step t + 1 (grad_hidden, grad_memory) and the output at t.
        if all_active[t]:
            d_hidden, d_memory = grad_hidden + grad_outputs[:, t], grad_memory
            carry_hidden = carry_memory = None
        else:  # a finished row passed its state through step t untouched, and output zero
            active = mask[t].view(1, -1, 1)  # (B,) -> (1, B, 1)
            d_hidden = torch.where(active, grad_hidden + grad_outputs[:, t], 0.0)
            d_memory = torch.where(active, grad_memory, 0.0)
            carry_hidden, carry_memory = torch.where(active, 0.0, grad_hidden), torch.where(active, 0.0, grad_memory)
        d_projected = grad_projected[:, t]
        if proj_clip > 0:  # the clamp passes the gradient only where it did not clip
            torch.mul(d_hidden, outputs[:, t].abs() < proj_clip, out=d_projected)
        else:
            d_projected.copy_(d_hidden)
        d_cell_output = torch.bmm(d_projected, w_projection.transpose(1, 2))  # (2, B, P) @ (2, P, C)
        input_gate, forget_gate, candidate, output_gate = gates[:, t].chunk(4, dim=-1)  # 4 x (2, B, C)
        tanh_cell = tanh_cells[:, t]
        # c feeds the next step and h (through o * tanh c): d c = d c_next + d(o tanh c) o (1 - tanh^2 c)
        d_cell = _tanh_backward(d_cell_output * output_gate, tanh_cell).add_(d_memory)
        if cell_clip > 0:
            d_cell = d_cell * (cells[:, t].abs() < cell_clip)
        previous_cell = cells[:, t - 1] if t > 0 else memory0
        d_gates = grad_gates[:, t]  # through each gate's nonlinearity, into its quarter of (2, B, 4C)
        d_i, d_f, d_g, d_o = d_gates.chunk(4, dim=-1)
        _sigmoid_backward.grad_input(d_cell * candidate, input_gate, grad_input=d_i)
        _sigmoid_backward.grad_input(d_cell * previous_cell, forget_gate, grad_input=d_f)
        _tanh_backward.grad_input(d_cell * input_gate, candidate, grad_input=d_g)
        _sigmoid_backward.grad_input(d_cell_output * tanh_cell, output_gate, grad_input=d_o)
        grad_hidden = torch.bmm(d_gates, w_hidden.transpose(1, 2))  # (2, B, 4C) @ (2, 4C, P)
        grad_memory = d_cell * forget_gate
        if carry_hidden is not None:
            grad_hidden, grad_memory = grad_hidden + carry_hidden, grad_memory + carry_memory
    return grad_hidden, grad_memory


class BiLstmLayer(torch.autograd.Function):
    """Both directions of one biLSTM layer, time loop included, with its backward pass written out.

    inputs (2, T, B, In), the backward direction already reversed within each row's length;
    mask (T, B) bool, a prefix per row; hidden0 (2, B, P), memory0 (2, B, C); then per direction
    (forward, backward) the cells' own parameters: input_to_gates.weight (4C, In),
    hidden_to_gates.weight (4C, P), hidden_to_gates.bias (4C,), projection.weight (P, C).
    Returns outputs (2, T, B, P), zero where mask is False, and the final hidden, memory.
    """

    @staticmethod
    def forward(ctx, inputs, mask, hidden0, memory0, cell_clip: float, proj_clip: float, *params):
        w_input, w_hidden, bias, w_projection = _stacked(params)
        _, T, B, In = inputs.shape
        C, P = memory0.shape[-1], hidden0.shape[-1]
        all_active = mask.all(dim=1).tolist()  # one bool per step
        # W x_t for every step in one matmul per direction: (2, T*B, In) @ (2, In, 4C), then
        # (2, T*B, 4C) -> (2, T, B, 4C); the loop adds b (a broadcast bias here would first be
        # copied into the whole output)
        gates = torch.bmm(inputs.reshape(2, T * B, In), w_input).view(2, T, B, 4 * C)
        cells, tanh_cells, cell_outputs = (inputs.new_empty(2, T, B, C) for _ in range(3))
        outputs = inputs.new_empty(2, T, B, P)
        hidden, memory = _forward_steps(gates, bias, mask, all_active, hidden0, memory0, w_hidden, w_projection,
                                        cell_clip, proj_clip, cells, tanh_cells, cell_outputs, outputs)
        ctx.save_for_backward(inputs, mask, hidden0, memory0, gates, cells, tanh_cells, cell_outputs, outputs,
                              w_input, w_hidden, w_projection)
        ctx.clips, ctx.all_active = (cell_clip, proj_clip), all_active
        masked = outputs * mask.view(1, T, B, 1)  # (T, B) -> (1, T, B, 1): zero at padding
        # Copies: the final state may be a view of a saved buffer, which the caller must not alias.
        return masked, hidden.clone(), memory.clone()

    @staticmethod
    @once_differentiable
    def backward(ctx, grad_outputs, grad_hidden, grad_memory):
        (inputs, mask, hidden0, memory0, gates, cells, tanh_cells, cell_outputs, outputs,
         w_input, w_hidden, w_projection) = ctx.saved_tensors
        _, T, B, In = inputs.shape
        C, P = memory0.shape[-1], hidden0.shape[-1]
        grad_gates = gates.new_empty(2, T, B, 4 * C)
        grad_projected = outputs.new_empty(2, T, B, P)
        grad_hidden0, grad_memory0 = _backward_steps(
            grad_outputs, grad_hidden, grad_memory, mask, ctx.all_active, memory0, gates, cells, tanh_cells,
            outputs, w_hidden, w_projection, *ctx.clips, grad_gates, grad_projected)
        # The hidden state each step read: h_0, then h_1 .. h_{T-1} (a finished row's own value
        # differs, but its gate gradients there are zero, so it adds nothing).
        previous_hidden = torch.cat([hidden0.unsqueeze(1), outputs[:, :-1]], dim=1)  # (2, T, B, P)
        dG = grad_gates.view(2, T * B, 4 * C)  # (2, T, B, 4C) -> (2, T*B, 4C)
        # Summed over every step at once: sum_t a_t^T d_t as one (X, T*B) @ (T*B, Y) matmul each.
        grad_w_input = torch.bmm(dG.transpose(1, 2), inputs.reshape(2, T * B, In))  # (2, 4C, T*B) @ (2, T*B, In)
        grad_w_hidden = torch.bmm(dG.transpose(1, 2), previous_hidden.view(2, T * B, P))  # (2, 4C, T*B) @ (2, T*B, P)
        grad_bias = dG.sum(dim=1)  # (2, 4C)
        grad_w_projection = torch.bmm(grad_projected.view(2, T * B, P).transpose(1, 2),
                                      cell_outputs.view(2, T * B, C))  # (2, P, T*B) @ (2, T*B, C)
        grad_inputs = torch.bmm(dG, w_input.transpose(1, 2)).view(2, T, B, In)  # (2, T*B, In) -> (2, T, B, In)
        per_direction = [(grad_w_input[d], grad_w_hidden[d], grad_bias[d], grad_w_projection[d]) for d in (0, 1)]
        return (grad_inputs, None, grad_hidden0, grad_memory0, None, None,
                *per_direction[0], *per_direction[1])


def _stacked(params):
    """The two directions' parameters, stacked and laid out for the loop: w_input (2, In, 4C),
    w_hidden (2, P, 4C), bias (2, 1, 4C), w_projection (2, C, P). Copies made per call, so
    they are never stale; they cost (2 x the layer's weights) per call, little beside the step."""
    forward_params, backward_params = params[:4], params[4:]
    w_input, w_hidden, bias, w_projection = (torch.stack(pair) for pair in zip(forward_params, backward_params))
    return (w_input.transpose(1, 2), w_hidden.transpose(1, 2),  # 2 x (4C, X) -> (2, X, 4C)
            bias.unsqueeze(1), w_projection.transpose(1, 2))  # (2, 4C) -> (2, 1, 4C); (2, P, C) -> (2, C, P)


def _cell_params(cell: nn.Module):
    return (cell.input_to_gates.weight, cell.hidden_to_gates.weight, cell.hidden_to_gates.bias,
            cell.projection.weight)


def bilstm_layer(forward_cell, backward_cell, forward_input, backward_input, mask, states):
    """Both directions of one layer under autograd; same arguments and results as
    fast.bilstm_layer: outputs (B, T, P) per direction and ((hidden, memory) forward, ... backward)."""
    B, T, _ = forward_input.shape
    P, C = forward_cell.projection_dim, forward_cell.cell_size
    lengths = mask.sum(dim=1)  # (B, T) -> (B,)
    inputs = torch.stack([forward_input, reverse_within_length(backward_input, lengths)])  # (2, B, T, In)
    inputs = inputs.transpose(1, 2).contiguous()  # (2, B, T, In) -> (2, T, B, In): time-major per direction

    def initial(which: int, size: int):
        return torch.stack([forward_input.new_zeros(B, size) if s is None else s[which] for s in states])

    outputs, hidden, memory = BiLstmLayer.apply(
        inputs, mask.t().contiguous(), initial(0, P), initial(1, C),
        float(forward_cell.cell_clip or 0.0), float(forward_cell.proj_clip or 0.0),
        *_cell_params(forward_cell), *_cell_params(backward_cell))
    # (2, T, B, P) -> (2, B, T, P), in memory order too: dropout on the next layer's input draws
    # its mask in memory order, so this keeps its masks those of the readable path
    outputs = outputs.transpose(1, 2).contiguous()
    backward_out = reverse_within_length(outputs[1], lengths)  # back to left-to-right positions
    return outputs[0], backward_out, ((hidden[0], memory[0]), (hidden[1], memory[1]))


def bilstm_stack(bilm: nn.Module, token_embedding: torch.Tensor, mask: torch.Tensor, initial_states):
    """Drop-in for BiLM._bilstm_stack under autograd, dropout included: token_embedding (B, T, P),
    mask (B, T) -> L layers (B, T, 2P) and each layer's final states."""
    layers, final_states = [], []
    forward_hidden = backward_hidden = token_embedding
    for layer, cells in enumerate(zip(bilm.forward_layers, bilm.backward_layers)):
        forward_out, backward_out, states = bilstm_layer(
            *cells, bilm.dropout(forward_hidden), bilm.dropout(backward_hidden), mask, initial_states[layer])
        if layer > 0 and bilm.config.use_skip_connections:  # residual, as in the readable stack
            forward_out, backward_out = forward_out + forward_hidden, backward_out + backward_hidden
        layers.append(torch.cat([forward_out, backward_out], dim=-1))  # (B, T, 2P)
        final_states.append(states)
        forward_hidden, backward_hidden = forward_out, backward_out
    return layers, final_states
