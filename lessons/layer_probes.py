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

Every number comes with a bootstrap 95% interval over lemmas. `elmo_layer_measures(bilm)`
runs the ELMo part on any biLM (trained, random, fixture) and returns the table's rows.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np
import torch

from . import plots, stats, wordnet
from .glove import load_glove
from .common import (
    elmo_label, format_table, interval, load_bert, load_elmo_bilm,
    simple_word_spans, word_piece_positions,
)

SEED = 0
SENSE_LEMMAS = 200  # nouns whose example pairs are scored; ~1,000 sentences, ~2,500 pairs
SENSE_EXAMPLES = 6  # at most this many examples per noun, so a few nouns cannot dominate
POS_LEMMAS = 200  # noun-and-verb word forms for the probe
POS_EXAMPLES = 2  # at most this many noun and this many verb examples per lemma
BATCH = 64
GLOVE = "GloVe 6B 50d"
COSINE_DECIMALS = 6  # float32 vectors: cosines agree to ~1e-7 between two routes, so 6 is safe


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


def _batches(items):
    """Index batches, sentences of similar length together so padding stays small."""
    order = sorted(range(len(items)), key=lambda i: len(items[i].sentence))
    return [order[i:i + BATCH] for i in range(0, len(order), BATCH)]


@torch.no_grad()
def minilm_vectors(model, tokenizer, items) -> dict[str, np.ndarray]:
    """'static' = mean of the word's rows of the input table; 'emb' = the embedding output;
    then each encoder layer. Several word pieces: their mean."""
    L, D = model.config.num_hidden_layers, model.config.hidden_size
    out = np.zeros((L + 2, len(items), D), dtype=np.float32)
    table = model.embeddings.word_embeddings.weight
    for batch in _batches(items):
        enc = tokenizer([items[i].sentence for i in batch], return_offsets=True)
        hidden = model(enc["input_ids"], attention_mask=enc["attention_mask"],
                       token_type_ids=enc["token_type_ids"], output_hidden_states=True).hidden_states
        hidden = torch.stack(hidden)  # L+1 x (B, T, D) -> (L+1, B, T, D)
        for n, i in enumerate(batch):
            pos = word_piece_positions(enc["offsets"][n], items[i].span)
            out[0, i] = table[enc["input_ids"][n, pos]].mean(0).numpy()
            out[1:, i] = hidden[:, n, pos].mean(1).numpy()  # (L+1, P, D) -> (L+1, D)
    return dict(zip(["static", "emb"] + [str(l) for l in range(1, L + 1)], out))


@torch.no_grad()
def elmo_vectors(bilm, items) -> dict[str, np.ndarray]:
    """Layer 0 (char-CNN), each biLSTM layer, and the scalar mix with equal weights (s = 0,
    gamma = 1: the mix minielmo.Elmo starts from)."""
    import minielmo

    n_layers = bilm.config.n_layers + 1
    out = np.zeros((n_layers, len(items), 2 * bilm.config.projection_dim), dtype=np.float32)
    for batch in _batches(items):
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
    names = ["0 char-CNN"] + [f"{j} biLSTM" for j in range(1, n_layers)] + ["mix"]
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


@dataclass(frozen=True)
class LayerRow:
    layer: str
    sense_auc: float  # ROC AUC of same- vs different-sense pairs by cosine
    sense_ci: tuple[float, float]
    pos_accuracy: float  # noun/verb probe, cross-validated by lemma
    pos_ci: tuple[float, float]
    majority: float  # the majority-class baseline under the same folds
    control_accuracy: float  # the probe on Hewitt & Liang control labels, folds by sentence


def _unit(x: np.ndarray) -> np.ndarray:
    return x / np.maximum(np.linalg.norm(x, axis=-1, keepdims=True), 1e-12)


def measure(vectors: dict[str, np.ndarray], data: ProbeSet, seed: int = SEED,
            control_task: bool = True) -> list[LayerRow]:
    """One LayerRow per layer of `vectors` (computed on data.items)."""
    lemma_folds = stats.fold_of(data.pos_lemma, seed=seed)
    sentence_folds = stats.fold_of(np.arange(len(data.pos_rows)), seed=seed)
    majority = stats.majority_correct(data.pos_verb, lemma_folds)
    rows = []
    for name, x in vectors.items():
        unit = _unit(x.astype(np.float64))
        # rounded so that pairs with equal vectors tie exactly; |u|^2 = 1 +- rounding otherwise
        # orders them by noise (a static model would then score a little off 0.5)
        cosine = np.round(np.sum(unit[data.pairs[:, 0]] * unit[data.pairs[:, 1]], axis=1), COSINE_DECIMALS)
        auc = stats.roc_auc(cosine, data.pair_same)
        auc_ci = stats.bootstrap_ci(data.pair_lemma, lambda r: stats.roc_auc(cosine[r], data.pair_same[r]), seed)
        features = x[data.pos_rows]
        correct = stats.probe_correct(features, data.pos_verb, lemma_folds)
        pos_ci = stats.bootstrap_ci(data.pos_lemma, lambda r: correct[r].mean(), seed)
        control = (stats.probe_correct(features, data.pos_control, sentence_folds).mean()
                   if control_task else float("nan"))
        rows.append(LayerRow(name, auc, auc_ci, float(correct.mean()), pos_ci, float(majority.mean()),
                             float(control)))
    return rows


def elmo_layer_measures(bilm, seed: int = SEED) -> list[LayerRow]:
    """The ELMo rows of this lesson for any biLM: layer 0, each biLSTM layer, the equal-weight
    scalar mix. Same sentences, folds and resamples for every model given the same seed, so
    rows of a trained, a random-weight and the fixture model can be compared directly."""
    data = probe_set(seed)
    return measure(elmo_vectors(bilm.eval(), data.items), data, seed)


def table_rows(rows: list[LayerRow], control: list[LayerRow]) -> list[list]:
    return [[r.layer, interval(r.sense_auc, r.sense_ci), interval(c.sense_auc, c.sense_ci),
             interval(r.pos_accuracy, r.pos_ci), interval(c.pos_accuracy, c.pos_ci), r.majority,
             r.control_accuracy] for r, c in zip(rows, control)]


HEADER = ["layer", "sense AUC [95% CI]", "random weights", "noun/verb probe", "random weights",
          "majority", "control task"]


# ----------------------------------------------------------------------------- the lesson


def all_models(seed: int = SEED) -> dict[str, tuple[list[LayerRow], list[LayerRow]]]:
    """{model label: (rows of the trained model, rows of its random-weight twin)} for MiniLM, the
    default ELMo and GloVe (the compare lesson reads these too). Computed once per seed and
    process: `all_models()` and `all_models(0)` share the one result."""
    return _all_models(seed)


@lru_cache(maxsize=None)
def _all_models(seed: int) -> dict[str, tuple[list[LayerRow], list[LayerRow]]]:
    data = probe_set(seed)
    glove = load_glove()
    model, tokenizer = load_bert()
    bilm = load_elmo_bilm()
    models = {
        "MiniLM (all-MiniLM-L6-v2)": (minilm_vectors(model, tokenizer, data.items),
                                      minilm_vectors(*random_minilm(seed), data.items)),
        elmo_label(): (elmo_vectors(bilm, data.items),
                       elmo_vectors(random_bilm(bilm.config, seed), data.items)),
        GLOVE: (glove_vectors(glove, data.items), random_static_vectors(data.items, seed=seed)),
    }
    return {name: (measure(trained, data, seed), measure(control, data, seed, control_task=False))
            for name, (trained, control) in models.items()}


def lesson(out: Path, seed: int = SEED) -> dict:
    # %% 1. Load the data: WordNet example sentences, sampled with a fixed seed
    data = probe_set(seed)
    n_same = int(data.pair_same.sum())
    print(f"Layer specialisation on WordNet 3.0 example sentences (seed {seed})\n")
    print(f"  semantics: {len(set(data.pair_lemma))} nouns, {len(data.pairs)} pairs of their examples "
          f"({n_same} same sense, {len(data.pairs) - n_same} different)")
    print(f"  syntax:    {len(set(data.pos_lemma))} lemmas that are both noun and verb, {len(data.pos_rows)} "
          f"examples ({int(data.pos_verb.sum())} verb), probe folds split by lemma")
    print(f"  {len(data.items)} sentences in all, e.g. {data.items[0].sentence!r} ({data.items[0].lemma})\n")

    # %% 2. Every model's word vectors, and the same architectures with random weights, measured
    #       per layer: sense AUC, probe accuracy, controls, intervals (all_models above)
    results = all_models(seed)

    # %% 3. Print one table per model
    for name, (rows, control) in results.items():
        print(f"== {name}")
        print(format_table(HEADER, table_rows(rows, control)))
        print()
    print("  sense AUC: 0.5 = the cosine cannot tell same-sense from different-sense pairs.")
    print("  noun/verb probe: accuracy on lemmas it never saw in training; 'control task' is the")
    print("  same probe on random labels per word form (folds by sentence): what it can memorise.")
    print("  'random weights': the same architecture untrained, so the margin over it is what")
    print("  training added.\n")

    # %% 4. What the data says about "lower layers syntax, higher layers semantics"
    summary = _summarise(results)
    for line in summary:
        print("  " + line)

    written = _plot_layers(results, out)
    return {"data": data, "results": results, "summary": summary, "written": written}


def _peak(rows: list[LayerRow], value: str, ci: str) -> tuple[int, list[str]]:
    """Index of the best layer, and every layer whose estimate lies inside the best one's interval."""
    k = int(np.argmax([getattr(r, value) for r in rows]))
    return k, [r.layer for r in rows if getattr(r, value) >= getattr(rows[k], ci)[0]]


def _summarise(results: dict) -> list[str]:
    """What the tables say, in words computed from them."""
    lines = []
    for name, (rows, control) in results.items():
        if len(rows) < 2:
            continue
        sem, sem_tied = _peak(rows, "sense_auc", "sense_ci")
        syn, syn_tied = _peak(rows, "pos_accuracy", "pos_ci")
        learned = [r.layer for r, c in zip(rows, control) if r.sense_ci[0] > c.sense_ci[1]]
        order = ("syntax peaks before semantics, as the claim has it" if syn < sem else
                 "both peak at the same layer" if syn == sem else "semantics peaks before syntax, against the claim")
        lines += [f"{name}:",
                  f"  senses peak at layer {rows[sem].layer} (AUC {rows[sem].sense_auc:.3f}; within its interval: "
                  f"{', '.join(sem_tied)}); noun/verb at {rows[syn].layer} ({rows[syn].pos_accuracy:.3f}; within: "
                  f"{', '.join(syn_tied)}); {order}.",
                  f"  last layer: AUC {rows[-1].sense_auc:.3f}, probe {rows[-1].pos_accuracy:.3f}. Layers whose sense AUC "
                  f"clears random weights (intervals apart): {', '.join(learned) or 'none'}."]
    glove = results[GLOVE][0][0]
    lines += [f"GloVe: sense AUC {glove.sense_auc:.3f}{', exactly chance' if glove.sense_auc == 0.5 else ''}: both "
              "examples of a pair use the same word",
              f"  form, so one vector per form ties every pair. Its noun/verb probe ({glove.pos_accuracy:.3f}) reads the",
              "  word form alone (walked, walks, walk): the floor a contextual layer has to beat.",
              "ELMo's layer 0 sees characters, so it is off 0.5 only where a capital letter changes the form.",
              "The seed says lower layers carry syntax and higher layers semantics; Peters et al. 2018 (sec. 5.3)",
              "found POS best at ELMo's first biLSTM layer and word senses at the second. Compare the peaks above,",
              "and read a peak as a finding only where its interval clears the other layers and random weights."]
    return lines


def _plot_layers(results: dict, out: Path) -> list[Path]:
    glove = results[GLOVE][0][0]
    curves = {name: value for name, value in results.items() if len(value[0]) > 1}
    with plots.figure(out / "layer_probes.png", len(curves), 2, figsize=(11, 3.6 * len(curves))) as (fig, axes):
        if fig is None:
            return []
        for row, (name, (rows, control)) in zip(axes, curves.items()):
            x = np.arange(len(rows))
            for ax, value, ci, glove_value, title, ylabel in [
                    (row[0], "sense_auc", "sense_ci", glove.sense_auc, "semantics: same vs different sense",
                     "ROC AUC (0.5 = chance)"),
                    (row[1], "pos_accuracy", "pos_ci", glove.pos_accuracy, "syntax: noun vs verb probe",
                     "accuracy, unseen lemmas")]:
                for series, label, style, shift in [(rows, "trained", "-o", -0.06),
                                                    (control, "random weights", "--s", 0.06)]:
                    y = np.array([getattr(r, value) for r in series])
                    err = np.array([[y_ - getattr(r, ci)[0], getattr(r, ci)[1] - y_] for y_, r in zip(y, series)]).T
                    ax.errorbar(x + shift, y, yerr=err, fmt=style, capsize=3, label=label)
                ax.axhline(glove_value, color="tab:green", linestyle=":", label="GloVe (static)")
                if value == "pos_accuracy":
                    ax.axhline(rows[0].majority, color="grey", linewidth=0.8, label="majority class")
                else:
                    ax.axhline(0.5, color="grey", linewidth=0.8, label="chance")
                ax.set_xticks(x)
                ax.set_xticklabels([r.layer for r in rows], fontsize=8)
                ax.set_title(f"{name}\n{title}", fontsize=9)
                ax.set_xlabel("layer")
                ax.set_ylabel(ylabel)
                ax.legend(fontsize=7)
    return [out / "layer_probes.png"]
