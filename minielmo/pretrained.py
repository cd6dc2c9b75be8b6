"""The ELMo models shipped inside the package, by name, for BiLM.from_pretrained(name)."""

from pathlib import Path

# The tiny test model from the allennlp 0.9.0 test fixtures (projection 16, cell 64): it exists to
# check numbers against the original TensorFlow biLM, not to give useful word vectors.
FIXTURE_OPTIONS = Path(__file__).parent / "data" / "tiny_fixture" / "options.json"
FIXTURE_WEIGHTS = Path(__file__).parent / "data" / "tiny_fixture" / "lm_weights.hdf5"

# minielmo's own biLM, trained from scratch on about 4.3 M words of public-domain and openly
# licensed English (python -m minielmo.train; docs/elmo_model_card.md says how and how well). It is
# shipped twice: weights.hdf5 in the layout bilm-tf released ELMo in, and model.safetensors, the
# same tensors under our parameter names, which from_pretrained reads (no h5py, faster).
SMALL_DIR = Path(__file__).parent / "data" / "small"
SMALL_OPTIONS = SMALL_DIR / "options.json"
SMALL_WEIGHTS = SMALL_DIR / "model.safetensors"
SMALL_WEIGHTS_HDF5 = SMALL_DIR / "weights.hdf5"

# Models shipped inside the package, by name. from_pretrained() with no name uses DEFAULT_MODEL.
PRETRAINED = {
    "small": (SMALL_OPTIONS, SMALL_WEIGHTS),
    "fixture": (FIXTURE_OPTIONS, FIXTURE_WEIGHTS),
}
DEFAULT_MODEL = "small"
