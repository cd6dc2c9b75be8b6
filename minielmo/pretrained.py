"""The ELMo models shipped inside the package, by name, for BiLM.from_pretrained(name)."""

from pathlib import Path

# The tiny test model from the allennlp 0.9.0 test fixtures (projection 16, cell 64): it exists to
# check numbers against the original TensorFlow biLM, not to give useful word vectors.
FIXTURE_OPTIONS = Path(__file__).parent / "data" / "tiny_fixture" / "options.json"
FIXTURE_WEIGHTS = Path(__file__).parent / "data" / "tiny_fixture" / "lm_weights.hdf5"

# Models shipped inside the package, by name. from_pretrained() with no name uses DEFAULT_MODEL.
PRETRAINED = {
    "fixture": (FIXTURE_OPTIONS, FIXTURE_WEIGHTS),
}
DEFAULT_MODEL = "fixture"
