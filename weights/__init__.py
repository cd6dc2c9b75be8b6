"""Find, verify and load checkpoints; map their keys onto our modules."""

# BERT (owner: bert-core): resolve names offline, sha256 checks, the HF key table, strict loader.
from weights.common import LoadReport, Row, read_safetensors, resolve, sha256_of, verify_sha256
from weights.bert_hf import load_bert_weights

# ELMo (owner: elmo): released options.json + hdf5, and the converted safetensors form.
from .elmo_convert import convert as convert_elmo  # noqa: E402
from .elmo_hdf5 import load_bilm as load_elmo_bilm  # noqa: E402
