"""Lesson: which layer knows what? Senses and parts of speech measured on WordNet 3.0.

The claim under test (the seed lesson's "layer specialisation", and Peters et al. 2018 §5.3,
where part-of-speech tagging peaks at ELMo's first biLSTM layer and word-sense disambiguation
at the second): lower layers carry syntax, higher layers semantics.

What the learner sees:
1. the data: WordNet example sentences, a few hundred lemmas sampled with a fixed seed;
2. semantics per layer: for pairs of example sentences of one noun, is the cosine of the noun's
   vectors higher when the two examples illustrate the same sense? ROC AUC, 0.5 = chance;
3. syntax per layer: a logistic-regression probe predicts noun vs verb from the word's vector,
   for words WordNet lists as both ("walk", "bank"), cross-validated by lemma so no word is
   both in training and testing; accuracy against the majority class, and the control task
   of Hewitt & Liang (2019): random labels per word form, which only memorising can learn;
4. the same architectures with random weights (the random-encoder baselines of Conneau et al.
   2018): the sentence's other words change a random network's vector too, so what a model
   has learned is its margin over this control, not its raw score;
5. GloVe, one vector per word type, as the static baseline in every table;
6. layer_probes.png: per model, the two curves across layers with the control beside them.

Every number comes with a bootstrap 95% interval over lemmas. A layer is called better than
another only when the paired interval (the same resampled lemmas, layer i minus layer j) stays
above 0; ELMo's scalar mix is shown beside the layers but is not one of them.
`elmo_layer_measures(bilm)` runs the ELMo part on any biLM and returns the table's rows.

The measures take minutes; they are computed once and kept in the cache folder
(lessons.common.cache_dir), keyed by model, weights, data and seed. `compare` and the lab read
them back with `all_models()`.

This file is also a notebook: `jupytext --to notebook lessons/layer_probes.py`, or open it in
Jupyter with jupytext installed, and run the cells top to bottom.
"""

# %%
from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np
import torch

from lessons import plots, stats, wordnet
from lessons.common import (
    ELMO_WORDS, elmo_label, format_table, interval, load_bert, load_elmo_bilm, measure_cache, parameters,
    progress, run_notebook, sample_size, simple_word_spans, text_hash, unit, weights_hash,
    bert_span_vectors,
)
from lessons.glove import load_glove

SEED = 0
SENSE_LEMMAS = sample_size(200, 24)  # nouns whose example pairs are scored (~1,450 pairs in all)
SENSE_EXAMPLES = 6  # at most this many examples per noun, so a few nouns cannot dominate
POS_LEMMAS = sample_size(200, 24)  # noun-and-verb word forms for the probe
POS_EXAMPLES = 2  # at most this many noun and this many verb examples per lemma
BATCH = 64
GLOVE = "GloVe 6B 50d"
MINILM = "MiniLM (all-MiniLM-L6-v2)"
MIX = "mix"  # ELMo's equal-weight scalar mix: a weighted sum of the layers, not a layer
STATIC = "static"  # MiniLM's input-table row: before position embeddings and LayerNorm
COSINE_DECIMALS = 6  # float32 vectors: cosines agree to ~1e-7 between two routes, so 6 is safe
CACHE_VERSION = 1  # bump when what measure_cache stores changes meaning


# ----------------------------------------------------------------------------- data


@dataclass(frozen=True)
class ProbeSet:
    """The sentences both tasks use, and the two tasks as indices into them."""
    items: tuple[wordnet.Example, ...]
    pairs: np.ndarray  # (P, 2) indices into items: two examples of one noun, same word form
    pair_same: np.ndarray  # (P,) True when both illustrate the same synset
    pair_lemma: np.ndarray  # (P,) the noun, for resampling
    pos_rows: np.ndarray  # (M,) indices into items
    pos_verb: np.ndarray  # (M,) 1 = the example comes from a verb synset
    pos_lemma: np.ndarray  # (M,)
    pos_control: np.ndarray  # (M,) Hewitt & Liang control labels: one random label per word form


@lru_cache(maxsize=None)
def probe_set(seed: int = SEED) -> ProbeSet:
    """Sample the lemmas and examples with `seed`; the same seed gives the same sentences."""
    rng = np.random.default_rng(seed)
    items: dict[tuple[str, tuple[int, int]], int] = {}
    ordered: list[wordnet.Example] = []

    def add(example: wordnet.Example) -> int:
        key = (example.sentence, example.span)
        if key not in items:
            items[key] = len(ordered)
            ordered.append(example)
        return items[key]

    # semantics: nouns with at least two senses that have examples, one sense with two
    by_lemma: dict[str, dict[int, list]] = defaultdict(lambda: defaultdict(list))
    for example in wordnet.examples("n"):
        by_lemma[example.lemma][example.synset].append(example)
    eligible = sorted(lemma for lemma, by_sense in by_lemma.items()
                      if len(by_sense) >= 2 and any(len(group) >= 2 for group in by_sense.values()))
    pairs, same, pair_lemma = [], [], []
    for lemma in rng.permutation(eligible)[:SENSE_LEMMAS]:
        by_sense = by_lemma[lemma]
        pool = [e for group in by_sense.values() for e in group]
        # keep one same-sense pair for sure, then fill up at random
        first = next(group for group in by_sense.values() if len(group) >= 2)[:2]
        rest = [e for e in pool if e not in first]
        chosen = first + [rest[i] for i in rng.permutation(len(rest))[:SENSE_EXAMPLES - 2]]
        rows = [add(e) for e in chosen]
        forms = [e.sentence[slice(*e.span)].lower() for e in chosen]
        for i in range(len(chosen)):
            for j in range(i + 1, len(chosen)):
                if forms[i] != forms[j]:
                    continue  # "bank" vs "banks": a static vector would see the inflection
                pairs.append((rows[i], rows[j]))
                same.append(chosen[i].synset == chosen[j].synset)
                pair_lemma.append(lemma)

    # syntax: lemmas with examples both as a noun and as a verb
    nouns, verbs = defaultdict(list), defaultdict(list)
    for example in wordnet.examples("n"):
        nouns[example.lemma].append(example)
    for example in wordnet.examples("v"):
        verbs[example.lemma].append(example)
    both = sorted(set(nouns) & set(verbs))
    pos_rows, pos_verb, pos_lemma = [], [], []
    for lemma in rng.permutation(both)[:POS_LEMMAS]:
        for label, pool in ((0, nouns[lemma]), (1, verbs[lemma])):
            for i in rng.permutation(len(pool))[:POS_EXAMPLES]:
                pos_rows.append(add(pool[i]))
                pos_verb.append(label)
                pos_lemma.append(lemma)
    pos_verb = np.array(pos_verb)
    forms = [ordered[r].sentence[slice(*ordered[r].span)].lower() for r in pos_rows]
    control_of = {form: int(rng.random() < pos_verb.mean()) for form in sorted(set(forms))}
    return ProbeSet(tuple(ordered), np.array(pairs), np.array(same), np.array(pair_lemma),
                    np.array(pos_rows), pos_verb, np.array(pos_lemma),
                    np.array([control_of[f] for f in forms]))


# ----------------------------------------------------------------------------- vectors
# Each returns {layer name: (N, D) vectors of the target word in items[i]}, in layer order.


def minilm_vectors(model, tokenizer, items, what: str = "MiniLM vectors") -> dict[str, np.ndarray]:
    """'static' = mean of the word's rows of the input table; 'emb' = the embedding output;
    then each encoder layer. Several word pieces: their mean (common.bert_span_vectors)."""
    static, layers, _ = bert_span_vectors(model, tokenizer, [e.sentence for e in items], [e.span for e in items],
                                          batch=BATCH, what=what)
    names = [STATIC, "emb"] + [str(layer) for layer in range(1, len(layers))]
    return dict(zip(names, [static, *layers]))


@torch.no_grad()
def elmo_vectors(bilm, items, what: str = "ELMo vectors") -> dict[str, np.ndarray]:
    """Layer 0 (char-CNN), each biLSTM layer, and the scalar mix with equal weights (s = 0,
    gamma = 1: the mix minielmo.Elmo starts from)."""
    import minielmo

    n_layers = bilm.config.n_layers + 1
    out = np.zeros((n_layers, len(items), 2 * bilm.config.projection_dim), dtype=np.float32)
    order = sorted(range(len(items)), key=lambda i: len(items[i].sentence))  # little padding
    for batch in progress([order[i:i + BATCH] for i in range(0, len(order), BATCH)], what):
        spans = [simple_word_spans(items[i].sentence) for i in batch]
        index = [next(k for k, (s, e) in enumerate(sp) if s <= items[i].span[0] < e)
                 for sp, i in zip(spans, batch)]
        words = [[items[i].sentence[s:e] for s, e in sp] for sp, i in zip(spans, batch)]
        activations = bilm(minielmo.batch_to_ids(words))["activations"]
        rows, cols = torch.arange(len(batch)), torch.tensor(index) + 1  # +1: the <S> token
        for j, act in enumerate(activations):
            out[j, batch] = act[rows, cols].numpy()
    mix = minielmo.ScalarMix(n_layers)  # s = 0, gamma = 1 at construction
    mixed = mix([torch.from_numpy(layer) for layer in out]).numpy()
    names = ["0 char-CNN"] + [f"{j} biLSTM" for j in range(1, n_layers)] + [MIX]
    return dict(zip(names, [*out, mixed]))


def glove_vectors(glove, items) -> dict[str, np.ndarray]:
    """The word form's one GloVe vector. A form GloVe lacks gets one shared unknown-word vector,
    the mean of all rows (what a static model does with a word outside its table), so it too
    has one vector whatever the sentence."""
    unknown = glove.vectors.mean(0)
    forms = [e.sentence[slice(*e.span)] for e in items]
    return {"GloVe": np.stack([glove.vector(f) if f in glove else unknown for f in forms])}


def random_minilm(seed: int = SEED):
    """MiniLM's architecture with PyTorch's default random initialisation, same tokenizer."""
    import minibert

    model, tokenizer = load_bert()
    torch.manual_seed(seed)
    return minibert.BertModel(model.config).eval(), tokenizer


def random_bilm(config, seed: int = SEED):
    import minielmo

    torch.manual_seed(seed)
    return minielmo.BiLM(config).eval()


def random_static_vectors(items, dim: int = 50, seed: int = SEED) -> dict[str, np.ndarray]:
    """GloVe's control: a random vector per word form (a static table with random weights)."""
    forms = [e.sentence[slice(*e.span)].lower() for e in items]
    rng = np.random.default_rng(seed)
    table = {f: rng.normal(size=dim).astype(np.float32) for f in sorted(set(forms))}
    return {"GloVe": np.stack([table[f] for f in forms])}


# ----------------------------------------------------------------------------- measures


def layer_scores(vectors: dict[str, np.ndarray], data: ProbeSet, seed: int = SEED, control_task: bool = True,
                 what: str = "probes") -> dict[str, np.ndarray]:
    """What every number of the lesson is computed from, per layer (the cached part):
    names (K,), cosine (K, P) of each sense pair, correct (K, M) of the cross-validated noun/verb
    probe per example, control (K,) the probe's accuracy on the control task (NaN if skipped)."""
    lemma_folds = stats.fold_of(data.pos_lemma, seed=seed)
    sentence_folds = stats.fold_of(np.arange(len(data.pos_rows)), seed=seed)
    cosines, correct, control = [], [], []
    for name in progress(list(vectors), what):
        x = vectors[name]
        u = unit(x.astype(np.float64))
        # rounded so that pairs with equal vectors tie exactly; |u|^2 = 1 +- rounding otherwise
        # orders them by noise (a static model would then score a little off 0.5)
        cosines.append(np.round(np.sum(u[data.pairs[:, 0]] * u[data.pairs[:, 1]], axis=1), COSINE_DECIMALS))
        features = x[data.pos_rows]
        correct.append(stats.probe_correct(features, data.pos_verb, lemma_folds))
        control.append(stats.probe_correct(features, data.pos_control, sentence_folds).mean()
                       if control_task else np.nan)
    return {"names": np.array(list(vectors)), "cosine": np.stack(cosines), "correct": np.stack(correct),
            "control": np.array(control, dtype=np.float64)}


@dataclass(frozen=True)
class LayerRow:
    layer: str
    sense_auc: float  # ROC AUC of same- vs different-sense pairs by cosine
    sense_ci: tuple[float, float]
    pos_accuracy: float  # noun/verb probe, cross-validated by lemma
    pos_ci: tuple[float, float]
    majority: float  # the majority-class baseline under the same folds
    control_accuracy: float  # the probe on Hewitt & Liang control labels, folds by sentence
    kind: str = "layer"  # "layer", or STATIC / MIX: shown beside the layers, not one of them


def kind_of(name: str) -> str:
    return name if name in (STATIC, MIX) else "layer"


def rows_from(scores: dict[str, np.ndarray], data: ProbeSet, seed: int = SEED) -> list[LayerRow]:
    """One LayerRow per layer of `scores`: the estimates and their bootstrap intervals."""
    majority = stats.majority_correct(data.pos_verb, stats.fold_of(data.pos_lemma, seed=seed))
    rows = []
    for name, cosine, correct, control in zip(scores["names"], scores["cosine"], scores["correct"],
                                              scores["control"]):
        rows.append(LayerRow(
            str(name), stats.roc_auc(cosine, data.pair_same),
            stats.bootstrap_ci(data.pair_lemma, lambda r: stats.roc_auc(cosine[r], data.pair_same[r]), seed),
            float(correct.mean()), stats.bootstrap_ci(data.pos_lemma, lambda r: correct[r].mean(), seed),
            float(majority.mean()), float(control), kind_of(str(name))))
    return rows


def measure(vectors: dict[str, np.ndarray], data: ProbeSet, seed: int = SEED,
            control_task: bool = True) -> list[LayerRow]:
    """One LayerRow per layer of `vectors` (computed on data.items)."""
    return rows_from(layer_scores(vectors, data, seed, control_task), data, seed)


def elmo_layer_measures(bilm, seed: int = SEED) -> list[LayerRow]:
    """The ELMo rows of this lesson for any biLM: layer 0, each biLSTM layer, the equal-weight
    scalar mix. Same sentences, folds and resamples for every model given the same seed, so
    rows of a trained and a random-weight model can be compared directly."""
    data = probe_set(seed)
    return measure(elmo_vectors(bilm.eval(), data.items), data, seed)


def table_rows(rows: list[LayerRow], control: list[LayerRow]) -> list[list]:
    return [[r.layer, interval(r.sense_auc, r.sense_ci), interval(c.sense_auc, c.sense_ci),
             interval(r.pos_accuracy, r.pos_ci), interval(c.pos_accuracy, c.pos_ci), r.majority,
             r.control_accuracy] for r, c in zip(rows, control)]


HEADER = ["layer", "sense AUC [95% CI]", "random weights", "noun/verb probe", "random weights",
          "majority", "control task"]


# ----------------------------------------------------------------------------- every model, cached


@dataclass(frozen=True)
class ModelMeasures:
    rows: list[LayerRow]  # the trained model
    control: list[LayerRow]  # the same architecture with random weights
    scores: dict  # layer_scores of the trained model, for paired comparisons
    control_scores: dict


def data_key(data: ProbeSet, seed: int) -> str:
    return text_hash(CACHE_VERSION, seed, [(e.sentence, e.span) for e in data.items], data.pairs.tolist(),
                     data.pos_rows.tolist(), data.pos_control.tolist())


def cached_scores(label: str, weights: str, data: ProbeSet, seed: int, vectors, control_task: bool = True):
    """layer_scores of `vectors()` (called only on a cache miss), cached under model label,
    weights hash, data and seed."""
    key = text_hash(label, weights, data_key(data, seed), control_task, ELMO_WORDS)
    return measure_cache("layer-scores", key,
                         lambda: layer_scores(vectors(), data, seed, control_task, what=f"{label}: probes"))


def all_measures(seed: int = SEED) -> dict[str, ModelMeasures]:
    """{model label: ModelMeasures} for MiniLM, the default ELMo and GloVe, each beside its
    random-weight twin. Read from the cache when model, weights, data and seed match."""
    return _all_measures(seed)


@lru_cache(maxsize=None)
def _all_measures(seed: int) -> dict[str, ModelMeasures]:
    data = probe_set(seed)
    glove = load_glove()
    model, tokenizer = load_bert()
    bilm = load_elmo_bilm()
    random_model, _ = random_minilm(seed)
    random_elmo = random_bilm(bilm.config, seed)
    items = data.items
    plan = {
        MINILM: ((weights_hash(model), lambda: minilm_vectors(model, tokenizer, items, f"{MINILM}: vectors")),
                 (weights_hash(random_model),
                  lambda: minilm_vectors(random_model, tokenizer, items, f"{MINILM}, random weights: vectors"))),
        elmo_label(): ((weights_hash(bilm), lambda: elmo_vectors(bilm, items, f"{elmo_label()}: vectors")),
                       (weights_hash(random_elmo),
                        lambda: elmo_vectors(random_elmo, items, f"{elmo_label()}, random weights: vectors"))),
        GLOVE: ((text_hash(glove.vectors.shape, weights_hash(glove.vectors)), lambda: glove_vectors(glove, items)),
                (text_hash("random static", seed), lambda: random_static_vectors(items, seed=seed))),
    }
    result = {}
    for label, ((trained_key, trained), (random_key, random)) in plan.items():
        scores = cached_scores(label, trained_key, data, seed, trained)
        control_scores = cached_scores(label + " random", random_key, data, seed, random, control_task=False)
        result[label] = ModelMeasures(rows_from(scores, data, seed), rows_from(control_scores, data, seed),
                                      scores, control_scores)
    return result


def all_models(seed: int = SEED) -> dict[str, tuple[list[LayerRow], list[LayerRow]]]:
    """{model label: (rows of the trained model, rows of its random-weight twin)}: what `compare`
    and the lab read. Cached on disk (all_measures)."""
    return {label: (m.rows, m.control) for label, m in all_measures(seed).items()}


# ----------------------------------------------------------------------------- verdicts
# What the tables say, as data computed from the numbers; the sentences are written from these.


@dataclass(frozen=True)
class Peak:
    task: str  # "senses" (sense AUC) or "noun/verb" (probe accuracy)
    best: str  # the layer with the highest estimate
    value: float
    tied: tuple[str, ...]  # layers whose paired interval (best minus layer) reaches 0


def _statistic(scores: dict, data: ProbeSet, task: str, k: int):
    """(row indices -> the task's estimate for layer k, the groups to resample)."""
    if task == "senses":
        cosine = scores["cosine"][k]
        return (lambda r: stats.roc_auc(cosine[r], data.pair_same[r])), data.pair_lemma
    correct = scores["correct"][k]
    return (lambda r: correct[r].mean()), data.pos_lemma


def paired_ci(scores_a: dict, k: int, scores_b: dict, j: int, data: ProbeSet, task: str,
              seed: int = SEED) -> tuple[float, float]:
    """95% interval of (estimate of layer k in scores_a) minus (layer j in scores_b), both on
    the same resampled lemmas in every draw."""
    first, groups = _statistic(scores_a, data, task, k)
    second, _ = _statistic(scores_b, data, task, j)
    return stats.bootstrap_ci(groups, lambda r: first(r) - second(r), seed)


def peak(scores: dict, data: ProbeSet, task: str, seed: int = SEED) -> Peak:
    """The best layer for `task` and every layer a paired interval cannot tell from it."""
    names = [str(n) for n in scores["names"]]
    layers = [k for k, n in enumerate(names) if kind_of(n) == "layer"]
    groups = data.pair_lemma if task == "senses" else data.pos_lemma
    values = {k: _statistic(scores, data, task, k)[0](np.arange(len(groups))) for k in layers}
    best = max(layers, key=lambda k: values[k])
    tied = tuple(names[j] for j in layers
                 if j != best and paired_ci(scores, best, scores, j, data, task, seed)[0] <= 0)
    return Peak(task, names[best], float(values[best]), tied)


def layer_order(senses: Peak, syntax: Peak, names: list[str]) -> str:
    """'syntax first' when every layer tied for the noun/verb peak sits below every layer tied
    for the sense peak, 'senses first' for the reverse, else 'no order'."""
    position = {n: i for i, n in enumerate(names)}
    sense_at = [position[n] for n in (senses.best, *senses.tied)]
    syntax_at = [position[n] for n in (syntax.best, *syntax.tied)]
    if max(syntax_at) < min(sense_at):
        return "syntax first"
    if max(sense_at) < min(syntax_at):
        return "senses first"
    return "no order"


@dataclass(frozen=True)
class Verdict:
    model: str
    senses: Peak
    syntax: Peak
    order: str  # layer_order(...)
    learned: tuple[str, ...]  # layers whose sense AUC is above random weights' (paired interval > 0)
    top: LayerRow  # the last layer (not the mix)
    mix: LayerRow | None


def verdicts(measures: dict[str, ModelMeasures], data: ProbeSet, seed: int = SEED) -> list[Verdict]:
    """One Verdict per model with more than one layer, measured on `data`."""
    out = []
    for name, m in measures.items():
        names = [r.layer for r in m.rows]
        layers = [k for k, r in enumerate(m.rows) if r.kind == "layer"]
        if len(layers) < 2:
            continue
        senses, syntax = peak(m.scores, data, "senses", seed), peak(m.scores, data, "noun/verb", seed)
        learned = tuple(names[k] for k in layers
                        if paired_ci(m.scores, k, m.control_scores, k, data, "senses", seed)[0] > 0)
        mix = next((r for r in m.rows if r.kind == MIX), None)
        out.append(Verdict(name, senses, syntax, layer_order(senses, syntax, names), learned, m.rows[layers[-1]], mix))
    return out


ORDER_WORDS = {
    "syntax first": ("noun/verb peaks at a lower layer than senses, and the paired intervals say so: "
                     "as the claim has it"),
    "senses first": ("senses peak at a lower layer than noun/verb, and the paired intervals say so: "
                     "against the claim"),
    "no order": "the paired intervals do not order the two peaks, so this data shows no layer order either way",
}


def _tied_words(peak_: Peak) -> str:
    return f"tied with it (paired 95% interval reaches 0): {', '.join(peak_.tied)}" if peak_.tied else \
        "above every other layer (paired 95% intervals)"


def verdict_lines(verdict: Verdict) -> list[str]:
    """The verdict in words; every number and layer named here is in `verdict`."""
    v = verdict
    lines = [f"{v.model}:",
             f"  senses best at layer {v.senses.best} (AUC {v.senses.value:.3f}), {_tied_words(v.senses)}.",
             f"  noun/verb best at layer {v.syntax.best} (probe {v.syntax.value:.3f}), {_tied_words(v.syntax)}.",
             f"  order: {ORDER_WORDS[v.order]}.",
             f"  top layer {v.top.layer}: AUC {v.top.sense_auc:.3f}, probe {v.top.pos_accuracy:.3f}. "
             f"Layers whose sense AUC is above random weights (paired interval): {', '.join(v.learned) or 'none'}."]
    if v.mix is not None:
        lines.append(f"  the equal-weight scalar mix (a sum of the layers, not a layer): AUC {v.mix.sense_auc:.3f}, "
                     f"probe {v.mix.pos_accuracy:.3f}.")
    return lines


def summary_lines(found: list[Verdict], glove: LayerRow) -> list[str]:
    """The verdicts in words, then what GloVe's row means."""
    lines = [line for v in found for line in verdict_lines(v)]
    lines += [f"GloVe: sense AUC {glove.sense_auc:.3f}{', exactly chance' if glove.sense_auc == 0.5 else ''}: both "
              "examples of a pair use the same word",
              "  form, so one vector per form ties every pair. Its noun/verb probe "
              f"({glove.pos_accuracy:.3f}) reads the word form alone",
              "  (walked, walks, walk): the floor a contextual layer has to beat.",
              "ELMo's layer 0 sees characters, so it is off 0.5 only where a capital letter changes the form.",
              "The seed says lower layers carry syntax and higher layers semantics; Peters et al. 2018 (sec. 5.3)",
              "found POS best at ELMo's first biLSTM layer and word senses at the second. The verdicts above",
              "claim an order of layers only where a paired interval over the same lemmas separates them."]
    return lines


# ----------------------------------------------------------------------------- picture


def plot_layers(measures: dict[str, ModelMeasures], out: Path) -> list[Path]:
    """Per model (rows) and task (columns): the trained layers joined by a line, random weights
    dashed, the scalar mix and MiniLM's input-table row apart on the right; shared y-axes from 0."""
    glove = measures[GLOVE].rows[0]
    curves = {name: m for name, m in measures.items() if sum(r.kind == "layer" for r in m.rows) > 1}
    path = out / "layer_probes.png"
    with plots.figure(path, len(curves), 2, figsize=(11, 3.8 * len(curves)), sharey="col") as (fig, axes):
        if fig is None:
            return []
        for row, (name, m) in zip(np.atleast_2d(axes), curves.items()):
            layers = [k for k, r in enumerate(m.rows) if r.kind == "layer"]
            apart = [k for k, r in enumerate(m.rows) if r.kind != "layer"]
            x_layers = np.arange(len(layers))
            x_apart = len(layers) + 0.6 + np.arange(len(apart))  # a gap: not part of the curve
            for ax, value, ci, glove_value, title, ylabel in [
                    (row[0], "sense_auc", "sense_ci", glove.sense_auc, "semantics: same vs different sense",
                     "ROC AUC (chance = 0.5)"),
                    (row[1], "pos_accuracy", "pos_ci", glove.pos_accuracy, "syntax: noun vs verb probe",
                     "accuracy on unseen lemmas")]:
                for series, label, style, colour, shift in [(m.rows, "trained", "-o", "tab:blue", -0.08),
                                                            (m.control, "random weights", "--s", "tab:orange", 0.08)]:
                    for ks, xs, fmt, lab in [(layers, x_layers, style, label), (apart, x_apart, style[-1], None)]:
                        if not ks:
                            continue
                        y = np.array([getattr(series[k], value) for k in ks])
                        low = np.array([getattr(series[k], ci)[0] for k in ks])
                        high = np.array([getattr(series[k], ci)[1] for k in ks])
                        ax.errorbar(xs + shift, y, yerr=[y - low, high - y], fmt=fmt, color=colour, capsize=3,
                                    label=lab)
                if value == "pos_accuracy":
                    ax.axhline(m.rows[0].majority, color="grey", linewidth=1, label="majority class")
                else:
                    ax.axhline(0.5, color="grey", linewidth=3, alpha=0.5, label="chance (0.5)")
                # drawn on top of the chance line, which it equals for sense pairs
                ax.axhline(glove_value, color="tab:green", linestyle=(0, (2, 2)), linewidth=1.5, zorder=5,
                           label=f"GloVe, static ({glove_value:.3f})")
                if apart:
                    ax.axvline(len(layers) - 0.2, color="lightgrey", linewidth=1)
                ax.set_xticks(list(x_layers) + list(x_apart))
                ax.set_xticklabels([m.rows[k].layer for k in layers]
                                   + [f"{m.rows[k].layer}\n(not a layer)" for k in apart], fontsize=8)
                ax.set_ylim(0, 1.0)
                ax.set_title(f"{name}\n{title}", fontsize=9)
                ax.set_xlabel("layer (95% CI)")
                ax.set_ylabel(ylabel)
                ax.legend(fontsize=7, loc="lower right")
    return [path]


def lesson(out: Path, seed: int = SEED) -> dict:
    """Run this file's cells with `out` and `seed` (python -m lessons layers)."""
    return run_notebook(__name__, out=out, seed=seed)


# %% [markdown]
# ## The lesson
# The cells below run the lesson top to bottom: `python -m lessons layers` runs them too, with
# the command line's options in place of the parameters cell.

# %% Parameters (python -m lessons layers sets them; edit them here in a notebook)
if __name__ == "__main__":
    P, out = parameters(globals(), out="lesson_output", seed=SEED)

# %% 1. Load the data: WordNet example sentences, sampled with a fixed seed
if __name__ == "__main__":
    data = probe_set(P["seed"])
    n_same = int(data.pair_same.sum())
    print(f"Layer specialisation on WordNet 3.0 example sentences (seed {P['seed']})\n")
    print(f"  semantics: {len(set(data.pair_lemma))} nouns, {len(data.pairs)} pairs of their examples "
          f"({n_same} same sense, {len(data.pairs) - n_same} different)")
    print(f"  syntax:    {len(set(data.pos_lemma))} lemmas that are both noun and verb, {len(data.pos_rows)} "
          f"examples ({int(data.pos_verb.sum())} verb), probe folds split by lemma")
    print(f"  {len(data.items)} sentences in all, e.g. {data.items[0].sentence!r} ({data.items[0].lemma})\n")

# %% 2. Every model's word vectors and the same architectures with random weights, measured per
#       layer (read from the cache when nothing changed; a progress line on stderr otherwise)
if __name__ == "__main__":
    measures = all_measures(P["seed"])

# %% 3. One table per model
if __name__ == "__main__":
    for name, m in measures.items():
        print(f"== {name}")
        print(format_table(HEADER, table_rows(m.rows, m.control)))
        print()
    print("  sense AUC: 0.5 = the cosine cannot tell same-sense from different-sense pairs.")
    print("  noun/verb probe: accuracy on lemmas it never saw in training; 'control task' is the")
    print("  same probe on random labels per word form (folds by sentence): what it can memorise.")
    print("  'random weights': the same architecture untrained, so the margin over it is what")
    print("  training added. 'mix' (ELMo) is the equal-weight scalar mix, not a layer.\n")

# %% 4. What the numbers say about "lower layers syntax, higher layers semantics"
if __name__ == "__main__":
    found = verdicts(measures, data, P["seed"])
    summary = summary_lines(found, measures[GLOVE].rows[0])
    for line in summary:
        print("  " + line)

# %% 5. The picture
if __name__ == "__main__":
    written = plot_layers(measures, out)
    RESULT = {"data": data, "results": {name: (m.rows, m.control) for name, m in measures.items()},
              "measures": measures, "verdicts": found, "summary": summary,
              "written": written}
