"""Loading refuses what it cannot compute correctly, with one message naming the file and the field.

One test per kind of bad input: options.json values of the wrong type or range, ELMo sizes the
character encoding cannot feed, weights that are not finite floats, unreadable or mistyped
files, malformed sentence-transformers side files, and output paths that cannot be written.
"""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import h5py
import pytest
import torch
from safetensors.torch import load_file, save_file

import minibert
import minielmo
from minielmo import BiLM
from weights.elmo_hdf5 import save_converted

REPO = Path(__file__).resolve().parents[2]
TINY_BERT = dict(vocab_size=50, hidden_size=8, num_hidden_layers=1, num_attention_heads=2,
                 intermediate_size=9, max_position_embeddings=16, type_vocab_size=2)


# ----------------------------------------------------------------------------- ELMo options.json

@pytest.fixture
def elmo_files(tmp_path):
    options, weights = tmp_path / "options.json", tmp_path / "lm_weights.hdf5"
    shutil.copy(minielmo.FIXTURE_OPTIONS, options)
    shutil.copy(minielmo.FIXTURE_WEIGHTS, weights)
    return options, weights


def edit_options(options: Path, section: str, key: str, value) -> None:
    data = json.loads(options.read_text())
    data[section][key] = value
    options.write_text(json.dumps(data))


@pytest.mark.parametrize("section, key, value, message", [
    # bool("false") is True: a string where JSON has a real boolean is refused, not converted.
    ("lstm", "use_skip_connections", "false", r"bad value 'false' for 'lstm\.use_skip_connections' \(expected true or false, got str\)"),
    ("lstm", "use_skip_connections", 0, r"bad value 0 for 'lstm\.use_skip_connections' \(expected true or false, got int\)"),
    ("lstm", "n_layers", "2", r"bad value '2' for 'lstm\.n_layers' \(expected a JSON integer, got str\)"),
    ("lstm", "dim", 64.5, r"bad value 64\.5 for 'lstm\.dim' \(expected a JSON integer, got float\)"),
    ("lstm", "cell_clip", "3", r"bad value '3' for 'lstm\.cell_clip' \(expected a number or null, got str\)"),
    ("lstm", "cell_clip", -3, r"bad value -3 for 'lstm\.cell_clip' \(a clip must be a finite number >= 0"),
    ("lstm", "proj_clip", -0.5, r"bad value -0\.5 for 'lstm\.proj_clip' \(a clip must be a finite number >= 0"),
    ("char_cnn", "filters", [[1, "4"]], r"bad value \[\[1, '4'\]\] for 'char_cnn\.filters'"),
    ("char_cnn", "activation", 1, r"bad value 1 for 'char_cnn\.activation' \(expected a string, got int\)"),
    ("char_cnn", "max_characters_per_token", 60, r"char_cnn\.max_characters_per_token must be 50 \(the width batch_to_ids writes\), got 60"),
    ("char_cnn", "filters", [[1, 4], [51, 8]], r"char_cnn\.filters must be \[width, count\] pairs of positive integers, each width at most 50 characters, got \[\(1, 4\), \(51, 8\)\]"),
])
def test_bad_option_values_name_the_file_and_the_field(elmo_files, section, key, value, message):
    options, weights = elmo_files
    edit_options(options, section, key, value)
    with pytest.raises(ValueError, match=r"options\.json: " + message):
        BiLM.from_files(options, weights)


def test_a_negative_clip_is_refused_when_building_directly():
    config = minielmo.ElmoConfig.from_options_file(minielmo.FIXTURE_OPTIONS)
    with pytest.raises(ValueError, match=r"lstm\.cell_clip must be >= 0 \(0 or null: no clipping\), got -1\.0"):
        minielmo.ElmoConfig(**{**config.__dict__, "cell_clip": -1.0})


def test_options_that_are_not_utf8_json(elmo_files):
    options, weights = elmo_files
    options.write_bytes(b"\xff\xfe{}")
    with pytest.raises(ValueError, match=r"options\.json: not valid JSON"):
        BiLM.from_files(options, weights)


# ----------------------------------------------------------------------------- ELMo weights

def rewrite_dataset(weights: Path, name: str, value) -> None:
    with h5py.File(weights, "r+") as file:
        del file[name]
        file[name] = value


def test_a_string_dataset_is_named(elmo_files):
    options, weights = elmo_files
    rewrite_dataset(weights, "CNN_proj/b_proj", [b"not", b"a", b"number"])
    with pytest.raises(ValueError, match=r"lm_weights\.hdf5: dataset 'CNN_proj/b_proj' holds object values, not numbers"):
        BiLM.from_files(options, weights)


def test_an_integer_dataset_is_not_cast(elmo_files):
    options, weights = elmo_files
    with h5py.File(weights) as file:
        bias = file["CNN_proj/b_proj"][()]
    rewrite_dataset(weights, "CNN_proj/b_proj", (bias * 100).astype("int8"))
    with pytest.raises(ValueError, match=r"lm_weights\.hdf5: 'CNN_proj/b_proj' holds torch\.int8 values, not floats"):
        BiLM.from_files(options, weights)


def test_non_finite_weights_are_an_error(elmo_files):
    options, weights = elmo_files
    with h5py.File(weights) as file:
        kernel = file["CNN/W_cnn_0"][()]
    kernel[0, 0, 0, 0] = float("nan")
    kernel[0, 0, 0, 1] = float("inf")
    rewrite_dataset(weights, "CNN/W_cnn_0", kernel)
    with pytest.raises(ValueError, match=r"lm_weights\.hdf5: 'CNN/W_cnn_0' holds 2 NaN or infinite values"):
        BiLM.from_files(options, weights)


def test_a_truncated_converted_model(tmp_path):
    options, weights = save_converted(BiLM.from_pretrained("fixture"), tmp_path)
    weights.write_bytes(weights.read_bytes()[:-100])
    with pytest.raises(ValueError, match=r"model\.safetensors is not a readable safetensors file \(truncated or corrupted\?\)"):
        BiLM.from_files(options, weights)


def test_a_failed_load_leaves_no_half_loaded_model(elmo_files):
    """Every tensor is checked before the first is copied."""
    options, weights = elmo_files
    model = BiLM.from_files(options, weights)
    before = {name: value.clone() for name, value in model.state_dict().items()}
    with h5py.File(weights) as file:
        bias = file["RNN_1/RNN/MultiRNNCell/Cell1/LSTMCell/B"][()]
    bias[0] = float("nan")
    rewrite_dataset(weights, "RNN_1/RNN/MultiRNNCell/Cell1/LSTMCell/B", bias)
    from weights.elmo_hdf5 import load_elmo_weights
    with pytest.raises(ValueError, match="NaN"):
        load_elmo_weights(model, weights)
    for name, value in model.state_dict().items():
        torch.testing.assert_close(value, before[name], rtol=0, atol=0, msg=name)


# ----------------------------------------------------------------------------- BERT files

def bert_dir(tmp_path: Path, config, tensors=None) -> Path:
    """A checkpoint folder of a random tiny BERT; `config` is written to config.json as given."""
    torch.manual_seed(0)
    model = minibert.BertModel(minibert.BertConfig(**TINY_BERT))
    directory = tmp_path / "bert"
    directory.mkdir()
    save_converted_bert = tensors if tensors is not None else bert_tensors(model)
    save_file(save_converted_bert, str(directory / "model.safetensors"))
    (directory / "config.json").write_text(config if isinstance(config, str) else json.dumps(config))
    return directory


def bert_tensors(model) -> dict:
    from weights import bert_hf, common

    rows = common.expand_rows(bert_hf.BERT_TABLE + bert_hf.POOLER_TABLE, i=range(model.config.num_hidden_layers))
    state = model.state_dict()
    return {row.source: state[row.target].clone() for row in rows}


@pytest.mark.parametrize("config, message", [
    ("[1, 2]", r"config\.json: expected a JSON object of config fields, got list"),
    ("null", r"config\.json: expected a JSON object of config fields, got NoneType"),
    (json.dumps({**TINY_BERT, "layer_norm_eps": "1e-12"}), r"config\.json: layer_norm_eps must be a number in \[0, 1\), got '1e-12'"),
    (json.dumps({**TINY_BERT, "hidden_dropout_prob": True}), r"config\.json: hidden_dropout_prob must be a number in \[0, 1\), got True"),
    (json.dumps({**TINY_BERT, "num_hidden_layers": "1"}), r"config\.json: num_hidden_layers must be a positive integer, got '1'"),
    ("{oops", r"config\.json is not valid JSON"),
])
def test_bad_bert_config_names_the_file_and_the_field(tmp_path, config, message):
    with pytest.raises(ValueError, match=message):
        minibert.BertModel.from_pretrained(bert_dir(tmp_path, config))


def test_int8_bert_weights_are_not_cast(tmp_path):
    torch.manual_seed(0)
    tensors = bert_tensors(minibert.BertModel(minibert.BertConfig(**TINY_BERT)))
    tensors["encoder.layer.0.attention.self.query.weight"] = torch.randint(-128, 127, (8, 8), dtype=torch.int8)
    with pytest.raises(ValueError, match=r"model\.safetensors: 'encoder\.layer\.0\.attention\.self\.query\.weight' holds "
                                         r"torch\.int8 values, not floats"):
        minibert.BertModel.from_pretrained(bert_dir(tmp_path, TINY_BERT, tensors))


def test_nan_bert_weights_are_an_error(tmp_path):
    torch.manual_seed(0)
    tensors = bert_tensors(minibert.BertModel(minibert.BertConfig(**TINY_BERT)))
    tensors["embeddings.word_embeddings.weight"][3, 1] = float("nan")
    with pytest.raises(ValueError, match=r"'embeddings\.word_embeddings\.weight' holds 1 NaN or infinite values"):
        minibert.BertModel.from_pretrained(bert_dir(tmp_path, TINY_BERT, tensors))


# ----------------------------------------------------------------------------- sentence-transformers side files

TRANSFORMER = "sentence_transformers.models.Transformer"
POOLING = "sentence_transformers.models.Pooling"


@pytest.fixture
def sentence_dir(tmp_path):
    """A copy of the shipped all-MiniLM-L6-v2 folder, whose side files the tests then break."""
    from weights import resolve

    shipped = resolve("all-MiniLM-L6-v2")
    directory = tmp_path / "minilm"
    shutil.copytree(shipped, directory, ignore=shutil.ignore_patterns("model.safetensors"))
    (directory / "model.safetensors").symlink_to(shipped / "model.safetensors")  # 90 MB, only read
    return directory


@pytest.mark.parametrize("modules, message", [
    ({"0": TRANSFORMER}, r"modules\.json: expected a JSON list, got dict"),
    ([TRANSFORMER, POOLING], r"modules\.json: stage 0 needs a string \"type\" and a string \"path\", got \"sentence"),
    ([{"type": TRANSFORMER, "path": ""}, {"type": POOLING}], r"modules\.json: stage 1 needs a string \"type\" and a string \"path\""),
    ([{"type": 7, "path": ""}], r"modules\.json: stage 0 needs a string \"type\""),
])
def test_malformed_modules_json(sentence_dir, modules, message):
    (sentence_dir / "modules.json").write_text(json.dumps(modules))
    with pytest.raises(ValueError, match=message):
        minibert.SentenceEncoder.from_pretrained(sentence_dir)


@pytest.mark.parametrize("side_file", ["modules.json", "sentence_bert_config.json", "1_Pooling/config.json",
                                       "tokenizer_config.json"])
def test_invalid_json_in_a_side_file_names_it(sentence_dir, side_file):
    path = sentence_dir / side_file
    assert path.exists(), f"the shipped model has no {side_file}"
    path.write_text("{not json")
    with pytest.raises(ValueError, match=rf"{path.name} is not valid JSON"):
        minibert.SentenceEncoder.from_pretrained(sentence_dir)


SIDE_FILES = ["modules.json", "sentence_bert_config.json", "config_sentence_transformers.json",
              "1_Pooling/config.json", "tokenizer_config.json", "tokenizer.json", "config.json"]


def _replace_with(path: Path, kind: str) -> None:
    path.unlink()
    if kind == "dangling symlink":
        path.symlink_to(path.parent / "does-not-exist.json")
    else:
        os.mkfifo(path)  # opening it for reading would block forever: it must be refused unread


@pytest.mark.parametrize("kind", ["dangling symlink", "FIFO"])
@pytest.mark.parametrize("side_file", SIDE_FILES)
def test_a_side_file_present_but_unreadable_is_an_error_naming_it(sentence_dir, side_file, kind):
    """Skipping it would load another model quietly (without modules.json: no Normalize, vectors
    off by up to 1.09); the error must name the file instead."""
    path = sentence_dir / side_file
    assert path.exists(), f"the shipped model has no {side_file}"
    _replace_with(path, kind)
    expected = "is a symlink to .*, which does not exist" if kind == "dangling symlink" else r"is a FIFO|not a regular file"
    with pytest.raises((ValueError, FileNotFoundError), match=rf"{path}\b.*({expected})") as raised:
        minibert.SentenceEncoder.from_pretrained(sentence_dir)
    assert "\n" not in str(raised.value)


@pytest.mark.parametrize("kind", ["dangling symlink", "FIFO"])
def test_weights_present_but_unreadable_are_named(sentence_dir, kind):
    path = sentence_dir / "model.safetensors"
    _replace_with(path, kind)
    with pytest.raises((ValueError, FileNotFoundError), match=rf"{path}"):
        minibert.SentenceEncoder.from_pretrained(sentence_dir)


def test_unreadable_weights_say_permission_denied(sentence_dir, monkeypatch):
    """chmod 000 does not stop root, which runs the tests, so the refusal is simulated where the
    file is opened."""
    import builtins

    real_open = builtins.open

    def refusing_open(file, *args, **kwargs):
        if str(file).endswith("model.safetensors"):
            raise PermissionError(13, "Permission denied", str(file))
        return real_open(file, *args, **kwargs)

    monkeypatch.setattr(builtins, "open", refusing_open)
    with pytest.raises(PermissionError, match=r"cannot read .*model\.safetensors: permission denied"):
        minibert.SentenceEncoder.from_pretrained(sentence_dir)


@pytest.mark.parametrize("side_file", ["modules.json", "1_Pooling/config.json", "tokenizer_config.json"])
def test_unreadable_side_files_say_permission_denied(sentence_dir, side_file, monkeypatch):
    from pathlib import Path as PathClass

    real_read_text = PathClass.read_text
    target = sentence_dir / side_file

    def refusing_read_text(self, *args, **kwargs):
        if self == target:
            raise PermissionError(13, "Permission denied", str(self))
        return real_read_text(self, *args, **kwargs)

    monkeypatch.setattr(PathClass, "read_text", refusing_read_text)
    with pytest.raises(PermissionError, match=rf"cannot read {target}: permission denied"):
        minibert.SentenceEncoder.from_pretrained(sentence_dir)


@pytest.mark.parametrize("which", ["options_file", "weight_file"])
def test_an_elmo_url_says_urls_are_not_fetched(which):
    url = "https://allennlp.s3.amazonaws.com/models/elmo/2x4096_512_2048cnn_2xhighway_options.json"
    files = {"options_file": str(minielmo.FIXTURE_OPTIONS), "weight_file": str(minielmo.FIXTURE_WEIGHTS), which: url}
    for build in (minielmo.Elmo, minielmo.ElmoEmbedder, minielmo.BiLM.from_files):
        with pytest.raises(ValueError, match=rf"{which} '{url}' is a URL; URLs are not fetched"):
            build(files["options_file"], files["weight_file"])


# ----------------------------------------------------------------------------- unwritable outputs

def test_npz_to_an_unwritable_path_is_one_line(tmp_path):
    blocker = tmp_path / "a_file"
    blocker.write_text("")
    result = subprocess.run([sys.executable, "-m", "minielmo", "--npz", str(blocker / "out.npz"), "A b ."],
                            cwd=REPO, capture_output=True, text=True)
    assert result.returncode == 2
    assert result.stderr.splitlines()[-1] == f"python -m minielmo: error: cannot write --npz {blocker / 'out.npz'}: Not a directory"
    assert "Traceback" not in result.stderr


def test_convert_to_an_unwritable_path_is_one_line_and_warns_nothing(tmp_path):
    blocker = tmp_path / "a_file"
    blocker.write_text("")
    result = subprocess.run([sys.executable, "-W", "error", "-m", "minielmo.convert", str(minielmo.FIXTURE_OPTIONS),
                             str(minielmo.FIXTURE_WEIGHTS), str(blocker / "out")],
                            cwd=REPO, capture_output=True, text=True)
    assert result.returncode == 2
    assert result.stderr.splitlines()[-1] == (f"python -m minielmo.convert: error: cannot write the converted "
                                              f"model to {blocker / 'out'}: Not a directory")
    assert "Traceback" not in result.stderr and "Warning" not in result.stderr


def test_convert_runs_without_a_runpy_warning(tmp_path):
    result = subprocess.run([sys.executable, "-W", "error", "-m", "minielmo.convert", str(minielmo.FIXTURE_OPTIONS),
                             str(minielmo.FIXTURE_WEIGHTS), str(tmp_path / "out")],
                            cwd=REPO, capture_output=True, text=True)
    assert result.returncode == 0 and result.stderr == ""
    assert load_file(str(tmp_path / "out" / "model.safetensors")).keys() == BiLM.from_pretrained("fixture").state_dict().keys()
