"""Lesson: static vectors, ELMo and BERT side by side, every number measured here.

What the learner sees:
1. one table: parameters, vector size, context window, what each model needs, speed on this
   machine, and how well its best layer tells word senses apart on WordNet (the `layers`
   lesson's ROC AUC) next to the same architecture with random weights;
2. compare.png: that margin over random weights per model, and the speed.

The models: GloVe 6B 50d and BERT's input word-piece table (static), minielmo's default ELMo,
and all-MiniLM-L6-v2. A model is only as good as its margin over its own random-weight twin;
while minielmo's default is allennlp's untrained 16-dim test fixture, its row shows what ELMo
needs and how it is wired, and the lesson draws it apart from the trained models.
"""

from __future__ import annotations

import statistics
import time
from pathlib import Path

import numpy as np
import torch

from . import data, plots
from .common import (
    DEFAULT_MODEL, elmo_is_fixture, elmo_label, format_table, interval, load_bert, load_elmo_bilm, simple_words,
)
from .glove import load_glove
from .layer_probes import GLOVE, all_models

REPEATS = 3  # median of 3 timed runs after one warm-up run
MINILM = "MiniLM (all-MiniLM-L6-v2)"


def _median_seconds(fn) -> float:
    fn()  # warm-up: first calls pay for allocation and lazy initialisation
    times = []
    for _ in range(REPEATS):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def measure_speed(sentences: list[str]) -> dict[str, float]:
    """Sentences per second for each model, tokenisation included, one batch of `sentences`,
    on one torch thread: on a shared 2-core machine, extra intra-op threads mostly wait for each
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
        return {name: len(sentences) / _median_seconds(fn) for name, fn in
                [("GloVe", glove_lookup), ("table", table), ("ELMo", elmo), ("BERT", bert)]}
    finally:
        torch.set_num_threads(threads)


def best_margin(rows, control) -> tuple[str, float, tuple[float, float], float]:
    """The layer with the highest sense AUC: (layer, AUC, its CI, AUC of random weights there)."""
    k = int(np.argmax([r.sense_auc for r in rows]))
    return rows[k].layer, rows[k].sense_auc, rows[k].sense_ci, control[k].sense_auc


def lesson(out: Path) -> dict:
    # %% 1. Load the models and the layer lesson's WordNet measurements
    model, _ = load_bert()
    bilm = load_elmo_bilm()
    glove = load_glove()
    cfg, ecfg = model.config, bilm.config
    measured = all_models()
    minilm_rows, minilm_control = measured[MINILM]
    static_row = (minilm_rows[0], minilm_control[0])  # 'static': the input-table rows

    # %% 2. Speed on this machine, one batch of the polysemy sentences
    sentences = [s for word in data.POLYSEMY for s in data.sentences_and_senses(word)[0]]
    speed = measure_speed(sentences)

    # %% 3. One table
    count = lambda module: sum(p.numel() for p in module.parameters())  # noqa: E731
    quality = {"GloVe": best_margin(*measured[GLOVE]),
               "table": (static_row[0].layer, static_row[0].sense_auc, static_row[0].sense_ci, static_row[1].sense_auc),
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
    rows = [[name, f"{params:,}", size, window, round(speed[key]),
             f"{interval(quality[key][1], quality[key][2])} at {quality[key][0]}", quality[key][3], needs]
            for key, (name, params, size, window, needs) in models.items()]
    print(format_table(["model", "parameters", "vector", "context window", "sentences/s",
                        "sense AUC, best layer [95% CI]", "random weights", "needs"], rows))
    print("\n  sense AUC: the layers lesson's WordNet same- vs different-sense pairs (0.5 = chance),")
    print("  at the model's best layer, beside the same architecture with random weights there.")
    if elmo_is_fixture():
        print("  The ELMo row is allennlp's untrained 16-dim test fixture: it shows what ELMo needs and")
        print("  how it is wired, not how fast or how good a trained ELMo is; the picture leaves it out")
        print("  of the comparison.")

    written = _plot_compare(quality, speed, models, out)
    return {"speed": speed, "quality": quality, "params": {k: m[1] for k, m in models.items()},
            "size": {k: m[2] for k, m in models.items()}, "written": written}


def _plot_compare(quality, speed, models, out: Path) -> list[Path]:
    path = out / "compare.png"
    keys = [k for k in models if not (k == "ELMo" and elmo_is_fixture())]
    labels = [models[k][0].replace(" (", "\n(") for k in keys]
    with plots.figure(path, 1, 2, figsize=(11, 4.2)) as (fig, axes):
        if fig is None:
            return []
        auc = np.array([quality[k][1] for k in keys])
        ci = np.array([quality[k][2] for k in keys])
        x = np.arange(len(keys))
        axes[0].bar(x - 0.2, auc, width=0.4, yerr=[auc - ci[:, 0], ci[:, 1] - auc], capsize=3,
                    label="trained, best layer")
        axes[0].bar(x + 0.2, [quality[k][3] for k in keys], width=0.4, color="tab:gray",
                    label="random weights, same layer")
        axes[0].axhline(0.5, color="black", linewidth=0.8)
        axes[0].set_ylim(0.4, 0.8)
        axes[0].set_xticks(x)
        axes[0].set_xticklabels(labels, fontsize=8)
        axes[0].set_title("WordNet sense pairs: ROC AUC (95% CI)", fontsize=10)
        axes[0].set_xlabel("model")
        axes[0].set_ylabel("ROC AUC (0.5 = chance)")
        axes[0].legend(fontsize=8)
        axes[1].bar(labels, [speed[k] for k in keys], color="tab:blue")
        axes[1].set_yscale("log")
        axes[1].set_title("Speed here (1 thread, tokenisation included)", fontsize=10)
        axes[1].set_xlabel("model")
        axes[1].set_ylabel("sentences per second (log scale)")
        axes[1].tick_params(axis="x", labelsize=8)
        if elmo_is_fixture():
            fig.suptitle("ELMo left out: minielmo's default is the untrained test fixture", fontsize=9)
    return [path]
