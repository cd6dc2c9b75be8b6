"""Lesson 6: static embeddings, ELMo and BERT side by side, every number measured here.

static = BERT's input word-piece embedding table (a lookup, no context);
ELMo   = minielmo's TINY TEST MODEL (so its speed and sense score say nothing about a real ELMo);
BERT   = all-MiniLM-L6-v2 through minibert.
The sense-separation score is lesson 1's: mean same-sense minus mean different-sense cosine of
the polysemous words' vectors, averaged over the prepared words (static row, ELMo top layer,
BERT last layer).
"""

from __future__ import annotations

import statistics
import time
from pathlib import Path

import numpy as np
import torch

from . import data, plots
from .common import (
    DEFAULT_MODEL, bert_word_vectors, elmo_word_vectors, format_table, load_bert, load_elmo_bilm,
    sense_separation, simple_words,
)

REPEATS = 3  # median of 3 timed runs after one warm-up run


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
    other (BERT ran 8 sentences/s on 2 busy threads here vs 51 on one), and one thread makes the
    three models comparable."""
    import minielmo

    model, tokenizer = load_bert()
    bilm = load_elmo_bilm()
    table = model.embeddings.word_embeddings
    words = [simple_words(s) for s in sentences]

    @torch.no_grad()
    def static():
        table(tokenizer(sentences)["input_ids"])

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
                [("static", static), ("ELMo", elmo), ("BERT", bert)]}
    finally:
        torch.set_num_threads(threads)


def measure_separation() -> dict[str, dict[str, float]]:
    """word -> {model: sense-separation score}."""
    model, tokenizer = load_bert()
    bilm = load_elmo_bilm()
    scores = {}
    for word, senses in data.POLYSEMY.items():
        sentences = [s for group in senses.values() for s in group]
        labels = [sense for sense, group in senses.items() for _ in group]
        static, layers, _ = bert_word_vectors(model, tokenizer, sentences, word)
        elmo = elmo_word_vectors(bilm, sentences, word)
        scores[word] = {"static": sense_separation(static, labels)[2],
                        "ELMo": sense_separation(elmo[-1], labels)[2],
                        "BERT": sense_separation(layers[-1], labels)[2]}
    return scores


def run(out: Path) -> dict:
    """One table of the three kinds of vector; compare.png with sense gap and speed."""
    model, _ = load_bert()
    bilm = load_elmo_bilm()
    cfg, ecfg = model.config, bilm.config
    sentences = [s for senses in data.POLYSEMY.values() for group in senses.values() for s in group]

    separation = measure_separation()
    mean_sep = {m: float(np.mean([s[m] for s in separation.values()])) for m in ("static", "ELMo", "BERT")}
    speed = measure_speed(sentences)
    params = {"static": model.embeddings.word_embeddings.weight.numel(),
              "ELMo": sum(p.numel() for p in bilm.parameters()),
              "BERT": sum(p.numel() for p in model.parameters())}
    size = {"static": model.embeddings.word_embeddings.embedding_dim,
            "ELMo": 2 * ecfg.projection_dim,
            "BERT": cfg.hidden_size}
    window = {"static": "none: one word piece",
              "ELMo": "whole sentence; forward + backward LSTM, no fixed limit",
              "BERT": f"{cfg.max_position_embeddings} word pieces, every token sees every token"}
    needs = {"static": f"WordPiece tokenizer + vocabulary ({cfg.vocab_size:,})",
             "ELMo": "characters only (50 per token); any word, no vocabulary",
             "BERT": f"WordPiece tokenizer + vocabulary ({cfg.vocab_size:,})"}
    names = {"static": "static (MiniLM input embeddings)",
             "ELMo": "ELMo (TINY TEST MODEL)",
             "BERT": f"BERT ({DEFAULT_MODEL})"}

    print("Static vs ELMo vs BERT, measured on this machine "
          f"(speed: 1 torch thread, one batch of {len(sentences)} sentences)\n")
    rows = [[names[m], f"{params[m]:,}", size[m], window[m], round(speed[m]),
             mean_sep[m], needs[m]] for m in ("static", "ELMo", "BERT")]
    print(format_table(["model", "parameters", "vector", "context window", "sentences/s",
                        "sense gap", "needs"], rows))
    print("\n  sense gap = lesson 1's same-sense minus different-sense cosine, mean over "
          f"{', '.join(data.POLYSEMY)}; per word:")
    print("  " + format_table(["word", "static", "ELMo", "BERT"],
                              [[w] + [s[m] for m in ("static", "ELMo", "BERT")] for w, s in separation.items()]
                              ).replace("\n", "\n  "))
    print("\n  The ELMo row is the tiny fixture (16-dim projection): it shows what ELMo needs and")
    print("  how it is wired, not how fast or how good a released ELMo is. Its time loop is")
    print("  per-token Python, so even this tiny model is slower than the static lookup.")

    written: list[Path] = []
    plt = plots.pyplot()
    if plt is None:
        print("\n" + plots.VIZ_HINT)
    else:
        models = ["static", "ELMo", "BERT"]
        labels = ["static", "ELMo\n(tiny test model)", "BERT\n(MiniLM)"]
        fig, axes = plt.subplots(1, 2, figsize=(10, 3.8))
        axes[0].bar(labels, [mean_sep[m] for m in models], color=["tab:gray", "tab:orange", "tab:blue"])
        axes[0].axhline(0.0, color="black", linewidth=0.8)
        axes[0].set_title("Sense separation (lesson 1), mean over words")
        axes[0].set_xlabel("model")
        axes[0].set_ylabel("same-sense minus different-sense cosine")
        axes[1].bar(labels, [speed[m] for m in models], color=["tab:gray", "tab:orange", "tab:blue"])
        axes[1].set_yscale("log")
        axes[1].set_title(f"Speed here (1 thread, batch of {len(sentences)} sentences)")
        axes[1].set_xlabel("model")
        axes[1].set_ylabel("sentences per second (log scale)")
        plots.save(fig, out / "compare.png", written)
    for path in written:
        print(f"wrote {path}")
    return {"params": params, "size": size, "speed": speed, "separation": separation,
            "mean_separation": mean_sep, "written": written}
