"""A random-weight ELMo of the released "original" size, written in the original hdf5 layout.

The bench must time the biLM at the size people actually use (cell 4096, projection 512) but no
weights may be downloaded, so it writes random weights into exactly the datasets and shapes the
original TensorFlow biLM saved (the same layout as AllenNLP's tiny fixture,
tests/fixtures/elmo/lm_weights.hdf5) and loads them through minielmo's real loader. Shapes, per
the original files (TF convention: inputs x outputs):

    char_embed                                   (n_characters - 1, E)   row 0 (padding) is implied
    CNN/W_cnn_{i}, CNN/b_cnn_{i}                 (1, width, E, num), (num,)
    CNN_high_{k}/W_transform, W_carry            (F, F)   with F = sum of filter counts
    CNN_high_{k}/b_transform, b_carry            (F,)
    CNN_proj/W_proj, CNN_proj/b_proj             (F, P), (P,)
    RNN_{d}/RNN/MultiRNNCell/Cell{l}/LSTMCell/W_0     (P + P, 4C)   input and recurrent stacked
    RNN_{d}/RNN/MultiRNNCell/Cell{l}/LSTMCell/B       (4C,)
    RNN_{d}/RNN/MultiRNNCell/Cell{l}/LSTMCell/W_P_0   (C, P)

d is 0 for the forward and 1 for the backward direction, l the layer.
"""

import copy
import json
import pathlib

import numpy as np

# The released elmo_2x4096_512_2048cnn_2xhighway options (Peters et al. 2018, "original" model).
ORIGINAL_OPTIONS = {
    "lstm": {
        "use_skip_connections": True,
        "projection_dim": 512,
        "cell_clip": 3,
        "proj_clip": 3,
        "dim": 4096,
        "n_layers": 2,
    },
    "char_cnn": {
        "activation": "relu",
        "filters": [[1, 32], [2, 32], [3, 64], [4, 128], [5, 256], [6, 512], [7, 1024]],
        "n_highway": 2,
        "embedding": {"dim": 16},
        "n_characters": 262,
        "max_characters_per_token": 50,
    },
}


def scaled_options(divisor: int) -> dict:
    """The original architecture with every width divided by `divisor` (for the --quick smoke run)."""
    options = copy.deepcopy(ORIGINAL_OPTIONS)
    options["lstm"]["projection_dim"] //= divisor
    options["lstm"]["dim"] //= divisor
    options["char_cnn"]["filters"] = [[w, max(1, n // divisor)] for w, n in options["char_cnn"]["filters"]]
    return options


def write_elmo(directory: pathlib.Path, options: dict, seed: int = 0) -> tuple[pathlib.Path, pathlib.Path]:
    """Write options.json and lm_weights.hdf5 with seeded random weights; return both paths.

    Weights are scaled by 1/sqrt(fan_in) so activations keep a sensible range through the layers.
    """
    import h5py  # the bench's own dependency; only this writer needs it

    rng = np.random.default_rng(seed)
    cnn, lstm = options["char_cnn"], options["lstm"]
    emb, proj, cell = cnn["embedding"]["dim"], lstm["projection_dim"], lstm["dim"]
    n_filters = sum(num for _, num in cnn["filters"])

    def dense(*shape, fan_in):
        return (rng.standard_normal(shape) / np.sqrt(fan_in)).astype(np.float32)

    def bias(n):
        return (0.1 * rng.standard_normal(n)).astype(np.float32)

    directory.mkdir(parents=True, exist_ok=True)
    options_path, weights_path = directory / "options.json", directory / "lm_weights.hdf5"
    options_path.write_text(json.dumps(options, indent=2))
    with h5py.File(weights_path, "w") as f:
        f["char_embed"] = dense(cnn["n_characters"] - 1, emb, fan_in=1)
        for i, (width, num) in enumerate(cnn["filters"]):
            f[f"CNN/W_cnn_{i}"] = dense(1, width, emb, num, fan_in=width * emb)
            f[f"CNN/b_cnn_{i}"] = bias(num)
        for k in range(cnn["n_highway"]):
            f[f"CNN_high_{k}/W_transform"] = dense(n_filters, n_filters, fan_in=n_filters)
            f[f"CNN_high_{k}/W_carry"] = dense(n_filters, n_filters, fan_in=n_filters)
            f[f"CNN_high_{k}/b_transform"] = bias(n_filters)
            f[f"CNN_high_{k}/b_carry"] = bias(n_filters)
        f["CNN_proj/W_proj"] = dense(n_filters, proj, fan_in=n_filters)
        f["CNN_proj/b_proj"] = bias(proj)
        for direction in range(2):
            for layer in range(lstm["n_layers"]):
                prefix = f"RNN_{direction}/RNN/MultiRNNCell/Cell{layer}/LSTMCell"
                f[f"{prefix}/W_0"] = dense(2 * proj, 4 * cell, fan_in=2 * proj)
                f[f"{prefix}/B"] = bias(4 * cell)
                f[f"{prefix}/W_P_0"] = dense(cell, proj, fan_in=cell)
    return options_path, weights_path
