"""python -m bench.approx [--quick]: is an approximate MiniLM worth it on this CPU?

Each mode runs the SentenceEncoder's own pipeline (length-sorted batches of 32, mean pooling,
normalisation) on a model made from the packaged fp32 one:
  - fp32, the fast path (what `encode` runs) and the readable path (the module calls);
  - torch dynamic int8: `torch.ao.quantization.quantize_dynamic` on every nn.Linear (weights int8,
    activations quantised per batch); the fast path reads fp32 weights, so this runs the
    readable path, and is paired against fp32 readable as well;
  - bfloat16 and float16: the whole model cast with `.to(dtype)`, through the fast path.
Speed: sent/s on the bench corpus, each mode interleaved with fp32 and its ratio paired per
repeat. Fidelity: mean and minimum cosine between each mode's vector and fp32's for the same
text, on the same corpus; and a downstream score on real data: WordNet gloss -> word retrieval
(the gloss of each of N noun synsets from Debian's wordnet-base, embedded, must find its own
first lemma's vector among the N lemmas: top-1 accuracy), against fp32's.
The report goes to bench/APPROX.md and names the CPU's features (bf16 and int8 kernels depend
on them). A mode is worth shipping only if it is faster than fp32 here.
"""

from __future__ import annotations

import argparse
import copy
import pathlib
import random
import sys
import warnings

import numpy as np
import torch

from bench.corpus import make_corpus
from bench.timing import interleaved, markdown_table, median, paired_speedup, seconds

OUTPUT = pathlib.Path(__file__).resolve().parent / "APPROX.md"
WORDNET_NOUNS = pathlib.Path("/usr/share/wordnet/data.noun")
BATCH_SIZE = 32


def wordnet_pairs(n: int, seed: int = 0) -> tuple[list[str], list[str]] | None:
    """(glosses, words) of `n` seeded noun synsets with a one-word first lemma, or None when
    wordnet-base is not installed. A data.noun line: offset lex_filenum n w_cnt word lex_id ... | gloss."""
    if not WORDNET_NOUNS.is_file():
        return None
    entries = []
    for line in WORDNET_NOUNS.read_text(encoding="latin-1").splitlines():
        if line.startswith(" ") or "|" not in line:
            continue  # the licence header
        fields, gloss = line.split("|", 1)
        word = fields.split()[4]
        definition = gloss.split(";")[0].strip()
        if "_" not in word and len(definition.split()) >= 3:
            entries.append((definition, word))
    random.Random(seed).shuffle(entries)
    chosen = entries[:n]
    return [g for g, _ in chosen], [w for _, w in chosen]


def embed(encoder, model, texts: list[str], fast_path: bool) -> np.ndarray:
    """SentenceEncoder's pipeline with `model` in place of encoder.model: (N, D) float32."""
    import pooling
    from minibert import fast

    batches, tokenized = encoder.tokenized_batches(texts, BATCH_SIZE)
    out = np.empty((len(texts), encoder.dimension), dtype=np.float32)
    with torch.inference_mode():
        for ids, batch in zip(batches, tokenized):
            args = (batch["input_ids"], batch["attention_mask"], batch["token_type_ids"])
            if fast_path:
                hidden = fast.last_hidden_state(model, *args)  # (B, T, D)
            else:
                hidden = model(args[0], attention_mask=args[1], token_type_ids=args[2]).last_hidden_state
            vectors = pooling.normalize(pooling.mean(hidden.float(), batch["attention_mask"]))  # (B, D)
            out[ids] = vectors.numpy()
    return out


def modes(encoder) -> dict:
    """name -> (model, fast_path), each made from the packaged fp32 model."""
    fp32 = encoder.model
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torch.ao.quantization's deprecation notice
        int8 = torch.ao.quantization.quantize_dynamic(copy.deepcopy(fp32), {torch.nn.Linear}, dtype=torch.qint8)
    return {
        "fp32 (fast path)": (fp32, True),
        "fp32 (readable path)": (fp32, False),
        "torch dynamic int8 (readable path)": (int8, False),
        "bfloat16 (fast path)": (copy.deepcopy(fp32).to(torch.bfloat16), True),
        "float16 (fast path)": (copy.deepcopy(fp32).to(torch.float16), True),
    }


def retrieval_accuracy(vectors_gloss: np.ndarray, vectors_word: np.ndarray) -> float:
    """Share of glosses whose most similar word vector is their own word's."""
    return float(np.mean((vectors_gloss @ vectors_word.T).argmax(1) == np.arange(len(vectors_gloss))))


def verdict(speedups: dict[str, float]) -> str:
    """Which approximate modes would be worth shipping here: only those faster than fp32's fast path."""
    faster = [name for name, x in speedups.items() if not name.startswith("fp32") and x > 1.0]
    if not faster:
        return ("Worth shipping on this CPU: none. Every approximate mode ran slower than fp32's fast path, "
                "so minicontext ships no approximate mode here; `dtype=` stays a precision choice, not a speed one.")
    return "Faster than fp32's fast path on this CPU: " + ", ".join(
        f"{name} ({speedups[name]:.2f}x)" for name in faster) + "; weigh the fidelity columns before using them."


def main(argv=None) -> str:
    parser = argparse.ArgumentParser(prog="python -m bench.approx", description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="tiny smoke run; writes nothing")
    parser.add_argument("--sentences", type=int, default=400)
    parser.add_argument("--synsets", type=int, default=1000)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args(argv)
    if args.quick:
        args.sentences, args.synsets = 8, 20
    import minibert
    from bench.run import cpu_features, machine

    def log(message):
        print(message, file=sys.stderr, flush=True)

    encoder = minibert.SentenceEncoder.from_pretrained("all-MiniLM-L6-v2")
    corpus = make_corpus(args.sentences)
    made = modes(encoder)
    for model, fast_path in made.values():
        embed(encoder, model, corpus[:8], fast_path)  # first-call work is not timed

    log("speed")
    outputs: dict[str, np.ndarray] = {}

    def job(name):
        model, fast_path = made[name]

        def run():
            def go():
                outputs[name] = embed(encoder, model, corpus, fast_path)
            return seconds(go)
        return run

    times = interleaved({name: job(name) for name in made}, args.repeats)
    reference = outputs["fp32 (fast path)"]

    log("WordNet gloss -> word retrieval")
    pairs = wordnet_pairs(args.synsets)
    scores = {}
    if pairs:
        glosses, words = pairs
        for name, (model, fast_path) in made.items():
            scores[name] = retrieval_accuracy(embed(encoder, model, glosses, fast_path),
                                              embed(encoder, model, words, fast_path))

    rows = []
    for name in made:
        cosines = (outputs[name] * reference).sum(1) / (
            np.linalg.norm(outputs[name], axis=1) * np.linalg.norm(reference, axis=1))
        readable_pair = "fp32 (readable path)"
        rows.append([name, args.sentences / median(times[name]),
                     f"{paired_speedup(times, name, 'fp32 (fast path)'):.2f}",
                     f"{paired_speedup(times, name, readable_pair):.2f}",
                     f"{cosines.mean():.6f}", f"{cosines.min():.6f}",
                     f"{scores[name]:.3f}" if scores else "-"])
    env = machine()
    lines = ["# Approximate MiniLM modes on this CPU", "",
             f"Command: `python -m bench.approx {' '.join(argv or sys.argv[1:])}`".rstrip() + "", "",
             f"- date (UTC): {env['date (UTC)']}", f"- cpu: {env['cpu']}", f"- cpu features: {cpu_features()}",
             f"- torch: {env['torch']}", f"- load average: {env['load average at start']}",
             f"- corpus: {args.sentences} bench sentences; every timing the median of {args.repeats} "
             "interleaved repeats, every ratio the median of per-repeat paired ratios", "",
             markdown_table(["mode", "sent/s", "x fp32 fast", "x fp32 readable", "mean cosine to fp32",
                             "min cosine to fp32", f"WordNet top-1 ({args.synsets} synsets)"], rows), "",
             "x fp32 fast / readable: how many times faster than fp32 on the fast / readable path "
             "(< 1.00: slower). Cosines: between each text's vector in this mode and in fp32. "
             "WordNet top-1: each noun gloss must retrieve its own word among all the words.", ""]
    if args.quick:
        lines += ["Smoke run (`--quick`): nothing is concluded from these numbers.", ""]
    else:
        lines += [verdict({name: paired_speedup(times, name, "fp32 (fast path)") for name in made}), ""]
    text = "\n".join(lines)
    print(text)
    if not args.quick:
        OUTPUT.write_text(text)
        log(f"written to {OUTPUT}")
    return text


if __name__ == "__main__":
    main()
