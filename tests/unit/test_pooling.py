"""pooling/ against sentence-transformers' Pooling and Normalize modules (the library twins)."""

import json

import pytest
import torch
import torch.nn.functional as F
from sentence_transformers.base.modules.normalize import Normalize
from sentence_transformers.sentence_transformer.modules import Pooling

import pooling

# Same float32 ops in the same order as sentence-transformers (masked sum, clamp, divide;
# masked_fill + max; index gather), so the results should agree to the last bit; 1e-6 only
# leaves room for a different reduction order inside torch's sum kernels.
POOL_RTOL = 1e-6
POOL_ATOL = 1e-6

MODES = {  # our function -> sentence-transformers' mode name
    pooling.mean: "mean",
    pooling.cls: "cls",
    pooling.max: "max",
    pooling.mean_sqrt_len: "mean_sqrt_len_tokens",
}


def _batch(seed, B=4, T=7, D=5, left_pad=False):
    """Random token vectors and a padding mask where text i has a random length >= 1."""
    g = torch.Generator().manual_seed(seed)
    token_embeddings = torch.randn(B, T, D, generator=g)
    lengths = torch.randint(1, T + 1, (B,), generator=g)
    lengths[0] = T  # at least one full row, as in a real padded batch
    positions = torch.arange(T).unsqueeze(0)  # (1, T)
    if left_pad:
        mask = positions >= (T - lengths).unsqueeze(1)
    else:
        mask = positions < lengths.unsqueeze(1)
    return token_embeddings, mask.long(), lengths


def _reference(token_embeddings, mask, mode):
    features = {"token_embeddings": token_embeddings.clone(), "attention_mask": mask.clone()}
    return Pooling(token_embeddings.shape[-1], pooling_mode=mode)(features)["sentence_embedding"]


@pytest.mark.parametrize("ours,mode", list(MODES.items()), ids=list(MODES.values()))
@pytest.mark.parametrize("left_pad", [False, True], ids=["right_pad", "left_pad"])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_matches_sentence_transformers_pooling(ours, mode, left_pad, seed):
    token_embeddings, mask, _ = _batch(seed, left_pad=left_pad)
    torch.testing.assert_close(
        ours(token_embeddings, mask), _reference(token_embeddings, mask, mode), rtol=POOL_RTOL, atol=POOL_ATOL
    )


@pytest.mark.parametrize("ours", list(MODES), ids=list(MODES.values()))
def test_padding_never_leaks(ours):
    """Huge values at padded positions must not change any text's pooled vector."""
    token_embeddings, mask, lengths = _batch(3)
    poisoned = token_embeddings.masked_fill((mask == 0).unsqueeze(-1), 1e6)
    torch.testing.assert_close(ours(poisoned, mask), ours(token_embeddings, mask), rtol=0, atol=0)
    # And each row equals pooling that text alone, with no padding at all.
    for i, n in enumerate(lengths.tolist()):
        alone = ours(token_embeddings[i : i + 1, :n], mask[i : i + 1, :n])
        torch.testing.assert_close(ours(poisoned, mask)[i : i + 1], alone, rtol=POOL_RTOL, atol=POOL_ATOL)


def test_max_pooling_with_all_negative_real_tokens_ignores_zero_padding():
    """A naive `(x * mask).max()` would return 0 from the padding; the masked max must not."""
    token_embeddings = -torch.rand(1, 4, 3) - 1.0  # every real value is < -1
    mask = torch.tensor([[1, 1, 0, 0]])
    out = pooling.max(token_embeddings, mask)
    torch.testing.assert_close(out, token_embeddings[:, :2].amax(dim=1), rtol=0, atol=0)


@pytest.mark.parametrize("ours", list(MODES), ids=list(MODES.values()))
def test_does_not_mutate_caller_tensors(ours):
    token_embeddings, mask, _ = _batch(4)
    embeddings_before, mask_before = token_embeddings.clone(), mask.clone()
    ours(token_embeddings, mask)
    torch.testing.assert_close(token_embeddings, embeddings_before, rtol=0, atol=0)
    torch.testing.assert_close(mask, mask_before, rtol=0, atol=0)


@pytest.mark.parametrize("ours", list(MODES), ids=list(MODES.values()))
@pytest.mark.parametrize("shape", [(1, 1, 1), (2, 3, 1024), (5, 11, 7)])
def test_any_shape_and_bool_or_float_masks(ours, shape):
    """Any (B, T, D) works (ELMo vectors use these too), with long, bool or float masks."""
    B, T, D = shape
    token_embeddings = torch.randn(shape, generator=torch.Generator().manual_seed(5))
    mask = torch.ones(B, T, dtype=torch.long)
    mask[:, T // 2 + 1 :] = 0
    out = ours(token_embeddings, mask)
    assert out.shape == (B, D)
    for same_mask in (mask.bool(), mask.float()):
        torch.testing.assert_close(ours(token_embeddings, same_mask), out, rtol=0, atol=0)


@pytest.mark.parametrize(
    "embeddings",
    [torch.randn(4, 9, generator=torch.Generator().manual_seed(6)), torch.zeros(2, 3), torch.full((1, 4), 1e-20)],
    ids=["random", "zeros", "tiny"],
)
def test_normalize_matches_torch_and_sentence_transformers(embeddings):
    ours = pooling.normalize(embeddings)
    torch.testing.assert_close(ours, F.normalize(embeddings, p=2, dim=-1), rtol=0, atol=0)
    reference = Normalize()({"sentence_embedding": embeddings.clone()})["sentence_embedding"]
    torch.testing.assert_close(ours, reference, rtol=0, atol=0)


@pytest.mark.parametrize("bad_mask_shape", [(4, 6), (3, 7), (4, 7, 1)])
def test_mismatched_mask_shape_is_a_clear_error(bad_mask_shape):
    token_embeddings = torch.zeros(4, 7, 5)
    with pytest.raises(ValueError, match=r"attention_mask must be \(B, T\)"):
        pooling.mean(token_embeddings, torch.ones(bad_mask_shape))


def test_two_dimensional_embeddings_are_a_clear_error():
    with pytest.raises(ValueError, match=r"token_embeddings must be \(B, T, D\)"):
        pooling.max(torch.zeros(4, 7), torch.ones(4, 7))


# ----- the pooling config reader -----------------------------------------------------------------

LEGACY_FLAGS = [
    "pooling_mode_cls_token",
    "pooling_mode_max_tokens",
    "pooling_mode_mean_tokens",
    "pooling_mode_mean_sqrt_len_tokens",
]


@pytest.mark.parametrize(
    "flags_on",
    [
        ["pooling_mode_mean_tokens"],
        ["pooling_mode_cls_token"],
        ["pooling_mode_max_tokens", "pooling_mode_cls_token"],
        ["pooling_mode_mean_sqrt_len_tokens", "pooling_mode_mean_tokens", "pooling_mode_max_tokens"],
        LEGACY_FLAGS,
        [],  # no flag set: sentence-transformers falls back to mean
    ],
)
def test_config_reader_concatenates_in_sentence_transformers_order(tmp_path, flags_on):
    D = 5
    raw = {"word_embedding_dimension": D, **{f: f in flags_on for f in LEGACY_FLAGS}}
    (tmp_path / "config.json").write_text(json.dumps(raw))

    config = pooling.PoolingConfig.from_file(tmp_path)
    token_embeddings, mask, _ = _batch(7, D=D)
    ours = pooling.pool(token_embeddings, mask, config.pooling_modes)

    reference_module = Pooling.load(str(tmp_path))
    features = {"token_embeddings": token_embeddings.clone(), "attention_mask": mask.clone()}
    reference = reference_module(features)["sentence_embedding"]
    assert config.output_dimension == reference_module.get_embedding_dimension()
    torch.testing.assert_close(ours, reference, rtol=POOL_RTOL, atol=POOL_ATOL)


def test_config_reader_on_the_minilm_file(minilm_dir):
    config = pooling.PoolingConfig.from_file(minilm_dir / "1_Pooling" / "config.json")
    assert config == pooling.PoolingConfig(word_embedding_dimension=384, pooling_modes=("mean",))


def test_config_reader_accepts_the_new_pooling_mode_key(tmp_path):
    (tmp_path / "config.json").write_text(json.dumps({"embedding_dimension": 8, "pooling_mode": ["max", "cls"]}))
    config = pooling.PoolingConfig.from_file(tmp_path)
    assert config.pooling_modes == ("max", "cls")
    assert config.output_dimension == 16


def test_config_reader_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="no sentence-transformers pooling config"):
        pooling.PoolingConfig.from_file(tmp_path / "missing")
    with pytest.raises(ValueError, match="weightedmean"):
        pooling.PoolingConfig.from_dict({"word_embedding_dimension": 4, "pooling_mode_weightedmean_tokens": True})
    with pytest.raises(ValueError, match="word_embedding_dimension"):
        pooling.PoolingConfig.from_dict({"pooling_mode_mean_tokens": True})


# ----- refused inputs: one clear line each -------------------------------------------------------

def test_pool_refuses_an_unknown_mode_listing_the_valid_ones():
    token_embeddings, mask, _ = _batch(8)
    with pytest.raises(ValueError, match=r"unknown pooling mode\(s\) \['foo'\]; valid modes are \['cls', 'max', 'mean', "):
        pooling.pool(token_embeddings, mask, ("mean", "foo"))
    with pytest.raises(ValueError, match="names no pooling mode"):
        pooling.pool(token_embeddings, mask, ())
    with pytest.raises(TypeError, match="must be a pooling mode name or a list of them"):
        pooling.pool(token_embeddings, mask, None)


def test_pool_takes_one_mode_name_as_a_str():
    token_embeddings, mask, _ = _batch(9)
    torch.testing.assert_close(pooling.pool(token_embeddings, mask, "max"), pooling.max(token_embeddings, mask),
                               rtol=0, atol=0)


@pytest.mark.parametrize(
    "token_embeddings,mask,error,message",
    [
        (torch.zeros(2, 3, 4), [[1, 1, 0], [1, 0, 0]], TypeError, r"attention_mask must be a torch.Tensor, got list"),
        ([[[0.0] * 4] * 3] * 2, torch.ones(2, 3), TypeError, r"token_embeddings must be a torch.Tensor, got list"),
        (torch.zeros(2, 3, 4, dtype=torch.long), torch.ones(2, 3), TypeError, r"token_embeddings must hold floats"),
        (torch.zeros(2, 3, 4), torch.ones(3, 2), ValueError, r"attention_mask must be \(B, T\)"),
        (torch.zeros(2, 3), torch.ones(2, 3), ValueError, r"token_embeddings must be \(B, T, D\)"),
    ],
    ids=["mask_list", "embeddings_list", "integer_embeddings", "transposed_mask", "2d_embeddings"],
)
def test_pool_refuses_bad_inputs_in_one_line(token_embeddings, mask, error, message):
    with pytest.raises(error, match=message) as raised:
        pooling.pool(token_embeddings, mask, ("mean",))
    assert "\n" not in str(raised.value)


@pytest.mark.parametrize("mode", [[], None])
def test_config_with_no_pooling_mode_is_refused_at_load_naming_file_and_field(tmp_path, mode):
    path = tmp_path / "config.json"
    path.write_text(json.dumps({"word_embedding_dimension": 4, "pooling_mode": mode}))
    with pytest.raises(ValueError, match=rf"{path}: field \"pooling_mode\" is .* names no pooling mode"):
        pooling.PoolingConfig.from_file(path)


def test_config_with_an_unknown_mode_is_refused_naming_file_and_field(tmp_path):
    path = tmp_path / "config.json"
    path.write_text(json.dumps({"word_embedding_dimension": 4, "pooling_mode": ["mean", 3]}))
    with pytest.raises(ValueError, match=rf"{path}: field \"pooling_mode\" must be a pooling mode name"):
        pooling.PoolingConfig.from_file(path)
    path.write_text(json.dumps({"word_embedding_dimension": 4, "pooling_mode": "avg"}))
    with pytest.raises(ValueError, match=r"unknown pooling mode\(s\) \['avg'\]"):
        pooling.PoolingConfig.from_file(path)
