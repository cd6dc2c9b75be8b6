"""The ELMo corpus clean-up (minielmo/corpus.py) and the word/sentence splitter every user of the
shipped biLM shares with its training text (minielmo/words.py). No source package is needed: the
cleaners run on small texts written in the sources' own formats."""

import pytest

from minielmo import corpus
from minielmo.words import split_sentences, split_words


def test_words_split_like_the_training_text():
    assert split_words("Mr. Darcy's bank, (1813)!") == ["Mr", ".", "Darcy", "'", "s", "bank", ",", "(",
                                                        "1813", ")", "!"]
    assert split_words("don't") == ["don", "'", "t"]  # as in training: never "don't" whole
    with pytest.raises(TypeError, match="str"):
        split_words(["a", "list"])


def test_sentences_end_at_stops_but_not_after_abbreviations_or_initials():
    text = 'Mr. Darcy came. J. Smith left! "Did he?" she asked. St. Paul wrote, e.g. this.'
    assert [" ".join(s) for s in split_sentences(text)] == [
        "Mr . Darcy came .", "J . Smith left !", '" Did he ? "', "she asked .",
        "St . Paul wrote , e . g . this ."]


def test_a_closing_quote_stays_with_its_sentence_and_an_opening_one_starts_the_next():
    assert [" ".join(s) for s in split_sentences('"Yes." "No." He went. "Go!"')] == [
        '" Yes . "', '" No . "', "He went .", '" Go ! "']
    # Shakespeare's elisions begin with an apostrophe that opens nothing.
    assert [" ".join(s) for s in split_sentences("On the ice. 'Tis strange.")] == [
        "On the ice .", "' Tis strange ."]


def test_long_sentences_are_cut_and_punctuation_alone_is_dropped():
    pieces = split_sentences(" ".join(["word"] * 120), max_words=50)
    assert [len(p) for p in pieces] == [50, 50, 20]
    assert split_sentences("-- ; !") == []


PLAY = """HAMLET, PRINCE OF DENMARK

PERSONS REPRESENTED.

Claudius, King of Denmark.

ACT I.

Scene I. Elsinore. A platform before the Castle.

[Francisco at his post. Enter to him Bernardo.]

Ber.
Who's there?

MRS. PAGE.
What! have I scaped love-letters? [Aside.] Let me see.

Hor.
Such was the very armour [Enter
Ghost.] he had on.
""".splitlines()


def test_a_play_keeps_only_what_is_spoken():
    assert corpus.spoken_text(PLAY) == [
        "Who's there?", "What! have I scaped love-letters? Let me see.",
        "Such was the very armour he had on."]


def test_a_poem_without_acts_is_kept_whole():
    assert corpus.spoken_text(["From fairest creatures we desire increase,", "That thereby beauty's rose"]) == [
        "From fairest creatures we desire increase, That thereby beauty's rose"]


def test_wordnet_glosses_give_definitions_and_examples_even_with_an_unclosed_quote(tmp_path):
    lines = [
        "  1 This software and database is being provided to you, the LICENSEE, by",
        '00001740 03 n 01 bank 0 000 | sloping land beside a body of water; "they pulled the canoe up on the bank"',
        '00001741 03 n 01 spring 0 000 | a metal elastic device; "the spring snapped"; "a broken spring',
    ]
    (tmp_path / "data.noun").write_text("\n".join(lines) + "\n", encoding="latin-1")
    for pos in ("verb", "adj", "adv"):
        (tmp_path / f"data.{pos}").write_text("", encoding="latin-1")
    assert corpus.wordnet_glosses(tmp_path) == [
        ("sloping land beside a body of water", ["they pulled the canoe up on the bank"]),
        ("a metal elastic device", ["the spring snapped"])]  # the unclosed scrap is neither


def test_training_sentences_quoting_an_evaluation_example_are_recognised():
    examples = [split_words("he that loveth pleasure shall be a poor man"), split_words("a dog")]
    is_example = corpus.ExampleFilter(examples)
    assert is_example(split_words("He that loveth pleasure shall be a poor man : he that loveth wine"))
    assert is_example(split_words("and he that loveth pleasure shall be a poor"))  # an 8-word run
    assert not is_example(split_words("he that loveth wine and oil shall not be rich"))
    assert not is_example(split_words("I saw a dog ."))  # two words are a phrase, not a quotation


def test_blocks_split_into_train_validation_and_test_without_overlap():
    sentences = [[f"s{i}"] for i in range(corpus.BLOCK_SENTENCES * corpus.HELDOUT_EVERY * 2)]
    splits = corpus.split_blocks(sentences)
    sizes = {name: len(part) for name, part in splits.items()}
    assert sizes == {"train": len(sentences) - 4 * corpus.BLOCK_SENTENCES,
                     "valid": 2 * corpus.BLOCK_SENTENCES, "test": 2 * corpus.BLOCK_SENTENCES}
    seen = [s[0] for part in splits.values() for s in part]
    assert sorted(seen) == sorted(s[0] for s in sentences)
    # Whole blocks: a test sentence's neighbours are test sentences.
    first_test = sentences.index(splits["test"][0])
    assert splits["test"][:corpus.BLOCK_SENTENCES] == sentences[first_test:first_test + corpus.BLOCK_SENTENCES]


def test_word_spans_point_at_the_words_they_split():
    from minielmo.words import split_words_with_spans

    text = "Mr. Darcy's bank,  (1813)!"
    pairs = split_words_with_spans(text)
    assert [w for w, _ in pairs] == split_words(text)
    assert all(text[start:end] == word for word, (start, end) in pairs)


def test_the_lessons_read_elmo_words_as_training_split_them():
    from lessons.common import simple_word_spans, simple_words

    sentence = "He didn't bank on the river-bank's mud."
    assert simple_words(sentence) == split_words(sentence)
    assert [sentence[a:b] for a, b in simple_word_spans(sentence)] == split_words(sentence)
