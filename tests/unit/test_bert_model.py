"""BertModel on a tiny random config: documented shapes, defaults, fast path vs explicit path,
batch invariance, and clear errors for bad input. No checkpoint needed."""

import pytest
import torch

from minibert import BertConfig

TINY = BertConfig(vocab_size=40, hidden_size=12, num_hidden_layers=3, num_attention_heads=3,
                  intermediate_size=17, max_position_embeddings=10, type_vocab_size=2)
# Same model, same float32 maths in a different kernel or batch layout: differences are rounding
# only (measured: 1.4e-6 fused vs explicit, 1.2e-6 alone vs batched); 1e-5 is ~7x that.
SAME_MODEL_ATOL = 1e-5
SAME_MODEL_RTOL = 0.0


@pytest.fixture(scope="module")
def model(perturbed_bert):
    return perturbed_bert(TINY)


@pytest.fixture
def batch(padded_bert_batch):
    return padded_bert_batch(TINY.vocab_size)


def test_documented_output_shapes(model, batch):
    B, T = batch["input_ids"].shape
    D, H, L = TINY.hidden_size, TINY.num_attention_heads, TINY.num_hidden_layers
    with torch.no_grad():
        out = model(**batch, output_hidden_states=True, output_attentions=True)
    assert out.last_hidden_state.shape == (B, T, D)
    assert out.pooler_output.shape == (B, D)
    assert len(out.hidden_states) == L + 1 and all(h.shape == (B, T, D) for h in out.hidden_states)
    assert len(out.attentions) == L and all(a.shape == (B, H, T, T) for a in out.attentions)
    assert out.hidden_states[-1] is out.last_hidden_state
    assert out.last_hidden_state.dtype == torch.float32


def test_hidden_states_and_attentions_only_when_asked(model, batch):
    with torch.no_grad():
        out = model(**batch)
    assert out.hidden_states is None and out.attentions is None


def test_attention_rows_are_distributions_that_ignore_padding(model, batch):
    with torch.no_grad():
        attentions = model(**batch, output_attentions=True).attentions
    pad = ~batch["attention_mask"].bool()
    for probs in attentions:
        torch.testing.assert_close(probs.sum(-1), torch.ones(probs.shape[:-1]), rtol=0, atol=SAME_MODEL_ATOL)
        # finfo.min underflows exp() to exactly 0: padded keys get no weight at all.
        assert probs.masked_select(pad[:, None, None, :]).abs().max() == 0


def test_defaults_are_all_ones_mask_and_zero_token_types(model, batch):
    ids = batch["input_ids"]
    with torch.no_grad():
        implicit = model(ids)
        explicit = model(ids, attention_mask=torch.ones_like(ids), token_type_ids=torch.zeros_like(ids))
    torch.testing.assert_close(implicit.last_hidden_state, explicit.last_hidden_state, rtol=0, atol=0)


def test_fused_path_matches_explicit_path_on_padded_batch(model, batch):
    real = batch["attention_mask"].bool()
    with torch.no_grad():
        fused = model(**batch)
        explicit = model(**batch, output_attentions=True)
    torch.testing.assert_close(fused.last_hidden_state[real], explicit.last_hidden_state[real],
                               rtol=SAME_MODEL_RTOL, atol=SAME_MODEL_ATOL)
    torch.testing.assert_close(fused.pooler_output, explicit.pooler_output, rtol=SAME_MODEL_RTOL, atol=SAME_MODEL_ATOL)


@pytest.mark.parametrize("output_attentions", [False, True])
def test_sentence_alone_equals_sentence_in_padded_batch(model, batch, output_attentions):
    with torch.no_grad():
        together = model(**batch, output_attentions=output_attentions)
        for row in range(len(batch["input_ids"])):
            n = int(batch["attention_mask"][row].sum())
            alone = model(batch["input_ids"][row:row + 1, :n], token_type_ids=batch["token_type_ids"][row:row + 1, :n],
                          output_attentions=output_attentions)
            torch.testing.assert_close(together.last_hidden_state[row, :n], alone.last_hidden_state[0],
                                       rtol=SAME_MODEL_RTOL, atol=SAME_MODEL_ATOL)
            torch.testing.assert_close(together.pooler_output[row], alone.pooler_output[0],
                                       rtol=SAME_MODEL_RTOL, atol=SAME_MODEL_ATOL)


def test_forward_does_not_modify_its_inputs(model, batch):
    before = {key: value.clone() for key, value in batch.items()}
    with torch.no_grad():
        model(**batch, output_attentions=True)
    for key in batch:
        torch.testing.assert_close(batch[key], before[key], rtol=0, atol=0)


# ----------------------------------------------------------------------------- bad input

def test_id_outside_vocabulary(model):
    ids = torch.tensor([[1, 2, 3], [4, TINY.vocab_size, 5]])
    with pytest.raises(ValueError, match=r"input_ids\[1, 1\] = 40 is outside the vocabulary \[0, 40\)"):
        model(ids)


def test_negative_id(model):
    with pytest.raises(ValueError, match=r"input_ids\[0, 2\] = -1 is outside the vocabulary"):
        model(torch.tensor([[1, 2, -1]]))


def test_sequence_longer_than_max_positions(model):
    with pytest.raises(ValueError, match="sequence length 11 exceeds max_position_embeddings=10"):
        model(torch.ones(1, 11, dtype=torch.long))


def test_mismatched_mask_shape(model):
    with pytest.raises(ValueError, match=r"attention_mask must have the shape of input_ids \(2, 3\), got a tensor of shape \(2, 4\)"):
        model(torch.ones(2, 3, dtype=torch.long), attention_mask=torch.ones(2, 4, dtype=torch.long))


def test_mask_values_other_than_zero_and_one(model):
    # A mask of 2s would flip the additive mask's sign and overflow to inf; refuse it up front.
    with pytest.raises(ValueError, match=r"attention_mask must hold only 1 .* and 0 .*, got values \[0, 2\]"):
        model(torch.ones(1, 3, dtype=torch.long), attention_mask=torch.tensor([[2, 2, 0]]))


def test_boolean_mask_is_accepted(model, batch):
    with torch.no_grad():
        as_bool = model(batch["input_ids"], attention_mask=batch["attention_mask"].bool())
        as_long = model(batch["input_ids"], attention_mask=batch["attention_mask"])
    torch.testing.assert_close(as_bool.last_hidden_state, as_long.last_hidden_state, rtol=0, atol=0)


def test_mismatched_token_type_shape(model):
    with pytest.raises(ValueError, match=r"token_type_ids must have the shape of input_ids"):
        model(torch.ones(2, 3, dtype=torch.long), token_type_ids=torch.zeros(3, dtype=torch.long))


def test_token_type_outside_type_vocabulary(model):
    with pytest.raises(ValueError, match="token_type_ids hold 2 .* type_vocab_size=2"):
        model(torch.ones(1, 3, dtype=torch.long), token_type_ids=torch.tensor([[0, 1, 2]]))


def test_float_ids_are_a_type_error(model):
    with pytest.raises(TypeError, match="tensor of token ids, got dtype torch.float32"):
        model(torch.ones(1, 3))


@pytest.mark.parametrize("dtype", [torch.int8, torch.int16, torch.uint8])
def test_narrow_integer_ids_are_a_type_error_not_a_wrapped_around_id(model, dtype):
    # int8 cannot hold id 200: torch.tensor([[200]]).to(torch.int8) is -56, which used to be
    # reported as "outside the vocabulary" although the caller's id was fine.
    with pytest.raises(TypeError, match=f"input_ids must be a torch.long .or int32. tensor of token ids, got dtype {dtype}"):
        model(torch.tensor([[1, 2, 3]], dtype=dtype))


def test_int32_ids_give_the_long_result(model, batch):
    with torch.no_grad():
        as_int32 = model(batch["input_ids"].int(), attention_mask=batch["attention_mask"])
        as_long = model(batch["input_ids"], attention_mask=batch["attention_mask"])
    torch.testing.assert_close(as_int32.last_hidden_state, as_long.last_hidden_state, rtol=0, atol=0)


def test_float_token_type_ids_are_a_type_error(model):
    with pytest.raises(TypeError, match="token_type_ids must be a torch.long .or int32. tensor .*got dtype torch.float32"):
        model(torch.ones(1, 3, dtype=torch.long), token_type_ids=torch.zeros(1, 3))


def test_unbatched_ids_are_a_type_error(model):
    with pytest.raises(TypeError, match=r"input_ids must be a \(B, T\) tensor, got a tensor of shape \(3,\)"):
        model(torch.tensor([1, 2, 3]))


def test_list_ids_are_a_type_error(model):
    with pytest.raises(TypeError, match="input_ids must be a .B, T. tensor, got list"):
        model([[1, 2, 3]])


def test_zero_length_input_is_a_clear_error(model):
    # With no tokens there is no [CLS] position for the pooler; this used to be an IndexError there.
    with pytest.raises(ValueError, match=r"input_ids has no tokens \(shape \(1, 0\)\)"):
        model(torch.zeros(1, 0, dtype=torch.long))
