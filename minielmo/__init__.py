"""minielmo: ELMo (Peters et al. 2018) from scratch, loading the original options.json + hdf5."""

from pathlib import Path

from .bilm import BiLM, CharCNN, Highway, LstmCellWithProjection
from .characters import batch_to_ids
from .config import ElmoConfig
from .elmo import Elmo
from .scalar_mix import ScalarMix

# The tiny test model from the allennlp 0.9.0 test fixtures (projection 16, cell 64): it exists to
# check numbers against the original TensorFlow biLM, not to give useful word vectors.
FIXTURE_OPTIONS = Path(__file__).parent / "data" / "tiny_fixture" / "options.json"
FIXTURE_WEIGHTS = Path(__file__).parent / "data" / "tiny_fixture" / "lm_weights.hdf5"

# Models shipped inside the package, by name. from_pretrained() with no name uses DEFAULT_MODEL.
PRETRAINED = {
    "fixture": (FIXTURE_OPTIONS, FIXTURE_WEIGHTS),
}
DEFAULT_MODEL = "fixture"

__all__ = ["PRETRAINED", "DEFAULT_MODEL", "BiLM", "CharCNN", "Elmo", "ElmoConfig", "Highway", "LstmCellWithProjection",
           "ScalarMix", "batch_to_ids", "FIXTURE_OPTIONS", "FIXTURE_WEIGHTS"]
