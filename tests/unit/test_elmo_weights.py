"""weights/elmo_hdf5.py and minielmo/convert.py: transforms, strictness, errors, conversion."""

import json
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch
from safetensors.torch import load_file, save_file

import minielmo
from minielmo import BiLM, batch_to_ids
from minielmo.convert import convert
from weights import elmo_hdf5
from weights.elmo_hdf5 import save_converted

pytestmark = pytest.mark.usefixtures("torch_single_thread")

REPO = Path(__file__).resolve().parents[2]
# The converted model holds the very same float32 numbers and runs the same code: bit-identical.
CONVERTED_ATOL = 0.0
# (x - 1.0) + 1.0 in float32 rounds twice, each time by at most half a float32 spacing; for the
# |x| < 8 of randn draws that is 2 x 2.4e-7 = 4.8e-7 at most.
FORGET_BIAS_ROUNDTRIP_ATOL = 1e-6
SENTENCES = [["Converted", "models", "agree", "."], ["Yes", "!"], []]


def tiny_config():
    return minielmo.ElmoConfig.from_options_file(minielmo.FIXTURE_OPTIONS)


def test_options_are_written_back_as_they_were_read():
    """to_options runs config.OPTIONS backwards: every value the model reads from the fixture's
    options.json comes back unchanged at its place, and every config survives the round trip."""
    from minielmo.config import OPTIONS
    from minielmo.train import SIZES

    original = json.loads(Path(minielmo.FIXTURE_OPTIONS).read_text())
    written = tiny_config().to_options()
    for _, place, _ in OPTIONS:
        ours, theirs = written, original
        for key in place:
            ours, theirs = ours[key], theirs[key]
        assert ours == theirs, place
    for config in (tiny_config(), *SIZES.values()):
        assert minielmo.ElmoConfig.from_options(json.loads(json.dumps(config.to_options()))) == config


def test_every_row_of_the_table_has_an_inverse_that_undoes_it():
    """The table read backwards (weights.common.source_tensors, what the export writes) gives
    tensors that load back into exactly the parameters they came from."""
    from weights.common import Row, load_strict, source_tensors

    torch.manual_seed(0)
    model = BiLM(tiny_config())
    rows = elmo_hdf5.elmo_rows(model.config)
    params = {name: torch.randn_like(value) for name, value in model.state_dict().items()}
    params["char_cnn.char_embedding.weight"][0] = 0.0  # the padding row, which the file does not store
    tensors = source_tensors(params, rows)
    assert sorted(tensors) == sorted({row.source for row in rows})
    load_strict(model, tensors, rows, elmo_hdf5.IGNORED)
    for name, value in model.state_dict().items():
        # Taking TF's forget bias of 1.0 out and adding it back rounds the forget-gate biases to
        # float32's spacing near 1 and 2; every other inverse only moves numbers.
        atol = FORGET_BIAS_ROUNDTRIP_ATOL if name.endswith("hidden_to_gates.bias") else 0.0
        torch.testing.assert_close(value, params[name], rtol=0, atol=atol, msg=name)
    with pytest.raises(ValueError, match="has a transform but no inverse"):
        source_tensors(params, [Row("char_cnn.projection.weight", "CNN_proj/W_proj", elmo_hdf5.transpose)])


def test_gate_reorder_and_forget_bias():
    C = tiny_config().cell_size
    tf_bias = torch.cat([torch.full((C,), v) for v in (1.0, 2.0, 3.0, 4.0)])  # i j f o
    torch_bias = elmo_hdf5.lstm_bias(tf_bias)
    # (i, f + 1.0, j, o): forget gate moved to second place and given TF's run-time +1.0.
    assert torch_bias[::C].tolist() == [1.0, 4.0, 2.0, 4.0]
    assert tf_bias[::C].tolist() == [1.0, 2.0, 3.0, 4.0]  # input not modified


def test_lstm_kernel_split_input_rows_first():
    cfg = tiny_config()
    P, C = cfg.projection_dim, cfg.cell_size
    kernel = torch.zeros(2 * P, 4 * C)
    kernel[:P] = 1.0  # rows acting on x_t
    assert elmo_hdf5.lstm_input_weights(kernel, projection_dim=P).shape == (4 * C, P)
    assert (elmo_hdf5.lstm_input_weights(kernel, projection_dim=P) == 1).all()
    assert (elmo_hdf5.lstm_hidden_weights(kernel, projection_dim=P) == 0).all()


def test_char_embedding_and_conv_kernel_layouts():
    table = torch.arange(261 * 4, dtype=torch.float32).reshape(261, 4)
    padded = elmo_hdf5.char_embedding_with_pad_row(table)
    assert padded.shape == (262, 4) and (padded[0] == 0).all() and (padded[1:] == table).all()
    kernel = torch.randn(1, 3, 4, 16, generator=torch.Generator().manual_seed(0))  # 1, w, E, K
    torch_kernel = elmo_hdf5.conv_kernel_tf_to_torch(kernel)
    assert torch_kernel.shape == (16, 4, 3)
    assert torch_kernel[5, 2, 1] == kernel[0, 1, 2, 5]  # [out, in, position]


def test_fixture_loads_every_parameter_and_every_dataset():
    model = BiLM.from_files(minielmo.FIXTURE_OPTIONS, minielmo.FIXTURE_WEIGHTS)
    assert sorted(model.load_report.loaded) == sorted(model.state_dict())
    with h5py.File(minielmo.FIXTURE_WEIGHTS) as file:
        datasets = set()
        file.visititems(lambda name, item: datasets.add(name) if isinstance(item, h5py.Dataset) else None)
    assert set(model.load_report.loaded.values()) == datasets  # every dataset used, none ignored
    assert model.load_report.ignored == {}


@pytest.mark.parametrize("language", ["es", "fr", "it"])
def test_multilingual_weight_files_load_unchanged(elmo_fixture_dir, language):
    folder = elmo_fixture_dir / "multilingual" / language
    bilm = BiLM.from_files(folder / "options.json", folder / "weights.hdf5")
    tiny = BiLM.from_files(minielmo.FIXTURE_OPTIONS, minielmo.FIXTURE_WEIGHTS)
    with torch.no_grad():
        out = bilm(batch_to_ids(SENTENCES))["activations"][-1]
        assert torch.isfinite(out).all()
        assert not torch.equal(out, tiny(batch_to_ids(SENTENCES))["activations"][-1])


# ------------------------------------------------------------------------------- bad files


def copy_fixture(tmp_path: Path) -> tuple[Path, Path]:
    options = tmp_path / "options.json"
    weights = tmp_path / "lm_weights.hdf5"
    shutil.copy(minielmo.FIXTURE_OPTIONS, options)
    shutil.copy(minielmo.FIXTURE_WEIGHTS, weights)
    return options, weights


def edit_options(options: Path, edit) -> None:
    data = json.loads(options.read_text())
    edit(data)
    options.write_text(json.dumps(data))


def test_missing_hdf5_dataset_names_dataset_and_file(tmp_path):
    options, weights = copy_fixture(tmp_path)
    with h5py.File(weights, "r+") as file:
        del file["CNN_high_1/b_carry"]
    with pytest.raises(ValueError, match=r"lm_weights\.hdf5 does not match this model\.\nmissing keys: "
                                         r"\['CNN_high_1/b_carry'\]"):
        BiLM.from_files(options, weights)


@pytest.mark.parametrize("section, key", [("lstm", "dim"), ("char_cnn", "filters"),
                                          ("lstm", "proj_clip"), ("char_cnn", "n_highway")])
def test_options_missing_key(tmp_path, section, key):
    options, weights = copy_fixture(tmp_path)
    edit_options(options, lambda d: d[section].pop(key))
    with pytest.raises(ValueError, match=rf"options\.json: missing key '{section}\.{key}'"):
        BiLM.from_files(options, weights)


def test_options_disagreeing_with_weight_shapes(tmp_path):
    options, weights = copy_fixture(tmp_path)
    edit_options(options, lambda d: d["lstm"].update(projection_dim=32))
    with pytest.raises(ValueError, match=r"'CNN_proj/W_proj' gives shape \(16, 124\) but our "
                                         r"parameter 'char_cnn.projection.weight' has shape \(32, 124\)"):
        BiLM.from_files(options, weights)


def test_options_with_fewer_layers_than_the_file(tmp_path):
    options, weights = copy_fixture(tmp_path)
    edit_options(options, lambda d: d["char_cnn"].update(n_highway=1))
    with pytest.raises(ValueError, match=r"unexpected keys: \['CNN_high_1/W_carry'"):
        BiLM.from_files(options, weights)


def test_options_with_more_layers_than_the_file(tmp_path):
    options, weights = copy_fixture(tmp_path)
    edit_options(options, lambda d: d["lstm"].update(n_layers=3))
    with pytest.raises(ValueError, match=r"missing keys: \['RNN_0/RNN/MultiRNNCell/Cell2/LSTMCell/W_0'"):
        BiLM.from_files(options, weights)


def test_bad_option_value_and_bad_files(tmp_path):
    options, weights = copy_fixture(tmp_path)
    edit_options(options, lambda d: d["lstm"].update(n_layers="two"))
    with pytest.raises(ValueError, match=r"bad value 'two' for 'lstm\.n_layers'"):
        BiLM.from_files(options, weights)
    options.write_text("{not json")
    with pytest.raises(ValueError, match=r"options\.json: not valid JSON"):
        BiLM.from_files(options, weights)
    with pytest.raises(FileNotFoundError, match="options file not found"):
        BiLM.from_files(tmp_path / "nope.json", weights)
    with pytest.raises(FileNotFoundError, match="weight file not found"):
        BiLM.from_files(minielmo.FIXTURE_OPTIONS, tmp_path / "nope.hdf5")
    not_hdf5 = tmp_path / "broken.hdf5"
    not_hdf5.write_bytes(b"not an hdf5 file")
    with pytest.raises(ValueError, match=r"broken\.hdf5: not a readable HDF5"):
        BiLM.from_files(minielmo.FIXTURE_OPTIONS, not_hdf5)


# ------------------------------------------------------------------------------- conversion


def test_converted_model_loads_without_h5py_and_is_identical(tmp_path):
    options, weights = convert(minielmo.FIXTURE_OPTIONS, minielmo.FIXTURE_WEIGHTS, tmp_path / "out")
    original = BiLM.from_files(minielmo.FIXTURE_OPTIONS, minielmo.FIXTURE_WEIGHTS)
    with torch.no_grad():
        expected = original(batch_to_ids(SENTENCES))["activations"]
    # A fresh interpreter in which `import h5py` fails: loading must not need it.
    script = textwrap.dedent(f"""
        import sys
        sys.modules["h5py"] = None
        import numpy as np, torch
        torch.set_num_threads(1)
        from minielmo import BiLM, batch_to_ids
        bilm = BiLM.from_files({str(options)!r}, {str(weights)!r})
        assert "h5py" not in sys.modules or sys.modules["h5py"] is None
        with torch.no_grad():
            layers = bilm(batch_to_ids({SENTENCES!r}))["activations"]
        np.savez({str(tmp_path / "converted.npz")!r}, *[layer.numpy() for layer in layers])
    """)
    subprocess.run([sys.executable, "-c", script], cwd=REPO, check=True)
    converted = np.load(tmp_path / "converted.npz")
    assert len(converted.files) == len(expected)
    for k, layer in enumerate(expected):
        torch.testing.assert_close(torch.from_numpy(converted[f"arr_{k}"]), layer, rtol=0,
                                   atol=CONVERTED_ATOL)


def test_converted_options_round_trip_and_strict_safetensors(tmp_path):
    model = BiLM.from_files(minielmo.FIXTURE_OPTIONS, minielmo.FIXTURE_WEIGHTS)
    options, weights = save_converted(model, tmp_path)
    assert minielmo.ElmoConfig.from_options_file(options) == model.config
    tensors = load_file(str(weights))
    tensors.pop("char_cnn.projection.bias")
    tensors["extra.weight"] = torch.zeros(1)
    save_file(tensors, str(tmp_path / "bad.safetensors"))
    missing = r"bad\.safetensors does not match this model\.\nmissing keys: \['char_cnn\.projection\.bias'\]"
    with pytest.raises(ValueError, match=missing):
        BiLM.from_files(options, tmp_path / "bad.safetensors")
    tensors["char_cnn.projection.bias"] = torch.zeros(16)
    save_file(tensors, str(tmp_path / "extra.safetensors"))
    with pytest.raises(ValueError, match=r"unexpected keys: \['extra\.weight'\]"):
        BiLM.from_files(options, tmp_path / "extra.safetensors")


def test_convert_command_line(tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "minielmo.convert", str(minielmo.FIXTURE_OPTIONS),
         str(tmp_path / "missing.hdf5"), str(tmp_path / "out")],
        cwd=REPO, capture_output=True, text=True)
    assert result.returncode == 2 and "weight file not found" in result.stderr


def test_training_style_n_characters_261_loads_the_same_model(tmp_path):
    """bilm-tf's training options say 261 characters, its inference options 262 (with the padding
    row); the hdf5 holds 261 rows either way, so both must give the same model."""
    options, weights = copy_fixture(tmp_path)
    edit_options(options, lambda d: d["char_cnn"].update(n_characters=261))
    a = BiLM.from_files(options, weights)
    b = BiLM.from_files(minielmo.FIXTURE_OPTIONS, minielmo.FIXTURE_WEIGHTS)
    for (name, pa), (_, pb) in zip(a.named_parameters(), b.named_parameters()):
        torch.testing.assert_close(pa, pb, rtol=0, atol=0, msg=name)


def write_tf_layout_hdf5(path: Path, options: dict, seed: int = 0) -> None:
    """Random weights in bilm-tf's dump layout, sized only from `options` (like a released file)."""
    rng = np.random.default_rng(seed)
    cnn, lstm = options["char_cnn"], options["lstm"]
    E, P, C = cnn["embedding"]["dim"], lstm["projection_dim"], lstm["dim"]
    K = sum(n for _, n in cnn["filters"])

    def put(file, name, *shape):
        file.create_dataset(name, data=rng.normal(0, 0.3, shape).astype(np.float32))

    with h5py.File(path, "w") as file:
        put(file, "char_embed", 261, E)
        for i, (width, count) in enumerate(cnn["filters"]):
            put(file, f"CNN/W_cnn_{i}", 1, width, E, count)
            put(file, f"CNN/b_cnn_{i}", count)
        for k in range(cnn["n_highway"]):
            for kind in ("carry", "transform"):
                put(file, f"CNN_high_{k}/W_{kind}", K, K)
                put(file, f"CNN_high_{k}/b_{kind}", K)
        put(file, "CNN_proj/W_proj", K, P)
        put(file, "CNN_proj/b_proj", P)
        for d in range(2):
            for l in range(lstm["n_layers"]):
                cell = f"RNN_{d}/RNN/MultiRNNCell/Cell{l}/LSTMCell"
                put(file, f"{cell}/W_0", 2 * P, 4 * C)
                put(file, f"{cell}/B", 4 * C)
                put(file, f"{cell}/W_P_0", C, P)


def test_other_sizes_load_from_options_alone(tmp_path):
    """Nothing is sized by a constant: a differently shaped file (3 layers, 1 highway, tanh,
    7 filter widths, P 8, C 12) loads completely and runs."""
    options = {"lstm": {"projection_dim": 8, "dim": 12, "n_layers": 3, "cell_clip": 2,
                        "proj_clip": 2, "use_skip_connections": True},
               "char_cnn": {"filters": [[w, w + 1] for w in range(1, 8)], "n_highway": 1,
                            "embedding": {"dim": 3}, "n_characters": 262,
                            "max_characters_per_token": 50, "activation": "tanh"}}
    (tmp_path / "options.json").write_text(json.dumps(options))
    write_tf_layout_hdf5(tmp_path / "weights.hdf5", options)
    bilm = BiLM.from_files(tmp_path / "options.json", tmp_path / "weights.hdf5")
    assert sorted(bilm.load_report.loaded) == sorted(bilm.state_dict())
    with torch.no_grad():
        out = bilm(batch_to_ids(SENTENCES))
    assert [tuple(layer.shape) for layer in out["activations"]] == [(3, 6, 16)] * 4
