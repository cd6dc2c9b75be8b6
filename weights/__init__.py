"""Find, verify and load checkpoints; map their keys onto our modules."""

# BERT (owner: bert-core): resolve names offline, sha256 checks, the HF key table, strict loader.
from weights.bert_hf import load_bert_weights
from weights.common import LoadReport, Row, read_safetensors, resolve, sha256_of, verify_sha256

# ELMo (owner: elmo): released options.json + hdf5, and the converted safetensors form.
from weights.elmo_hdf5 import load_bilm as load_elmo_bilm


def convert_elmo(*args, **kwargs):
    """weights.elmo_convert.convert, imported on first use: importing it here would make
    `python -m weights.elmo_convert` find the module already loaded and warn (runpy)."""
    from weights.elmo_convert import convert

    return convert(*args, **kwargs)
