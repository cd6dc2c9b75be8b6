"""Find, verify and load checkpoints; map their keys onto our modules. And, in fused.py, the one
piece of fast-path machinery that minibert and minielmo share.

BERT: names resolved offline, sha256 checks, the Hugging Face key table (bert_hf).
ELMo: bilm-tf's options.json + hdf5 and the converted safetensors form (elmo_hdf5), and the
way back to the released layout (elmo_export).
Both load through one strict loader (common.load_strict). Nothing here builds a model: the
model classes build themselves from their config and hand themselves over to be filled.

Why fused.py lives here: both model packages' fast paths keep their stacked weights as views of
the parameters' own storage (fused.shared_storage), and ask whether a forward hook forbids a fast
path (fused.watched). minibert and minielmo sit side by side and may not import each other
(tests/unit/test_import_graph.py), so code they share has to sit a layer below them, and this is
the library's layer below. fused.py imports only torch and knows no checkpoint.

Importing this package loads none of its modules: the names below are read from their module on
first use, so that `import weights.fused` (which every fast path does) costs only that module.
"""

import importlib

# Public name -> the module that defines it.
_HOME = {
    "load_bert_weights": "weights.bert_hf",
    "LoadReport": "weights.common",
    "Row": "weights.common",
    "read_safetensors": "weights.common",
    "resolve": "weights.common",
    "sha256_of": "weights.common",
    "verify_sha256": "weights.common",
    "load_elmo_weights": "weights.elmo_hdf5",
    "save_converted": "weights.elmo_hdf5",
}
__all__ = sorted(_HOME)


def __getattr__(name: str):
    """`weights.resolve` and `from weights import resolve`: the name from its module (PEP 562)."""
    if name not in _HOME:
        raise AttributeError(f"module 'weights' has no attribute {name!r}")
    return getattr(importlib.import_module(_HOME[name]), name)
