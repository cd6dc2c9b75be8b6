"""The biLM under autograd: with a gradient wanted the training path runs (fast_grad.py; its
own tests compare it with the readable modules), every parameter gets a gradient, and the values
equal the no-grad inference path."""

import pytest
import torch

import minielmo

# Fast path vs readable loop on the fixture: float32 reassociation only (measured ~7e-7).
FAST_VS_READABLE_ATOL = 1e-5


def _fixture_bilm():
    return minielmo.BiLM.from_files(minielmo.FIXTURE_OPTIONS, minielmo.FIXTURE_WEIGHTS)


def test_backward_reaches_every_parameter_and_matches_no_grad_values():
    bilm = _fixture_bilm()
    ids = minielmo.batch_to_ids([["The", "cat", "sat", "."], ["Hello", "!"]])
    out = bilm(ids)
    sum(layer.sum() for layer in out["activations"]).backward()
    missing = [name for name, p in bilm.named_parameters() if p.grad is None]
    assert missing == []
    assert all(torch.isfinite(p.grad).all() for p in bilm.parameters())
    with torch.no_grad():
        reference = bilm(ids)  # the fast path
    for with_grad, without in zip(out["activations"], reference["activations"]):
        torch.testing.assert_close(with_grad.detach(), without, rtol=0, atol=FAST_VS_READABLE_ATOL)


def test_frozen_parameters_use_the_fast_path_values_in_grad_mode():
    bilm = _fixture_bilm().requires_grad_(False)
    ids = minielmo.batch_to_ids([["A", "frozen", "model", "."]])
    out = bilm(ids)  # grad mode on, but nothing to differentiate: no error, no graph
    assert not any(layer.requires_grad for layer in out["activations"])


def test_training_mode_dropout_changes_outputs_and_eval_is_deterministic():
    torch.manual_seed(0)
    config = minielmo.ElmoConfig.from_options_file(minielmo.FIXTURE_OPTIONS)
    bilm = minielmo.BiLM(config, dropout=0.5)
    ids = minielmo.batch_to_ids([["Dropout", "acts", "between", "layers", "."]])
    bilm.train()
    first, second = bilm(ids)["activations"][-1], bilm(ids)["activations"][-1]
    assert not torch.equal(first, second)
    bilm.eval()
    with torch.no_grad():
        torch.testing.assert_close(bilm(ids)["activations"][-1], bilm(ids)["activations"][-1],
                                   rtol=0, atol=0)


# ----- Elmo built as AllenNLP builds it: frozen biLM, trainable mixes, dropout -------------------

SENTENCES = [["The", "cat", "sat", "."], ["Hello", "!"]]


def test_allennlp_style_construction_freezes_the_bilm_and_trains_the_mix():
    elmo = minielmo.Elmo(minielmo.FIXTURE_OPTIONS, minielmo.FIXTURE_WEIGHTS, 2, dropout=0.5)
    assert not any(p.requires_grad for p in elmo.bilm.parameters())
    out = elmo(minielmo.batch_to_ids(SENTENCES))  # grad mode on, module in training mode
    sum(r.sum() for r in out["elmo_representations"]).backward()
    for mix in elmo.scalar_mixes:
        assert mix.weights.grad is not None and mix.gamma.grad is not None
        assert mix.gamma.grad.abs().item() > 0
    assert all(p.grad is None for p in elmo.bilm.parameters())


def test_requires_grad_true_reaches_every_bilm_parameter():
    elmo = minielmo.Elmo(minielmo.FIXTURE_OPTIONS, minielmo.FIXTURE_WEIGHTS, 1, requires_grad=True)
    out = elmo(minielmo.batch_to_ids(SENTENCES))
    out["elmo_representations"][0].sum().backward()
    missing = [name for name, p in elmo.named_parameters() if p.grad is None]
    assert missing == []


def test_dropout_acts_in_train_mode_only():
    torch.manual_seed(0)
    elmo = minielmo.Elmo.from_pretrained("fixture", dropout=0.5)  # eval mode, as loaded
    ids = minielmo.batch_to_ids(SENTENCES)
    with torch.no_grad():
        output = elmo(ids)
        deterministic, mask = output["elmo_representations"][0], output["mask"]
        torch.testing.assert_close(elmo(ids)["elmo_representations"][0], deterministic, rtol=0, atol=0)
        elmo.train()
        dropped = elmo(ids)["elmo_representations"][0]
    assert (dropped[mask] == 0).float().mean() > 0.3  # about half the values are dropped ...
    kept = dropped != 0
    # ... and the rest scaled by 1 / (1 - p) = 2, which is exact in floating point.
    torch.testing.assert_close(dropped[kept], 2 * deterministic[kept], rtol=0, atol=0)


def test_elmo_from_a_bilm_and_bad_construction():
    bilm = minielmo.BiLM.from_pretrained("fixture")
    elmo = minielmo.Elmo(bilm, num_output_representations=3)
    assert elmo.bilm is bilm and len(elmo.scalar_mixes) == 3
    with pytest.raises(TypeError, match="takes the biLM alone"):
        minielmo.Elmo(bilm, 3)
    with pytest.raises(TypeError, match="needs options_file and weight_file"):
        minielmo.Elmo()
    with pytest.raises(ValueError, match="dropout must be in"):
        minielmo.Elmo(bilm, dropout=1.5)
