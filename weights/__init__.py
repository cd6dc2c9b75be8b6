"""Find, verify and load checkpoints; map their keys onto our modules."""

from weights.common import LoadReport, Row, read_safetensors, resolve, sha256_of, verify_sha256
from weights.bert_hf import load_bert_weights

__all__ = ["LoadReport", "Row", "load_bert_weights", "read_safetensors", "resolve", "sha256_of", "verify_sha256"]
