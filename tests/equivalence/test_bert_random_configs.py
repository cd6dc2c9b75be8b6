"""Tier 1: random small BERTs built by transformers, saved with save_pretrained, loaded through OUR
loader (weights/), compared layer by layer. No real checkpoint needed; seconds per example.

Every parameter is perturbed away from transformers' init (LayerNorm weights start at exactly 1,
biases at 0), so a table row that swapped two same-shaped tensors would be caught.
"""

import tempfile

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import minibert
from minibert.config import SUPPORTED_ACTIVATIONS
from minibert.verify import assert_layers_close

# float32, tiny random models, activations of order 1: two correct implementations differ by
# ~1e-6 (measured: max 3.6e-6 over 120 random configs of this strategy); 1e-5 is ~3x that.
# The 0.2 perturbation keeps that noise low while a wrong GELU variant shows as ~1e-4.
RANDOM_ATOL = 1e-5
RANDOM_RTOL = 0.0  # max-abs is the contract

import transformers  # noqa: E402  (the test extra; without it this must fail, not skip)


def build_reference(model_class, seed: int, **config_fields):
    """A transformers model with eager attention and every parameter randomised."""
    torch.manual_seed(seed)
    config = transformers.BertConfig(attn_implementation="eager", **config_fields)
    model = model_class(config).eval()
    with torch.no_grad():
        for parameter in model.parameters():
            parameter.add_(0.2 * torch.randn_like(parameter))
    return model


def random_batch(seed: int, batch: int, length: int, vocab_size: int, type_vocab_size: int):
    generator = torch.Generator().manual_seed(seed)
    input_ids = torch.randint(0, vocab_size, (batch, length), generator=generator)
    lengths = torch.randint(1, length + 1, (batch,), generator=generator)      # at least one real token
    attention_mask = (torch.arange(length)[None, :] < lengths[:, None]).long()  # right padding
    token_type_ids = torch.randint(0, type_vocab_size, (batch, length), generator=generator)
    return {"input_ids": input_ids, "attention_mask": attention_mask, "token_type_ids": token_type_ids}


def save_and_load_ours(reference) -> minibert.BertModel:
    with tempfile.TemporaryDirectory() as directory:
        reference.save_pretrained(directory)
        return minibert.BertModel.from_pretrained(directory)


@st.composite
def bert_configs(draw):
    heads = draw(st.integers(1, 6))
    return dict(
        num_attention_heads=heads,
        hidden_size=heads * draw(st.integers(1, 8)),
        intermediate_size=draw(st.integers(1, 40)) * 2 + 1,  # odd on purpose: no power-of-two luck
        num_hidden_layers=draw(st.integers(1, 3)),
        hidden_act=draw(st.sampled_from(SUPPORTED_ACTIVATIONS)),
        layer_norm_eps=10.0 ** draw(st.floats(-12, -5)),
        type_vocab_size=draw(st.integers(1, 3)),
        vocab_size=draw(st.integers(5, 120)),
        max_position_embeddings=draw(st.integers(4, 40)),
    )


@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(config_fields=bert_configs(), with_pooler=st.booleans(), seed=st.integers(0, 2**16),
       batch=st.integers(1, 4), data=st.data())
def test_random_bert_configs_through_our_loader(config_fields, with_pooler, seed, batch, data):
    length = data.draw(st.integers(1, config_fields["max_position_embeddings"]), label="length")
    reference = build_reference(lambda c: transformers.BertModel(c, add_pooling_layer=with_pooler),
                                seed, **config_fields)
    ours = save_and_load_ours(reference)
    assert set(ours.load_report.loaded) == set(ours.state_dict())  # every parameter filled
    assert (ours.pooler is not None) == with_pooler

    inputs = random_batch(seed, batch, length, config_fields["vocab_size"], config_fields["type_vocab_size"])
    with torch.no_grad():
        ours_out = ours(**inputs, output_hidden_states=True, output_attentions=True)
        ref_out = reference(**inputs, output_hidden_states=True, output_attentions=True)
    # Names the first diverging stage (embeddings, layer i attention/output, pooler) on failure.
    assert_layers_close(ours_out, ref_out, inputs["attention_mask"], atol=RANDOM_ATOL)
    real = inputs["attention_mask"].bool()
    torch.testing.assert_close(ours_out.last_hidden_state[real], ref_out.last_hidden_state[real],
                               rtol=RANDOM_RTOL, atol=RANDOM_ATOL)
    if with_pooler:
        torch.testing.assert_close(ours_out.pooler_output, ref_out.pooler_output, rtol=RANDOM_RTOL, atol=RANDOM_ATOL)
    else:
        assert ours_out.pooler_output is None


TINY = dict(hidden_size=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=37, vocab_size=99)


def test_bert_prefixed_pretraining_checkpoint_loads_and_ignores_heads():
    # BertForPreTraining saves the encoder under "bert." plus the MLM/NSP heads under "cls.".
    reference = build_reference(transformers.BertForPreTraining, seed=0, **TINY)
    ours = save_and_load_ours(reference)
    report = ours.load_report
    assert all(source.startswith("bert.") for source in report.loaded.values())
    assert any(key.startswith("cls.") for key in report.ignored)

    inputs = random_batch(0, 3, 9, TINY["vocab_size"], 2)
    with torch.no_grad():
        ours_out = ours(**inputs, output_hidden_states=True, output_attentions=True)
        ref_out = reference.bert(**inputs, output_hidden_states=True, output_attentions=True)
    assert_layers_close(ours_out, ref_out, inputs["attention_mask"], atol=RANDOM_ATOL)


def test_classification_checkpoint_ignores_its_task_head():
    reference = build_reference(transformers.BertForSequenceClassification, seed=2, num_labels=3, **TINY)
    ours = save_and_load_ours(reference)
    assert set(ours.load_report.ignored) >= {"classifier.weight", "classifier.bias"}
    inputs = random_batch(2, 2, 6, TINY["vocab_size"], 2)
    with torch.no_grad():
        ours_out = ours(**inputs, output_hidden_states=True, output_attentions=True)
        ref_out = reference.bert(**inputs, output_hidden_states=True, output_attentions=True)
    assert_layers_close(ours_out, ref_out, inputs["attention_mask"], atol=RANDOM_ATOL)


def test_masked_lm_checkpoint_has_no_pooler():
    reference = build_reference(transformers.BertForMaskedLM, seed=1, **TINY)
    ours = save_and_load_ours(reference)
    assert ours.pooler is None
    inputs = random_batch(1, 2, 7, TINY["vocab_size"], 2)
    with torch.no_grad():
        ours_out = ours(**inputs, output_hidden_states=True)
        ref_out = reference.bert(**inputs, output_hidden_states=True)
    assert ours_out.pooler_output is None
    assert_layers_close(ours_out, ref_out, inputs["attention_mask"], atol=RANDOM_ATOL)


def test_decoder_checkpoint_is_refused_not_run_bidirectionally(tmp_path):
    # BertLMHeadModel saves is_decoder=true; transformers' BertModel then attends causally.
    reference = build_reference(transformers.BertLMHeadModel, seed=3, is_decoder=True, **TINY)
    reference.save_pretrained(tmp_path)
    with pytest.raises(ValueError, match="is_decoder=True"):
        minibert.BertModel.from_pretrained(tmp_path)


def test_question_answering_checkpoint_ignores_its_span_head():
    reference = build_reference(transformers.BertForQuestionAnswering, seed=4, **TINY)
    ours = save_and_load_ours(reference)
    assert set(ours.load_report.ignored) >= {"qa_outputs.weight", "qa_outputs.bias"}
    inputs = random_batch(4, 2, 6, TINY["vocab_size"], 2)
    with torch.no_grad():
        ours_out = ours(**inputs, output_hidden_states=True)
        ref_out = reference.bert(**inputs, output_hidden_states=True)
    assert_layers_close(ours_out, ref_out, inputs["attention_mask"], atol=RANDOM_ATOL)


def legacy_layer_norm_names(tensors: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Rename LayerNorm.weight/.bias to the TF-era gamma/beta, as in bert-base-uncased's own files."""
    legacy = {"weight": "gamma", "bias": "beta"}
    renamed = {}
    for key, tensor in tensors.items():
        head, _, last = key.rpartition(".")
        renamed[f"{head}.{legacy[last]}" if head.endswith("LayerNorm") else key] = tensor
    return renamed


def test_legacy_gamma_beta_layer_norm_names_load_like_transformers(tmp_path):
    from safetensors.torch import load_file, save_file

    reference = build_reference(transformers.BertForPreTraining, seed=5, **TINY)
    reference.save_pretrained(tmp_path)
    tensors = legacy_layer_norm_names(load_file(tmp_path / "model.safetensors"))
    assert "bert.embeddings.LayerNorm.gamma" in tensors
    save_file(tensors, tmp_path / "model.safetensors", metadata={"format": "pt"})

    # transformers 5.24 renames gamma/beta back on load; compare with what it loaded from this file.
    legacy_reference = transformers.BertModel.from_pretrained(tmp_path, attn_implementation="eager").eval()
    ours = minibert.BertModel.from_pretrained(tmp_path)
    assert ours.load_report.loaded["embeddings.norm.weight"] == "bert.embeddings.LayerNorm.gamma"
    inputs = random_batch(5, 2, 8, TINY["vocab_size"], 2)
    with torch.no_grad():
        ours_out = ours(**inputs, output_hidden_states=True, output_attentions=True)
        ref_out = legacy_reference(**inputs, output_hidden_states=True, output_attentions=True)
    assert_layers_close(ours_out, ref_out, inputs["attention_mask"], atol=RANDOM_ATOL)


def test_both_current_and_legacy_layer_norm_names_are_refused(tmp_path):
    reference = build_reference(transformers.BertModel, seed=6, **TINY)
    reference.save_pretrained(tmp_path)
    from safetensors.torch import load_file, save_file

    tensors = load_file(tmp_path / "model.safetensors")
    tensors["embeddings.LayerNorm.gamma"] = tensors["embeddings.LayerNorm.weight"].clone()
    save_file(tensors, tmp_path / "model.safetensors", metadata={"format": "pt"})
    with pytest.raises(ValueError, match=r"both 'embeddings.LayerNorm.weight' and its legacy name 'embeddings.LayerNorm.gamma'"):
        minibert.BertModel.from_pretrained(tmp_path)
