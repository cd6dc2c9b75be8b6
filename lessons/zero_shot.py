"""Lesson: zero-shot classification by embedding similarity, scored on WordNet's own labels.

Embed a text and a short description of each label with the same SentenceEncoder; the label
whose description is closest wins. Nothing is trained, so the wording of the descriptions is the
whole "model" of the labels.

What the learner sees:
1. the seed's example, "The river bank was eroding due to heavy rainfall.", under two phrasings
   of four labels: the phrasing decides which label wins;
2. the same method on a real task: WordNet 3.0 noun definitions ("a flowering plant that ...")
   sorted into WordNet's 25 noun lexicographer files (noun.animal, noun.food, noun.artifact, ...),
   a few thousand definitions sampled with a fixed seed, under three templates;
3. accuracy and macro-F1 with bootstrap 95% intervals over definitions, against always
   answering the most common file; the best and worst files; zero_shot.png.

The labels were assigned by WordNet's lexicographers, not written for this lesson, and the text
is the definition only (no lemma), so a template cannot win by string overlap with the lemma.

This file is also a notebook (jupytext): run the cells top to bottom.
"""

from __future__ import annotations

import warnings
from collections import Counter
from pathlib import Path

import numpy as np

from lessons import data, plots, stats, wordnet
from lessons.common import (
    DEFAULT_MODEL, LessonError, cosine_matrix, format_table, interval, load_sentence_encoder, parameters,
    run_notebook, sample_size, softmax, text_or_default,
)

SEED = 0
GLOSSES = sample_size(2000, 200)
NOUN_FILES = range(4, 29)  # noun.act .. noun.time; 3 is noun.Tops, a handful of root synsets
# How each file is described to the encoder: {word} = the file's name without "noun."
# ("animal"), {description} = the lexnames(5WN) man page's line ("nouns denoting animals").
GLOSS_TEMPLATES = {
    "bare word": "{word}",
    "definition of": "a definition of a kind of {word}",
    "man page": "{description}",
}
NLI_NOTE = """\
The other zero-shot approach, used by the seed lesson, is natural-language inference (NLI): a
cross-encoder such as facebook/bart-large-mnli reads premise = the text and hypothesis = "This
example is {label}." and uses the entailment probability as the label's score (Yin et al. 2019).
It weighs the label against the whole text, but needs a forward pass per (text, label) pair and
an MNLI-trained model; none is available offline here. The similarity method needs one encoder
pass per text, and the label vectors are computed once."""


def classify(encoder, texts: list[str], descriptions: list[str]) -> np.ndarray:
    """(N, K) cosine of each text with each label's description."""
    return cosine_matrix(encoder.encode(texts), encoder.encode(descriptions))


def gloss_sample(seed: int = SEED, size: int = GLOSSES) -> tuple[list[str], np.ndarray]:
    """`size` noun definitions drawn with `seed`, and their lexicographer file numbers."""
    pool = [s for s in wordnet.synsets("n").values() if s.lexfile in NOUN_FILES and s.definition]
    picked = np.random.default_rng(seed).choice(len(pool), size=size, replace=False)
    return [pool[i].definition for i in picked], np.array([pool[i].lexfile for i in picked])


def label_descriptions(template: str) -> list[str]:
    names = wordnet.lexnames()
    return [template.format(word=names[f][0].split(".", 1)[1], description=names[f][1]) for f in NOUN_FILES]


def _plot_zero_shot(example, labels, text, evaluation, baseline, per_file, names, out: Path,
                    per_file_ci=None) -> list[Path]:
    """The text's cosines per label and phrasing; with an evaluation, its scores and F1 per file."""
    path = out / "zero_shot.png"
    shape = (1, 3, dict(figsize=(16, 4.6), gridspec_kw={"width_ratios": [1, 1, 1.4]})) if evaluation else \
        (1, 1, dict(figsize=(6, 4.6)))
    with plots.figure(path, shape[0], shape[1], **shape[2]) as (fig, axes):
        if fig is None:
            return []
        axes = np.atleast_1d(axes)
        x = np.arange(len(labels))
        width = 0.8 / len(example)
        for k, (name, r) in enumerate(example.items()):
            axes[0].bar(x + (k - (len(example) - 1) / 2) * width, r["cosine"], width=width,
                        label=f"{name}: {data.TEMPLATES[name]!r}")
        axes[0].set_xticks(x)
        axes[0].set_xticklabels(labels)
        axes[0].set_title(plots.title_text(text, 55), fontsize=10)
        axes[0].set_ylabel("cosine(text, label description)")
        axes[0].set_xlabel("label (one text, so one cosine per bar: no interval)")
        axes[0].legend(fontsize=8)
        if evaluation is None:
            return [path]

        names_t = list(evaluation)
        x = np.arange(len(names_t))
        for offset, key, colour in [(-0.2, "accuracy", "tab:green"), (0.2, "macro_f1", "tab:purple")]:
            values = np.array([evaluation[n][key] for n in names_t])
            cis = np.array([evaluation[n][key + "_ci"] for n in names_t])
            axes[1].bar(x + offset, values, width=0.4, color=colour, label=key.replace("_", "-"),
                        yerr=[values - cis[:, 0], cis[:, 1] - values], capsize=3)
            axes[1].axhline(baseline[key], color=colour, linestyle="--", linewidth=1,
                            label=f"majority class {key.replace('_', '-')} ({baseline[key]:.2f})")
        axes[1].set_xticks(x)
        axes[1].set_xticklabels(names_t)
        axes[1].set_title(f"{len(next(iter(evaluation.values()))['predicted'])} WordNet definitions, "
                          f"{len(per_file)} files (95% CI)", fontsize=10)
        axes[1].set_xlabel("label descriptions")
        axes[1].set_ylabel("score")
        axes[1].set_ylim(0, min(1.0, max(ev["accuracy_ci"][1] for ev in evaluation.values()) + 0.25))
        axes[1].legend(fontsize=7, loc="upper right", ncol=2)

        ranked = sorted(per_file, key=per_file.get)
        values = np.array([per_file[f] for f in ranked])
        bounds = np.array([per_file_ci[f] for f in ranked])
        axes[2].barh([names[f] for f in ranked], values, color="tab:purple",
                     xerr=[values - bounds[:, 0], bounds[:, 1] - values], capsize=2)
        axes[2].tick_params(axis="y", labelsize=7)
        axes[2].set_title("F1 per lexicographer file, best template (95% CI)", fontsize=10)
        axes[2].set_xlabel("F1")
        axes[2].set_ylabel("file")
    return [path]


def lesson(out: Path, text: str | None = None, seed: int = SEED, labels: list[str] | None = None) -> dict:
    """Run this file's cells (python -m lessons zero-shot). With `text`, only that text is
    classified (the WordNet evaluation runs without it)."""
    return run_notebook(__name__, out=out, text=text, seed=seed, labels=labels)


# %% [markdown]
# ## The lesson

# %% Parameters (python -m lessons zero-shot sets them; edit them here in a notebook)
if __name__ == "__main__":
    P, out = parameters(globals(), out="lesson_output", text=None, seed=SEED, labels=None)
    text, seed = P["text"], P["seed"]
    evaluate = text is None  # a text of the learner's own: answer it, skip the one-minute evaluation

# %% 1. The seed's example: one text, four labels, two phrasings
if __name__ == "__main__":
    text = text_or_default(text, data.ZERO_SHOT_TEXT, "the --text to classify is empty")
    labels = [label.strip() for label in P["labels"]] if P["labels"] else data.ZERO_SHOT_LABELS
    if len(labels) < 2 or any(not label for label in labels) or len(set(labels)) < len(labels):
        raise LessonError(f"--labels needs two or more different, non-empty labels, got {labels}")
    encoder = load_sentence_encoder()
    print(f"Zero-shot classification by similarity, {DEFAULT_MODEL}\n")
    print(f"  text:   {text!r}\n  labels: {', '.join(labels)}\n")
    example = {}
    for name, template in data.TEMPLATES.items():
        sims = classify(encoder, [text], [template.format(label) for label in labels])[0]
        order = np.argsort(-sims, kind="stable")
        example[name] = {"cosine": sims, "softmax": softmax(sims), "ranking": [labels[i] for i in order]}
        print(f"== Descriptions: {template!r}  ({name})")
        print(format_table(["label", "description", "cosine", "softmax score"],
                           [[labels[i], template.format(labels[i]), float(sims[i]), float(example[name]["softmax"][i])]
                            for i in order]))
        print(f"  -> {labels[order[0]]}\n")
    print("The softmax of raw cosines (the seed's scores) is nearly flat because cosines sit in a")
    print("narrow range; it keeps the ranking.\n")

# %% 2. Real labels: WordNet noun definitions and their lexicographer files
if __name__ == "__main__" and evaluate:
    glosses, gold = gloss_sample(seed)
    names = {f: wordnet.lexnames()[f][0] for f in NOUN_FILES}
    classes = np.array(list(NOUN_FILES))
    counts = Counter(gold.tolist())
    majority_file, majority_count = counts.most_common(1)[0]
    print(f"== {len(glosses)} WordNet noun definitions (seed {seed}) into {len(classes)} lexicographer files")
    print(f"  e.g. {glosses[0]!r} -> {names[gold[0]]}")
    print(f"  most common: {names[majority_file]} ({majority_count}), least: "
          f"{names[min(counts, key=counts.get)]} ({min(counts.values())})\n")
    gloss_vectors = encoder.encode(glosses, show_progress_bar=True)

# %% 3. Score each template: accuracy and macro-F1, with intervals over definitions
if __name__ == "__main__" and evaluate:
    rows = np.arange(len(gold))
    evaluation = {}
    for name, template in GLOSS_TEMPLATES.items():
        predicted = classes[cosine_matrix(gloss_vectors, encoder.encode(label_descriptions(template))).argmax(1)]
        correct = predicted == gold
        evaluation[name] = {
            "template": template, "predicted": predicted,
            "accuracy": float(correct.mean()),
            "accuracy_ci": stats.bootstrap_ci(rows, lambda r: correct[r].mean(), seed),
            "macro_f1": stats.macro_f1(predicted, gold, classes),
            "macro_f1_ci": stats.bootstrap_ci(rows, lambda r: stats.macro_f1(predicted[r], gold[r], classes), seed),
        }
    always = np.full_like(gold, majority_file)
    baseline = {"accuracy": majority_count / len(gold), "macro_f1": stats.macro_f1(always, gold, classes)}
    print(format_table(["descriptions", "example", "accuracy [95% CI]", "macro-F1 [95% CI]"],
                       [[name, label_descriptions(ev["template"])[1], interval(ev["accuracy"], ev["accuracy_ci"]),
                         interval(ev["macro_f1"], ev["macro_f1_ci"])] for name, ev in evaluation.items()]
                       + [[f"always {names[majority_file]}", "", f"{baseline['accuracy']:.3f}",
                           f"{baseline['macro_f1']:.3f}"]]))

# %% 4. Which files the best template gets right, and which it cannot
if __name__ == "__main__" and evaluate:
    best = max(evaluation, key=lambda n: evaluation[n]["macro_f1"])
    predicted = evaluation[best]["predicted"]
    per_file = {f: stats.macro_f1(predicted, gold, np.array([f])) for f in classes}
    rows = np.arange(len(gold))
    with warnings.catch_warnings():
        # a resample may hold no example of a rare file: its F1 is NaN there, and the
        # interval is taken over the other draws (stats.bootstrap_ci uses nanquantile)
        warnings.simplefilter("ignore", RuntimeWarning)
        per_file_ci = {f: stats.bootstrap_ci(rows, lambda r: stats.macro_f1(predicted[r], gold[r], np.array([f])),
                                             seed) for f in classes}
    ranked = sorted(per_file, key=per_file.get, reverse=True)
    print(f"\n  F1 per file with {best!r}: best "
          + ", ".join(f"{names[f]} {per_file[f]:.2f}" for f in ranked[:4]) + "; worst "
          + ", ".join(f"{names[f]} {per_file[f]:.2f}" for f in ranked[-4:]))
    print("  A file's name is all the encoder is told about it: compare the two ends of this list.")

# %% 5. The other approach
if __name__ == "__main__":
    print("\n== The other approach: NLI\n" + NLI_NOTE)
    if not evaluate:
        evaluation, baseline, per_file, per_file_ci, names, gold = None, None, None, None, None, []
        print("\n(The WordNet evaluation runs without --text: python -m lessons zero-shot)")

# %% 6. The picture
if __name__ == "__main__":
    written = _plot_zero_shot(example, labels, text, evaluation, baseline, per_file, names, out, per_file_ci)
    RESULT = {"text": text, "labels": labels, "example": example, "evaluation": evaluation, "baseline": baseline,
              "per_file": per_file, "n": len(gold), "written": written}
