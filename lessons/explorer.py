"""Write the self-contained attention explorer: one HTML file, data embedded as JSON, inline
script and style, nothing fetched from anywhere, so it opens from disk in any browser."""

from __future__ import annotations

import json
from importlib import resources
from pathlib import Path

import numpy as np

PLACEHOLDER = "__ATTENTION_DATA__"


def write_explorer(path: Path, *, tokens: list[str], attentions: np.ndarray, sentence: str,
                   model_name: str, entropy: np.ndarray, roles: list[list[str]]) -> Path:
    """attentions: (L, H, T, T) probabilities; entropy: (L, H); roles: L lists of H labels."""
    L, H, T, _ = attentions.shape
    if len(tokens) != T or entropy.shape != (L, H):
        raise ValueError(f"explorer data disagree: {len(tokens)} tokens, attentions {attentions.shape}, "
                         f"entropy {entropy.shape}")
    payload = {
        "model": model_name,
        "sentence": sentence,
        "tokens": tokens,
        # 4 decimals keep the file small and are finer than any shading shows
        "attentions": np.round(attentions.astype(float), 4).tolist(),
        "entropy": np.round(entropy.astype(float), 4).tolist(),
        "roles": roles,
    }
    # "</" inside a <script> block would end it early; JSON allows the escaped form "<\/".
    blob = json.dumps(payload, ensure_ascii=False, separators=(",", ":")).replace("</", "<\\/")
    template = resources.files("lessons").joinpath("explorer.html").read_text(encoding="utf-8")
    path.write_text(template.replace(PLACEHOLDER, blob), encoding="utf-8")
    return path
