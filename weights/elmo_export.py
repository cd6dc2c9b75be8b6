"""Write a minielmo.BiLM in the format ELMo was released in: options.json + hdf5 with bilm-tf's
dataset names, plus the converted options.json + model.safetensors.

Each function below undoes one TensorFlow -> PyTorch convention that weights/elmo_hdf5.py applies
when loading, so `export -> load` is the identity (tests/unit/test_elmo_train.py checks that the
reloaded model gives identical outputs). The layout is that of bilm-tf's dump_weights (TF stores
x @ W kernels as (in, out)):

    char_embed                                   (n_characters - 1, E)   no padding row
    CNN/W_cnn_{i}, CNN/b_cnn_{i}                 (1, width, E, K_i), (K_i,)
    CNN_high_{k}/W_transform, b_transform        (K, K), (K,)   the nonlinear branch
    CNN_high_{k}/W_carry, b_carry                (K, K), (K,)   the gate on the nonlinear branch
    CNN_proj/W_proj, CNN_proj/b_proj             (K, P), (P,)
    RNN_{d}/RNN/MultiRNNCell/Cell{l}/LSTMCell/W_0     (in + P, 4C)  gates (i, j, f, o)
    RNN_{d}/RNN/MultiRNNCell/Cell{l}/LSTMCell/B       (4C,)  without TF's run-time forget bias
    RNN_{d}/RNN/MultiRNNCell/Cell{l}/LSTMCell/W_P_0   (C, P)

d is 0 for the forward and 1 for the backward direction, l the layer. bilm-tf does not dump the
LM softmax either: a released biLM is the encoder only.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from weights.elmo_hdf5 import save_converted

TF_FORGET_BIAS = 1.0  # TF's LSTMCell adds this to the forget gate at run time (forget_bias=1.0)
DIRECTIONS = ("forward", "backward")


def _array(tensor) -> np.ndarray:
    return tensor.detach().cpu().float().numpy()


def torch_gates_to_tf(array: np.ndarray) -> np.ndarray:
    """Our gate blocks (input, forget, candidate, output) along axis 0 -> TF's (input, candidate
    'j', forget, output): swap the middle two."""
    input_gate, forget_gate, candidate, output_gate = np.split(array, 4, axis=0)
    return np.concatenate([input_gate, candidate, forget_gate, output_gate], axis=0)


def lstm_kernel(cell) -> np.ndarray:
    """TF keeps one kernel W_0 (in + P, 4C) applied to concat([x_t, h_{t-1}]); we keep two
    Linears, (4C, in) and (4C, P). Stack them along the input axis, reorder gates, transpose."""
    stacked = np.concatenate([_array(cell.input_to_gates.weight), _array(cell.hidden_to_gates.weight)], axis=1)
    return torch_gates_to_tf(stacked).T  # (4C, in + P) -> (in + P, 4C)


def lstm_bias(cell) -> np.ndarray:
    """Our bias holds the whole forget-gate bias; TF stores it without the 1.0 it adds at run time."""
    bias = torch_gates_to_tf(_array(cell.hidden_to_gates.bias))
    C = bias.shape[0] // 4
    bias[2 * C: 3 * C] -= TF_FORGET_BIAS  # the forget gate is TF's third block
    return bias


def conv_kernel(conv) -> np.ndarray:
    """Conv1d's (K, E, width) -> TF conv2d's (1, width, E, K)."""
    return _array(conv.weight).transpose(2, 1, 0)[None]


def char_embedding_without_pad_row(embedding) -> np.ndarray:
    """Row 0 (the all-zero padding row) is added at load time, so the file does not store it."""
    return _array(embedding.weight)[1:]


def datasets(bilm) -> dict[str, np.ndarray]:
    """Every dataset of the released hdf5 layout, by name."""
    cnn = bilm.char_cnn
    out = {"char_embed": char_embedding_without_pad_row(cnn.char_embedding)}
    for i, conv in enumerate(cnn.convs):
        out[f"CNN/W_cnn_{i}"] = conv_kernel(conv)
        out[f"CNN/b_cnn_{i}"] = _array(conv.bias)
    for k, (nonlinear, gate) in enumerate(zip(cnn.highway.nonlinear, cnn.highway.transform_gate)):
        # TF's "carry" weights gate the nonlinear branch: they are our transform gate.
        out[f"CNN_high_{k}/W_transform"] = _array(nonlinear.weight).T
        out[f"CNN_high_{k}/b_transform"] = _array(nonlinear.bias)
        out[f"CNN_high_{k}/W_carry"] = _array(gate.weight).T
        out[f"CNN_high_{k}/b_carry"] = _array(gate.bias)
    out["CNN_proj/W_proj"] = _array(cnn.projection.weight).T
    out["CNN_proj/b_proj"] = _array(cnn.projection.bias)
    for d, layers in enumerate((bilm.forward_layers, bilm.backward_layers)):
        for layer, cell in enumerate(layers):
            prefix = f"RNN_{d}/RNN/MultiRNNCell/Cell{layer}/LSTMCell"
            out[f"{prefix}/W_0"] = lstm_kernel(cell)
            out[f"{prefix}/B"] = lstm_bias(cell)
            out[f"{prefix}/W_P_0"] = _array(cell.projection.weight).T
    return out


def export_hdf5(bilm, out_dir, weights_name: str = "weights.hdf5") -> tuple[Path, Path]:
    """Write OUT_DIR/options.json + OUT_DIR/<weights_name> in the released layout."""
    import h5py

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    options_path, weights_path = out_dir / "options.json", out_dir / weights_name
    options_path.write_text(json.dumps(bilm.config.to_options(), indent=2) + "\n", encoding="utf-8")
    with h5py.File(weights_path, "w") as file:
        for name, array in datasets(bilm).items():
            file.create_dataset(name, data=np.ascontiguousarray(array, dtype=np.float32))
    return options_path, weights_path


def export(bilm, out_dir) -> dict[str, Path]:
    """Both formats into one folder: options.json, weights.hdf5 (released layout) and
    model.safetensors (our parameter names, as weights.elmo_hdf5.save_converted writes)."""
    options_path, hdf5_path = export_hdf5(bilm, out_dir)
    _, safetensors_path = save_converted(bilm, out_dir)
    return {"options": options_path, "hdf5": hdf5_path, "safetensors": safetensors_path}
