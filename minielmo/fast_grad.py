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
the readable modules under autograd; the layer loop is BiLM.bilstm_stack's, with `bilstm_layer`
below as its layer, and the LSTM weights are read as fast.py reads them (fast.fused_weights:
views of the parameters' own storage, no copy). Under autocast the LSTM layer computes in
autocast's dtype (fast.compute_dtype). tests/unit/test_elmo_fast_grad.py pins outputs and every
gradient to the readable path and checks the hand-written backward with gradcheck in float64.
NOTE (deviation): a clipped value's gradient is zero where |value| == clip exactly (the readable
clamp passes it there); rounding makes this a measure-zero event. Second derivatives are not
available on this path: set `bilm.fast_path = False` for double backward.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

import torch
from torch import nn
from torch.autograd.function import once_differentiable

from . import fast

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
        chunk = max(1, fast.CNN_CHUNK_BYTES // (4 * L * max(E * w, K_i)))
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
    flat = fast.trim_fill(char_ids.reshape(B * T, W), widest)  # (B, T, W) -> (N, W'), W' <= W
    chars = cnn.char_embedding(flat)  # (N, W') -> (N, W', E)
    activation = torch.relu if cnn.activation == "relu" else torch.tanh
    # max then bias then activation, per width, as CharCNN does (bias after the max: see ConvMaxPool)
    features = [activation(ConvMaxPool.apply(chars, conv.weight) + conv.bias) for conv in cnn.convs]
    token = cnn.projection(cnn.highway(torch.cat(features, dim=-1)))  # (N, K) -> (N, P)
    return token.view(B, T, -1)  # (N, P) -> (B, T, P)


# ---------------------------------------------------------------------------------- biLSTM


class Padding(NamedTuple):
    """Which rows are real at each step: mask (T, B) bool, a prefix per row; all_active[t] is True
    when every row is real at step t (the step then needs no masking)."""
    mask: torch.Tensor
    all_active: list


class Clips(NamedTuple):
    """The clip values; 0.0 means no clipping."""
    cell: float
    projection: float


@dataclass
class Steps:
    """What the forward time loop keeps of every step for the backward one, direction-major, each
    step a [:, t] view: gates (2, T, B, 4C) holds W x_t on entry to the loop and the activated gates
    (i, f, g, o) after it; cells, tanh_cells and cell_outputs (2, T, B, C) hold c_t, tanh(c_t)
    and o * tanh(c_t); outputs (2, T, B, P) the clipped h_t, unmasked."""
    gates: torch.Tensor
    cells: torch.Tensor
    tanh_cells: torch.Tensor
    cell_outputs: torch.Tensor
    outputs: torch.Tensor


def _forward_steps(steps: Steps, weights: fast.LayerWeights, padding: Padding, clips: Clips, *,
                   hidden: torch.Tensor, memory: torch.Tensor):
    """The time loop, both directions together, from hidden (2, B, P) and memory (2, B, C); fills
    `steps`. Returns the final hidden, memory."""
    C = memory.shape[-1]
    for t in range(steps.gates.shape[1]):
        step = steps.gates[:, t].add_(weights.bias).baddbmm_(hidden, weights.hidden)  # W x_t + b + U h_{t-1}
        step[..., :2 * C].sigmoid_()  # i, f
        step[..., 2 * C:3 * C].tanh_()  # g
        step[..., 3 * C:].sigmoid_()  # o
        input_gate, forget_gate, candidate, output_gate = step.chunk(4, dim=-1)  # 4 x (2, B, C)
        cell = torch.mul(forget_gate, memory, out=steps.cells[:, t]).addcmul_(input_gate, candidate)
        if clips.cell > 0:
            cell.clamp_(-clips.cell, clips.cell)
        cell_output = torch.mul(output_gate, torch.tanh(cell, out=steps.tanh_cells[:, t]), out=steps.cell_outputs[:, t])
        new_hidden = torch.bmm(cell_output, weights.projection, out=steps.outputs[:, t])  # (2, B, C) @ (2, C, P)
        if clips.projection > 0:
            new_hidden.clamp_(-clips.projection, clips.projection)
        if padding.all_active[t]:
            hidden, memory = new_hidden, cell
        else:  # rows past their end keep their state, as in LstmCellWithProjection.forward
            active = padding.mask[t].view(1, -1, 1)  # (B,) -> (1, B, 1)
            hidden, memory = torch.where(active, new_hidden, hidden), torch.where(active, cell, memory)
    return hidden, memory


# The derivative of a nonlinearity from its output, in one pass (the kernels autograd itself uses):
# _sigmoid_backward(g, s) = g * s * (1 - s) for s = sigmoid(x); _tanh_backward(g, y) = g * (1 - y^2).
_sigmoid_backward, _tanh_backward = torch.ops.aten.sigmoid_backward, torch.ops.aten.tanh_backward


@dataclass
class StepGrads:
    """The backward time loop's results per step: gates (2, T, B, 4C), the gradient of the gate
    pre-activations; projected (2, T, B, P), that of W_P (o * tanh c) before the clip."""
    gates: torch.Tensor
    projected: torch.Tensor


def _backward_steps(steps: Steps, weights: fast.LayerWeights, padding: Padding, clips: Clips, grads: StepGrads,
                    *, memory0: torch.Tensor, grad_outputs: torch.Tensor, grad_hidden: torch.Tensor,
                    grad_memory: torch.Tensor):
    """Backpropagation through the time loop, last step first.

    grad_outputs (2, T, B, P): gradient of the (masked) outputs; grad_hidden (2, B, P), grad_memory
    (2, B, C): of the final state; memory0 (2, B, C) the initial memory. Fills `grads`.
    Returns the gradient of the initial state (hidden, memory).
    """
    for t in reversed(range(steps.gates.shape[1])):
        # The state after step t feeds step t + 1 (grad_hidden, grad_memory) and the output at t.
        if padding.all_active[t]:
            d_hidden, d_memory = grad_hidden + grad_outputs[:, t], grad_memory
            carry_hidden = carry_memory = None
        else:  # a finished row passed its state through step t untouched, and output zero
            active = padding.mask[t].view(1, -1, 1)  # (B,) -> (1, B, 1)
            d_hidden = torch.where(active, grad_hidden + grad_outputs[:, t], 0.0)
            d_memory = torch.where(active, grad_memory, 0.0)
            carry_hidden, carry_memory = torch.where(active, 0.0, grad_hidden), torch.where(active, 0.0, grad_memory)
        d_projected = grads.projected[:, t]
        if clips.projection > 0:  # the clamp passes the gradient only where it did not clip
            torch.mul(d_hidden, steps.outputs[:, t].abs() < clips.projection, out=d_projected)
        else:
            d_projected.copy_(d_hidden)
        d_cell_output = torch.bmm(d_projected, weights.projection.transpose(1, 2))  # (2, B, P) @ (2, P, C)
        input_gate, forget_gate, candidate, output_gate = steps.gates[:, t].chunk(4, dim=-1)  # 4 x (2, B, C)
        tanh_cell = steps.tanh_cells[:, t]
        # c feeds the next step and h (through o * tanh c): d c = d c_next + d(o tanh c) o (1 - tanh^2 c)
        d_cell = _tanh_backward(d_cell_output * output_gate, tanh_cell).add_(d_memory)
        if clips.cell > 0:
            d_cell = d_cell * (steps.cells[:, t].abs() < clips.cell)
        previous_cell = steps.cells[:, t - 1] if t > 0 else memory0
        d_gates = grads.gates[:, t]  # through each gate's nonlinearity, into its quarter of (2, B, 4C)
        d_i, d_f, d_g, d_o = d_gates.chunk(4, dim=-1)
        _sigmoid_backward.grad_input(d_cell * candidate, input_gate, grad_input=d_i)
        _sigmoid_backward.grad_input(d_cell * previous_cell, forget_gate, grad_input=d_f)
        _tanh_backward.grad_input(d_cell * input_gate, candidate, grad_input=d_g)
        _sigmoid_backward.grad_input(d_cell_output * tanh_cell, output_gate, grad_input=d_o)
        grad_hidden = torch.bmm(d_gates, weights.hidden.transpose(1, 2))  # (2, B, 4C) @ (2, 4C, P)
        grad_memory = d_cell * forget_gate
        if carry_hidden is not None:
            grad_hidden, grad_memory = grad_hidden + carry_hidden, grad_memory + carry_memory
    return grad_hidden, grad_memory


class BiLstmLayer(torch.autograd.Function):
    """Both directions of one biLSTM layer, time loop included, with its backward pass written out.

    inputs (2, T, B, In), the backward direction already reversed within each row's length;
    padding: mask (T, B) bool, a prefix per row; hidden0 (2, B, P), memory0 (2, B, C); clips;
    weights: the layer's weights as the loop reads them (fast.fused_weights: views of the
    parameters' storage, or a cast copy), in the dtype of inputs; then the eight parameters they
    hold, forward then backward direction, each in fast.cell_parameters order: input_to_gates.weight
    (4C, In), hidden_to_gates.weight (4C, P), hidden_to_gates.bias (4C,), projection.weight (P, C).
    The parameters are inputs so that autograd routes their gradients and checks, as for any op,
    that none is changed in place before the backward pass; the loop reads `weights`.
    Returns outputs (2, T, B, P), zero where mask is False, and the final hidden, memory.
    """

    @staticmethod
    def forward(ctx, inputs, padding: Padding, hidden0, memory0, clips: Clips, weights: fast.LayerWeights, *params):
        _, T, B, In = inputs.shape
        C, P = memory0.shape[-1], hidden0.shape[-1]
        # W x_t for every step in one matmul per direction: (2, T*B, In) @ (2, In, 4C), then
        # (2, T*B, 4C) -> (2, T, B, 4C); the loop adds b (a broadcast bias here would first be
        # copied into the whole output)
        gates = torch.bmm(inputs.reshape(2, T * B, In), weights.input).view(2, T, B, 4 * C)
        steps = Steps(gates, *(inputs.new_empty(2, T, B, C) for _ in range(3)), inputs.new_empty(2, T, B, P))
        hidden, memory = _forward_steps(steps, weights, padding, clips, hidden=hidden0, memory=memory0)
        ctx.save_for_backward(inputs, hidden0, memory0, steps.gates, steps.cells, steps.tanh_cells,
                              steps.cell_outputs, steps.outputs, *weights, *params)
        ctx.padding, ctx.clips = padding, clips
        masked = steps.outputs * padding.mask.view(1, T, B, 1)  # (T, B) -> (1, T, B, 1): zero at padding
        # Copies: the final state may be a view of a saved buffer, which the caller must not alias.
        return masked, hidden.clone(), memory.clone()

    @staticmethod
    @once_differentiable
    def backward(ctx, grad_outputs, grad_hidden, grad_memory):
        inputs, hidden0, memory0, *saved = ctx.saved_tensors
        steps, weights = Steps(*saved[:5]), fast.LayerWeights(*saved[5:9])
        _, T, B, In = inputs.shape
        C, P = memory0.shape[-1], hidden0.shape[-1]
        grads = StepGrads(gates=steps.gates.new_empty(2, T, B, 4 * C), projected=steps.outputs.new_empty(2, T, B, P))
        grad_hidden0, grad_memory0 = _backward_steps(
            steps, weights, ctx.padding, ctx.clips, grads, memory0=memory0, grad_outputs=grad_outputs,
            grad_hidden=grad_hidden, grad_memory=grad_memory)
        # The hidden state each step read: h_0, then h_1 .. h_{T-1} (a finished row's own value
        # differs, but its gate gradients there are zero, so it adds nothing).
        previous_hidden = torch.cat([hidden0.unsqueeze(1), steps.outputs[:, :-1]], dim=1)  # (2, T, B, P)
        dG = grads.gates.view(2, T * B, 4 * C)  # (2, T, B, 4C) -> (2, T*B, 4C)
        # Summed over every step at once: sum_t a_t^T d_t as one (X, T*B) @ (T*B, Y) matmul each.
        grad_w_input = torch.bmm(dG.transpose(1, 2), inputs.reshape(2, T * B, In))  # (2, 4C, T*B) @ (2, T*B, In)
        grad_w_hidden = torch.bmm(dG.transpose(1, 2), previous_hidden.view(2, T * B, P))  # (2, 4C, T*B) @ (2, T*B, P)
        grad_bias = dG.sum(dim=1)  # (2, 4C)
        grad_w_projection = torch.bmm(grads.projected.view(2, T * B, P).transpose(1, 2),
                                      steps.cell_outputs.view(2, T * B, C))  # (2, P, T*B) @ (2, T*B, C)
        grad_inputs = torch.bmm(dG, weights.input.transpose(1, 2)).view(2, T, B, In)  # (2, T*B, In) -> (2, T, B, In)
        per_direction = [(grad_w_input[d], grad_w_hidden[d], grad_bias[d], grad_w_projection[d]) for d in (0, 1)]
        return (grad_inputs, None, grad_hidden0, grad_memory0, None, None, *per_direction[0], *per_direction[1])


def bilstm_layer(forward_cell, backward_cell, forward_input, backward_input, mask, states):
    """Both directions of one layer under autograd: a drop-in for bilm.bilstm_layer (the layer of
    BiLM.bilstm_stack), with the same arguments and results as fast.bilstm_layer."""
    B, T, _ = forward_input.shape
    P, C = forward_cell.projection_dim, forward_cell.cell_size
    dtype = fast.compute_dtype(forward_input)
    lengths = mask.sum(dim=1)  # (B, T) -> (B,)
    inputs = fast.time_major(forward_input, backward_input, lengths, dtype)  # (2, T, B, In)
    hidden0, memory0 = fast.initial_state(states, B, P, C, inputs)  # (2, B, P), (2, B, C)
    padding = Padding(mask.t().contiguous(), mask.all(dim=0).tolist())
    weights = fast.fused_weights(forward_cell, backward_cell, dtype)
    with torch.autocast(inputs.device.type, enabled=False):
        outputs, hidden, memory = BiLstmLayer.apply(
            inputs, padding, hidden0, memory0, Clips(*fast.clips(forward_cell)), weights,
            *fast.cell_parameters(forward_cell), *fast.cell_parameters(backward_cell))
    return (*fast.batch_major(outputs, lengths), fast.final_states(hidden, memory))
