"""python -m minielmo: output, .npz contents and its error messages."""

import io

import numpy as np
import pytest
import torch

import minielmo
from minielmo.__main__ import main

pytestmark = pytest.mark.usefixtures("torch_single_thread")


def test_fixture_model_says_it_is_a_tiny_test_model(capsys):
    main(["--model", "fixture", "The cat sat .", "Hi"])
    out = capsys.readouterr().out
    assert "TINY TEST MODEL" in out
    for k in range(3):
        assert f"layer {k}: " in out and "shape (2, 4, 32)" in out
    assert out.count("  [1]             Hi  ") == 3  # one vector per layer


def test_default_is_the_trained_small_model(capsys):
    main(["The bank approved my loan ."])
    out = capsys.readouterr().out
    assert minielmo.DEFAULT_MODEL == "small"
    assert "trained from scratch" in out and "TINY TEST MODEL" not in out
    for k in range(3):
        assert f"layer {k}: " in out and "shape (1, 6, 256)" in out  # 2 x projection 128


def test_model_and_options_cannot_be_combined():
    with pytest.raises(SystemExit):
        main(["--model", "fixture", "--options", str(minielmo.FIXTURE_OPTIONS),
              "--weights", str(minielmo.FIXTURE_WEIGHTS), "x"])


def test_npz_holds_every_layer_without_boundaries(tmp_path, capsys):
    path = tmp_path / "out.npz"
    main(["--npz", str(path), "--options", str(minielmo.FIXTURE_OPTIONS),
          "--weights", str(minielmo.FIXTURE_WEIGHTS), "a b c", "d"])
    assert "TINY TEST MODEL" not in capsys.readouterr().out  # a model was named explicitly
    saved = np.load(path)
    bilm = minielmo.BiLM.from_files(minielmo.FIXTURE_OPTIONS, minielmo.FIXTURE_WEIGHTS)
    with torch.no_grad():
        layers = bilm(minielmo.batch_to_ids([["a", "b", "c"], ["d"]]))["activations"]
    assert saved["mask"].tolist() == [[True] * 3, [True, False, False]]
    assert saved["sentences"].tolist() == ["a b c", "d"]
    for k, layer in enumerate(layers):
        expected = layer[:, 1:-1] * torch.from_numpy(saved["mask"]).unsqueeze(-1)
        torch.testing.assert_close(torch.from_numpy(saved[f"layer_{k}"]), expected, rtol=0, atol=0)


def test_reads_stdin(monkeypatch, capsys):
    monkeypatch.setattr("sys.stdin", io.StringIO("one two\n\nthree\n"))
    main(["-", "--model", "fixture", "--max-dims", "0"])
    out = capsys.readouterr().out
    assert "shape (2, 2, 32)" in out and " ..." not in out


@pytest.mark.parametrize("argv, message", [
    (["--options", "o.json", "x"], "--options and --weights go together"),
    (["--options", "missing.json", "--weights", "missing.hdf5", "x"], "options file not found"),
    (["-", "also a sentence"], "cannot be mixed"),
])
def test_errors_exit_2_with_a_message(argv, message, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(argv)
    assert exit_info.value.code == 2
    assert message in capsys.readouterr().err


def test_bad_weight_file_is_a_clear_error(tmp_path, capsys):
    broken = tmp_path / "w.hdf5"
    broken.write_bytes(b"nope")
    with pytest.raises(SystemExit):
        main(["--options", str(minielmo.FIXTURE_OPTIONS), "--weights", str(broken), "x"])
    assert "not a readable HDF5" in capsys.readouterr().err
