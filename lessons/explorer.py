"""The attention lesson's HTML explorer: a thin adapter over `minibert.attention.explore`, which
computes every number from the model and writes one self-contained page (no network, no server).

The lesson passes what it already measured; the page is rebuilt from the model, and the adapter
checks that both agree, so the lesson's tables and the page can never describe different runs."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from minibert.attention import MAX_TOKENS, analyse, render

from .common import LessonError, load_bert

# The lesson's probabilities and the page's come from the same model on the same sentence; they
# differ only if one of them is stale or another model was loaded.
AGREEMENT_ATOL = 1e-5


def write_explorer(path: Path, *, tokens: list[str], attentions: np.ndarray, sentence, model_name: str,
                   entropy: np.ndarray | None = None, roles: list[list[str]] | None = None) -> Path:
    """Write the explorer for `sentence` (a str, or a (first, second) pair) to `path`.

    attentions (L, H, T, T) and tokens are the lesson's own measurements, checked against the
    page's; roles (L lists of H labels) are shown beside each head. entropy is accepted for the
    lesson's call and recomputed by the page."""
    model, tokenizer = load_bert(model_name)
    text = tuple(sentence) if isinstance(sentence, list) else sentence
    # The lesson accepts any sentence the model takes; past MAX_TOKENS the page is large
    # (about T^2) but still correct, so the lesson does not refuse it.
    try:
        found = analyse(model, tokenizer, text, max_tokens=max(MAX_TOKENS, model.config.max_position_embeddings))
    except ValueError as error:
        raise LessonError(f"cannot draw the explorer: {error}") from None
    if found.tokens != list(tokens) or found.probs.shape != attentions.shape:
        raise LessonError(f"explorer data disagree: {len(tokens)} tokens and attentions {attentions.shape} "
                          f"given, the model gives {len(found.tokens)} and {tuple(found.probs.shape)}")
    diff = float(np.abs(found.probs.numpy() - attentions).max())
    if diff > AGREEMENT_ATOL:
        raise LessonError(f"explorer data disagree with the lesson's attentions (max |diff| {diff:.1e})")
    page = render([found], model_name=model_name, head_labels=None if roles is None else [roles])
    return page.save(path)
