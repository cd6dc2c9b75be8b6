"""The layers lesson's verdicts are computed from its numbers: the scalar mix is never a layer,
and an order of layers is claimed only when a paired interval over lemmas says so. Here on
hand-made scores whose answer is known, and below on what the lesson itself printed."""

import re

import numpy as np
import pytest

from lessons import layer_probes as lp

LEMMAS = 40
PAIRS_PER_LEMMA = 4


def _data() -> lp.ProbeSet:
    """A probe set without sentences: 40 lemmas, each with 2 same- and 2 different-sense pairs
    and 4 probe examples (2 noun, 2 verb)."""
    pair_lemma = np.repeat([f"w{i}" for i in range(LEMMAS)], PAIRS_PER_LEMMA)
    pair_same = np.tile([True, True, False, False], LEMMAS)
    pos_lemma = np.repeat([f"w{i}" for i in range(LEMMAS)], 4)
    pos_verb = np.tile([0, 0, 1, 1], LEMMAS)
    n = len(pair_lemma)
    return lp.ProbeSet((), np.zeros((n, 2), dtype=int), pair_same, pair_lemma, np.arange(len(pos_lemma)),
                       pos_verb, pos_lemma, pos_verb.copy())


def _scores(data, names, sense_signal, probe_rate, seed=0):
    """Scores with a sense AUC set by `sense_signal` (how far same-sense cosines sit above the
    others) and a probe accuracy of about `probe_rate`, per layer."""
    rng = np.random.default_rng(seed)
    cosine = np.stack([rng.normal(size=len(data.pair_same)) + signal * data.pair_same for signal in sense_signal])
    correct = np.stack([rng.random(len(data.pos_verb)) < rate for rate in probe_rate])
    return {"names": np.array(names), "cosine": cosine, "correct": correct,
            "control": np.full(len(names), np.nan)}


def _measures(data, trained, random):
    return {"model": lp.ModelMeasures(lp.rows_from(trained, data), lp.rows_from(random, data), trained, random)}


def test_the_mix_is_never_a_layer_even_when_it_scores_highest():
    data = _data()
    names = ["0 char-CNN", "1 biLSTM", "2 biLSTM", lp.MIX]
    trained = _scores(data, names, [0.0, 1.0, 1.0, 3.0], [0.6, 0.9, 0.9, 0.99])
    random = _scores(data, names, [0.0] * 4, [0.5] * 4, seed=1)
    [verdict] = lp.verdicts(_measures(data, trained, random), data)
    assert verdict.senses.best != lp.MIX and lp.MIX not in verdict.senses.tied
    assert verdict.syntax.best != lp.MIX and lp.MIX not in verdict.syntax.tied
    assert verdict.top.layer == "2 biLSTM" and verdict.mix.layer == lp.MIX
    assert verdict.order == "no order"  # both peaks at the same, tied layers
    assert "mix" not in " ".join(lp.verdict_lines(verdict)[:4])


def test_an_order_is_claimed_only_when_the_paired_intervals_separate_the_layers():
    data = _data()
    names = ["0", "1", "2"]
    random = _scores(data, names, [0.0] * 3, [0.5] * 3, seed=1)
    # noun/verb clearly best at layer 0, senses clearly best at layer 2
    clear = _scores(data, names, [0.0, 0.5, 3.0], [0.98, 0.7, 0.6])
    [verdict] = lp.verdicts(_measures(data, clear, random), data)
    assert (verdict.syntax.best, verdict.senses.best, verdict.order) == ("0", "2", "syntax first")
    assert verdict.syntax.tied == () and verdict.senses.tied == ()
    # the reverse
    reverse = _scores(data, names, [3.0, 0.5, 0.0], [0.6, 0.7, 0.98])
    assert lp.verdicts(_measures(data, reverse, random), data)[0].order == "senses first"
    # peaks at different layers, but the same signal everywhere: the intervals overlap
    flat = _scores(data, names, [1.0, 1.0, 1.0], [0.8, 0.8, 0.8])
    [verdict] = lp.verdicts(_measures(data, flat, random), data)
    assert verdict.order == "no order" and (verdict.senses.tied or verdict.syntax.tied)


def test_a_tied_layer_is_one_whose_paired_interval_reaches_zero():
    data = _data()
    names = ["0", "1", "2"]
    scores = _scores(data, names, [0.0, 1.0, 1.05], [0.5, 0.9, 0.9])
    found = lp.peak(scores, data, "senses")
    best = list(names).index(found.best)
    for j, name in enumerate(names):
        if j == best:
            continue
        low = lp.paired_ci(scores, best, scores, j, data, "senses")[0]
        assert (name in found.tied) == (low <= 0), name


# ----- what the lesson printed -----------------------------------------------------------------

ROW_SPLIT = re.compile(r"\s{2,}")


def _tables(printed: str) -> dict[str, dict[str, list[str]]]:
    """{model: {layer: cells}} from the lesson's fixed-width tables."""
    tables, model, rows = {}, None, None
    for line in printed.splitlines():
        if line.startswith("== "):
            model, rows = line[3:], {}
            tables[model] = rows
        elif rows is not None and line and not line.startswith(("layer", "-")) and not line.startswith(" "):
            cells = ROW_SPLIT.split(line.strip())
            rows[cells[0]] = cells
        elif not line:
            rows = None if rows else rows
    return tables


def _estimate(cell: str) -> float:
    return float(cell.split(" [")[0])


def test_printed_verdicts_agree_with_the_printed_tables(lesson_printed, lesson_results):
    printed = lesson_printed["layers"]
    tables = _tables(printed)
    verdicts = lesson_results["layers"]["verdicts"]
    assert verdicts, "the lesson printed no verdict"
    for verdict in verdicts:
        table = tables[verdict.model]
        layers = [name for name in table if lp.kind_of(name) == "layer"]
        senses = {name: _estimate(table[name][1]) for name in layers}
        probe = {name: _estimate(table[name][3]) for name in layers}
        block = printed[printed.index(f"  {verdict.model}:\n"):]
        said_senses = re.search(r"senses best at layer (.+?) \(AUC ([\d.]+)\)", block)
        said_probe = re.search(r"noun/verb best at layer (.+?) \(probe ([\d.]+)\)", block)
        # the named layer is a layer, it has the highest printed estimate, and the number is its own
        assert said_senses.group(1) in layers and said_probe.group(1) in layers
        assert float(said_senses.group(2)) == senses[said_senses.group(1)] == max(senses.values())
        assert float(said_probe.group(2)) == probe[said_probe.group(1)] == max(probe.values())
        # an order is claimed only as the structured verdict has it, from the paired intervals
        order = re.search(r"order: (.+?)\.\n", block).group(1)
        assert order == lp.ORDER_WORDS[verdict.order]
        position = {name: i for i, name in enumerate(layers)}
        syntax_at = [position[n] for n in (verdict.syntax.best, *verdict.syntax.tied)]
        sense_at = [position[n] for n in (verdict.senses.best, *verdict.senses.tied)]
        if verdict.order == "syntax first":
            assert max(syntax_at) < min(sense_at)
        elif verdict.order == "senses first":
            assert max(sense_at) < min(syntax_at)
        else:
            assert not (max(syntax_at) < min(sense_at) or max(sense_at) < min(syntax_at))
        # the top layer is the last layer, never the mix
        top = re.search(r"top layer (.+?): AUC ([\d.]+), probe ([\d.]+)\.", block)
        assert top.group(1) == layers[-1]
        assert float(top.group(2)) == senses[layers[-1]] and float(top.group(3)) == probe[layers[-1]]
        if lp.MIX in table:
            mix = re.search(r"scalar mix \(a sum of the layers, not a layer\): AUC ([\d.]+)", block)
            assert float(mix.group(1)) == _estimate(table[lp.MIX][1])


def test_a_tied_layer_in_the_lesson_has_a_paired_interval_reaching_zero(lesson_results):
    lesson = lesson_results["layers"]
    data = lesson["data"]
    for verdict in lesson["verdicts"]:
        scores = lesson["measures"][verdict.model].scores
        names = [str(n) for n in scores["names"]]
        best = names.index(verdict.senses.best)
        for name in verdict.senses.tied:
            assert lp.paired_ci(scores, best, scores, names.index(name), data, "senses")[0] <= 0
