"""Lesson: static vectors, ELMo and BERT side by side, every number measured here.

What the learner sees:
1. one table: parameters, vector size, context window, what each model needs, speed on this
   machine, and how well its best layer tells word senses apart on WordNet (the `layers`
   lesson's ROC AUC) next to the same architecture with random weights;
2. compare.png: that margin over random weights per model, and the speed.

The models: GloVe 6B 50d and BERT's input word-piece table (static), minielmo's default ELMo,
and all-MiniLM-L6-v2. A model is only as good as its margin over its own random-weight twin.
The WordNet numbers are the `layers` lesson's, read from its cache (computed there if missing).

This file is also a notebook (jupytext): run the cells top to bottom.
"""

from __future__ import annotations

import statistics
import time
from pathlib import Path

import numpy as np
import torch

from lessons import data, plots
from lessons.common import (
    DEFAULT_MODEL, elmo_label, format_table, interval, load_bert, load_elmo_bilm, parameters, progress,
    run_notebook, simple_words,
)
from lessons.glove import load_glove
from lessons.layer_probes import GLOVE, MINILM, STATIC, all_models

REPEATS = 3  # median of 3 timed runs after one warm-up run


def _seconds(fn) -> list[float]:
    fn()  # warm-up: first calls pay for allocation and lazy initialisation
    times = []
    for _ in range(REPEATS):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return times


def measure_speed(sentences: list[str]) -> dict[str, tuple[float, float, float]]:
    """Sentences per second for each model: (median, slowest, fastest of the REPEATS runs),
    tokenisation included, one batch of `sentences`, on one torch thread: on a shared 2-core
    machine, extra intra-op threads mostly wait for each
    other, and one thread makes the models comparable."""
    import minielmo

    model, tokenizer = load_bert()
    bilm = load_elmo_bilm()
    glove = load_glove()
    words = [simple_words(s) for s in sentences]

    def glove_lookup():
        [[glove.vector(w) for w in ws if w in glove] for ws in words]

    @torch.no_grad()
    def table():
        model.embeddings.word_embeddings(tokenizer(sentences)["input_ids"])

    @torch.no_grad()
    def elmo():
        bilm(minielmo.batch_to_ids(words))

    @torch.no_grad()
    def bert():
        enc = tokenizer(sentences)
        model(enc["input_ids"], attention_mask=enc["attention_mask"], token_type_ids=enc["token_type_ids"])

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        speeds = {}
        for name, fn in progress([("GloVe", glove_lookup), ("table", table), ("ELMo", elmo), ("BERT", bert)],
                                 f"timing {REPEATS + 1} runs per model"):
            times = _seconds(fn)
            speeds[name] = tuple(len(sentences) / t for t in (statistics.median(times), max(times), min(times)))
        return speeds
    finally:
        torch.set_num_threads(threads)


def best_margin(rows, control) -> dict:
    """The layer (not ELMo's mix, not MiniLM's input-table row) with the highest sense AUC, its
    interval, and random weights' AUC and interval at that layer."""
    k = max((k for k, r in enumerate(rows) if r.kind == "layer" or len(rows) == 1), key=lambda k: rows[k].sense_auc)
    return quality_at(rows, control, k)


def quality_at(rows, control, k: int) -> dict:
    return {"layer": rows[k].layer, "auc": rows[k].sense_auc, "ci": rows[k].sense_ci,
            "random_auc": control[k].sense_auc, "random_ci": control[k].sense_ci}


def plot_compare(quality, speed, models, out: Path) -> list[Path]:
    path = out / "compare.png"
    keys = list(models)
    labels = [models[k][0].replace(" (", "\n(") for k in keys]
    with plots.figure(path, 1, 2, figsize=(11, 4.2)) as (fig, axes):
        if fig is None:
            return []
        x = np.arange(len(keys))
        for shift, value, ci, colour, label in [(-0.2, "auc", "ci", "tab:blue", "trained, best layer"),
                                                (0.2, "random_auc", "random_ci", "tab:gray",
                                                 "random weights, same layer")]:
            y = np.array([quality[k][value] for k in keys])
            bounds = np.array([quality[k][ci] for k in keys])
            axes[0].bar(x + shift, y, width=0.4, color=colour, yerr=[y - bounds[:, 0], bounds[:, 1] - y],
                        capsize=3, label=label)
        axes[0].axhline(0.5, color="black", linewidth=0.8, linestyle="--", label="chance (0.5)")
        axes[0].set_ylim(0, 1)
        axes[0].set_xticks(x)
        axes[0].set_xticklabels(labels, fontsize=8)
        axes[0].set_title("WordNet sense pairs: ROC AUC (95% CI)", fontsize=10)
        axes[0].set_xlabel("model")
        axes[0].set_ylabel("ROC AUC")
        axes[0].legend(fontsize=8, loc="upper left")
        median, slowest, fastest = (np.array([speed[k][i] for k in keys]) for i in range(3))
        axes[1].bar(labels, median, color="tab:blue", yerr=[median - slowest, fastest - median], capsize=3)
        axes[1].set_yscale("log")
        axes[1].set_title(f"Speed here (1 thread, tokenisation included;\nmedian, bars: slowest to fastest of "
                          f"{REPEATS} runs)", fontsize=9)
        axes[1].set_xlabel("model")
        axes[1].set_ylabel("sentences per second (log scale)")
        axes[1].tick_params(axis="x", labelsize=8)
    return [path]


def lesson(out: Path) -> dict:
    """Run this file's cells with `out` (python -m lessons compare)."""
    return run_notebook(__name__, out=out)


# %% [markdown]
# ## The lesson

# %% Parameters (python -m lessons compare sets them; edit them here in a notebook)
if __name__ == "__main__":
    P, out = parameters(globals(), out="lesson_output")

# %% 1. Load the models and the layers lesson's WordNet measurements (cached)
if __name__ == "__main__":
    model, _ = load_bert()
    bilm = load_elmo_bilm()
    glove = load_glove()
    cfg, ecfg = model.config, bilm.config
    measured = all_models()
    minilm_rows, minilm_control = measured[MINILM]
    static_k = next(k for k, r in enumerate(minilm_rows) if r.layer == STATIC)  # the input-table rows

# %% 2. Speed on this machine, one batch of the polysemy sentences
if __name__ == "__main__":
    sentences = [s for word in data.POLYSEMY for s in data.sentences_and_senses(word)[0]]
    speed = measure_speed(sentences)

# %% 3. One table
if __name__ == "__main__":
    count = lambda module: sum(p.numel() for p in module.parameters())  # noqa: E731
    quality = {"GloVe": best_margin(*measured[GLOVE]),
               "table": quality_at(minilm_rows, minilm_control, static_k),
               "ELMo": best_margin(*measured[elmo_label()]),
               "BERT": best_margin(minilm_rows, minilm_control)}
    models = {
        "GloVe": ("GloVe 6B 50d (static)", glove.vectors.size, glove.vectors.shape[1], "none: one word",
                  f"a word list ({glove.vectors.shape[0]:,}, lower case)"),
        "table": ("MiniLM input table (static)", model.embeddings.word_embeddings.weight.numel(), cfg.hidden_size,
                  "none: one word piece", f"WordPiece vocabulary ({cfg.vocab_size:,})"),
        "ELMo": (elmo_label(), count(bilm), 2 * ecfg.projection_dim, "whole sentence, forward + backward LSTM",
                 "characters only (50 per token): any word"),
        "BERT": (f"BERT ({DEFAULT_MODEL})", count(model), cfg.hidden_size,
                 f"{cfg.max_position_embeddings} word pieces, every token sees every token",
                 f"WordPiece vocabulary ({cfg.vocab_size:,})"),
    }
    print(f"GloVe vs ELMo vs BERT, measured here (speed: 1 torch thread, one batch of {len(sentences)} sentences)\n")
    rows = [[name, f"{params:,}", size, window, round(speed[key][0]),
             f"{interval(quality[key]['auc'], quality[key]['ci'])} at {quality[key]['layer']}",
             interval(quality[key]["random_auc"], quality[key]["random_ci"]), needs]
            for key, (name, params, size, window, needs) in models.items()]
    print(format_table(["model", "parameters", "vector", "context window", "sentences/s (median)",
                        "sense AUC, best layer [95% CI]", "random weights", "needs"], rows))
    print("\n  sense AUC: the layers lesson's WordNet same- vs different-sense pairs (0.5 = chance),")
    print("  at the model's best layer (ELMo's scalar mix is not a layer), beside the same")
    print("  architecture with random weights there.")

# %% 4. The picture
if __name__ == "__main__":
    written = plot_compare(quality, speed, models, out)
    RESULT = {"speed": speed, "quality": quality, "params": {k: m[1] for k, m in models.items()},
              "size": {k: m[2] for k, m in models.items()}, "written": written}
