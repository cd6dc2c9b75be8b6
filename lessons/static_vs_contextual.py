"""Lesson: why a static embedding cannot tell "bank" (money) from "bank" (river), and how the
layers of a contextual model pull the two senses apart.

What the learner sees:
1. GloVe 6B 50d (Pennington et al. 2014), a real static model: "bank" is one row of a table,
   its nearest neighbours are financial words, and the river sense sits far down the list;
   a lookup takes only the word, so no sentence can change that row;
2. the two other static vectors of this project, the same in every sentence: the row of BERT's
   input word-piece table, and ELMo's character-CNN layer 0, which sees the word's characters
   and nothing else (so "Spring" and "spring" differ, and nothing else does);
3. BERT's (all-MiniLM-L6-v2) hidden states for "bank", "bat", "spring", "plant" in three
   sentences per sense: cosine tables, and the same-sense minus different-sense cosine per layer;
4. static_vs_contextual_*.png: that gap per layer, the cosine heatmaps, a PCA of each word.

`--word W --sentence ... --sentence ...` runs the lesson on the learner's own sentences; with one
`--sense` per sentence it also measures how far the senses are pulled apart.

This file is also a notebook (jupytext): run the cells top to bottom.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from lessons import data, plots
from lessons.common import (
    LessonError, bert_word_vectors, cosine_matrix, elmo_label, elmo_word_vectors, format_table, load_bert,
    load_elmo_bilm, parameters, pca_2d, run_notebook, sense_separation, simple_words, unit, word_index,
)
from lessons.glove import load_glove

NEIGHBOURS = 8


def layer_names(num_layers: int) -> list[str]:
    """'static', then 'emb' (embedding output: word + position + type, LayerNorm), then 1..L."""
    return ["static", "emb"] + [str(i) for i in range(1, num_layers + 1)]


def measure_word(word: str, sentences: list[str] | None = None, labels: list[str] | None = None) -> dict:
    """The BERT numbers of step 3 for one word: in its prepared sentences, or in `sentences`
    with their sense `labels`."""
    model, tokenizer = load_bert()
    if sentences is None:
        sentences, labels = data.sentences_and_senses(word)
    static, layers, pieces = bert_word_vectors(model, tokenizer, sentences, word)
    return {
        "word": word, "sentences": sentences, "senses": labels, "pieces": pieces,
        "static": static, "layers": layers,
        "static_max_abs_diff": float(np.abs(static - static[0]).max()),
        # per entry of layer_names(): (same-sense mean, different-sense mean, gap); needs two
        # senses and a sense seen twice
        "separation": ([sense_separation(v, labels) for v in np.concatenate([static[None], layers])]
                       if separable(labels) else None),
        "cosine_static": cosine_matrix(static),
        "cosine_last": cosine_matrix(layers[-1]),
    }


def separable(labels: list[str]) -> bool:
    """Whether a same-sense and a different-sense pair both exist among `labels`."""
    return len(set(labels)) >= 2 and len(set(labels)) < len(labels)


def elmo_layer0_by_spelling(sentences: list[str], word: str) -> dict:
    """ELMo's layer 0 for `word` in each sentence, grouped by how the word is spelled there.
    Returns {spelling: max |difference| within that spelling}, the largest difference between
    spellings, and the biLSTM layers' largest difference."""
    vectors = elmo_word_vectors(load_elmo_bilm(), sentences, word)  # (layers, N, 2P)
    spelled = [simple_words(s)[word_index(simple_words(s), word, s)] for s in sentences]
    within = {}
    for spelling in dict.fromkeys(spelled):
        rows = vectors[0][[i for i, s in enumerate(spelled) if s == spelling]]
        within[spelling] = float(np.abs(rows - rows[0]).max())
    return {"within": within, "spellings": spelled,
            "across": float(np.abs(vectors[0] - vectors[0][0]).max()),
            "lstm": [float(np.abs(v - v[0]).max()) for v in vectors[1:]]}


def lesson(out: Path, word: str | None = None, sentences: list[str] | None = None,
           senses: list[str] | None = None) -> dict:
    """Run this file's cells (python -m lessons static-vs-contextual)."""
    return run_notebook(__name__, out=out, word=word, sentences=sentences, senses=senses)


def chosen_words(word: str | None, sentences: list[str] | None, senses: list[str] | None):
    """[(word, its sentences, their sense labels)]: the prepared words, one of them, or the
    learner's own sentences (senses "s1", "s2", ... when none are given)."""
    if sentences:
        if not word:
            raise LessonError("--sentence needs --word: which word to follow across the sentences")
        if len(sentences) < 2:
            raise LessonError("give at least two --sentence values to compare the word across")
        if senses and len(senses) != len(sentences):
            raise LessonError(f"give one --sense per --sentence ({len(sentences)} sentences, {len(senses)} senses)")
        return [(word, list(sentences), list(senses) if senses else [f"s{i + 1}" for i in range(len(sentences))])]
    if senses:
        raise LessonError("--sense labels your own --sentence values; the prepared words have theirs")
    if word is not None and word not in data.POLYSEMY:
        raise LessonError(f"no prepared sentences for {word!r}; choose one of {list(data.POLYSEMY)}, "
                          "or give your own with --sentence")
    return [(w, *data.sentences_and_senses(w)) for w in ([word] if word else data.POLYSEMY)]


def print_cosines(result: dict) -> None:
    names = [f"s{i + 1}" for i in range(len(result["sentences"]))]
    for i, (s, sense, p) in enumerate(zip(result["sentences"], result["senses"], result["pieces"])):
        print(f"  s{i + 1} [{sense:>10}] {s}   word pieces: {' '.join(p)}")
    for title, matrix in [("static (input embedding row)", result["cosine_static"]),
                          ("contextual (last layer)", result["cosine_last"])]:
        print(f"\n  cosine of {result['word']!r}, {title}:")
        rows = [[names[i], result["senses"][i]] + [float(v) for v in matrix[i]] for i in range(len(names))]
        print("  " + format_table(["", "sense"] + names, rows).replace("\n", "\n  "))


def plot_separation(results, names, out: Path) -> list[Path]:
    path = out / "static_vs_contextual_separation.png"
    with plots.figure(path, figsize=(7, 4.2)) as (fig, ax):
        if fig is None:
            return []
        for r in results:
            ax.plot(names, [gap for _, _, gap in r["separation"]], marker="o", label=r["word"])
        ax.axhline(0.0, color="grey", linewidth=0.8)
        ax.set_title("Sense separation per BERT layer (all-MiniLM-L6-v2)")
        ax.set_xlabel("layer ('static' = input embedding row, 'emb' = embedding output)")
        ax.set_ylabel("same-sense minus different-sense cosine")
        ax.legend(title="word")
    return [path]


def plot_cosines(result, out: Path) -> list[Path]:
    path = out / "static_vs_contextual_cosine.png"
    labels = [f"s{i + 1}" + (f" ({sense})" if sense != f"s{i + 1}" else "") for i, sense in enumerate(result["senses"])]
    with plots.figure(path, 1, 2, figsize=(11, 5), layout="constrained") as (fig, axes):
        if fig is None:
            return []
        for ax, key, title in [(axes[0], "cosine_static", "static (input embedding row)"),
                               (axes[1], "cosine_last", "contextual (last layer)")]:
            image = plots.heatmap(ax, result[key], labels, labels, f"cosine of {result['word']!r}: {title}",
                                  "sentence", "sentence", vmin=0.0, vmax=1.0, annotate=True, fontsize=8)
        fig.colorbar(image, ax=axes, shrink=0.8, label="cosine similarity")
    return [path]


def plot_pca(results, out: Path) -> list[Path]:
    path = out / "static_vs_contextual_pca.png"
    cols = 2 if len(results) > 1 else 1
    rows = (len(results) + cols - 1) // cols
    with plots.figure(path, rows, cols, figsize=(4.5 * cols, 3.8 * rows), squeeze=False) as (fig, axes):
        if fig is None:
            return []
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
    return [path]


# %% [markdown]
# ## The lesson

# %% Parameters (python -m lessons static-vs-contextual sets them; edit them here in a notebook)
if __name__ == "__main__":
    P, out = parameters(globals(), out="lesson_output", word=None, sentences=None, senses=None)
    words = chosen_words(P["word"], P["sentences"], P["senses"])

# %% 1. GloVe: one vector per word type, whatever the sentence
if __name__ == "__main__":
    glove = load_glove()
    focus, sentences_f, labels_f = words[0]
    neighbours, rank, glove_diff = [], {}, 0.0
    if focus.lower() in glove:
        vector = glove.vector(focus.lower())
        neighbours = glove.neighbours(vector, NEIGHBOURS, exclude=(focus.lower(),))
        cosines = unit(glove.vectors) @ unit(vector)
        probe_words = [w for w in ("river", "shore", "money", "cave", "season", "factory") if w in glove]
        # how many words are closer to the focus word than w is (the focus word itself not counted)
        rank = {w: int((cosines > cosines[glove.row[w]]).sum()) - 1 for w in probe_words}
        print(f"== GloVe 6B 50d: {focus!r} is row {glove.row[focus.lower()]:,} of a {glove.vectors.shape[0]:,} x "
              f"{glove.vectors.shape[1]} table")
        print(f"  nearest neighbours: {', '.join(f'{w} {c:.2f}' for w, c in neighbours)}")
        print(f"  words closer to {focus!r} than each of these: "
              + ", ".join(f"{w} {rank[w]:,} (cosine {cosines[glove.row[w]]:.2f})" for w in probe_words))
        in_sentences = np.stack([glove.vector(focus.lower()) for _ in sentences_f])
        glove_diff = float(np.abs(in_sentences - in_sentences[0]).max())
        print(f"  in the {len(sentences_f)} sentences below, GloVe's {focus!r} differs by at most {glove_diff:.1e}:")
        print("  the lookup glove.vector(word) takes the word and nothing else, so no sentence can reach it.\n")
    else:
        print(f"== GloVe 6B 50d has no row for {focus!r}: a static table knows only its own words.\n")

# %% 2. The other static vectors: BERT's input table, ELMo's character CNN
if __name__ == "__main__":
    results = [measure_word(w, s, labels) for w, s, labels in words]
    print("== Static vectors inside the contextual models")
    for r in results:
        print(f"  BERT input-table row of {r['word']!r}: max |difference| between its sentences = "
              f"{r['static_max_abs_diff']:.1e}")
    elmo = {w: elmo_layer0_by_spelling(s, w) for w, s, _ in words}
    for w, e in elmo.items():
        spellings = ", ".join(f"{s!r} x{e['spellings'].count(s)}: {d:.1e}" for s, d in e["within"].items())
        print(f"  {elmo_label()} layer 0 of {w!r} by spelling ({spellings}); all sentences: "
              f"{e['across']:.1e}; biLSTM layers: {', '.join(f'{d:.2e}' for d in e['lstm'])}")
    print("  ELMo's layer 0 sees characters only: every occurrence spelled the same way gets the same")
    print("  vector, and a capital letter is a different character (\"Spring brings ...\").\n")

# %% 3. Contextual vectors: cosine of the focus word across sentences, then per layer
if __name__ == "__main__":
    names = layer_names(results[0]["layers"].shape[0] - 1)
    first = results[0]
    print(f"== {first['word']!r} in {len(first['sentences'])} sentences, all-MiniLM-L6-v2 "
          f"({len(names) - 2} layers, {first['layers'].shape[-1]} dims)")
    print_cosines(first)
    measured = [r for r in results if r["separation"] is not None]
    if measured:
        print("\n== Same-sense minus different-sense cosine, per layer (bigger = senses further apart)")
        print(format_table(["word"] + names, [[r["word"]] + [gap for _, _, gap in r["separation"]] for r in measured]))
        print("\n  The static column is 0: one vector for every sense. Layer 'emb' adds position and")
        print("  LayerNorm but still no context. The attention layers mix in the neighbours.")
        print("  A few sentences are an illustration; `python -m lessons layers` measures this on WordNet.")
    else:
        print("\n  (Label the senses, one --sense per --sentence, to measure how far they are pulled apart.)")

# %% 4. Pictures
if __name__ == "__main__":
    written = (plot_separation(measured, names, out) if measured else []) + plot_cosines(first, out) \
        + (plot_pca(measured, out) if measured else [])
    RESULT = {"results": results, "layer_names": names, "elmo": elmo, "glove_neighbours": neighbours,
              "glove_rank": rank, "glove_max_abs_diff": glove_diff, "written": written}
