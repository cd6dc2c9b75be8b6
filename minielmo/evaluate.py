"""What a trained biLM has learned, as numbers: held-out perplexity against count-based baselines,
nearest neighbours of the context-free char-CNN vectors, and contextual neighbours of a word.

    python -m minielmo.evaluate --run elmo_run --corpus corpus [--json out.json]

Baselines, on exactly the targets the biLM predicts (same vocabulary, same <UNK>, the same
boundary targets </S> forward and <S> backward):
  - unigram: word frequencies of the training text, add-one smoothed over the vocabulary;
  - bigram: interpolated absolute discounting (Ney et al. 1994, discount 0.75) over that unigram,
    p(w | previous word) for the forward direction and p(w | next word) for the backward one.
"""

from __future__ import annotations

import argparse
import collections
import json
import math
from pathlib import Path

import torch

from .bilm import BiLM
from .characters import batch_to_ids
from .config import ElmoConfig
from .train import SharedSoftmax, Vocabulary, perplexity, read_sentences

BIGRAM_DISCOUNT = 0.75  # the usual absolute discount for bigram counts (Chen & Goodman 1998)


def ngram_perplexities(train: list[list[str]], heldout: list[list[str]], vocab: Vocabulary) -> dict:
    """Unigram and bigram perplexity per direction on the held-out targets."""
    def ids(sentence):
        return vocab.ids(sentence)  # <S> w1 .. wn </S>

    unigram = collections.Counter()
    pairs = {"forward": collections.Counter(), "backward": collections.Counter()}
    for sentence in train:
        word_ids = ids(sentence)
        unigram.update(word_ids)
        pairs["forward"].update(zip(word_ids[:-1], word_ids[1:]))  # (context, target)
        pairs["backward"].update(zip(word_ids[1:], word_ids[:-1]))
    total, V = sum(unigram.values()), len(vocab)

    def p_unigram(word):
        return (unigram[word] + 1) / (total + V)

    result = {}
    for direction, counts in pairs.items():
        context_total, context_types = collections.Counter(), collections.Counter()
        for (context, _), n in counts.items():
            context_total[context] += n
            context_types[context] += 1
        log_uni = log_bi = 0.0
        n_targets = 0
        for sentence in heldout:
            word_ids = ids(sentence)
            steps = zip(word_ids[:-1], word_ids[1:]) if direction == "forward" else zip(word_ids[1:], word_ids[:-1])
            for context, target in steps:
                p1 = p_unigram(target)
                seen = context_total[context]
                if seen:
                    backoff = BIGRAM_DISCOUNT * context_types[context] / seen
                    p2 = max(counts[(context, target)] - BIGRAM_DISCOUNT, 0) / seen + backoff * p1
                else:
                    p2 = p1
                log_uni -= math.log(p1)
                log_bi -= math.log(p2)
                n_targets += 1
        result[direction] = {"unigram": math.exp(log_uni / n_targets), "bigram": math.exp(log_bi / n_targets),
                             "targets": n_targets}
    return result


@torch.no_grad()
def token_vectors(bilm: BiLM, words: list[str], batch: int = 512) -> torch.Tensor:
    """Layer 0 (char CNN + highway + projection) for isolated words: (N, P)."""
    out = []
    for start in range(0, len(words), batch):
        ids = batch_to_ids([[w] for w in words[start:start + batch]])  # (n, 1, W)
        layer0 = bilm(ids)["activations"][0][:, 1]  # (n, 3, 2P) -> (n, 2P): the word, not <S> </S>
        out.append(layer0[:, : bilm.config.projection_dim])  # both halves are the same vector
    return torch.cat(out)


def char_cnn_neighbours(bilm: BiLM, queries: list[str], candidates: list[str], k: int = 5) -> dict:
    """Nearest candidate words to each query by cosine of their layer-0 vectors."""
    vectors = torch.nn.functional.normalize(token_vectors(bilm, candidates), dim=-1)
    result = {}
    for query in queries:
        q = torch.nn.functional.normalize(token_vectors(bilm, [query]), dim=-1)[0]
        scores = vectors @ q
        ranked = [i for i in scores.argsort(descending=True).tolist() if candidates[i] != query][:k]
        result[query] = [(candidates[i], round(scores[i].item(), 3)) for i in ranked]
    return result


@torch.no_grad()
def contextual_vectors(bilm: BiLM, sentences: list[list[str]], word: str, layer: int) -> list[torch.Tensor]:
    """The vector of the first occurrence of `word` in each sentence at one biLM layer."""
    output = bilm(batch_to_ids(sentences))
    activations = output["activations"][layer]  # (B, T+2, 2P)
    return [activations[i, sentence.index(word) + 1] for i, sentence in enumerate(sentences)]


def contextual_neighbours(bilm: BiLM, queries: list[list[str]], pool: list[list[str]], word: str,
                          layer: int, k: int = 3) -> list[dict]:
    """For each query sentence, the pool sentences whose `word` is closest (cosine) at `layer`."""
    pool_vectors = torch.stack(contextual_vectors(bilm, pool, word, layer))
    pool_vectors = torch.nn.functional.normalize(pool_vectors, dim=-1)
    rows = []
    for query, vector in zip(queries, contextual_vectors(bilm, queries, word, layer)):
        scores = pool_vectors @ torch.nn.functional.normalize(vector, dim=-1)
        best = scores.argsort(descending=True)[:k].tolist()
        rows.append({"query": " ".join(query),
                     "neighbours": [(" ".join(pool[i]), round(scores[i].item(), 3)) for i in best]})
    return rows


def load_run(run: Path) -> tuple[BiLM, SharedSoftmax, dict]:
    """The biLM and softmax of a training checkpoint (minielmo.train writes run/checkpoint.pt)."""
    state = torch.load(run / "checkpoint.pt", weights_only=True)
    config = ElmoConfig(**{k: tuple(map(tuple, v)) if k == "filters" else v for k, v in state["config"].items()})
    bilm = BiLM(config)
    bilm.load_state_dict(state["bilm"])
    softmax = SharedSoftmax(config.projection_dim, state["vocab_size"])
    softmax.load_state_dict(state["softmax"])
    return bilm.eval(), softmax.eval(), state


BANK_QUERIES = ["The bank approved my loan .", "He deposited the money in the bank .",
                "We sat on the bank of the river .", "The boat drifted toward the muddy bank ."]
CHAR_QUERIES = ["walked", "happiness", "kingdom", "Elizabeth", "quickly", "unkind", "London", "1813"]


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(prog="python -m minielmo.evaluate", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--run", default="elmo_run")
    parser.add_argument("--corpus", default="corpus")
    parser.add_argument("--json", help="also write the results here")
    args = parser.parse_args(argv)
    run, corpus = Path(args.run), Path(args.corpus)
    bilm, softmax, state = load_run(run)
    vocab = Vocabulary.from_file(corpus / "vocab.txt")
    train = read_sentences(corpus / "train.txt")
    heldout_tagged = read_sentences(corpus / "heldout.txt")
    heldout = [line[1:] for line in heldout_tagged]
    results = {"step": state["step"], "tokens": state["tokens"], "train_seconds": state["elapsed"],
               "parameters": sum(p.numel() for p in bilm.parameters()),
               "perplexity": perplexity(bilm, softmax, heldout, vocab),
               "baselines": ngram_perplexities(train, heldout, vocab)}
    by_source = collections.defaultdict(list)
    for line in heldout_tagged:
        by_source[line[0]].append(line[1:])
    results["perplexity_by_source"] = {source: perplexity(bilm, softmax, lines, vocab)
                                       for source, lines in sorted(by_source.items())}
    results["char_cnn_neighbours"] = char_cnn_neighbours(bilm, CHAR_QUERIES, vocab.words[3:20003])
    pool = [s for s in heldout + train[:200000] if "bank" in s][:300]
    results["bank_neighbours"] = contextual_neighbours(
        bilm, [q.split() for q in BANK_QUERIES], pool, "bank", layer=bilm.config.n_layers)
    print(json.dumps(results, indent=2))
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
