"""Every lesson runs (as `python -m lessons all` runs them) and its numbers point the way the
lesson says. The assertions are on directions and invariants, never on exact model outputs; a
direction measured on WordNet counts only when the 95% intervals (bootstrap over lemmas or
examples, fixed seeds) do not overlap."""

import math

import numpy as np
import pytest

from lessons import data
from lessons.__main__ import lesson_names

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
# A bootstrap interval of a mean brackets the float64 mean it resamples; only rounding in the
# quantile interpolation can put an end a hair past it (a head with mass 1.00 on every sentence).
INTERVAL_ROUNDING = 1e-12
# The zero-shot softmax over a handful of labels sums to 1 up to rounding.
ZERO_SHOT_SOFTMAX_SUM_ATOL = 1e-6


def test_every_lesson_ran_and_wrote_pictures(lesson_results, lesson_printed, lesson_out):
    assert set(lesson_results) == set(lesson_names()) == set(lesson_printed)
    for name, result in lesson_results.items():
        assert result["written"], f"{name} wrote nothing"
        for path in result["written"]:
            assert path.parent == lesson_out
            assert path.stat().st_size > 1000, path


# ----- static vs contextual ----------------------------------------------------------------------

def test_glove_bank_is_one_financial_vector(lesson_results):
    lesson = lesson_results["static-vs-contextual"]
    assert lesson["glove_max_abs_diff"] == 0.0
    neighbours = [w for w, _ in lesson["glove_neighbours"]]
    assert {"banks", "banking", "financial"} & set(neighbours[:8])
    # the river sense is far away: hundreds of words are closer to "bank" than "river" is
    assert lesson["glove_rank"]["river"] > lesson["glove_rank"]["money"]

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


def test_elmo_char_cnn_vector_depends_on_the_spelling_only(lesson_results):
    for word, elmo in lesson_results["static-vs-contextual"]["elmo"].items():
        assert all(diff == 0.0 for diff in elmo["within"].values()), word
        assert all(diff > 0.0 for diff in elmo["lstm"]), word
    spring = lesson_results["static-vs-contextual"]["elmo"]["spring"]
    # "Spring brings warmer weather ...": a capital S is another character, so another vector
    assert {"spring", "Spring"} <= set(spring["within"]) and spring["across"] > 0.0


# ----- ELMo layers -------------------------------------------------------------------------------

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
    rows = {row["setting"]: row for row in lesson["mix_rows"]}
    assert len(rows) == lesson["config"].n_layers + 3  # default, one per layer, gamma = 2
    # all weight on layer 0: the context-free vector, the same in every sentence
    assert rows["layer 0 only"]["min cosine"] > LAYER0_ONLY_MIN_COSINE
    assert rows["layer 1 only"]["min cosine"] < LAYER0_ONLY_MIN_COSINE
    # gamma scales the vector, cosines unchanged
    mixes = lesson["mixes"]
    np.testing.assert_allclose(mixes["default, gamma = 2"], 2 * mixes["default (s = 0, gamma = 1)"], rtol=GAMMA_SCALE_RTOL)
    assert rows["default, gamma = 2"]["min cosine"] == pytest.approx(rows["default (s = 0, gamma = 1)"]["min cosine"],
                                                                     abs=GAMMA_COSINE_ATOL)


def test_elmo_lessons_name_the_model(lesson_printed):
    import minielmo

    from lessons.common import elmo_label

    assert elmo_label() == f"ELMo ({minielmo.DEFAULT_MODEL})"
    for name in ("elmo-layers", "compare", "static-vs-contextual", "layers"):
        assert elmo_label() in lesson_printed[name], name


# ----- attention ---------------------------------------------------------------------------------

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
    assert len(lesson["corpus"]) == 200
    low, high = lesson["mass_ci"]
    assert np.all(low <= mass + INTERVAL_ROUNDING) and np.all(mass <= high + INTERVAL_ROUNDING)
    # one PNG per layer, the entropy map, the roles, the Q·K picture, and the explorer
    names = sorted(p.name for p in lesson["written"])
    assert names == sorted([f"attention_layer{i + 1}.png" for i in range(L)]
                           + ["attention_entropy.png", "attention_roles.png", "attention_qk.png",
                              "attention_explorer.html"])


def test_role_table_spells_out_mixed(lesson_printed):
    table = lesson_printed["attention"].split("Where each head looks")[1].split("heads per role")[0]
    rows = [line.split() for line in table.splitlines() if line[:1].isdigit()]
    assert rows and all(cell in {"CLS", "SEP", "prev", "next", "self", "mixed"} for row in rows for cell in row[1:])


def test_explorer_is_self_contained(lesson_results):
    html = lesson_results["attention"]["explorer"].read_text(encoding="utf-8")
    assert "__ATTENTION_DATA__" not in html
    # nothing is fetched: no external script, stylesheet, image or font
    for needle in ("src=", "href=", "@import", "url(", "fetch(", "XMLHttpRequest"):
        assert needle not in html, needle
    assert html.count("http") == html.count("http://www.w3.org/2000/svg")


# ----- similarity --------------------------------------------------------------------

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


# ----- zero-shot ---------------------------------------------------------------------------------

def test_zero_shot_phrasing_changes_the_ranking(lesson_results):
    example = lesson_results["zero-shot"]["example"]
    # the seed's river-bank text: the template puts geography first, the bare word finance
    assert example["template"]["ranking"][0] == "geography"
    assert example["bare word"]["ranking"][0] == "finance"
    for r in example.values():
        assert r["softmax"].sum() == pytest.approx(1.0, abs=ZERO_SHOT_SOFTMAX_SUM_ATOL)
        assert list(np.argsort(-r["softmax"])) == list(np.argsort(-r["cosine"]))


def test_zero_shot_beats_the_majority_class_on_wordnet(lesson_results):
    lesson = lesson_results["zero-shot"]
    assert lesson["n"] >= 2000 and len(lesson["per_file"]) == 25 and len(lesson["evaluation"]) >= 3
    for name, ev in lesson["evaluation"].items():
        assert ev["accuracy_ci"][0] > lesson["baseline"]["accuracy"], name
        assert ev["macro_f1_ci"][0] > lesson["baseline"]["macro_f1"], name
        assert ev["accuracy_ci"][0] <= ev["accuracy"] <= ev["accuracy_ci"][1]


# ----- word-sense disambiguation ---------------------------------------------------------------

def test_embedding_lesk_beats_chance_and_the_first_sense(lesson_results):
    lesson = lesson_results["wsd"]
    results = lesson["results"]
    assert len(lesson["examples"]) >= 1000
    embedding = results["embedding Lesk (cosine of definitions)"]
    for baseline in ("random sense (expected)", "first sense (WordNet order)"):
        assert embedding[1][0] > results[baseline][1][1], baseline


# ----- layers --------------------------------------------------------------------------------------

def _model(lesson_results, prefix):
    return next(v for k, v in lesson_results["layers"]["results"].items() if k.startswith(prefix))


def test_static_vectors_score_chance_on_sense_pairs(lesson_results):
    # every pair shares its word form, so one vector per form ties every pair: AUC exactly 0.5
    glove_rows, glove_control = _model(lesson_results, "GloVe")
    assert glove_rows[0].sense_auc == 0.5 and glove_control[0].sense_auc == 0.5
    minilm_rows, _ = _model(lesson_results, "MiniLM")
    assert minilm_rows[0].layer == "static" and minilm_rows[0].sense_auc == 0.5


def test_a_contextual_layer_beats_the_static_baseline_and_random_weights(lesson_results):
    glove = _model(lesson_results, "GloVe")[0][0]
    rows, control = _model(lesson_results, "MiniLM")
    best = max(range(len(rows)), key=lambda k: rows[k].sense_auc)
    assert rows[best].sense_ci[0] > glove.sense_ci[1]
    assert rows[best].sense_ci[0] > control[best].sense_ci[1]


def test_the_probe_beats_the_majority_class(lesson_results):
    for prefix in ("MiniLM", "ELMo", "GloVe"):
        rows, _ = _model(lesson_results, prefix)
        best = max(rows, key=lambda r: r.pos_accuracy)
        assert best.pos_ci[0] > best.majority, prefix


def test_elmo_layer_measures_gives_one_row_per_layer_and_the_mix(lesson_results):
    from lessons.common import load_elmo_bilm
    from lessons.layer_probes import elmo_layer_measures

    rows = elmo_layer_measures(load_elmo_bilm())
    assert [r.layer for r in rows] == ["0 char-CNN", "1 biLSTM", "2 biLSTM", "mix"]
    lesson_rows, _ = _model(lesson_results, "ELMo")
    assert [r.sense_auc for r in rows] == [r.sense_auc for r in lesson_rows]  # same seed, same numbers


# ----- compare -----------------------------------------------------------------------------------

def test_compare_table(lesson_results):
    lesson = lesson_results["compare"]
    params, size, speed, quality = (lesson[k] for k in ("params", "size", "speed", "quality"))
    assert params["BERT"] > params["table"] > 0 and params["GloVe"] == 400000 * 50
    assert size["BERT"] == size["table"] == 384 and size["GloVe"] == 50
    assert quality["GloVe"]["auc"] == 0.5 and quality["BERT"]["auc"] > quality["BERT"]["random_auc"]
    assert all(fast >= median >= slow > 0 for median, slow, fast in speed.values())


# ----- the options a learner types ---------------------------------------------------------------

def test_own_sentences_for_a_word(tmp_path, capsys):
    from lessons import static_vs_contextual

    sentences = ["Spring is warm.", "The spring broke.", "A spring of water.", "The spring snapped."]
    result = static_vs_contextual.lesson(tmp_path, word="spring", sentences=sentences)
    [measured] = result["results"]
    assert measured["static_max_abs_diff"] == 0.0 and measured["separation"] is None  # no senses given
    np.testing.assert_allclose(measured["cosine_static"], 1.0, atol=STATIC_GAP_ATOL)
    assert [p.name for p in result["written"]] == ["static_vs_contextual_cosine.png"]
    assert "Label the senses" in capsys.readouterr().out
    # with one sense label per sentence, the gap is measured and drawn
    labelled = static_vs_contextual.lesson(tmp_path, word="spring", sentences=sentences,
                                           senses=["season", "coil", "water", "coil"])
    [measured] = labelled["results"]
    assert measured["separation"][0][2] == pytest.approx(0.0, abs=STATIC_GAP_ATOL)
    assert "static_vs_contextual_separation.png" in [p.name for p in labelled["written"]]


def test_elmo_layers_on_own_sentences(tmp_path, monkeypatch):
    from lessons import elmo_layers, plots

    monkeypatch.setattr(plots, "pyplot", lambda: None)  # numbers only, faster
    result = elmo_layers.lesson(tmp_path, word="bat", sentences=["A bat flew out.", "He swung the bat.",
                                                                 "The bat slept.", "She held the bat."],
                                senses=["animal", "club", "animal", "club"])
    assert result["layers"].shape[:2] == (result["config"].n_layers + 1, 4)
    assert len(result["separation"]) == result["config"].n_layers + 1
    assert result["separation"][0][2] == pytest.approx(0.0, abs=STATIC_GAP_ATOL)  # layer 0: one spelling


def test_zero_shot_text_with_own_labels_skips_the_evaluation(tmp_path, monkeypatch):
    from lessons import plots, zero_shot

    monkeypatch.setattr(plots, "pyplot", lambda: None)
    result = zero_shot.lesson(tmp_path, text="The team won the championship.", labels=["sports", "politics"])
    assert result["evaluation"] is None and result["labels"] == ["sports", "politics"]
    assert sorted(result["example"]["template"]["ranking"]) == ["politics", "sports"]


def test_attention_on_own_sentence_and_chosen_head(tmp_path, monkeypatch):
    from lessons import attention, plots

    monkeypatch.setattr(plots, "pyplot", lambda: None)  # numbers and explorer only, faster
    result = attention.lesson(tmp_path, sentences=["Bats sleep by day."], layer=2, head=5)
    assert (result["qk_layer"], result["qk_head"]) == (2, 5)
    assert result["softmax_max_abs_diff"] <= SOFTMAX_RECOMPUTE_ATOL
    assert result["explorer"].exists() and "Bats sleep by day." in result["explorer"].read_text()


def test_attention_explorer_bakes_sentences_and_pairs_from_the_command_line(tmp_path, monkeypatch):
    from lessons import plots
    from lessons.__main__ import main

    monkeypatch.setattr(plots, "pyplot", lambda: None)  # numbers and explorer only, faster
    main(["attention", "--out", str(tmp_path), "--sentence", "Bats sleep by day.",
          "--pair", "The bank raised its rates.", "Savers were pleased."])
    page = (tmp_path / "attention_explorer.html").read_text(encoding="utf-8")
    # The page's data holds one entry per text: the sentence, then the pair as one text of two
    # segments (token type 0 for the first sentence's pieces, 1 for the second's).
    assert page.count('{"text":') == 2
    assert '"text":"Bats sleep by day."' in page
    assert '"text":["The bank raised its rates.","Savers were pleased."]' in page
