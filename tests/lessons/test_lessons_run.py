"""Every lesson runs (as `python -m lessons all` runs them) and its numbers point the way the
lesson says. The assertions are on directions and invariants, never on exact model outputs."""

import math

import numpy as np
import pytest

from lessons import LESSONS, data

# softmax(q·k/sqrt(d)) recomputed from the layer's own projections vs the model's attention
# probabilities: the same float32 operations in the same order, so only rounding noise.
SOFTMAX_RECOMPUTE_ATOL = 1e-6
# ScalarMix applied by hand to the biLM layers vs minielmo.Elmo: the same float32 sum.
SCALAR_MIX_ATOL = 1e-6
# softmax([8, 0, 0]) puts 0.99933 of the weight on layer 0; the other layers move the cosine
# by far less than this.
LAYER0_ONLY_MIN_COSINE = 0.999
# gamma = 2 vs twice the gamma = 1 mix, and their cosines: scaling by 2 is exact in float32
# (measured 0.0 for both); 1e-6 allows only rounding if the mix is ever computed in another order.
GAMMA_SCALE_RTOL = 1e-6
GAMMA_COSINE_ATOL = 1e-6
# A float32 softmax row over T <= 512 keys sums to 1 within rounding (measured 2.4e-7 at T = 14),
# and its entropy is at most log(T) up to that rounding.
PROB_SUM_ATOL = 1e-5
# The static vector is the same row in every sentence, so its cosines are 1 and the sense gap is 0
# up to float32 rounding.
STATIC_GAP_ATOL = 1e-6
# The zero-shot softmax over a handful of labels sums to 1 up to rounding.
ZERO_SHOT_SOFTMAX_SUM_ATOL = 1e-6


def test_every_lesson_ran_and_wrote_pictures(lesson_results, lesson_printed, lesson_out):
    assert set(lesson_results) == set(LESSONS) == set(lesson_printed)
    for name, result in lesson_results.items():
        assert result["written"], f"{name} wrote nothing"
        for path in result["written"]:
            assert path.parent == lesson_out
            assert path.stat().st_size > 1000, path


# ----- lesson 1: static vs contextual ----------------------------------------------------------

def test_static_vectors_are_identical_across_sentences(lesson_results):
    for r in lesson_results["static-vs-contextual"]["results"]:
        # an embedding lookup copies the same row: exactly equal, not just close
        assert r["static_max_abs_diff"] == 0.0, r["word"]
        assert np.all(r["static"] == r["static"][0])


def test_contextual_layers_separate_the_senses(lesson_results):
    lesson = lesson_results["static-vs-contextual"]
    assert lesson["layer_names"][:2] == ["static", "emb"]
    for r in lesson["results"]:
        gaps = [gap for _, _, gap in r["separation"]]
        assert gaps[0] == pytest.approx(0.0, abs=STATIC_GAP_ATOL), "static vectors cannot separate senses"
        assert gaps[-1] > 0.0, f"{r['word']}: last layer does not separate the senses"
        assert gaps[-1] > gaps[1], f"{r['word']}: no gain over the context-free embedding output"


def test_financial_bank_vectors_closer_to_each_other_than_to_river(lesson_results):
    bank = lesson_results["static-vs-contextual"]["results"][0]
    assert bank["word"] == "bank"
    senses = np.array(bank["senses"])
    sims = bank["cosine_last"]
    fin, river = senses == "finance", senses == "river"
    within = sims[np.ix_(fin, fin)][~np.eye(fin.sum(), dtype=bool)].mean()
    across = sims[np.ix_(fin, river)].mean()
    assert within > across


def test_elmo_char_cnn_vector_is_static_and_lstm_layers_are_not(lesson_results):
    elmo = lesson_results["static-vs-contextual"]["elmo"]
    assert elmo["layer0_max_abs_diff"] == 0.0
    assert elmo["layer1_max_abs_diff"] > 0.0 and elmo["layer2_max_abs_diff"] > 0.0


# ----- lesson 2: ELMo layers -------------------------------------------------------------------

def test_elmo_layers_shapes_follow_the_config(lesson_results):
    lesson = lesson_results["elmo-layers"]
    config = lesson["config"]
    shapes = {row[0]: row[3] for row in lesson["shapes"]}
    assert shapes["char_cnn.projection"].endswith(f"x{config.projection_dim}")
    assert shapes["char_cnn.highway"].endswith(f"x{sum(n for _, n in config.filters)}")
    assert {"forward_layers.0", "backward_layers.0", "forward_layers.1", "backward_layers.1"} <= set(shapes)
    for j in range(config.n_layers + 1):
        assert shapes[f"activations[{j}]"].endswith(f"x{2 * config.projection_dim}")


def test_elmo_scalar_mix(lesson_results):
    lesson = lesson_results["elmo-layers"]
    assert lesson["mix_check"] <= SCALAR_MIX_ATOL
    rows = {row[0]: row for row in lesson["mix_rows"]}
    # all weight on layer 0: the context-free vector, the same in every sentence
    assert rows["layer 0 only"][4] > LAYER0_ONLY_MIN_COSINE
    assert rows["layer 1 only"][4] < LAYER0_ONLY_MIN_COSINE
    # gamma scales the vector, cosines unchanged
    mixes = lesson["mixes"]
    np.testing.assert_allclose(mixes["default, gamma = 2"], 2 * mixes["default (s = 0, gamma = 1)"], rtol=GAMMA_SCALE_RTOL)
    assert rows["default, gamma = 2"][4] == pytest.approx(rows["default (s = 0, gamma = 1)"][4], abs=GAMMA_COSINE_ATOL)


def test_elmo_lessons_say_it_is_a_tiny_test_model(lesson_printed):
    assert "TINY TEST MODEL" in lesson_printed["elmo-layers"]
    assert "not meaning" in lesson_printed["elmo-layers"]
    assert "TINY TEST MODEL" in lesson_printed["compare"]
    assert "tiny fixture test model" in lesson_printed["static-vs-contextual"]


# ----- lesson 3: attention ---------------------------------------------------------------------

def test_attention_numbers(lesson_results):
    lesson = lesson_results["attention"]
    probs, entropy, mass = lesson["probs"], lesson["entropy"], lesson["mass"]
    L, H, T, _ = probs.shape
    np.testing.assert_allclose(probs.sum(-1), 1.0, atol=PROB_SUM_ATOL)
    assert np.all(entropy >= 0) and np.all(entropy <= math.log(T) + PROB_SUM_ATOL)
    assert lesson["softmax_max_abs_diff"] <= SOFTMAX_RECOMPUTE_ATOL
    assert lesson["tokens"][0] == "[CLS]" and lesson["tokens"][-1] == "[SEP]"
    from lessons.attention import MOSTLY, ROLES

    for l in range(L):
        for h in range(H):
            role = lesson["roles"][l][h]
            if role != "mixed":
                assert mass[l, h, ROLES.index(role)] > MOSTLY
            else:
                assert mass[l, h].max() <= MOSTLY
    # one PNG per layer, the entropy map, the Q·K picture, and the explorer
    names = sorted(p.name for p in lesson["written"])
    assert names == sorted([f"attention_layer{i + 1}.png" for i in range(L)]
                           + ["attention_entropy.png", "attention_qk.png", "attention_explorer.html"])


def test_explorer_is_self_contained(lesson_results):
    html = lesson_results["attention"]["explorer"].read_text(encoding="utf-8")
    assert "__ATTENTION_DATA__" not in html
    # nothing is fetched: no external script, stylesheet, image or font
    for needle in ("src=", "href=", "@import", "url(", "fetch(", "XMLHttpRequest"):
        assert needle not in html, needle
    assert html.count("http") == html.count("http://www.w3.org/2000/svg")


# ----- lesson 4: similarity --------------------------------------------------------------------

def test_seed_financial_sentences_are_closer_to_each_other(lesson_results):
    lesson = lesson_results["similarity"]
    sims = lesson["cosine"]
    finance, river = [0, 2, 3], 1  # data.SEED_SENTENCES: 1 is "We sat on the bank of the river."
    assert "river" in lesson["sentences"][river]
    for i in finance:
        others = [j for j in finance if j != i]
        assert min(sims[i, j] for j in others) > sims[i, river]
        assert lesson["nearest"][i] in others


def test_semantic_search_ranks_money_sentences_first(lesson_results):
    results = lesson_results["similarity"]["results"]
    scores = [s for s, _ in results]
    assert scores == sorted(scores, reverse=True)
    assert len(results) == len(data.SEARCH_CORPUS)
    money = {"The bank approved my loan application.", "I need to bank this money quickly.",
             "The investment bank offers great returns.", "She saved a little money from every paycheck.",
             "Interest rates rose for the third time this year."}
    assert results[0][1] in money


# ----- lesson 5: zero-shot ---------------------------------------------------------------------

def test_zero_shot_phrasing_changes_the_ranking(lesson_results):
    example = lesson_results["zero-shot"]["example"]
    # the measurement: "This text is about geography." first, bare "finance" first
    assert example["template"]["ranking"][0] == "geography"
    assert example["bare word"]["ranking"][0] == "finance"
    for r in example.values():
        assert r["softmax"].sum() == pytest.approx(1.0, abs=ZERO_SHOT_SOFTMAX_SUM_ATOL)
        assert list(np.argsort(-r["softmax"])) == list(np.argsort(-r["cosine"]))


def test_zero_shot_beats_the_majority_baseline(lesson_results):
    lesson = lesson_results["zero-shot"]
    assert lesson["baseline"] == pytest.approx(0.25)  # ten sentences per label
    for name, ev in lesson["evaluation"].items():
        assert ev["accuracy"] > lesson["baseline"], name


# ----- lesson 6: compare -----------------------------------------------------------------------

def test_compare_table(lesson_results):
    lesson = lesson_results["compare"]
    params, size, speed, sep = (lesson[k] for k in ("params", "size", "speed", "mean_separation"))
    assert params["BERT"] > params["static"] > params["ELMo"] > 0
    assert size["BERT"] == size["static"] == 384 and size["ELMo"] == 32
    assert all(v > 0 for v in speed.values())
    assert sep["static"] == pytest.approx(0.0, abs=STATIC_GAP_ATOL)
    assert sep["BERT"] > sep["static"]


# ----- the options a learner types ---------------------------------------------------------------

def test_own_sentences_for_a_word(tmp_path, capsys):
    from lessons.__main__ import run_lesson

    result = run_lesson("static-vs-contextual", tmp_path, word="spring",
                        sentence=["Spring is warm.", "The spring broke.", "A spring of water."])
    assert result["static_max_abs_diff"] == 0.0
    static_row = result["rows"][0]
    assert static_row[0] == "static" and all(c == pytest.approx(1.0) for c in static_row[1:])
    assert "s1~s2" in capsys.readouterr().out


def test_attention_on_own_sentence_and_chosen_head(tmp_path, monkeypatch):
    from lessons import plots
    from lessons.__main__ import run_lesson

    monkeypatch.setattr(plots, "pyplot", lambda: None)  # numbers and explorer only, faster
    result = run_lesson("attention", tmp_path, sentence="Bats sleep by day.", layer=2, head=5)
    assert (result["qk_layer"], result["qk_head"]) == (2, 5)
    assert result["softmax_max_abs_diff"] <= SOFTMAX_RECOMPUTE_ATOL
    assert result["explorer"].exists() and "Bats sleep by day." in result["explorer"].read_text()
