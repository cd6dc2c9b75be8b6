"""The biLM under autograd: the fast path is inference-only, so with a gradient wanted the
readable modules run, every parameter gets a gradient, and the values equal the no-grad path."""

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
