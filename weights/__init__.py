"""Find, verify and load checkpoints; map their keys onto our modules.

BERT: names resolved offline, sha256 checks, the Hugging Face key table (bert_hf).
ELMo: bilm-tf's options.json + hdf5 and the converted safetensors form (elmo_hdf5).
Both load through one strict loader (common.load_strict). Nothing here builds a model: the
model classes build themselves from their config and hand themselves over to be filled.
"""

from weights.bert_hf import load_bert_weights
from weights.common import LoadReport, Row, read_safetensors, resolve, sha256_of, verify_sha256
from weights.elmo_hdf5 import load_elmo_weights, save_converted
