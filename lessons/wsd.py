"""Lesson: word-sense disambiguation by gloss similarity, an embedding Lesk.

Lesk (1986) picks the sense whose dictionary definition shares the most words with the context.
The embedding version replaces counting shared words with the cosine of sentence embeddings:
embed the sentence, embed each candidate sense's definition, pick the closest.

What the learner sees:
1. one worked example ("bank" in a WordNet example sentence): the candidate definitions and
   their cosines;
2. about 1,000 WordNet 3.0 example sentences of polysemous nouns and verbs (sampled with a fixed
   seed), each labelled by WordNet with the sense it illustrates; the candidates are the lemma's
   senses, described by their definitions only (the examples are held out: one of them is the
   test sentence);
3. accuracy with bootstrap 95% intervals over lemmas for the embedding Lesk, the classic Lesk
   word overlap, WordNet's first (most frequent) sense, and random choice; wsd.png.

This file is also a notebook (jupytext): run the cells top to bottom.
"""

from __future__ import annotations

import re
from collections import defaultdict
from functools import lru_cache
from pathlib import Path

import numpy as np

from lessons import plots, stats, wordnet
from lessons.common import (
    DEFAULT_MODEL, format_table, interval, load_sentence_encoder, parameters, run_notebook,
    sample_size, short,
)

SEED = 0
EXAMPLES = sample_size(1000, 100)
PER_LEMMA = 3  # at most this many test sentences per lemma, so frequent lemmas cannot dominate
MAX_SENSES = 12  # lemmas with more senses ("break": 59 verb senses) are left out: definitions to embed
# Function words the classic Lesk overlap ignores (a short hand-written list: the method only
# needs the obvious ones gone, and this keeps the lesson free of an NLP library).
STOPWORDS = frozenset("""a an the of to in on at by for with from as and or but not no is are was were be been
being it its this that these those he she they we you i his her their our your my me him them us
who whom which what when where how than then so such very can will would should could may might
do does did has have had one some any all into out up down over about""".split())


def content_words(text: str) -> set[str]:
    return {w for w in re.findall(r"[a-z]+", text.lower()) if w not in STOPWORDS}


@lru_cache(maxsize=None)
def test_set(seed: int = SEED, size: int = EXAMPLES) -> tuple[wordnet.Example, ...]:
    """`size` example sentences of lemmas with 2..MAX_SENSES senses, at most PER_LEMMA each."""
    by_lemma = defaultdict(list)
    for pos in ("n", "v"):
        for example in wordnet.examples(pos):
            if 2 <= len(wordnet.senses(pos)[example.lemma]) <= MAX_SENSES:
                by_lemma[(example.lemma, pos)].append(example)
    rng = np.random.default_rng(seed)
    keys = sorted(by_lemma)
    chosen = []
    for k in rng.permutation(len(keys)):
        pool = by_lemma[keys[k]]
        chosen += [pool[i] for i in rng.permutation(len(pool))[:PER_LEMMA]]
        if len(chosen) >= size:
            break
    return tuple(chosen[:size])


def candidates(example: wordnet.Example) -> list[wordnet.Synset]:
    """The lemma's senses in WordNet's order (most frequent first)."""
    table = wordnet.synsets(example.pos)
    return [table[o] for o in wordnet.senses(example.pos)[example.lemma]]


def classic_lesk(sentence: str, senses: list[wordnet.Synset]) -> int:
    """Index of the sense whose definition shares most content words with the sentence; ties go
    to the earlier (more frequent) sense."""
    context = content_words(sentence)
    overlaps = [len(context & content_words(s.definition)) for s in senses]
    return int(np.argmax(overlaps))


def _plot_wsd(results: dict, n: int, out: Path) -> list[Path]:
    path = out / "wsd.png"
    with plots.figure(path, figsize=(8, 3.6)) as (fig, ax):
        if fig is None:
            return []
        names = list(results)[::-1]
        values = np.array([results[m][0] for m in names])
        cis = np.array([results[m][1] for m in names])
        ax.barh(names, values, xerr=[values - cis[:, 0], cis[:, 1] - values], capsize=3,
                color=["tab:gray", "tab:olive", "tab:orange", "tab:blue"])
        ax.set_xlim(0, 1)
        ax.set_title(f"Word-sense disambiguation, {n} WordNet example sentences (95% CI)", fontsize=10)
        ax.set_xlabel("accuracy")
        ax.set_ylabel("method")
    return [path]


def lesson(out: Path, seed: int = SEED) -> dict:
    """Run this file's cells (python -m lessons wsd)."""
    return run_notebook(__name__, out=out, seed=seed)


# %% [markdown]
# ## The lesson

# %% Parameters (python -m lessons wsd sets them; edit them here in a notebook)
if __name__ == "__main__":
    P, out = parameters(globals(), out="lesson_output", seed=SEED)
    seed = P["seed"]

# %% 1. Load the test sentences and every candidate definition
if __name__ == "__main__":
    examples = test_set(seed)
    encoder = load_sentence_encoder()
    senses = [candidates(e) for e in examples]
    gold = np.array([e.sense_rank for e in examples])
    lemmas = np.array([f"{e.lemma}.{e.pos}" for e in examples])
    print(f"Word-sense disambiguation by gloss similarity, {DEFAULT_MODEL}\n")
    print(f"  {len(examples)} WordNet example sentences of {len(set(lemmas))} lemmas (seed {seed}), "
          f"{np.mean([len(s) for s in senses]):.1f} candidate senses on average\n")

# %% 2. Embed sentences and definitions once
if __name__ == "__main__":
    definitions = sorted({s.definition for group in senses for s in group})
    definition_row = {d: i for i, d in enumerate(definitions)}
    definition_vectors = encoder.encode(definitions, show_progress_bar=True)
    sentence_vectors = encoder.encode([e.sentence for e in examples], show_progress_bar=True)

# %% 3. A worked example
if __name__ == "__main__":
    k = next((i for i, e in enumerate(examples) if 3 <= len(senses[i]) <= 6), 0)
    scores = definition_vectors[[definition_row[s.definition] for s in senses[k]]] @ sentence_vectors[k]
    print(f"== {examples[k].lemma!r} in {examples[k].sentence!r}")
    print(format_table(["sense", "definition", "cosine", ""],
                       [[str(i + 1), short(s.definition, 70), float(c),
                         ("<- WordNet's label" if i == gold[k] else "")
                         + (" <- chosen" if i == int(np.argmax(scores)) else "")]
                        for i, (s, c) in enumerate(zip(senses[k], scores))]))

# %% 4. Every method on every sentence
if __name__ == "__main__":
    embedding = np.array([int(np.argmax(definition_vectors[[definition_row[s.definition] for s in group]] @ v))
                          for group, v in zip(senses, sentence_vectors)])
    lesk = np.array([classic_lesk(e.sentence, group) for e, group in zip(examples, senses)])
    chance = np.array([1.0 / len(group) for group in senses])  # expected accuracy of a random pick
    methods = {"embedding Lesk (cosine of definitions)": (embedding == gold).astype(float),
               "classic Lesk (shared words)": (lesk == gold).astype(float),
               "first sense (WordNet order)": (gold == 0).astype(float),
               "random sense (expected)": chance}
    results = {name: (float(correct.mean()), stats.bootstrap_ci(lemmas, lambda r: correct[r].mean(), seed))
               for name, correct in methods.items()}

# %% 5. Print the scores
if __name__ == "__main__":
    print(f"\n== Accuracy on {len(examples)} sentences, 95% CI over lemmas")
    print(format_table(["method", "accuracy [95% CI]"], [[n, interval(a, ci)] for n, (a, ci) in results.items()]))
    print("\n  WordNet orders senses by their frequency in the SemCor corpus, so on running text the")
    print("  first sense is a strong baseline; WordNet's examples illustrate rare senses as often as")
    print("  common ones, so here it is close to a random pick.")

    written = _plot_wsd(results, len(examples), out)
    RESULT = {"examples": examples, "results": results, "written": written}
