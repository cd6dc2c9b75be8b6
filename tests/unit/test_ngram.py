"""The Kneser-Ney baselines (minielmo/ngram.py): real distributions, and the numbers of a hand
computation on a corpus small enough to count by eye."""

import math
import random

import pytest

from minielmo.ngram import KneserNey, unigram_add_one

# Summing 12 probabilities (or a few hundred) in float64 rounds at ~1e-15 each.
SUM_TOLERANCE = 1e-12


def _corpus(seed=0, sentences=300, vocab=40):
    rng = random.Random(seed)
    # Zipf-ish word choice with some fixed phrases, so that counts of every size occur.
    words = list(range(3, vocab))
    weights = [1 / (i + 1) for i in range(len(words))]
    text = []
    for _ in range(sentences):
        sentence = rng.choices(words, weights, k=rng.randint(1, 12))
        if rng.random() < 0.3:
            sentence[:0] = [5, 6, 7]
        text.append(sentence)
    return text


@pytest.mark.parametrize("order", [1, 2, 3, 5])
def test_probabilities_sum_to_one_for_every_history(order):
    vocab = 40
    lm = KneserNey(_corpus(), order, vocab, start=0, end=1)
    rng = random.Random(1)
    histories = [(0,), (0, 5, 6), (0, 5, 6, 7, 9), (3, 4), (39, 39, 39, 39), ()]
    histories += [tuple([0] + rng.choices(range(2, vocab), k=rng.randint(0, 6))) for _ in range(20)]
    for history in histories:
        total = sum(lm.prob(w, history) for w in range(vocab))
        assert abs(total - 1) < SUM_TOLERANCE, (history, total)


def test_backward_model_is_the_same_model_on_reversed_sentences():
    text = _corpus(seed=2)
    forward = KneserNey([s[::-1] for s in text], 3, 40, start=1, end=0)
    for history in [(1, 7, 6), (1,), (1, 12, 30)]:
        assert abs(sum(forward.prob(w, history) for w in range(40)) - 1) < SUM_TOLERANCE


def test_a_hand_counted_bigram():
    # Sentences "a b" and "a c" with ids a=2, b=3, c=4, start 0, end 1. Bigram raw counts:
    # (0,2):2 (2,3):1 (2,4):1 (3,1):1 (4,1):1. Unigram continuation counts: a:1 (after <S>),
    # b:1, c:1, </S>:2 (after b and after c). Too few counts-of-counts for the estimate, so every
    # discount is 0.75. Unigram: c = 5, p1(b) = (1 - .75)/5 + (.75*4/5)/5 = 0.05 + 0.6/5 = 0.17.
    lm = KneserNey([[2, 3], [2, 4]], 2, 5, start=0, end=1)
    assert lm.prob(3, ()) == pytest.approx(0.25 / 5 + 0.75 * 4 / 5 / 5)
    # p(b | a): c(a) = 2, counts 1 and 1: (1 - .75)/2 + (.75 * 2 / 2) * p1(b).
    p1_b = 0.25 / 5 + 0.75 * 4 / 5 / 5
    assert lm.prob(3, (0, 2)) == pytest.approx(0.25 / 2 + 0.75 * p1_b)
    # An unseen context (b never precedes anything but </S>... and d=4 is seen) falls through whole.
    assert lm.prob(3, (0, 4, 4)) == pytest.approx(lm.prob(3, (4,)))


def _second_order_text(seed, sentences):
    """Each word is (the two before it summed, mod 20) + 3, four times in five; else random."""
    rng = random.Random(seed)
    text = []
    for _ in range(sentences):
        sentence = [rng.randrange(3, 23), rng.randrange(3, 23)]
        for _ in range(rng.randint(0, 10)):
            follows = (sentence[-1] + sentence[-2]) % 20 + 3
            sentence.append(follows if rng.random() < 0.8 else rng.randrange(3, 23))
        text.append(sentence)
    return text


def test_more_context_helps_where_the_text_depends_on_it():
    train, test = _second_order_text(3, 3000), _second_order_text(4, 300)
    perplexities = [KneserNey(train, order, 40, 0, 1).perplexity(test) for order in (1, 2, 3)]
    assert perplexities[2] < perplexities[1] < perplexities[0], perplexities


def test_add_one_unigram_is_a_distribution():
    p = unigram_add_one([[2, 3], [2, 4]], 5, end=1)
    assert sum(p(w) for w in range(5)) == pytest.approx(1)
    assert p(2) == pytest.approx((2 + 1) / (6 + 5))


def test_order_zero_is_refused():
    with pytest.raises(ValueError, match="order"):
        KneserNey([[2]], 0, 5, 0, 1)
