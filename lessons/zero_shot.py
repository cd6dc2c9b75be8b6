"""Lesson 5: zero-shot classification by embedding similarity.

Embed the text and a short description of each label with the same SentenceEncoder; the label
whose description is most similar wins. Nothing is trained, so the description's wording is the
whole "model" of the label: the lesson runs two phrasings side by side and scores both on a small
labelled set against the majority-class baseline.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import numpy as np

from . import data, plots
from .common import DEFAULT_MODEL, LessonError, cosine_matrix, format_table, load_sentence_encoder, softmax

NLI_NOTE = """\
The other zero-shot approach, used by the seed lesson, is natural-language inference (NLI):
a cross-encoder such as facebook/bart-large-mnli reads the pair
  premise = the text,  hypothesis = "This example is {label}." (the transformers pipeline's default)
and predicts entailment / neutral / contradiction; the entailment probability is the label's
score (Yin et al. 2019). It reads text and label together in one model, so it can weigh the
label against the whole text, but it needs a full forward pass per (text, label) pair and a
model trained on MNLI. It is not shipped
here: this project works offline, and no NLI weights are available on this machine (only
all-MiniLM-L6-v2 and the tiny ELMo fixture are). The similarity method needs one encoder pass
per text, and the label vectors can be computed once."""


def classify(encoder, texts: list[str], labels: list[str], template: str) -> np.ndarray:
    """(N, K) cosine similarity of each text to each label's description."""
    descriptions = [template.format(label) for label in labels]
    return cosine_matrix(encoder.encode(texts), encoder.encode(descriptions))


def evaluate(encoder, template: str) -> dict:
    texts = [t for t, _ in data.LABELLED]
    gold = [g for _, g in data.LABELLED]
    sims = classify(encoder, texts, data.ZERO_SHOT_LABELS, template)
    predicted = [data.ZERO_SHOT_LABELS[i] for i in sims.argmax(1)]
    per_label = {label: sum(p == g == label for p, g in zip(predicted, gold)) for label in data.ZERO_SHOT_LABELS}
    return {"accuracy": float(np.mean([p == g for p, g in zip(predicted, gold)])),
            "predicted": predicted, "per_label": per_label}


def run(out: Path, text: str | None = None) -> dict:
    """Classify `text` (default: the seed's river-bank sentence) with both phrasings, then score
    both on the labelled set."""
    text = data.ZERO_SHOT_TEXT if text is None else text
    if not text.strip():
        raise LessonError("the --text to classify is empty")
    encoder = load_sentence_encoder()
    labels = data.ZERO_SHOT_LABELS

    print(f"Zero-shot classification by similarity, {DEFAULT_MODEL}\n")
    print(f"  text:   {text!r}\n  labels: {', '.join(labels)}\n")
    example = {}
    for name, template in data.TEMPLATES.items():
        sims = classify(encoder, [text], labels, template)[0]
        scores = softmax(sims)
        order = np.argsort(-sims, kind="stable")
        example[name] = {"cosine": sims, "softmax": scores, "ranking": [labels[i] for i in order]}
        print(f"== Descriptions: {template!r}  ({name})")
        print(format_table(["label", "description", "cosine", "softmax score"],
                           [[labels[i], template.format(labels[i]), float(sims[i]), float(scores[i])]
                            for i in order]))
        print(f"  -> {labels[order[0]]}\n")
    rank = {name: r["ranking"][0] for name, r in example.items()}
    if len(set(rank.values())) > 1:
        print("The two phrasings disagree on the top label: "
              + "; ".join(f"{n} -> {l}" for n, l in rank.items()) + ".")
    else:
        print(f"Both phrasings put {next(iter(rank.values()))} first here.")
    print("The softmax of raw cosines (the seed's scores) is nearly flat because cosines sit in a")
    print("narrow range; it keeps the ranking. Zero-shot by similarity depends on the phrasing.\n")

    gold = [g for _, g in data.LABELLED]
    majority_label, majority_count = Counter(gold).most_common(1)[0]
    baseline = majority_count / len(gold)
    evaluation = {name: evaluate(encoder, template) for name, template in data.TEMPLATES.items()}
    print(f"== Accuracy on {len(gold)} labelled sentences ({', '.join(f'{n} {l}' for l, n in Counter(gold).items())})")
    rows = [[f"{name}: {data.TEMPLATES[name]!r}", ev["accuracy"]]
            + [f"{ev['per_label'][l]}/{gold.count(l)}" for l in labels] for name, ev in evaluation.items()]
    rows.append([f"majority baseline (always {majority_label!r})", baseline]
                + [f"{gold.count(l) if l == majority_label else 0}/{gold.count(l)}" for l in labels])
    print(format_table(["descriptions", "accuracy"] + labels, rows))

    print("\n== The other approach: NLI\n" + NLI_NOTE)

    written: list[Path] = []
    plt = plots.pyplot()
    if plt is None:
        print("\n" + plots.VIZ_HINT)
    else:
        fig, axes = plt.subplots(1, 2, figsize=(12, 4.3))
        x = np.arange(len(labels))
        width = 0.8 / len(example)
        for k, (name, r) in enumerate(example.items()):
            axes[0].bar(x + (k - (len(example) - 1) / 2) * width, r["cosine"], width=width,
                        label=f"{name}: {data.TEMPLATES[name]!r}")
        axes[0].set_xticks(x)
        axes[0].set_xticklabels(labels)
        axes[0].set_title(f"{text[:55]!r}" if len(text) <= 55 else f"{text[:52]!r}...", fontsize=10)
        axes[0].set_xlabel("label")
        axes[0].set_ylabel("cosine(text, label description)")
        axes[0].legend(fontsize=8)
        names = list(evaluation)
        axes[1].bar(names, [evaluation[n]["accuracy"] for n in names], color="tab:green")
        axes[1].axhline(baseline, color="tab:red", linestyle="--", label=f"majority baseline ({baseline:.2f})")
        axes[1].set_ylim(0, 1)
        axes[1].set_title(f"Accuracy on {len(gold)} labelled sentences")
        axes[1].set_xlabel("label descriptions")
        axes[1].set_ylabel("accuracy")
        axes[1].legend(fontsize=8)
        plots.save(fig, out / "zero_shot.png", written)
    for path in written:
        print(f"wrote {path}")
    return {"text": text, "example": example, "evaluation": evaluation, "baseline": baseline,
            "written": written}
