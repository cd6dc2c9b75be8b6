"""BertConfig: HF field names, unrelated keys ignored, unsupported settings refused clearly."""

import dataclasses
import json

import pytest

import weights
from minibert import BertConfig


def test_reads_the_minilm_config_json():
    config = BertConfig.from_json(weights.resolve("all-MiniLM-L6-v2") / "config.json")
    # Values from the shipped config.json (all-MiniLM-L6-v2, revision 1110a243).
    assert (config.hidden_size, config.num_hidden_layers, config.num_attention_heads) == (384, 6, 12)
    assert (config.intermediate_size, config.vocab_size, config.layer_norm_eps) == (1536, 30522, 1e-12)
    assert config.head_dim == 32 and config.hidden_act == "gelu"


def test_unrelated_hf_keys_are_ignored():
    config = BertConfig.from_dict({"hidden_size": 8, "num_attention_heads": 2, "architectures": ["BertModel"],
                                   "use_cache": True, "transformers_version": "4.8.2", "gradient_checkpointing": False})
    assert config.hidden_size == 8


def test_config_is_frozen():
    with pytest.raises(dataclasses.FrozenInstanceError):
        BertConfig().hidden_size = 1


def test_hidden_size_must_divide_into_heads():
    with pytest.raises(ValueError, match=r"hidden_size \(10\) must be divisible by num_attention_heads \(3\)"):
        BertConfig(hidden_size=10, num_attention_heads=3)


@pytest.mark.parametrize("activation", ["gelu", "gelu_new", "gelu_pytorch_tanh", "relu"])
def test_supported_activations(activation):
    assert BertConfig(hidden_act=activation).hidden_act == activation


@pytest.mark.parametrize("activation", ["silu", "gelu_fast", "tanh"])
def test_unsupported_activation_is_refused(activation):
    with pytest.raises(ValueError, match=f"hidden_act '{activation}' is not supported"):
        BertConfig(hidden_act=activation)


@pytest.mark.parametrize("kind", ["relative_key", "relative_key_query"])
def test_only_absolute_positions(kind):
    with pytest.raises(ValueError, match=f"position_embedding_type '{kind}' is not supported"):
        BertConfig.from_dict({"position_embedding_type": kind})


def test_other_model_type_is_refused():
    with pytest.raises(ValueError, match="model_type 'distilbert'"):
        BertConfig.from_dict({"model_type": "distilbert"})


def test_non_positive_sizes_are_refused():
    with pytest.raises(ValueError, match="type_vocab_size must be a positive integer"):
        BertConfig(type_vocab_size=0)


def test_invalid_json_names_the_file(tmp_path):
    path = tmp_path / "config.json"
    path.write_text("{not json")
    with pytest.raises(ValueError, match="config.json is not valid JSON"):
        BertConfig.from_json(path)


def test_round_trip_through_json(tmp_path):
    config = BertConfig(hidden_size=12, num_attention_heads=3, layer_norm_eps=1e-7, type_vocab_size=1)
    path = tmp_path / "config.json"
    path.write_text(json.dumps(dataclasses.asdict(config)))
    assert BertConfig.from_json(path) == config


def test_zero_heads_is_a_clear_error_not_a_division_by_zero():
    with pytest.raises(ValueError, match="num_attention_heads must be a positive integer"):
        BertConfig(num_attention_heads=0)


@pytest.mark.parametrize("flag", ["is_decoder", "add_cross_attention"])
def test_decoder_configs_are_refused(flag):
    # transformers then masks attention causally (is_decoder) or adds cross-attention layers; our
    # encoder would silently compute bidirectional self-attention instead (measured: 2.7e-2 off).
    with pytest.raises(ValueError, match=f"{flag}=True .* only the bidirectional encoder"):
        BertConfig.from_dict({flag: True})


def test_decoder_flags_set_to_false_are_fine():
    assert BertConfig.from_dict({"is_decoder": False, "add_cross_attention": False}).hidden_size == 768
