"""Load ELMo as released by bilm-tf (options.json + hdf5) into minielmo.BiLM, strictly.

Every TensorFlow -> PyTorch convention of the released files is one small named transform
below, each saying what TF does and what we do. The mapping itself is the declarative TABLE:
one row per parameter, with placeholders expanded from the sizes in options.json, so the same
code reads the tiny test model and the released small / medium / original ELMo files unchanged.

The loader is strict: every model parameter is filled exactly once, every dataset in the file is
used, every copy checks shapes, and each failure names the dataset, the parameter and the file.

Checked against: allennlp 0.9.0 modules/elmo.py (_load_*), modules/elmo_lstm.py (load_weights),
and the original TF biLM outputs in tests/fixtures/elmo.
"""

import itertools
from pathlib import Path

import numpy as np
import torch

from minielmo.bilm import BiLM
from minielmo.config import ElmoConfig

# ---------------------------------------------------------------------------------------------
# Transforms: (TF array, config) -> array laid out as our parameter.
# ---------------------------------------------------------------------------------------------


def identity(array: np.ndarray, config: ElmoConfig) -> np.ndarray:
    """Biases of Linear / Conv layers: same layout in both frameworks."""
    return array


def transpose(array: np.ndarray, config: ElmoConfig) -> np.ndarray:
    """TF computes x @ W with W stored (in, out); torch.nn.Linear stores W as (out, in)."""
    return array.T


def char_embedding_with_pad_row(array: np.ndarray, config: ElmoConfig) -> np.ndarray:
    """TF stores 261 character rows, for ids 0..260. At inference every id is shifted by +1 so
    that 0 can mark a padding token, and bilm-tf (like allennlp) prepends an all-zero row at load
    time. We do the same: (261, E) -> (262, E), row 0 zero."""
    return np.concatenate([np.zeros((1, array.shape[1]), array.dtype), array], axis=0)


def conv_kernel_tf_to_torch(array: np.ndarray, config: ElmoConfig) -> np.ndarray:
    """TF runs conv2d on (tokens, 1, W, E) with a kernel (1, width, E, K): (height, width, in,
    out). torch.nn.Conv1d wants (out, in, width) = (K, E, width). Both cross-correlate, so the
    kernel is not flipped."""
    if array.ndim != 4 or array.shape[0] != 1:
        raise ValueError(f"expected a TF conv kernel of shape (1, width, E, K), got {array.shape}")
    return array[0].transpose(2, 1, 0)  # (width, E, K) -> (K, E, width)


def highway_gate_weight(array: np.ndarray, config: ElmoConfig) -> np.ndarray:
    """TF names the gate 'carry' (W_carry, b_carry), but its sigmoid multiplies the *nonlinear*
    branch: y = g * relu(W_transform x) + (1 - g) * x. That is the paper's transform gate t, which
    our Highway keeps, so only the matmul layout changes. (allennlp instead negates W_carry and
    b_carry, turning g into 1 - g, because its Highway is written with a carry gate.)"""
    return array.T


def highway_gate_bias(array: np.ndarray, config: ElmoConfig) -> np.ndarray:
    """b_carry is the transform gate's bias, kept as is (see highway_gate_weight)."""
    return array


def tf_lstm_gates_to_torch(array: np.ndarray) -> np.ndarray:
    """TF's LSTMCell packs the 4C gate rows as (input, candidate 'j', forget, output); torch.nn.LSTM
    and our cell use (input, forget, candidate, output). Swap the middle two blocks (axis 0)."""
    if array.shape[0] % 4:
        raise ValueError(f"gate axis of length {array.shape[0]} is not 4 * cell_size")
    input_gate, candidate, forget_gate, output_gate = np.split(array, 4, axis=0)
    return np.concatenate([input_gate, forget_gate, candidate, output_gate], axis=0)


def add_tf_forget_bias(bias: np.ndarray, config: ElmoConfig) -> np.ndarray:
    """TF's LSTMCell adds forget_bias=1.0 to the forget gate at run time instead of storing it;
    we store it in the bias. In TF's gate order the forget gate is the third block."""
    C = config.cell_size
    bias = bias.copy()
    bias[2 * C : 3 * C] += 1.0
    return bias


def lstm_input_weights(kernel: np.ndarray, config: ElmoConfig) -> np.ndarray:
    """TF keeps one kernel W_0 of shape (in + P, 4C), applied to concat([x_t, h_{t-1}]); we keep
    input and recurrent weights apart as two Linears. The first `in` rows act on x_t."""
    return tf_lstm_gates_to_torch(kernel[: -config.projection_dim].T)  # (in, 4C) -> (4C, in)


def lstm_hidden_weights(kernel: np.ndarray, config: ElmoConfig) -> np.ndarray:
    """The last P rows of W_0 act on h_{t-1} (see lstm_input_weights)."""
    return tf_lstm_gates_to_torch(kernel[-config.projection_dim :].T)  # (P, 4C) -> (4C, P)


def lstm_bias(bias: np.ndarray, config: ElmoConfig) -> np.ndarray:
    """TF's single LSTM bias B: fold in the run-time forget bias, then reorder the gates."""
    return tf_lstm_gates_to_torch(add_tf_forget_bias(bias, config))


# ---------------------------------------------------------------------------------------------
# The table. Placeholders: {i} convolution, {k} highway layer, {l} LSTM layer, {d} direction
# (0 forward, 1 backward, as bilm-tf numbers RNN_0 / RNN_1), {dir} its name in our model.
# ---------------------------------------------------------------------------------------------

LSTM = "RNN_{d}/RNN/MultiRNNCell/Cell{l}/LSTMCell"
TABLE = [
    ("char_cnn.char_embedding.weight", "char_embed", char_embedding_with_pad_row),
    ("char_cnn.convs.{i}.weight", "CNN/W_cnn_{i}", conv_kernel_tf_to_torch),
    ("char_cnn.convs.{i}.bias", "CNN/b_cnn_{i}", identity),
    ("char_cnn.highway.nonlinear.{k}.weight", "CNN_high_{k}/W_transform", transpose),
    ("char_cnn.highway.nonlinear.{k}.bias", "CNN_high_{k}/b_transform", identity),
    ("char_cnn.highway.transform_gate.{k}.weight", "CNN_high_{k}/W_carry", highway_gate_weight),
    ("char_cnn.highway.transform_gate.{k}.bias", "CNN_high_{k}/b_carry", highway_gate_bias),
    ("char_cnn.projection.weight", "CNN_proj/W_proj", transpose),
    ("char_cnn.projection.bias", "CNN_proj/b_proj", identity),
    ("{dir}_layers.{l}.input_to_gates.weight", LSTM + "/W_0", lstm_input_weights),
    ("{dir}_layers.{l}.hidden_to_gates.weight", LSTM + "/W_0", lstm_hidden_weights),
    ("{dir}_layers.{l}.hidden_to_gates.bias", LSTM + "/B", lstm_bias),
    ("{dir}_layers.{l}.projection.weight", LSTM + "/W_P_0", transpose),
]

# Datasets in the file that the model deliberately does not use, with the reason. bilm-tf's
# dump_weights writes nothing else (the LM softmax is not dumped), so any other extra dataset
# means options.json does not describe the file.
IGNORED: dict[str, str] = {}

DIRECTIONS = ("forward", "backward")


def expand_table(config: ElmoConfig) -> list[tuple[str, str, callable]]:
    """TABLE with every placeholder expanded for this config's sizes."""
    ranges = {"i": range(len(config.filters)), "k": range(config.n_highway),
              "l": range(config.n_layers), "d": range(len(DIRECTIONS))}
    rows = []
    for ours, theirs, transform in TABLE:
        names = [name for name in ranges if "{" + name + "}" in theirs]
        for values in itertools.product(*(ranges[name] for name in names)):
            fields = dict(zip(names, values))
            if "d" in fields:
                fields["dir"] = DIRECTIONS[fields["d"]]
            rows.append((ours.format(**fields), theirs.format(**fields), transform))
    return rows


# ---------------------------------------------------------------------------------------------
# Loading
# ---------------------------------------------------------------------------------------------


def read_hdf5(path: Path) -> dict[str, np.ndarray]:
    """Every dataset of an hdf5 file, by its full path ("CNN/W_cnn_0")."""
    import h5py  # only here: converted (safetensors) models load without h5py

    datasets = {}
    try:
        with h5py.File(path, "r") as file:
            file.visititems(lambda name, item: datasets.__setitem__(name, item[...])
                            if isinstance(item, h5py.Dataset) else None)
    except OSError as error:
        raise ValueError(f"{path}: not a readable HDF5 weight file ({error})") from error
    return datasets


def assign(params: dict, ours: str, value: torch.Tensor, theirs: str, source) -> None:
    """Copy one tensor into one parameter, in place, after checking the shape."""
    if ours not in params:
        raise ValueError(f"{source}: '{theirs}' maps to '{ours}', which the model does not have")
    param = params[ours]
    if tuple(value.shape) != tuple(param.shape):
        raise ValueError(f"{source}: '{theirs}' gives shape {tuple(value.shape)} but model "
                         f"parameter '{ours}' has shape {tuple(param.shape)}, set by options.json; "
                         f"do the options describe this weight file?")
    with torch.no_grad():
        param.copy_(value)


def load_hdf5_into(model: BiLM, weight_file: Path) -> dict:
    """Fill `model` from a bilm-tf hdf5 file. Returns {"loaded", "ignored", "missing"}."""
    config = model.config
    datasets = read_hdf5(weight_file)
    params = dict(model.named_parameters())
    loaded, used = [], set()
    for ours, theirs, transform in expand_table(config):
        if theirs not in datasets:
            raise ValueError(f"{weight_file}: dataset '{theirs}' is missing (needed for '{ours}'; "
                             f"options.json may describe a bigger model than this file)")
        try:
            array = transform(datasets[theirs], config)
        except (ValueError, IndexError) as error:
            raise ValueError(f"{weight_file}: dataset '{theirs}' of shape {datasets[theirs].shape} "
                             f"does not fit '{ours}' ({error})") from error
        assign(params, ours, torch.from_numpy(np.ascontiguousarray(array, np.float32)), theirs,
               weight_file)
        loaded.append(ours)
        used.add(theirs)
    unused = sorted(set(datasets) - used - set(IGNORED))
    if unused:
        raise ValueError(f"{weight_file}: datasets {unused} are not used by a model built from "
                         f"options.json (check n_highway, filters and n_layers)")
    missing = sorted(set(params) - set(loaded))
    if missing or len(loaded) != len(set(loaded)):
        raise ValueError(f"weights table does not fill parameters {missing} exactly once")
    return {"loaded": loaded, "ignored": sorted(set(datasets) & set(IGNORED)), "missing": missing}


def load_bilm(options_file, weight_file, stateful: bool = False) -> BiLM:
    """options.json + weights -> BiLM in eval mode. `weight_file` is the released .hdf5, or a
    .safetensors written by weights.elmo_convert (which needs no h5py)."""
    options_file, weight_file = Path(options_file), Path(weight_file)
    config = ElmoConfig.from_options_file(options_file)
    if not weight_file.is_file():
        raise FileNotFoundError(f"ELMo weight file not found: {weight_file}")
    model = BiLM(config, stateful=stateful)
    if weight_file.suffix == ".safetensors":
        from weights.elmo_convert import load_safetensors_into

        load_safetensors_into(model, weight_file)
    else:
        load_hdf5_into(model, weight_file)
    return model.eval()
