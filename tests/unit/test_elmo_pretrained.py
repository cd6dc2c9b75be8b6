"""The ELMo models shipped inside the package: names, sizes, and the two copies of the trained one."""

import pytest
import torch

import minielmo
from minielmo import pretrained

# The released-layout copy stores the forget bias without TF's run-time 1.0; adding it back rounds
# in float32 (measured max |diff| ~6e-8 on the fixture), so the copies agree to far below this.
HDF5_VS_SAFETENSORS_ATOL = 1e-6
MAX_SHIPPED_BYTES = 25 * 2**20  # the size the package may carry for its trained ELMo


def test_default_model_is_the_trained_one_and_names_are_checked():
    assert minielmo.DEFAULT_MODEL == "small"
    bilm = minielmo.BiLM.from_pretrained()
    assert bilm.config == minielmo.ElmoConfig.from_options_file(pretrained.SMALL_OPTIONS)
    assert not bilm.training
    with pytest.raises(ValueError, match="fixture"):
        minielmo.BiLM.from_pretrained("original")


def test_trained_model_fits_the_size_budget():
    files = [pretrained.SMALL_OPTIONS, pretrained.SMALL_WEIGHTS, pretrained.SMALL_WEIGHTS_HDF5]
    assert sum(f.stat().st_size for f in files) <= MAX_SHIPPED_BYTES


def test_released_format_copy_equals_the_safetensors_copy():
    from_safetensors = minielmo.BiLM.from_pretrained("small")
    from_hdf5 = minielmo.BiLM.from_files(pretrained.SMALL_OPTIONS, pretrained.SMALL_WEIGHTS_HDF5)
    ids = minielmo.batch_to_ids([["The", "bank", "approved", "my", "loan", "."], ["We", "rowed", "."]])
    with torch.no_grad():
        for a, b in zip(from_safetensors(ids)["activations"], from_hdf5(ids)["activations"]):
            torch.testing.assert_close(b, a, rtol=0, atol=HDF5_VS_SAFETENSORS_ATOL)


def test_elmo_from_pretrained_gives_one_mix_per_requested_representation():
    elmo = minielmo.Elmo.from_pretrained(num_output_representations=2)
    with torch.no_grad():
        out = elmo(minielmo.batch_to_ids([["Sense", "and", "Sensibility"]]))
    assert len(out["elmo_representations"]) == 2
    assert out["elmo_representations"][0].shape == (1, 3, 2 * elmo.bilm.config.projection_dim)
