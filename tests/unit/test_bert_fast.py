"""minibert/fast.py against the explicit teaching path of minibert/model.py.

The fast path packs padding away, fuses query/key/value into one matmul and uses PyTorch's fused
LayerNorm, GELU and attention kernels; none of that may change the numbers beyond float32 noise.
Compared at real (non-padded) positions, on padded batches, the tiny random model and real MiniLM.
"""

import pytest
import torch

from minibert import BertConfig, BertModel
from minibert import fast

# Same float32 maths in a different order (fused kernels, one QKV matmul): differences are
# rounding noise, measured ~4e-6 on MiniLM's last layer; 1e-5 is the project's tolerance for it.
FAST_VS_EXPLICIT_ATOL = 1e-5

TINY = BertConfig(vocab_size=99, hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
                  intermediate_size=37, max_position_embeddings=64)


@pytest.fixture(scope="module")
def tiny_model(perturbed_bert):
    return perturbed_bert(TINY)


@pytest.fixture
def tiny_batch(padded_bert_batch):
    return padded_bert_batch(TINY.vocab_size)


def teaching(model, batch):
    """The path a teacher uses: explicit attention with probabilities, hand-written ops."""
    with torch.no_grad():
        return model(**batch, output_attentions=True).last_hidden_state


def assert_real_positions_close(ours, ref, attention_mask):
    real = attention_mask.bool()
    torch.testing.assert_close(ours[real], ref[real], rtol=0, atol=FAST_VS_EXPLICIT_ATOL)


def test_tiny_model_fast_equals_teaching_path_on_padded_batch(tiny_model, tiny_batch):
    with torch.inference_mode():
        ours = fast.last_hidden_state(tiny_model, **tiny_batch)
    assert_real_positions_close(ours, teaching(tiny_model, tiny_batch), tiny_batch["attention_mask"])


def test_padded_positions_are_zero(tiny_model, tiny_batch):
    with torch.inference_mode():
        ours = fast.last_hidden_state(tiny_model, **tiny_batch)
    padding = ~tiny_batch["attention_mask"].bool()
    assert padding.any()
    torch.testing.assert_close(ours[padding], torch.zeros_like(ours[padding]), rtol=0, atol=0)


def test_defaults_match_model_defaults(tiny_model, tiny_batch):
    ids = tiny_batch["input_ids"]
    with torch.inference_mode():
        ours = fast.last_hidden_state(tiny_model, ids)
        ref = tiny_model(ids).last_hidden_state
    torch.testing.assert_close(ours, ref, rtol=0, atol=FAST_VS_EXPLICIT_ATOL)


def test_fused_qkv_follows_in_place_weight_changes(tiny_batch):
    """The stacked QKV weight is a cache; changing query/key/value in place must rebuild it."""
    torch.manual_seed(0)
    model = BertModel(TINY).eval()
    with torch.inference_mode():
        before = fast.last_hidden_state(model, **tiny_batch)
    with torch.no_grad():
        model.encoder.layers[0].attn.key.weight.mul_(3.0)
        model.encoder.layers[1].attn.value.bias.add_(0.5)
    with torch.inference_mode():
        after = fast.last_hidden_state(model, **tiny_batch)
    real = tiny_batch["attention_mask"].bool()
    assert (after[real] - before[real]).abs().max() > 100 * FAST_VS_EXPLICIT_ATOL  # the change is seen
    assert_real_positions_close(after, teaching(model, tiny_batch), tiny_batch["attention_mask"])


def test_bad_input_gets_the_models_clear_error(tiny_model):
    with pytest.raises(ValueError, match="outside the vocabulary"):
        fast.last_hidden_state(tiny_model, torch.tensor([[1, 2, TINY.vocab_size]]))
    with pytest.raises(TypeError, match="input_ids must be a"):
        fast.last_hidden_state(tiny_model, torch.tensor([1, 2, 3]))


@pytest.mark.slow
def test_minilm_fast_equals_teaching_path_on_padded_batch(bert_minilm, bert_minilm_batch, torch_single_thread):
    with torch.inference_mode():
        ours = fast.last_hidden_state(bert_minilm, **bert_minilm_batch)
    assert_real_positions_close(ours, teaching(bert_minilm, bert_minilm_batch), bert_minilm_batch["attention_mask"])


@pytest.mark.parametrize("threads", [1, 2])
def test_map_batches_equals_a_loop_and_restores_threads(threads):
    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        batches = [torch.full((3,), float(i)) for i in range(5)]

        def work(x):
            assert torch.is_inference_mode_enabled()  # sequential or in a worker thread alike
            return (x * 2).sum()

        results = list(fast.map_batches(work, batches))
        assert [r.item() for r in results] == [(b * 2).sum().item() for b in batches]
        assert torch.get_num_threads() == threads
    finally:
        torch.set_num_threads(before)


@pytest.mark.slow
def test_sentence_encoder_runs_the_model_itself_when_a_hook_watches(minilm_dir, torch_single_thread):
    """SentenceEncoder uses the fast path, unless a forward hook is registered: then every module
    runs (so the hook fires) and the vectors are the same."""
    import minibert

    encoder = minibert.SentenceEncoder.from_pretrained(minilm_dir)
    texts = ["The bank approved my loan application.", "Hi", "We sat on the bank of the river, quietly."]
    fast_vectors = encoder.encode(texts)
    calls = []
    handle = encoder.model.encoder.layers[2].attn.register_forward_hook(lambda module, args, out: calls.append(1))
    try:
        watched_vectors = encoder.encode(texts)
    finally:
        handle.remove()
    assert calls, "the hook on layer 2's attention never fired"
    torch.testing.assert_close(torch.from_numpy(watched_vectors), torch.from_numpy(fast_vectors),
                               rtol=0, atol=FAST_VS_EXPLICIT_ATOL)
