"""minibert.verify: the layer diff utility names the first stage that diverges."""

import copy

import pytest
import torch

from minibert import BertConfig, BertModel
from minibert import verify

TINY = BertConfig(vocab_size=30, hidden_size=8, num_hidden_layers=3, num_attention_heads=2,
                  intermediate_size=11, max_position_embeddings=12)


@pytest.fixture(scope="module")
def pair():
    torch.manual_seed(0)
    model = BertModel(TINY).eval()
    return model, copy.deepcopy(model)


def run(model, **kwargs):
    ids = torch.tensor([[1, 5, 7, 9, 2], [1, 4, 2, 0, 0]])
    mask = torch.tensor([[1, 1, 1, 1, 1], [1, 1, 1, 0, 0]])
    with torch.no_grad():
        return model(ids, mask, output_hidden_states=True, output_attentions=True), mask


def test_identical_models_do_not_diverge(pair):
    (ours, mask), (theirs, _) = run(pair[0]), run(pair[1])
    rows = verify.assert_layers_close(ours, theirs, mask)
    assert [row.name for row in rows] == ["embeddings", "layer 1 attention", "layer 1 output", "layer 2 attention",
                                          "layer 2 output", "layer 3 attention", "layer 3 output", "pooler"]
    assert all(row.max_abs_diff == 0 for row in rows)


def test_first_diverging_stage_is_named(pair):
    model, broken = pair[0], copy.deepcopy(pair[1])
    with torch.no_grad():
        # Inside layer 2's FFN, after its attention. (Not a uniform bias shift: LayerNorm removes those.)
        broken.encoder.layers[1].ffn.ffn_out.weight[0, 0] += 0.1
    (ours, mask), (theirs, _) = run(model), run(broken)
    rows = verify.layer_diffs(ours, theirs, mask)
    assert verify.first_divergence(rows).name == "layer 2 output"
    with pytest.raises(AssertionError, match="first diverging stage: layer 2 output"):
        verify.assert_layers_close(ours, theirs, mask)
    assert "<-- above" in verify.format_diffs(rows)


def test_padding_is_not_compared(pair):
    (ours, mask), (theirs, _) = run(pair[0]), run(pair[1])
    theirs.hidden_states[2][1, 3:] += 100.0   # garbage at padded positions only
    theirs.attentions[0][1, :, 4] += 100.0    # garbage in a padded query's row
    assert verify.first_divergence(verify.layer_diffs(ours, theirs, mask)) is None


def test_nan_counts_as_divergence(pair):
    (ours, mask), (theirs, _) = run(pair[0]), run(pair[1])
    theirs.hidden_states[0][0, 0, 0] = float("nan")
    assert verify.first_divergence(verify.layer_diffs(ours, theirs, mask)).name == "embeddings"


def test_depth_mismatch_is_a_clear_error(pair):
    (ours, mask), (theirs, _) = run(pair[0]), run(pair[1])
    theirs.hidden_states = theirs.hidden_states[:-1]
    with pytest.raises(ValueError, match="not the same depth"):
        verify.layer_diffs(ours, theirs, mask)


def test_verify_without_transformers_explains_how_to_install(monkeypatch, capsys):
    def no_transformers(name):
        raise ModuleNotFoundError(f"No module named {name!r}")
    monkeypatch.setattr(verify.importlib, "import_module", no_transformers)
    assert verify.run_verify(["hello"]) == 2
    assert 'pip install -e ".[test]"' in capsys.readouterr().err
