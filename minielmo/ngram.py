"""Count-based language models: the baselines a trained biLM has to beat.

    lm = KneserNey(train_ids, order=5, vocab_size=len(vocab), start=BOS_ID, end=EOS_ID)
    lm.prob(target, history)             # p(target | the words before it), a real distribution
    lm.perplexity(heldout_ids)           # over every word and the end symbol, like the biLM's targets

Interpolated modified Kneser-Ney (Chen & Goodman 1998, "An empirical study of smoothing
techniques for language modeling", §3.3 and §4.1.6), the strongest simple n-gram baseline:

    p_k(w | h) = max(a_k(hw) - D_k(a_k(hw)), 0) / c_k(h)  +  γ_k(h) · p_{k-1}(w | h')
    γ_k(h)     = (D_k1 · N1(h•) + D_k2 · N2(h•) + D_k3+ · N3+(h•)) / c_k(h)
    p_0(w)     = 1 / V

- h' is h without its first word; an unseen context h falls through to p_{k-1} whole.
- a_k is the raw count at the highest order and the *continuation* count below it (how many
  different words precede the n-gram: "Francisco" is frequent but only after "San"), except for
  n-grams that begin with the start symbol, which nothing can precede: they keep raw counts
  (as SRILM and KenLM do).
- c_k(h) = Σ_w a_k(hw); N1, N2, N3+ count the words w with a_k(hw) = 1, 2, ≥ 3.
- Three discounts per order from the counts-of-counts n1..n4 of a_k: Y = n1 / (n1 + 2 n2),
  D1 = 1 - 2Y n2/n1, D2 = 2 - 3Y n3/n2, D3+ = 3 - 4Y n4/n3.

Sentences are word-id lists; the model sees start + words + end and predicts every word and the
end symbol, so the backward direction is the same model on reversed sentences with the two
symbols swapped. Probabilities sum to 1 over all V ids for every history (a test checks it).
"""

from __future__ import annotations

import collections
import math


def _discounts(counts) -> tuple[float, float, float]:
    """(D1, D2, D3+) from the counts-of-counts of one order (Chen & Goodman, Eq. 26)."""
    n = collections.Counter(min(c, 5) for c in counts)
    n1, n2, n3, n4 = (n[k] for k in (1, 2, 3, 4))
    if not (n1 and n2 and n3 and n4):  # too little data for the estimate: the usual single 0.75
        return 0.75, 0.75, 0.75
    y = n1 / (n1 + 2 * n2)
    return tuple(max(0.0, min(float(k), k - (k + 1) * y * nk1 / nk)) for k, nk, nk1 in
                 ((1, n1, n2), (2, n2, n3), (3, n3, n4)))


class KneserNey:
    """An interpolated modified Kneser-Ney model of one order over word ids 0..vocab_size-1."""

    def __init__(self, sentences: list[list[int]], order: int, vocab_size: int, start: int, end: int):
        if order < 1:
            raise ValueError(f"order must be at least 1, got {order}")
        self.order, self.vocab_size, self.start, self.end = order, vocab_size, start, end
        raw = [collections.Counter() for _ in range(order + 1)]  # raw[k]: k-gram -> count
        for sentence in sentences:
            sequence = (start, *sentence, end)
            for i in range(1, len(sequence)):  # every position that is predicted
                for k in range(1, order + 1):
                    if i - k + 1 < 0:
                        break
                    raw[k][sequence[i - k + 1:i + 1]] += 1
        # a_k: raw counts at the top order and for n-grams that begin at the sentence start;
        # continuation counts (distinct left neighbours) for every other lower-order n-gram.
        self.adjusted = [collections.Counter() for _ in range(order + 1)]
        self.adjusted[order] = raw[order]
        for k in range(1, order):
            adjusted = self.adjusted[k]
            for gram in raw[k + 1]:  # each distinct (k+1)-gram is one left neighbour of its suffix
                adjusted[gram[1:]] += 1
            for gram, count in raw[k].items():
                if gram[0] == start:
                    adjusted[gram] = count
        self.discount = [None] + [_discounts(self.adjusted[k].values()) for k in range(1, order + 1)]
        # Per context h of order k: c_k(h) and the discount mass D1 N1 + D2 N2 + D3+ N3+.
        self.context_total = [collections.Counter() for _ in range(order + 1)]
        self.context_mass = [collections.Counter() for _ in range(order + 1)]
        for k in range(1, order + 1):
            d = self.discount[k]
            for gram, count in self.adjusted[k].items():
                self.context_total[k][gram[:-1]] += count
                self.context_mass[k][gram[:-1]] += d[min(count, 3) - 1]

    def prob(self, target: int, history) -> float:
        """p(target | history): the last order-1 ids of `history` are the context."""
        history = tuple(history)[max(0, len(history) - self.order + 1):] if self.order > 1 else ()
        p = 1.0 / self.vocab_size
        for k in range(1, len(history) + 2):  # from the unigram up to the longest context we have
            context = history[len(history) - k + 1:] if k > 1 else ()
            total = self.context_total[k].get(context, 0)
            if total == 0:
                continue  # an unseen context: p_k = p_{k-1}
            count = self.adjusted[k].get((*context, target), 0)
            discounted = max(count - self.discount[k][min(count, 3) - 1], 0.0) if count else 0.0
            p = discounted / total + self.context_mass[k][context] / total * p
        return p

    def log_likelihood(self, sentences: list[list[int]]) -> tuple[float, int]:
        """(Σ log p over every word and end symbol of `sentences`, number of targets)."""
        total, targets = 0.0, 0
        for sentence in sentences:
            sequence = (self.start, *sentence, self.end)
            for i in range(1, len(sequence)):
                total += math.log(self.prob(sequence[i], sequence[:i]))
                targets += 1
        return total, targets

    def perplexity(self, sentences: list[list[int]]) -> float:
        total, targets = self.log_likelihood(sentences)
        return math.exp(-total / targets)


def unigram_add_one(sentences: list[list[int]], vocab_size: int, end: int):
    """p(w) = (count + 1) / (N + V) over the predicted ids (words and the end symbol)."""
    counts = collections.Counter(w for s in sentences for w in (*s, end))
    total = sum(counts.values())
    return lambda w: (counts[w] + 1) / (total + vocab_size)
