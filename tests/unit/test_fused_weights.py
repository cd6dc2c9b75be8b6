"""The fast paths' fused weights never serve stale values (weights/fused.py), and moving them is
what the model docstrings say it is.

Both fast paths, minibert's and minielmo's, are checked against their readable twin after every
way a user changes a weight: a write through `.data` (AllenNLP's loading idiom, which bumps no
version counter), a replaced `.data`, `load_state_dict` (copying, and with assign=True), `.to()`
with another dtype and back, and an optimizer step. Each change must also be seen (the fast
output moves), so a test cannot pass by comparing two stale results.
"""

import subprocess
import sys
from pathlib import Path

import pytest
import torch

import minibert
import minielmo
from minibert import fast as bert_fast
from weights.elmo_hdf5 import save_converted

# Same float32 maths in a different order: only rounding differs (measured ~1e-6 on both models).
FAST_VS_READABLE_ATOL = 1e-5
# float64 runs the same maths with less rounding, so the two paths agree more closely still.
FLOAT64_ATOL = 1e-10
# Every mutation below moves the outputs by far more than this (measured: > 1e-2).
SEEN = 1e-3

BERT = minibert.BertConfig(vocab_size=40, hidden_size=12, num_hidden_layers=2, num_attention_heads=3,
                           intermediate_size=17, max_position_embeddings=10)
ELMO = minielmo.ElmoConfig(projection_dim=6, cell_size=10, n_layers=2, cell_clip=3.0, proj_clip=3.0,
                           use_skip_connections=True, filters=((1, 3), (2, 5)), n_highway=1,
                           char_embedding_dim=4, n_characters=262, max_characters_per_token=50,
                           activation="relu")


class Bert:
    """minibert: fast.last_hidden_state against the explicit BertModel.forward."""

    def __init__(self):
        torch.manual_seed(0)
        self.model = minibert.BertModel(BERT).eval()
        self.ids = torch.tensor([[1, 5, 7, 9, 2, 0], [1, 6, 2, 0, 0, 0]])
        self.mask = (self.ids != 0).long()

    def outputs(self):
        with torch.inference_mode():
            fast = bert_fast.last_hidden_state(self.model, self.ids, self.mask)
            readable = self.model(self.ids, self.mask).last_hidden_state
        real = self.mask.bool()
        return fast[real], readable[real]

    def fused_params(self):  # parameters the fast path reads from a fused buffer
        attn = self.model.encoder.layers[1].attn
        return [attn.query.weight, attn.value.bias]


class Elmo:
    """minielmo: BiLM with fast_path on against the readable modules."""

    def __init__(self):
        torch.manual_seed(0)
        self.model = minielmo.BiLM(ELMO).eval()
        self.ids = minielmo.batch_to_ids([["Fused", "weights", "."], ["Stale", "?"]])

    def outputs(self):
        with torch.no_grad():
            self.model.fast_path = True
            fast = torch.cat(self.model(self.ids)["activations"], dim=-1)
            self.model.fast_path = False
            readable = torch.cat(self.model(self.ids)["activations"], dim=-1)
        return fast, readable

    def fused_params(self):
        return [self.model.backward_layers[1].hidden_to_gates.weight,
                self.model.char_cnn.highway.transform_gate[0].bias]


def check(net, before, atol=FAST_VS_READABLE_ATOL):
    """Fast equals readable, and differs from `before` (the change was seen)."""
    fast, readable = net.outputs()
    torch.testing.assert_close(fast, readable, rtol=0, atol=atol)
    assert (fast.double() - before.double()).abs().max() > SEEN
    return fast


@pytest.fixture(params=[Bert, Elmo], ids=["bert", "elmo"])
def net(request):
    return request.param()


def test_writes_through_data_are_seen(net):
    before, _ = net.outputs()  # the first fast call fuses the weights
    for param in net.fused_params():
        param.data.mul_(-1.5)  # in place, past autograd: no version counter moves
    check(net, before)


def test_replaced_data_is_seen(net):
    before, _ = net.outputs()
    for param in net.fused_params():
        param.data = torch.randn_like(param)
    check(net, before)


@pytest.mark.parametrize("assign", [False, True])
def test_load_state_dict_is_seen(net, assign):
    before, _ = net.outputs()
    state = {name: value + 0.3 * torch.randn_like(value) for name, value in net.model.state_dict().items()}
    net.model.load_state_dict(state, assign=assign)
    check(net, before)


def test_dtype_changes_are_seen(net):
    before, _ = net.outputs()
    net.model.to(torch.float64)
    with torch.no_grad():
        for param in net.fused_params():
            param.add_(0.5)
    after = check(net, before, atol=FLOAT64_ATOL)
    assert after.dtype == torch.float64
    net.model.float()
    with torch.no_grad():
        for param in net.fused_params():
            param.sub_(1.0)
    check(net, after)


def test_optimizer_steps_after_inference_are_seen(net):
    """The fast path may first run under inference_mode; the parameters it fuses must stay
    ordinary tensors that training updates in place."""
    before, _ = net.outputs()
    net.model.train()
    optimizer = torch.optim.SGD(net.model.parameters(), lr=1e-2)
    if isinstance(net, Bert):
        loss = net.model(net.ids, net.mask).last_hidden_state.pow(2).sum()
    else:
        loss = sum(layer.pow(2).sum() for layer in net.model(net.ids)["activations"])
    loss.backward()
    optimizer.step()
    net.model.eval()
    check(net, before)


def test_fused_parameters_keep_their_identity_and_still_save(tmp_path):
    """Fusing moves storage, not Parameters: optimizers and state_dict keys see the same objects,
    and safetensors still writes them (disjoint views of one buffer)."""
    elmo = Elmo()
    params = dict(elmo.model.named_parameters())
    elmo.outputs()
    assert all(params[name] is param for name, param in elmo.model.named_parameters())
    _, weights_path = save_converted(elmo.model, tmp_path)
    reloaded = minielmo.BiLM.from_files(tmp_path / "options.json", weights_path)
    for name, param in elmo.model.named_parameters():
        torch.testing.assert_close(reloaded.state_dict()[name], param, rtol=0, atol=0, msg=name)


def test_a_fast_call_moves_the_parameters_into_a_buffer_and_a_readable_one_does_not():
    """What bilm.py's and model.py's docstrings say the first fast call does to the parameters."""
    elmo = Elmo()
    cell, gate = elmo.model.forward_layers[0], elmo.model.char_cnn.highway.transform_gate[0]
    weight = cell.input_to_gates.weight
    alone = weight.untyped_storage().nbytes()
    elmo.model.fast_path = False
    with torch.no_grad():
        elmo.model(elmo.ids)
    assert weight.untyped_storage().nbytes() == alone and "_fused_bilstm" not in vars(cell)
    elmo.outputs()  # fast, then readable
    layer_bytes = sum(p.numel() * p.element_size() for c in (cell, elmo.model.backward_layers[0])
                      for p in c.parameters())
    assert weight.untyped_storage().nbytes() == layer_bytes  # the whole layer's buffer, both directions
    assert "_fused_bilstm" in vars(cell) and "_fused_highway" in vars(gate)

    bert = Bert()
    attn = bert.model.encoder.layers[0].attn
    with torch.no_grad():
        bert.model(bert.ids, bert.mask)  # calling the model runs the explicit path: nothing moves
    assert "_fused_qkv" not in vars(attn)
    bert.outputs()
    assert "_fused_qkv" in vars(attn)
    assert attn.query.weight.untyped_storage().nbytes() == sum(
        p.numel() * p.element_size() for p in (attn.query, attn.key, attn.value) for p in p.parameters())


def test_importing_the_biLM_loads_only_the_fused_module_of_weights():
    """weights/__init__ loads its modules lazily, so the fast paths' `weights.fused` brings no
    checkpoint code with it; every public name of `weights` still resolves."""
    code = ("import sys, minielmo.bilm; "
            "print(sorted(m for m in sys.modules if m.split('.')[0] == 'weights'))")
    loaded = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                            cwd=Path(__file__).resolve().parents[2]).stdout.split("\n")[0]
    assert loaded == "['weights', 'weights.fused']"
    import weights
    assert all(callable(getattr(weights, name)) for name in weights.__all__)
    with pytest.raises(AttributeError, match="no attribute 'nothing'"):
        weights.nothing
