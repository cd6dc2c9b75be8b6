"""minielmo: ELMo (Peters et al. 2018) from scratch, loading the original options.json + hdf5."""

from .bilm import BiLM, CharCNN, Highway, LstmCellWithProjection
from .characters import batch_to_ids
from .config import ElmoConfig
from .elmo import Elmo, ElmoEmbedder
from .pretrained import DEFAULT_MODEL, FIXTURE_OPTIONS, FIXTURE_WEIGHTS, PRETRAINED
from .scalar_mix import ScalarMix

__all__ = ["PRETRAINED", "DEFAULT_MODEL", "BiLM", "CharCNN", "Elmo", "ElmoConfig", "Highway", "LstmCellWithProjection",
           "ElmoEmbedder", "ScalarMix", "batch_to_ids", "FIXTURE_OPTIONS", "FIXTURE_WEIGHTS"]
