"""ELMo as released by bilm-tf (options.json + hdf5), and its converted safetensors form, into
a minielmo.BiLM built from the same options.json.

Every TensorFlow -> PyTorch convention of the released files is one small named transform
below, each saying what TF does and what we do. The mapping itself is a table of `Row`s with
placeholders for filter, highway layer, LSTM layer and direction, expanded from the sizes in
options.json, so the same code reads the tiny test model and the released small / medium /
original ELMo files unchanged. Loading goes through weights.common.load_strict, as BERT's does.

Converted files (`save_converted`) hold our parameters with every transform already applied, so
they load by name through the same strict loader, without h5py.

Checked against: allennlp 0.9.0 modules/elmo.py (_load_*), modules/elmo_lstm.py (load_weights),
and the original TF biLM outputs in tests/fixtures/elmo.
"""

from __future__ import annotations

import json
from functools import partial
from pathlib import Path

import numpy as np
import torch

from weights.common import LoadReport, Row, expand_rows, load_strict, read_safetensors

# ---------------------------------------------------------------------------------------------
# Transforms: TF tensor -> tensor laid out as our parameter, each with its inverse (ours -> TF's
# layout, for weights/elmo_export.py) beside it.
# ---------------------------------------------------------------------------------------------

# TF's LSTMCell adds this to the forget gate's pre-activation at run time (forget_bias=1.0)
# instead of storing it in the bias.
TF_FORGET_BIAS = 1.0


def transpose(tensor: torch.Tensor) -> torch.Tensor:
    """TF computes x @ W with W stored (in, out); torch.nn.Linear stores W as (out, in). Its own
    inverse."""
    return tensor.t()


def char_embedding_with_pad_row(table: torch.Tensor) -> torch.Tensor:
    """TF stores 261 character rows, for ids 0..260. At inference every id is shifted by +1 so
    that 0 can mark a padding token, and bilm-tf (like allennlp) prepends an all-zero row at load
    time. We do the same: (261, E) -> (262, E), row 0 zero."""
    return torch.cat([table.new_zeros(1, table.shape[1]), table])


def char_embedding_without_pad_row(table: torch.Tensor) -> torch.Tensor:
    """The inverse: the file does not store the padding row."""
    return table[1:]


def conv_kernel_tf_to_torch(kernel: torch.Tensor) -> torch.Tensor:
    """TF runs conv2d on (tokens, 1, W, E) with a kernel (1, width, E, K): (height, width, in,
    out). torch.nn.Conv1d wants (out, in, width) = (K, E, width). Both cross-correlate, so the
    kernel is not flipped."""
    if kernel.dim() != 4 or kernel.shape[0] != 1:
        raise ValueError(f"expected a TF conv kernel of shape (1, width, E, K), got {tuple(kernel.shape)}")
    return kernel[0].permute(2, 1, 0)  # (width, E, K) -> (K, E, width)


def conv_kernel_torch_to_tf(weight: torch.Tensor) -> torch.Tensor:
    """The inverse: (K, E, width) -> (1, width, E, K)."""
    return weight.permute(2, 1, 0).unsqueeze(0)


def highway_gate_weight(weight: torch.Tensor) -> torch.Tensor:
    """TF names the gate 'carry' (W_carry, b_carry), but its sigmoid multiplies the *nonlinear*
    branch: y = g * relu(W_transform x) + (1 - g) * x. That is the paper's transform gate t, which
    our Highway keeps, so only the matmul layout changes (its inverse is `transpose`). (allennlp
    instead negates W_carry and b_carry, turning g into 1 - g, because its Highway is written with
    a carry gate.)"""
    return weight.t()


def tf_lstm_gates_to_torch(tensor: torch.Tensor) -> torch.Tensor:
    """TF's LSTMCell packs the 4C gate rows as (input, candidate 'j', forget, output); torch.nn.LSTM
    and our cell use (input, forget, candidate, output). Swap the middle two blocks (axis 0). The
    swap is its own inverse."""
    if tensor.shape[0] % 4:
        raise ValueError(f"gate axis of length {tensor.shape[0]} is not 4 * cell_size")
    input_gate, candidate, forget_gate, output_gate = tensor.chunk(4, dim=0)
    return torch.cat([input_gate, forget_gate, candidate, output_gate])


def add_tf_forget_bias(bias: torch.Tensor, sign: float = 1.0) -> torch.Tensor:
    """TF's LSTMCell adds TF_FORGET_BIAS to the forget gate at run time instead of storing it; we
    store it in the bias (sign=-1.0 takes it out again). In TF's gate order the forget gate is the
    third of four blocks."""
    C = bias.shape[0] // 4
    bias = bias.clone()
    bias[2 * C : 3 * C] += sign * TF_FORGET_BIAS
    return bias


def lstm_input_weights(kernel: torch.Tensor, projection_dim: int) -> torch.Tensor:
    """TF keeps one kernel W_0 of shape (in + P, 4C), applied to concat([x_t, h_{t-1}]); we keep
    input and recurrent weights apart as two Linears. The first `in` rows act on x_t."""
    return tf_lstm_gates_to_torch(kernel[:-projection_dim].t())  # (in, 4C) -> (4C, in)


def lstm_hidden_weights(kernel: torch.Tensor, projection_dim: int) -> torch.Tensor:
    """The last P rows of W_0 act on h_{t-1} (see lstm_input_weights)."""
    return tf_lstm_gates_to_torch(kernel[-projection_dim:].t())  # (P, 4C) -> (4C, P)


def lstm_kernel_rows(weight: torch.Tensor) -> torch.Tensor:
    """The inverse of both: our (4C, X) -> TF's rows (X, 4C) of W_0; the two rows' results,
    stacked in table order, are W_0 (weights.common.source_tensors)."""
    return tf_lstm_gates_to_torch(weight).t()


def lstm_bias(bias: torch.Tensor) -> torch.Tensor:
    """TF's single LSTM bias B: fold in the run-time forget bias, then reorder the gates."""
    return tf_lstm_gates_to_torch(add_tf_forget_bias(bias))


def tf_lstm_bias(bias: torch.Tensor) -> torch.Tensor:
    """The inverse: back to TF's gate order, then take the run-time forget bias out."""
    return add_tf_forget_bias(tf_lstm_gates_to_torch(bias), sign=-1.0)


# ---------------------------------------------------------------------------------------------
# The table. Placeholders: {i} convolution, {k} highway layer, {l} LSTM layer, {direction}
# ("forward" in our names is RNN_0 in bilm-tf's, "backward" is RNN_1).
# ---------------------------------------------------------------------------------------------

DIRECTIONS = [("forward", 0), ("backward", 1)]
LSTM = "RNN_{direction}/RNN/MultiRNNCell/Cell{l}/LSTMCell"

# Datasets in the file that the model deliberately does not use, with the reason. bilm-tf's
# dump_weights writes nothing else (the LM softmax is not dumped), so any other extra dataset
# means options.json does not describe the file.
IGNORED: dict[str, str] = {}

MISMATCH_HINT = ("Does options.json describe this weight file? "
                 "(check projection_dim, dim, filters, n_highway and n_layers)")


def elmo_rows(config) -> list[Row]:
    """The key table for a model of `config`'s sizes (a minielmo.ElmoConfig), every placeholder
    expanded. The LSTM kernel split needs P, bound here from the config. Read backwards (each
    row's inverse), it writes the released layout (weights/elmo_export.py)."""
    input_weights = partial(lstm_input_weights, projection_dim=config.projection_dim)
    hidden_weights = partial(lstm_hidden_weights, projection_dim=config.projection_dim)
    table = [
        Row("char_cnn.char_embedding.weight", "char_embed", char_embedding_with_pad_row,
            inverse=char_embedding_without_pad_row),
        Row("char_cnn.convs.{i}.weight", "CNN/W_cnn_{i}", conv_kernel_tf_to_torch, inverse=conv_kernel_torch_to_tf),
        Row("char_cnn.convs.{i}.bias", "CNN/b_cnn_{i}"),
        Row("char_cnn.highway.nonlinear.{k}.weight", "CNN_high_{k}/W_transform", transpose, inverse=transpose),
        Row("char_cnn.highway.nonlinear.{k}.bias", "CNN_high_{k}/b_transform"),
        Row("char_cnn.highway.transform_gate.{k}.weight", "CNN_high_{k}/W_carry", highway_gate_weight,
            inverse=transpose),
        Row("char_cnn.highway.transform_gate.{k}.bias", "CNN_high_{k}/b_carry"),  # see highway_gate_weight
        Row("char_cnn.projection.weight", "CNN_proj/W_proj", transpose, inverse=transpose),
        Row("char_cnn.projection.bias", "CNN_proj/b_proj"),
        # Two rows read W_0: input weights first, then recurrent ones (the order source_tensors joins).
        Row("{direction}_layers.{l}.input_to_gates.weight", LSTM + "/W_0", input_weights, inverse=lstm_kernel_rows),
        Row("{direction}_layers.{l}.hidden_to_gates.weight", LSTM + "/W_0", hidden_weights, inverse=lstm_kernel_rows),
        Row("{direction}_layers.{l}.hidden_to_gates.bias", LSTM + "/B", lstm_bias, inverse=tf_lstm_bias),
        Row("{direction}_layers.{l}.projection.weight", LSTM + "/W_P_0", transpose, inverse=transpose),
    ]
    return expand_rows(table, i=range(len(config.filters)), k=range(config.n_highway),
                       l=range(config.n_layers), direction=DIRECTIONS)


# ---------------------------------------------------------------------------------------------
# Reading and loading
# ---------------------------------------------------------------------------------------------


def read_hdf5(path: Path) -> dict[str, torch.Tensor]:
    """Every dataset of an hdf5 file, by its full path ("CNN/W_cnn_0"), as a tensor."""
    import h5py  # only here: converted (safetensors) models load without h5py

    arrays = {}
    try:
        with h5py.File(path, "r") as file:
            file.visititems(lambda name, item: arrays.__setitem__(name, item[()])
                            if isinstance(item, h5py.Dataset) else None)
    except OSError as error:
        raise ValueError(f"{path}: not a readable HDF5 weight file ({error})") from error
    tensors = {}
    for name, array in arrays.items():
        array = np.asarray(array)
        if array.dtype.kind not in "biuf":  # strings, objects, compound records: not weights
            raise ValueError(f"{path}: dataset {name!r} holds {array.dtype} values, not numbers")
        tensors[name] = torch.from_numpy(np.ascontiguousarray(array))
    return tensors


def load_elmo_weights(model: torch.nn.Module, weight_file) -> LoadReport:
    """Fill `model` (a minielmo.BiLM) from a released .hdf5, or from a .safetensors written by
    `save_converted`, strictly; returns the LoadReport."""
    weight_file = Path(weight_file)
    if not weight_file.is_file():
        raise FileNotFoundError(f"ELMo weight file not found: {weight_file}")
    if weight_file.suffix == ".safetensors":  # our own names, every transform already applied
        rows = [Row(name, name) for name in model.state_dict()]
        return load_strict(model, read_safetensors(weight_file), rows, {}, where=str(weight_file),
                           hint=MISMATCH_HINT)
    return load_strict(model, read_hdf5(weight_file), elmo_rows(model.config), IGNORED,
                       where=str(weight_file), hint=MISMATCH_HINT)


OPTIONS_NAME = "options.json"
WEIGHTS_NAME = "model.safetensors"


def save_converted(model: torch.nn.Module, out_dir) -> tuple[Path, Path]:
    """Write `model` (a minielmo.BiLM) as OUT_DIR/options.json + OUT_DIR/model.safetensors, which
    `BiLM.from_files` reads back without h5py. The JSON keeps the options.json layout."""
    from safetensors import SafetensorError
    from safetensors.torch import save_file

    out_dir = Path(out_dir)
    options_path, weights_path = out_dir / OPTIONS_NAME, out_dir / WEIGHTS_NAME
    tensors = {name: tensor.detach().contiguous() for name, tensor in model.state_dict().items()}
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
        options_path.write_text(json.dumps(model.config.to_options(), indent=2) + "\n", encoding="utf-8")
        save_file(tensors, str(weights_path), metadata={"format": "minielmo"})
    except (OSError, SafetensorError) as error:
        reason = error.strerror if isinstance(error, OSError) and error.strerror else error
        raise ValueError(f"cannot write the converted model to {out_dir}: {reason}") from None
    return options_path, weights_path
