"""The ELMo biLM: character CNN -> highway -> projection -> stacked biLSTM with projection.

Shape legend: B batch · T tokens (incl. <S> </S>) · W chars/token · E char-emb · K CNN filters
(all widths together) · P projection · C cell · L LSTM layers

Paper: Peters et al. 2018, "Deep contextualized word representations", §3.1 and §3.4: a forward
and a backward LSTM language model over context-free token vectors from a character CNN
(Kim et al. 2016 / Jozefowicz et al. 2016, with highway layers, Srivastava et al. 2015), LSTMs
with a projected hidden state (Sak et al. 2014) and a residual connection between layers.
Checked against: allennlp 0.9.0 modules/elmo.py (_ElmoCharacterEncoder, _ElmoBiLm),
elmo_lstm.py, lstm_cell_with_projection.py, highway.py, and against the original TensorFlow
biLM's outputs shipped with that wheel (tests/equivalence/test_elmo_fixtures.py).
Left out: the reference's word-vector cache. The LM softmax that trains the biLM lives in
minielmo/train.py, outside the model.

Which code runs (`BiLM.path`): the classes below are the reference, but by default a call does
not run them step by step. It runs the same maths through a fast path that sits beside them:
minielmo/fast.py (batched and scripted, inference only) when no gradient and no dropout is
wanted, else minielmo/fast_grad.py (backward passes written by hand, for training under
autograd). The modules below run, every one called as written, when `bilm.fast_path = False`, or
while a forward hook is registered on the model, on one of its modules or globally (the fast
paths call none of the modules they fuse, so a hook would never fire). Second derivatives need
`fast_path = False`: the training path's backward pass is not itself differentiable. Every path
runs the layer loop `BiLM.bilstm_stack`; only the layer function differs. Tests pin the three
paths together (test_elmo_fast.py, test_elmo_fast_grad.py; test_elmo_autocast.py under autocast).

What the first fast call does to the parameters: it moves each LSTM layer's eight weights (both
directions) into one flat buffer per layer, and on the inference path each highway layer's four
into another; every such Parameter becomes a view of its slice (weights/fused.py). The Parameter
objects, their names, values, gradients and optimizer state stay as they were, but their storage
is now the buffer (`param.untyped_storage()` is the whole layer's), and the modules gain plain
attributes `_fused_bilstm` (forward cells) and `_fused_highway` (highway gates) holding it. Any
later write to a weight, by any route, is what the fast paths read; replacing a weight's storage
(`.to()`, `param.data = ...`) rebuilds the buffer on the next fast call. A model that only ever
runs the readable path is never touched.

State: the model is stateless by default (every call starts both directions from zero state), so
the same input always gives the same output. `stateful=True` reproduces the reference, whose
LSTM always carries each batch row's final state into the next call; `reset_states()` clears it.

This file knows nothing about checkpoints: `from_files` builds the model from options.json and
hands it to weights/elmo_hdf5.py, which fills it. A randomly initialised BiLM(ElmoConfig(...))
works too.
"""

import torch
import torch.nn.functional as F
from torch import nn

from . import fast, fast_grad
from .characters import BOS_CHAR_IDS, EOS_CHAR_IDS
from .config import NUM_CHAR_IDS, ElmoConfig


class Highway(nn.Module):
    """Highway layers (Srivastava et al. 2015, Eq. 3), with T the *transform* gate:

        t = sigmoid(W_T x + b_T);   y = t * relu(W_H x + b_H) + (1 - t) * x
    """

    def __init__(self, dim: int, num_layers: int):
        super().__init__()
        self.nonlinear = nn.ModuleList(nn.Linear(dim, dim) for _ in range(num_layers))
        self.transform_gate = nn.ModuleList(nn.Linear(dim, dim) for _ in range(num_layers))

    def forward(self, hidden: torch.Tensor) -> torch.Tensor:
        """hidden (N, K) -> (N, K)."""
        for nonlinear, transform_gate in zip(self.nonlinear, self.transform_gate):
            gate = torch.sigmoid(transform_gate(hidden))
            # The released models always use relu here, whatever char_cnn.activation says.
            hidden = gate * F.relu(nonlinear(hidden)) + (1 - gate) * hidden
        return hidden


class CharCNN(nn.Module):
    """Token -> context-free vector: embed characters, convolve with several widths, max-pool over
    character positions, activation, highway layers, linear projection to P."""

    def __init__(self, config: ElmoConfig):
        super().__init__()
        # Row 0 belongs to padding ids (the +1 shift in characters.py) and stays zero.
        self.char_embedding = nn.Embedding(NUM_CHAR_IDS, config.char_embedding_dim, padding_idx=0)
        self.convs = nn.ModuleList(
            nn.Conv1d(config.char_embedding_dim, count, kernel_size=width)
            for width, count in config.filters
        )
        self.activation = config.activation
        self.highway = Highway(config.num_filters, config.n_highway)
        self.projection = nn.Linear(config.num_filters, config.projection_dim)

    def forward(self, char_ids: torch.Tensor) -> torch.Tensor:
        """char_ids (B, T, W) -> token embeddings (B, T, P)."""
        B, T, W = char_ids.shape
        chars = self.char_embedding(char_ids.reshape(B * T, W))  # (B, T, W) -> (B*T, W, E)
        chars = chars.transpose(1, 2)  # (B*T, W, E) -> (B*T, E, W): Conv1d wants channels first
        activation = torch.relu if self.activation == "relu" else torch.tanh
        features = []
        for conv in self.convs:
            convolved = conv(chars)  # (B*T, E, W) -> (B*T, K_i, W - width + 1)
            pooled = convolved.max(dim=-1).values  # (B*T, K_i, W - width + 1) -> (B*T, K_i)
            features.append(activation(pooled))  # activation after the pool, as bilm-tf does
        token = torch.cat(features, dim=-1)  # K_i's -> (B*T, K)
        token = self.highway(token)
        token = self.projection(token)  # (B*T, K) -> (B*T, P)
        return token.view(B, T, -1)  # (B*T, P) -> (B, T, P)


class LstmCellWithProjection(nn.Module):
    """One direction of one biLSTM layer: an LSTM whose output is projected from C down to P
    (Sak et al. 2014), with the memory cell and the projected state clipped (bilm-tf):

        i, f, g, o = split(W x_t + U h_{t-1} + b)           gate order as in torch.nn.LSTM
        c_t = clip(sigmoid(f) * c_{t-1} + sigmoid(i) * tanh(g), cell_clip)
        h_t = clip(W_P (sigmoid(o) * tanh(c_t)), proj_clip)

    With clipping off this is torch.nn.LSTM(proj_size=P) (tests/unit/test_elmo_modules.py).
    """

    def __init__(self, input_size: int, projection_dim: int, cell_size: int,
                 cell_clip: float | None = None, proj_clip: float | None = None):
        super().__init__()
        self.cell_size, self.projection_dim = cell_size, projection_dim
        self.cell_clip, self.proj_clip = cell_clip, proj_clip
        self.input_to_gates = nn.Linear(input_size, 4 * cell_size, bias=False)  # W
        self.hidden_to_gates = nn.Linear(projection_dim, 4 * cell_size, bias=True)  # U, b
        self.projection = nn.Linear(cell_size, projection_dim, bias=False)  # W_P

    def step(self, x_t: torch.Tensor, hidden: torch.Tensor, memory: torch.Tensor):
        """One time step: x_t (B, in), hidden (B, P), memory (B, C) -> new (hidden, memory)."""
        gates = self.input_to_gates(x_t) + self.hidden_to_gates(hidden)  # (B, 4C)
        input_gate, forget_gate, cell_candidate, output_gate = gates.chunk(4, dim=-1)  # 4 x (B, C)
        memory = torch.sigmoid(forget_gate) * memory + torch.sigmoid(input_gate) * torch.tanh(cell_candidate)
        # A clip value of None or 0 means "off", as in the reference.
        if self.cell_clip:
            memory = memory.clamp(-self.cell_clip, self.cell_clip)
        hidden = self.projection(torch.sigmoid(output_gate) * torch.tanh(memory))  # (B, C) -> (B, P)
        if self.proj_clip:
            hidden = hidden.clamp(-self.proj_clip, self.proj_clip)
        return hidden, memory

    def forward(self, inputs: torch.Tensor, mask: torch.Tensor,
                state: tuple[torch.Tensor, torch.Tensor] | None = None, reverse: bool = False):
        """Run over a padded batch.

        inputs (B, T, in); mask (B, T) bool, True on each row's real positions (a prefix);
        state: (hidden (B, P), memory (B, C)), or None for zeros; reverse: right to left.
        Returns outputs (B, T, P), zero at padded positions, and the final (hidden, memory).
        """
        B, T, _ = inputs.shape
        if state is None:
            state = (inputs.new_zeros(B, self.projection_dim), inputs.new_zeros(B, self.cell_size))
        hidden, memory = state
        outputs = inputs.new_zeros(B, T, self.projection_dim)
        for t in (reversed(range(T)) if reverse else range(T)):
            new_hidden, new_memory = self.step(inputs[:, t], hidden, memory)
            # Rows whose sentence does not cover position t keep their state untouched. Going
            # forward, a finished row thus keeps the state of its last token; going backward, a
            # row starts from its own last token, not from the padding after it.
            active = mask[:, t].unsqueeze(-1)  # (B,) -> (B, 1)
            hidden = torch.where(active, new_hidden, hidden)
            memory = torch.where(active, new_memory, memory)
            outputs[:, t] = torch.where(active, new_hidden, 0.0)
        return outputs, (hidden, memory)


def bilstm_layer(forward_cell: LstmCellWithProjection, backward_cell: LstmCellWithProjection,
                 forward_input: torch.Tensor, backward_input: torch.Tensor, mask: torch.Tensor, states):
    """Both directions of one biLSTM layer, each cell run step by step (the readable layer of
    BiLM.bilstm_stack; fast.py and fast_grad.py each have a drop-in for it).

    forward_input, backward_input (B, T, P); mask (B, T) bool; states (forward, backward), each
    (hidden (B, P), memory (B, C)) or None for zeros.
    Returns forward_out, backward_out (B, T, P) and ((hidden, memory) forward, ... backward).
    """
    # The directions are independent: each feeds only itself at the next layer.
    forward_out, forward_state = forward_cell(forward_input, mask, states[0], reverse=False)  # (B, T, P)
    backward_out, backward_state = backward_cell(backward_input, mask, states[1], reverse=True)  # (B, T, P)
    return forward_out, backward_out, (forward_state, backward_state)


class BiLM(nn.Module):
    """Character ids -> the L + 1 layers of the biLM, each (B, T+2, 2P), with <S> and </S> added."""

    def __init__(self, config: ElmoConfig, stateful: bool = False, dropout: float = 0.0):
        super().__init__()
        self.config = config
        self.stateful = stateful
        # True runs the same maths through a fast path unless a forward hook watches a module (see
        # the module docstring and `path`); False always runs the modules below step by step.
        self.fast_path = True
        # Dropout on the input of every LSTM layer while training, as bilm-tf's DropoutWrapper
        # (input_keep_prob = 1 - dropout) does; inactive in eval mode.
        self.dropout = nn.Dropout(dropout)
        self.char_cnn = CharCNN(config)
        P, C = config.projection_dim, config.cell_size

        def direction():
            return nn.ModuleList(LstmCellWithProjection(P, P, C, config.cell_clip, config.proj_clip)
                                 for _ in range(config.n_layers))

        self.forward_layers, self.backward_layers = direction(), direction()
        self.register_buffer("bos_char_ids", BOS_CHAR_IDS.clone(), persistent=False)  # (W,)
        self.register_buffer("eos_char_ids", EOS_CHAR_IDS.clone(), persistent=False)  # (W,)
        # Only when stateful: (hidden (L, 2, B, P), memory (L, 2, B, C)), 2 = forward, backward.
        self._state: tuple[torch.Tensor, torch.Tensor] | None = None

    @property
    def num_layers(self) -> int:
        """Number of output layers: the token layer plus one per LSTM layer."""
        return self.config.n_layers + 1

    @classmethod
    def from_files(cls, options_file, weight_file, stateful: bool = False) -> "BiLM":
        """Build from options.json and fill from the weights (.hdf5 as released, or .safetensors
        as converted), strictly; eval mode. The report of what was loaded is `model.load_report`."""
        from weights.common import refuse_url, without_random_init  # lazy: the modules never touch a file
        from weights.elmo_hdf5 import load_elmo_weights

        refuse_url(options_file, "options_file")
        refuse_url(weight_file, "weight_file")
        config = ElmoConfig.from_options_file(options_file)
        with without_random_init():  # every value is overwritten next
            model = cls(config, stateful=stateful)
        model.load_report = load_elmo_weights(model, weight_file)
        return model.eval()

    @classmethod
    def from_pretrained(cls, name: str | None = None, stateful: bool = False) -> "BiLM":
        """A model shipped inside the package, by name (minielmo.PRETRAINED); None is the default
        model (minielmo.DEFAULT_MODEL). "fixture" is allennlp's tiny test model."""
        from .pretrained import DEFAULT_MODEL, PRETRAINED

        name = DEFAULT_MODEL if name is None else name
        if name not in PRETRAINED:
            raise ValueError(f"unknown ELMo model {name!r}; shipped models: {', '.join(sorted(PRETRAINED))}")
        options, weight_file = PRETRAINED[name]
        return cls.from_files(options, weight_file, stateful=stateful)

    def reset_states(self) -> None:
        """Forget the state carried between calls (stateful=True); a no-op otherwise."""
        self._state = None

    def forward(self, char_ids: torch.Tensor) -> dict:
        """char_ids (B, T, W) from batch_to_ids ->
        {"activations": L+1 tensors (B, T+2, 2P), "mask": (B, T+2) bool}.
        Layer 0 is the token embedding, duplicated for both directions. Padding is exactly zero.
        NOTE (deviation): the mask is bool; the reference returns a LongTensor of 0/1.
        """
        self._check(char_ids)
        char_ids = char_ids.long()  # int32 ids (from numpy, say) are exact in int64; a no-op for long
        B, T, W = char_ids.shape
        lengths = (char_ids > 0).any(dim=-1).sum(dim=-1)  # (B, T, W) -> (B,) real tokens per row

        # Add <S> and </S> around every sentence: row i becomes [<S>, tokens, </S>, padding].
        with_boundaries = char_ids.new_zeros(B, T + 2, W)
        with_boundaries[:, 1:-1] = char_ids
        with_boundaries[:, 0] = self.bos_char_ids
        with_boundaries[torch.arange(B, device=char_ids.device), lengths + 1] = self.eos_char_ids
        positions = torch.arange(T + 2, device=char_ids.device)
        mask = positions.unsqueeze(0) < (lengths + 2).unsqueeze(1)  # (B, T+2)

        initial_states = self.initial_states(B)
        path = self.path()
        if path == "inference":  # the same maths, batched and scripted: minielmo/fast.py
            token_embedding = fast.char_cnn(self.char_cnn, with_boundaries)  # (B, T+2, W) -> (B, T+2, P)
            layer = fast.layer_sharing_a_workspace(token_embedding, self.config.cell_size)
        elif path == "training":  # the same maths with hand-written backward passes: fast_grad.py
            token_embedding = fast_grad.char_cnn(self.char_cnn, with_boundaries)  # (B, T+2, W) -> (B, T+2, P)
            layer = fast_grad.bilstm_layer
        else:
            token_embedding = self.char_cnn(with_boundaries)  # (B, T+2, W) -> (B, T+2, P)
            layer = bilstm_layer
        lstm_layers, final_states = self.bilstm_stack(token_embedding, mask, initial_states, layer)
        # The token layer has no direction; duplicating it gives it the width 2P of the others.
        token_layer = torch.cat([token_embedding, token_embedding], dim=-1)  # (B, T+2, 2P)
        if self.stateful:
            self._save_states(final_states)
        return {"activations": [token_layer * mask.unsqueeze(-1), *lstm_layers], "mask": mask}

    def bilstm_stack(self, token_embedding: torch.Tensor, mask: torch.Tensor, initial_states: list,
                     layer=bilstm_layer):
        """The layer loop of every path: token_embedding (B, T+2, P), mask (B, T+2), initial_states
        from `initial_states` -> L layers (B, T+2, 2P) and each layer's final
        ((hidden, memory) forward, (hidden, memory) backward).

        `layer` computes one layer, both directions: bilstm_layer (the readable cells, step by step),
        fast.bilstm_layer (inference) or fast_grad.bilstm_layer (training); see bilstm_layer."""
        layers, final_states = [], []
        forward_hidden = backward_hidden = token_embedding
        for index, cells in enumerate(zip(self.forward_layers, self.backward_layers)):
            # Dropout is the identity in eval mode, and the inference path runs only there or at p = 0.
            forward_out, backward_out, states = layer(*cells, self.dropout(forward_hidden),
                                                      self.dropout(backward_hidden), mask, initial_states[index])
            # Residual connection (bilm-tf wraps every layer but the first in a ResidualWrapper;
            # the first one's input is the context-free token embedding). Not in place: a fast
            # layer's final hidden state may be a view of its output.
            if index > 0 and self.config.use_skip_connections:
                forward_out, backward_out = forward_out + forward_hidden, backward_out + backward_hidden
            layers.append(torch.cat([forward_out, backward_out], dim=-1))  # (B, T+2, 2P)
            final_states.append(states)
            forward_hidden, backward_hidden = forward_out, backward_out
        return layers, final_states

    def path(self) -> str:
        """Which code computes the next call: "readable" (the modules above, step by step),
        "inference" (fast.py) or "training" (fast_grad.py).

        Both fast paths fuse away the module calls that forward hooks act on, so a watched model
        (or fast_path=False) runs the readable modules. The inference path writes into
        preallocated buffers (out=, in-place), which autograd cannot differentiate, and has no
        dropout; so whenever a gradient could flow to a parameter or dropout is active, the
        training path runs instead."""
        if not self.fast_path or fast.watched(self):
            return "readable"
        wants_grad = torch.is_grad_enabled() and any(p.requires_grad for p in self.parameters())
        dropping = self.training and self.dropout.p > 0
        return "training" if wants_grad or dropping else "inference"

    def initial_states(self, B: int) -> list:
        """Per layer, for a batch of B rows: ((hidden, memory) forward, (hidden, memory) backward),
        None meaning zeros; the carried state where stateful, else all None."""
        L = self.config.n_layers
        if not self.stateful or self._state is None:
            return [(None, None)] * L
        hidden, memory = self._state
        if hidden.shape[2] < B:  # rows this batch adds start from zero, as in the reference
            hidden = F.pad(hidden, (0, 0, 0, B - hidden.shape[2]))  # (L, 2, B_old, P) -> (L, 2, B, P)
            memory = F.pad(memory, (0, 0, 0, B - memory.shape[2]))  # (L, 2, B_old, C) -> (L, 2, B, C)
        return [((hidden[i, 0, :B], memory[i, 0, :B]), (hidden[i, 1, :B], memory[i, 1, :B]))
                for i in range(L)]

    def _save_states(self, final_states: list) -> None:
        """Store each row's final state for the next call. States are kept by batch position:
        row i of the next batch continues from row i of this one."""
        hidden = torch.stack([torch.stack([f[0], b[0]]) for f, b in final_states])  # (L, 2, B, P)
        memory = torch.stack([torch.stack([f[1], b[1]]) for f, b in final_states])  # (L, 2, B, C)
        B = hidden.shape[2]
        if self._state is not None and self._state[0].shape[2] > B:
            # A smaller batch leaves the states of the rows it did not have untouched.
            hidden = torch.cat([hidden, self._state[0][:, :, B:]], dim=2)
            memory = torch.cat([memory, self._state[1][:, :, B:]], dim=2)
        # NOTE (deviation): the reference also keeps the old state of any row whose new layer-0
        # state sums to exactly 0.0 (its test for "row unused"). Every row is used here (<S> and
        # </S> make each length >= 2), so we update every row of the batch instead.
        self._state = (hidden.detach(), memory.detach())

    def _check(self, char_ids) -> None:
        if not isinstance(char_ids, torch.Tensor):
            raise TypeError(f"BiLM expects a LongTensor (B, T, W) from batch_to_ids, got "
                            f"{type(char_ids).__name__}")
        W = self.config.max_characters_per_token
        if char_ids.dim() != 3 or char_ids.shape[-1] != W:
            raise ValueError(f"BiLM expects character ids of shape (B, T, {W}), got "
                             f"{tuple(char_ids.shape)}")
        if char_ids.dtype not in (torch.long, torch.int32):
            # int8/uint8 cannot hold ids up to 261 (they would have wrapped around already).
            raise TypeError(f"character ids must be a torch.long (or int32) tensor, got {char_ids.dtype}")
        if char_ids.shape[0] == 0:
            raise ValueError("BiLM got an empty batch (B = 0): pass at least one sentence")
        if char_ids.numel() and (char_ids.min() < 0 or char_ids.max() >= NUM_CHAR_IDS):
            raise ValueError(f"character ids must lie in [0, {NUM_CHAR_IDS - 1}], found "
                             f"min {char_ids.min().item()} and max {char_ids.max().item()}")
        token_mask = (char_ids > 0).any(dim=-1)  # (B, T)
        if (token_mask[:, 1:] & ~token_mask[:, :-1]).any():
            raise ValueError("padding tokens (all-zero rows) must come after a sentence's tokens")
