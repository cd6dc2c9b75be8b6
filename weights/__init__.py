"""Find, verify and load checkpoints; map their keys onto our modules."""

# BERT (owner: bert-core): resolve names offline, sha256 checks, the HF key table, strict loader.
from weights.bert_hf import load_bert_weights
from weights.common import LoadReport, Row, read_safetensors, resolve, sha256_of, verify_sha256

# ELMo (owner: elmo): released options.json + hdf5, and the converted safetensors form.
from weights.elmo_convert import convert as convert_elmo
from weights.elmo_hdf5 import load_bilm as load_elmo_bilm
