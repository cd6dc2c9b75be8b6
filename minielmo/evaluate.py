"""What a trained biLM has learned, as numbers: perplexity against count-based baselines, nearest
neighbours of the context-free char-CNN vectors, and contextual neighbours of a word.

    python -m minielmo.evaluate --text FILE [--model small]       # one JSON line: forward, backward, targets
    python -m minielmo.evaluate --corpus corpus [--model small | --run RUN] [--json out.json]

--text reads one sentence per line, splits it as the training text was split
(minielmo.words.split_words) and scores it with a shipped model's own LM head: anyone can
reproduce the model card's perplexity from a fresh install. --corpus prints the full table: the
model and the baselines on the test split, per direction and per source, plus neighbours.

Baselines, on exactly the targets the biLM predicts (same vocabulary, same <UNK>, every word plus
the boundary target, </S> forward and <S> backward):
  - unigram: word frequencies of the training text, add-one smoothed over the vocabulary;
  - interpolated modified Kneser-Ney of orders 2, 3 and 5 (minielmo/ngram.py), p(w | previous
    words) forward and p(w | following words) backward.
"""

from __future__ import annotations

import collections
import json
import math
import sys
from pathlib import Path

import torch

from .bilm import BiLM
from .cli import OneLineParser
from .characters import batch_to_ids
from .config import ElmoConfig
from .lm_head import SharedSoftmax
from .ngram import KneserNey, unigram_add_one
from .pretrained import DEFAULT_MODEL, PRETRAINED
from .train import Vocabulary, perplexity, read_sentences
from .words import split_words

KN_ORDERS = (2, 3, 5)


def ngram_perplexities(train: list[list[str]], test: dict[str, list[list[str]]], vocab: Vocabulary,
                       orders=KN_ORDERS) -> dict:
    """{direction: {model: {source: perplexity}}} for the add-one unigram and Kneser-Ney of each
    order, on test sentences grouped by source ("all" is every source together)."""
    bos, eos = vocab.index["<S>"], vocab.index["</S>"]

    def ids(sentence):
        return vocab.ids(sentence)[1:-1]

    train_ids = [ids(s) for s in train]
    test_ids = {source: [ids(s) for s in sentences] for source, sentences in test.items()}
    result = {}
    for direction in ("forward", "backward"):
        flip = (lambda s: s) if direction == "forward" else (lambda s: s[::-1])
        start, end = (bos, eos) if direction == "forward" else (eos, bos)
        table = {}
        unigram = unigram_add_one(train_ids, len(vocab), end)  # the same counts both ways round
        table["unigram"] = {source: math.exp(-sum(math.log(unigram(w)) for s in ss for w in (*s, end))
                                             / sum(len(s) + 1 for s in ss)) for source, ss in test_ids.items()}
        for order in orders:
            print(f"  Kneser-Ney {order}-gram, {direction} ...", file=sys.stderr, flush=True)
            lm = KneserNey([flip(s) for s in train_ids], order, len(vocab), start, end)
            table[f"kn{order}"] = {source: lm.perplexity([flip(s) for s in ss]) for source, ss in test_ids.items()}
            del lm  # a 5-gram model holds millions of counts
        result[direction] = table
    return result


def load_model(model: str | None = None, run: Path | None = None) -> tuple[BiLM, SharedSoftmax, Vocabulary, str]:
    """A biLM with its LM head and vocabulary: a shipped model by name, or a training run's best
    weights (RUN/best.pt). The last value names what was loaded."""
    if run is not None:
        from weights.runs import load_checkpoint

        state = load_checkpoint(run / "best.pt", ("bilm", "softmax", "config", "vocab_size"))
        config = ElmoConfig(**{k: tuple(map(tuple, v)) if k == "filters" else v for k, v in state["config"].items()})
        bilm = BiLM(config)
        bilm.load_state_dict(state["bilm"])
        head = SharedSoftmax(config.projection_dim, state["vocab_size"])
        head.load_state_dict(state["softmax"])
        words = (run / "model" / "vocab.txt") if (run / "model" / "vocab.txt").is_file() else None
        if words is None:
            raise FileNotFoundError(f"{run / 'model' / 'vocab.txt'} not found: the run has not exported its model yet")
        return bilm.eval(), head.eval(), Vocabulary.from_file(words), f"run {run}"
    name = model or DEFAULT_MODEL
    if name not in PRETRAINED:
        raise ValueError(f"unknown model {name!r}; shipped models: {', '.join(sorted(PRETRAINED))}")
    bilm = BiLM.from_pretrained(name)
    head, words = SharedSoftmax.from_folder(PRETRAINED[name][0].parent)
    return bilm.eval(), head, Vocabulary(words), f"model {name}"


def text_perplexity(bilm: BiLM, head: SharedSoftmax, vocab: Vocabulary, lines: list[str]) -> dict:
    """Perplexity of each direction on raw text lines, split as the training text was."""
    sentences = [split_words(line) for line in lines if line.strip()]
    if not sentences:
        raise ValueError("no sentences to score: the text is empty")
    return perplexity(bilm, head, sentences, vocab)


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


BANK_QUERIES = ["The bank approved my loan .", "He deposited the money in the bank .",
                "We sat on the bank of the river .", "The boat drifted toward the muddy bank ."]
CHAR_QUERIES = ["walked", "happiness", "kingdom", "Elizabeth", "quickly", "unkind", "London", "1813"]


def corpus_report(bilm, head, vocab, corpus: Path, label: str) -> dict:
    """The model against the baselines on the corpus's test split, per direction and per source."""
    train = read_sentences(corpus / "train.txt")
    by_source = collections.defaultdict(list)
    for line in read_sentences(corpus / "heldout.txt"):
        by_source[line[0]].append(line[1:])
    test = {"all": [s for ss in by_source.values() for s in ss], **dict(sorted(by_source.items()))}
    print(f"scoring {label} on {len(test['all']):,} test sentences ...", file=sys.stderr, flush=True)
    model = {source: perplexity(bilm, head, sentences, vocab) for source, sentences in test.items()}
    baselines = ngram_perplexities(train, test, vocab)
    for direction in ("forward", "backward"):
        baselines[direction]["model"] = {source: m[direction] for source, m in model.items()}
    results = {"model": label, "parameters": sum(p.numel() for p in bilm.parameters()),
               "lm_head_parameters": sum(p.numel() for p in head.parameters()),
               "targets_per_direction": model["all"]["targets"], "perplexity": baselines}
    results["char_cnn_neighbours"] = char_cnn_neighbours(bilm, CHAR_QUERIES, vocab.words[3:20003])
    pool = [s for s in test["all"] + train[:200000] if "bank" in s][:300]
    results["bank_neighbours"] = contextual_neighbours(
        bilm, [split_words(q) for q in BANK_QUERIES], pool, "bank", layer=bilm.config.n_layers)
    return results


def main(argv=None) -> None:
    parser = OneLineParser("python -m minielmo.evaluate", __doc__)
    what = parser.add_mutually_exclusive_group(required=True)
    what.add_argument("--text", help="a file, one sentence per line ('-' reads stdin): print its perplexity")
    what.add_argument("--corpus", help="a folder written by python -m minielmo.corpus: the full table")
    source = parser.add_mutually_exclusive_group()
    source.add_argument("--model", default=None, help=f"a shipped model (default: {DEFAULT_MODEL})")
    source.add_argument("--run", help="a training run folder (its best.pt and model/vocab.txt)")
    parser.add_argument("--json", help="with --corpus: also write the results here")
    args = parser.parse_args(argv)
    try:  # the inputs first, then the model: a wrong path is said before a slow load
        if args.text:
            lines = (sys.stdin.read() if args.text == "-" else Path(args.text).read_text(encoding="utf-8")).splitlines()
        else:
            corpus = Path(args.corpus)
            for name in ("train.txt", "heldout.txt"):
                if not (corpus / name).is_file():
                    raise FileNotFoundError(f"{corpus / name} not found; build it with python -m minielmo.corpus --out {corpus}")
        bilm, head, vocab, label = load_model(args.model, Path(args.run) if args.run else None)
        if args.text:
            print(json.dumps(text_perplexity(bilm, head, vocab, lines)))
            return
        results = corpus_report(bilm, head, vocab, corpus, label)
    except (OSError, ValueError) as error:
        message = f"{error.filename}: {error.strerror}" if isinstance(error, OSError) and error.strerror else error
        parser.error(str(message))
    print(json.dumps(results, indent=2))
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
