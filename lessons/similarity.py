"""Lesson: sentence embeddings (the seed's demo). SentenceEncoder = tokenizer -> BERT ->
mean pooling -> L2 normalisation (Reimers & Gurevych 2019), so a dot product is a cosine.

What the learner sees:
1. the seed's four "bank" sentences, their cosine matrix and each one's nearest neighbour;
2. a small semantic search: embed 20 sentences once, embed the query (`--query`), rank by cosine;
3. similarity.png with both.

This file is also a notebook (jupytext): run the cells top to bottom.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from lessons import data, plots
from lessons.common import (
    DEFAULT_MODEL, cosine_matrix, format_table, load_sentence_encoder, parameters, run_notebook, short,
    text_or_default,
)


def nearest(sims: np.ndarray) -> list[int]:
    """For each row, the index of the most similar *other* row."""
    masked = sims.copy()
    np.fill_diagonal(masked, -np.inf)
    return [int(i) for i in masked.argmax(1)]


def search(encoder, query: str, corpus: list[str]) -> list[tuple[float, str]]:
    vectors = encoder.encode(corpus)
    q = encoder.encode([query])
    scores = cosine_matrix(q, vectors)[0]
    order = np.argsort(-scores, kind="stable")
    return [(float(scores[i]), corpus[i]) for i in order]


def _plot_similarity(sims, names, sentences, results, query, out: Path) -> list[Path]:
    path = out / "similarity.png"
    with plots.figure(path, 1, 2, figsize=(13, 4.8), gridspec_kw={"width_ratios": [1, 1.25]},
                      layout="constrained") as (fig, axes):
        if fig is None:
            return []
        labels = [f"{n}: {short(s, 30)}" for n, s in zip(names, sentences)]
        image = plots.heatmap(axes[0], sims, labels, names, "Cosine similarity of the seed sentences",
                              "sentence", "sentence", vmin=0.0, vmax=1.0, annotate=True, fontsize=8)
        fig.colorbar(image, ax=axes[0], label="cosine similarity")
        top = results[:10][::-1]
        axes[1].barh([short(t, 48) for _, t in top], [s for s, _ in top], color="tab:blue")
        axes[1].tick_params(axis="y", labelsize=8)
        axes[1].set_title(f"Semantic search, top 10 for\n{short(query, 60)!r}", fontsize=10)
        axes[1].set_xlabel("cosine similarity to the query")
        axes[1].set_ylabel("sentence")
    return [path]


def lesson(out: Path, query: str | None = None) -> dict:
    """Run this file's cells (python -m lessons similarity)."""
    return run_notebook(__name__, out=out, query=query)


# %% [markdown]
# ## The lesson

# %% Parameters (python -m lessons similarity sets them; edit them here in a notebook)
if __name__ == "__main__":
    P, out = parameters(globals(), out="lesson_output", query=None)
    query = P["query"]

# %% 1. The seed's sentences: cosine matrix and nearest neighbours
if __name__ == "__main__":
    query = text_or_default(query, data.DEFAULT_QUERY, "the --query is empty: type what you are looking for")
    encoder = load_sentence_encoder()
    sentences = data.SEED_SENTENCES
    sims = cosine_matrix(encoder.encode(sentences))
    names = [f"s{i + 1}" for i in range(len(sentences))]
    print(f"Sentence embeddings with {DEFAULT_MODEL} (mean pooling, normalised)\n")
    for name, sentence in zip(names, sentences):
        print(f"  {name}: {sentence}")
    print("\n== Cosine similarity")
    print(format_table([""] + names, [[n] + [float(v) for v in row] for n, row in zip(names, sims)]))
    print("\n== Nearest other sentence")
    near = nearest(sims)
    for i, j in enumerate(near):
        print(f"  {names[i]} -> {names[j]} ({sims[i, j]:.3f})  {short(sentences[i], 42)} -> {short(sentences[j], 42)}")

# %% 2. Semantic search
if __name__ == "__main__":
    results = search(encoder, query, data.SEARCH_CORPUS)
    print(f"\n== Semantic search over {len(data.SEARCH_CORPUS)} sentences for: {query!r}")
    print(format_table(["rank", "cosine", "sentence"],
                       [[str(r + 1), score, text] for r, (score, text) in enumerate(results[:5])]))
    print("  (try your own: python -m lessons similarity --query \"...\")")

    written = _plot_similarity(sims, names, sentences, results, query, out)
    RESULT = {"sentences": sentences, "cosine": sims, "nearest": near, "query": query,
              "results": results, "written": written}
