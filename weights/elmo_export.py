"""Write a minielmo.BiLM in the format ELMo was released in: options.json + hdf5 with bilm-tf's
dataset names, plus the converted options.json + model.safetensors.

The dataset names and the transforms are those of the loading table (weights/elmo_hdf5.py), read
backwards: each row's inverse undoes one TensorFlow -> PyTorch convention, so `export -> load` is
the identity (tests/unit/test_elmo_train.py checks that the reloaded model gives identical
outputs, and that exporting the released fixture reproduces its datasets). The layout is that of
bilm-tf's dump_weights (TF stores x @ W kernels as (in, out)):

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

from weights.common import source_tensors
from weights.elmo_hdf5 import elmo_rows, save_converted


def datasets(bilm) -> dict[str, np.ndarray]:
    """Every dataset of the released hdf5 layout, by name: the loading table read backwards, each
    parameter through its row's inverse transform."""
    params = {name: value.detach().cpu().float() for name, value in bilm.state_dict().items()}
    return {name: tensor.numpy() for name, tensor in source_tensors(params, elmo_rows(bilm.config)).items()}


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
