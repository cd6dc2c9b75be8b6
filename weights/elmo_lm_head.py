"""The biLM's LM head on disk: lm_head.safetensors (our parameter names), lm_head.json (its sizes)
and vocab.txt (the words its rows score, one per line), next to the biLM's own files.

The head is only valid with the vocabulary it was trained on: the same words in another order
would score other words. So lm_head.json records the vocabulary's sha256 and loading refuses a
vocab.txt that does not match.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from weights.common import Row, load_strict, read_json, read_safetensors

HEAD_WEIGHTS, HEAD_CONFIG, VOCAB = "lm_head.safetensors", "lm_head.json", "vocab.txt"


def vocab_digest(words: list[str]) -> str:
    return hashlib.sha256("".join(w + "\n" for w in words).encode("utf-8")).hexdigest()


def save_lm_head(head, words: list[str], folder) -> dict[str, Path]:
    """Write `head` (a minielmo SharedSoftmax) and its vocabulary into `folder`."""
    from safetensors.torch import save_file

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    paths = {"lm_head": folder / HEAD_WEIGHTS, "lm_head_config": folder / HEAD_CONFIG, "vocab": folder / VOCAB}
    tensors = {name: t.detach().float().contiguous().cpu() for name, t in head.state_dict().items()}
    save_file(tensors, str(paths["lm_head"]), metadata={"format": "minielmo-lm-head"})
    paths["lm_head_config"].write_text(json.dumps({**head.describe(), "vocab_sha256": vocab_digest(words)},
                                                  indent=2) + "\n", encoding="utf-8")
    paths["vocab"].write_text("".join(w + "\n" for w in words), encoding="utf-8")
    return paths


def read_lm_head(folder) -> tuple[dict, list[str]]:
    """(lm_head.json's settings, the vocabulary) of a model folder; one-line errors."""
    folder = Path(folder)
    for name in (HEAD_WEIGHTS, HEAD_CONFIG, VOCAB):
        if not (folder / name).is_file():
            raise FileNotFoundError(f"{folder} has no LM head ({name} is missing); only models trained "
                                    f"by minielmo.train ship one")
    settings = read_json(folder / HEAD_CONFIG)
    words = (folder / VOCAB).read_text(encoding="utf-8").split("\n")[:-1]
    if vocab_digest(words) != settings.get("vocab_sha256") or len(words) != settings.get("vocab_size"):
        raise ValueError(f"{folder / VOCAB} is not the vocabulary {folder / HEAD_CONFIG} was trained with "
                         f"(sha256 or size differs)")
    return settings, words


def load_lm_head(head, folder) -> None:
    """Fill `head` (built from read_lm_head's settings) from folder/lm_head.safetensors, strictly."""
    path = Path(folder) / HEAD_WEIGHTS
    load_strict(head, read_safetensors(path), [Row(name, name) for name in head.state_dict()], {}, where=str(path))
