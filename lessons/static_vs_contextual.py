"""Lesson 1: why a static embedding cannot tell "bank" (money) from "bank" (river), and how the
layers of a contextual model pull the two senses apart.

Static vector: the row of BERT's input word-piece embedding table (what word2vec/GloVe-style
models give), or ELMo's character-CNN token vector (its layer 0). Neither looks at the sentence.
Contextual vector: the word's hidden state after each BERT layer. A word split into several
word pieces gets the mean of its pieces, found through the tokenizer's character offsets.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from . import data, plots
from .common import (
    LessonError, bert_word_vectors, cosine_matrix, elmo_word_vectors, format_table, load_bert,
    load_elmo_bilm, pca_2d, sense_separation, short,
)


def layer_names(num_layers: int) -> list[str]:
    """'static', then 'emb' (embedding output: word + position + type, LayerNorm), then 1..L."""
    return ["static", "emb"] + [str(i) for i in range(1, num_layers + 1)]


def measure_word(word: str, senses: dict[str, list[str]]) -> dict:
    """All the numbers of this lesson for one word (also used by the `compare` lesson)."""
    model, tokenizer = load_bert()
    sentences = [s for group in senses.values() for s in group]
    labels = [sense for sense, group in senses.items() for _ in group]
    static, layers, pieces = bert_word_vectors(model, tokenizer, sentences, word)
    all_vectors = np.concatenate([static[None], layers])  # (1 + L+1, N, D)
    separation = [sense_separation(v, labels) for v in all_vectors]
    return {
        "word": word,
        "sentences": sentences,
        "senses": labels,
        "pieces": pieces,
        "static": static,
        "layers": layers,
        # largest difference between the static vector in any sentence and in the first one
        "static_max_abs_diff": float(np.abs(static - static[0]).max()),
        "separation": separation,  # per entry of layer_names(): (same, different, gap)
        "cosine_static": cosine_matrix(static),
        "cosine_last": cosine_matrix(layers[-1]),
    }


def elmo_static_check(sentences: list[str], word: str) -> dict:
    """ELMo's layer 0 (char-CNN) for `word` in each sentence: identical, because it only sees
    the word's characters. Layers 1 and 2 (the biLSTMs) differ. Tiny fixture model."""
    vectors = elmo_word_vectors(load_elmo_bilm(), sentences, word)  # (3, N, 2P)
    return {
        f"layer{j}_max_abs_diff": float(np.abs(vectors[j] - vectors[j][0]).max()) for j in range(3)
    }


def _print_cosines(result: dict) -> None:
    names = [f"s{i + 1}" for i in range(len(result["sentences"]))]
    for i, (s, sense, p) in enumerate(zip(result["sentences"], result["senses"], result["pieces"])):
        print(f"  s{i + 1} [{sense:>10}] {s}   word pieces: {' '.join(p)}")
    for title, matrix in [("static (input embedding row)", result["cosine_static"]),
                          ("contextual (last layer)", result["cosine_last"])]:
        print(f"\n  cosine of {result['word']!r}, {title}:")
        rows = [[names[i], result["senses"][i]] + [float(v) for v in matrix[i]] for i in range(len(names))]
        print("  " + format_table(["", "sense"] + names, rows).replace("\n", "\n  "))


def _plot(results: list[dict], out: Path, names: list[str]) -> list[Path]:
    plt = plots.pyplot()
    if plt is None:
        print("\n" + plots.VIZ_HINT)
        return []
    written: list[Path] = []

    fig, ax = plt.subplots(figsize=(7, 4.2))
    for r in results:
        ax.plot(names, [gap for _, _, gap in r["separation"]], marker="o", label=r["word"])
    ax.axhline(0.0, color="grey", linewidth=0.8)
    ax.set_title("Sense separation per BERT layer (all-MiniLM-L6-v2)")
    ax.set_xlabel("layer ('static' = input embedding row, 'emb' = embedding output)")
    ax.set_ylabel("same-sense minus different-sense cosine")
    ax.legend(title="word")
    plots.save(fig, out / "static_vs_contextual_separation.png", written)

    bank = results[0]
    labels = [f"s{i + 1} ({sense})" for i, sense in enumerate(bank["senses"])]
    fig, axes = plt.subplots(1, 2, figsize=(11, 5), layout="constrained")
    for ax, key, title in [(axes[0], "cosine_static", "static (input embedding row)"),
                           (axes[1], "cosine_last", "contextual (last layer)")]:
        image = plots.heatmap(ax, bank[key], labels, labels, f"cosine of {bank['word']!r}: {title}",
                              "sentence", "sentence", vmin=0.0, vmax=1.0, annotate=True, fontsize=8)
    fig.colorbar(image, ax=axes, shrink=0.8, label="cosine similarity")
    plots.save(fig, out / "static_vs_contextual_cosine.png", written)

    cols = 2
    rows = (len(results) + cols - 1) // cols
    fig, axes = plt.subplots(rows, cols, figsize=(9, 3.8 * rows), squeeze=False)
    for ax, r in zip(axes.flat, results):
        points, ratio = pca_2d(r["layers"][-1])
        for sense in dict.fromkeys(r["senses"]):
            mask = np.array([s == sense for s in r["senses"]])
            ax.scatter(points[mask, 0], points[mask, 1], label=sense, s=50)
        for i, (x, y) in enumerate(points):
            ax.annotate(f"s{i + 1}", (x, y), fontsize=7, xytext=(3, 3), textcoords="offset points")
        ax.set_title(f"{r['word']!r}, last BERT layer")
        ax.set_xlabel(f"PC1 ({ratio[0]:.0%} of variance)")
        ax.set_ylabel(f"PC2 ({ratio[1]:.0%} of variance)")
        ax.legend(fontsize=8)
    for ax in list(axes.flat)[len(results):]:
        ax.axis("off")
    fig.suptitle("2-D PCA of each word's contextual vectors, coloured by sense")
    plots.save(fig, out / "static_vs_contextual_pca.png", written)
    return written


def run_custom(word: str, sentences: list[str]) -> dict:
    """The learner's own sentences: cosine of `word` between them, static and per layer."""
    if len(sentences) < 2:
        raise LessonError("give at least two --sentence values to compare the word across")
    model, tokenizer = load_bert()
    static, layers, pieces = bert_word_vectors(model, tokenizer, sentences, word)
    names = layer_names(layers.shape[0] - 1)
    print(f"{word!r} in your sentences (word pieces: {', '.join(' '.join(p) for p in pieces)})")
    pairs = [(i, j) for i in range(len(sentences)) for j in range(i + 1, len(sentences))]
    rows = []
    for name, vectors in zip(names, [static, *layers]):
        sims = cosine_matrix(vectors)
        rows.append([name] + [float(sims[i, j]) for i, j in pairs])
    print(format_table(["layer"] + [f"s{i + 1}~s{j + 1}" for i, j in pairs], rows))
    return {"rows": rows, "static_max_abs_diff": float(np.abs(static - static[0]).max())}


def run(out: Path, word: str | None = None, sentence: list[str] | None = None) -> dict:
    """The prepared words (or just `word`), or `word` in the learner's own `sentence` list."""
    if sentence:
        if not word:
            raise LessonError("--sentence needs --word: which word to follow across the sentences")
        return run_custom(word, sentence)
    words = list(data.POLYSEMY)
    if word is not None:
        if word not in data.POLYSEMY:
            raise LessonError(f"no prepared sentences for {word!r}; choose one of {words}, "
                              "or give your own with --sentence")
        # only the chosen word: every table and plot below is about results[0]
        words = [word]

    print("Static vs contextual vectors, all-MiniLM-L6-v2 (6 layers, 384 dims)\n")
    results = [measure_word(w, data.POLYSEMY[w]) for w in words]
    names = layer_names(results[0]["layers"].shape[0] - 1)

    first = results[0]
    print(f"== {first['word']!r} in {len(first['sentences'])} sentences")
    _print_cosines(first)

    print("\n== The static vector is the same row in every sentence")
    for r in results:
        print(f"  {r['word']!r}: max |difference| between sentences = {r['static_max_abs_diff']:.1e}")
    elmo = elmo_static_check(first["sentences"], first["word"])
    print(f"  ELMo (tiny fixture test model), {first['word']!r}: char-CNN layer 0 max |difference| = "
          f"{elmo['layer0_max_abs_diff']:.1e}; after the biLSTM layers 1, 2: "
          f"{elmo['layer1_max_abs_diff']:.2e}, {elmo['layer2_max_abs_diff']:.2e}")

    print("\n== Same-sense minus different-sense cosine, per layer (bigger = senses further apart)")
    rows = [[r["word"]] + [gap for _, _, gap in r["separation"]] for r in results]
    print(format_table(["word"] + names, rows))
    print("\n  The static column is 0: one vector for every sense. Layer 'emb' adds position and")
    print("  LayerNorm but still no context. The attention layers mix in the neighbours.")

    written = _plot(results, out, names)
    for path in written:
        print(f"wrote {path}")
    return {"results": results, "layer_names": names, "elmo": elmo, "written": written}
