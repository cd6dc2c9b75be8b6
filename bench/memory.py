"""python -m bench.memory: peak memory of SentenceEncoder.encode on many long texts, beside
sentence-transformers' SentenceTransformer.encode in the same harness.

encode() reads its input chunk by chunk (minibert/sentence.py, CHUNK_BATCHES batches at a time):
each chunk is tokenized, embedded and dropped, and the memory freed is handed back to the
allocator's owner (glibc's malloc_trim), so its peak should not grow with the number of texts N
beyond the (N, D) float32 result (N * 384 * 4 bytes: 7.3 MiB for 5,000 texts, 73 MiB for
50,000). Each measurement runs in a fresh process (peak RSS only ever grows); texts are ~400
words of the bench corpus's prose (seeded, about 500 word pieces, cut to 256 by max_seq_length as
usual).

  encode                 ours: load, warm up on 64 texts, then encode a generator of N texts
                         (the caller holds no copy of the texts)
  encode, no trim        the same with release_free_memory() switched off, to show what it does
  sentence-transformers  SentenceTransformer(all-MiniLM-L6-v2).encode on a list of the N texts,
                         built before the "RSS before" reading (it sorts all N texts by length,
                         so it needs a list)
  tokenize-chunks/-all   tokenization alone, chunk by chunk or all N texts up front (no model)

Each row gives the RSS before the call, the peak (VmHWM), the growth (peak - before) and the RSS
held after the call returned. Prints a table and, with --out, writes it as Markdown.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import random
import subprocess
import sys
import time
from pathlib import Path

from bench.corpus import make_sentence
from bench.timing import current_rss_mb, peak_rss_mb

ROOT = Path(__file__).resolve().parent.parent
MODEL = "all-MiniLM-L6-v2"
WARM_UP_TEXTS = 64
MODES = {"encode": "minibert encode", "encode-no-trim": "minibert encode, no malloc_trim",
         "st-encode": "sentence-transformers encode", "tokenize-chunks": "tokenize only, in chunks (as encode)",
         "tokenize-all": "tokenize only, all up front"}


def long_texts(n: int, words: int, seed: int = 0):
    """n texts of about `words` words each, generated lazily; the same seed gives the same texts."""
    rng = random.Random(seed)
    for _ in range(n):
        yield make_sentence(rng, words)


def _row(mode: str, n: int, rss_before: float, start: float, **extra) -> dict:
    return {"mode": mode, "texts": n, "rss_before_mb": rss_before, "peak_rss_mb": peak_rss_mb(),
            "rss_after_mb": current_rss_mb(), "seconds": time.perf_counter() - start, **extra}


def child(mode: str, n: int, words: int, batch_size: int, device: str, threads: int) -> dict:
    """One measurement, run in a fresh process; returns RSS figures in MiB."""
    import torch

    if threads:
        torch.set_num_threads(threads)
    if mode == "st-encode":
        from sentence_transformers import SentenceTransformer

        from weights import resolve

        reference = SentenceTransformer(str(resolve(MODEL)), device=device)
        reference.encode(list(long_texts(WARM_UP_TEXTS, words, seed=1)), batch_size=batch_size)
        texts = list(long_texts(n, words))
        rss_before, start = current_rss_mb(), time.perf_counter()
        vectors = reference.encode(texts, batch_size=batch_size, show_progress_bar=False)
        return _row(mode, n, rss_before, start, result_mb=vectors.nbytes / 2**20)

    import minibert
    from minibert import sentence

    encoder = minibert.SentenceEncoder.from_pretrained(MODEL, device=device)
    if mode == "encode-no-trim":
        sentence.MALLOC_TRIM = None  # release_free_memory() then does nothing
    if mode == "tokenize-all":
        texts = list(long_texts(n, words))
        rss_before, start = current_rss_mb(), time.perf_counter()
        encoder.tokenizer.encode_each(texts, max_length=encoder.max_seq_length)
        return _row(mode, n, rss_before, start)
    if mode == "tokenize-chunks":
        rss_before, start = current_rss_mb(), time.perf_counter()
        for chunk in sentence.chunks(long_texts(n, words), batch_size * sentence.CHUNK_BATCHES):
            encoder.tokenized_batches(chunk, batch_size)
        return _row(mode, n, rss_before, start)
    encoder.encode(list(long_texts(WARM_UP_TEXTS, words, seed=1)), batch_size=batch_size)
    rss_before, start = current_rss_mb(), time.perf_counter()
    vectors = encoder.encode(long_texts(n, words), batch_size=batch_size, show_progress_bar=True)
    assert vectors.shape == (n, encoder.get_sentence_embedding_dimension())
    return _row(mode, n, rss_before, start, result_mb=vectors.nbytes / 2**20)


def measure(mode: str, n: int, args) -> dict:
    command = [sys.executable, "-m", "bench.memory", "--child", mode, "--texts", str(n), "--words", str(args.words),
               "--batch-size", str(args.batch_size), "--device", args.device, "--threads", str(args.threads)]
    # stderr is not captured: the child's progress bar (and any error) shows as it runs.
    done = subprocess.run(command, cwd=ROOT, stdout=subprocess.PIPE, text=True, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"bench.memory child {mode} {n} failed (its error is above)")
    return json.loads(done.stdout.strip().splitlines()[-1])


def table(rows: list[dict]) -> str:
    lines = ["| measurement | texts | RSS before MiB | peak RSS MiB | growth MiB | held after MiB | result MiB "
             "| seconds | texts/s |", "|---|---|---|---|---|---|---|---|---|"]
    for row in rows:
        growth = row["peak_rss_mb"] - row["rss_before_mb"]
        held = row["rss_after_mb"] - row["rss_before_mb"]
        result = f"{row['result_mb']:.1f}" if "result_mb" in row else "-"
        lines.append(f"| {MODES[row['mode']]} | {row['texts']:,} | {row['rss_before_mb']:.0f} | {row['peak_rss_mb']:.0f} | "
                     f"{growth:.0f} | {held:.0f} | {result} | {row['seconds']:.1f} | {row['texts'] / row['seconds']:.1f} |")
    return "\n".join(lines)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.memory", description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--texts", default="500,5000,50000",
                        help="numbers of long texts, comma-separated; each is measured for every mode")
    parser.add_argument("--modes", default="encode,st-encode", help=f"comma-separated, from {list(MODES)}")
    parser.add_argument("--words", type=int, default=400, help="words per text")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--device", default="cpu", help="where the models run")
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's own default)")
    parser.add_argument("--out", help="also write the table here (Markdown)")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    sizes = [int(n) for n in args.texts.split(",")]
    if args.child:
        print(json.dumps(child(args.child, sizes[0], args.words, args.batch_size, args.device, args.threads)))
        return
    modes = args.modes.split(",")
    unknown = [m for m in modes if m not in MODES]
    if unknown:
        parser.error(f"unknown mode(s) {unknown}; choose from {list(MODES)}")

    rows = []
    for n in sizes:
        for mode in modes:
            print(f"measuring {mode} on {n:,} texts ...", file=sys.stderr, flush=True)
            rows.append(measure(mode, n, args))
            print(json.dumps(rows[-1]), file=sys.stderr, flush=True)  # each row as it completes
    import torch

    header = (f"`python -m bench.memory --texts {args.texts} --modes {args.modes} --words {args.words} "
              f"--batch-size {args.batch_size} --device {args.device}`, "
              f"{datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M} UTC, "
              f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, torch {torch.__version__}, "
              f"{torch.get_num_threads() if not args.threads else args.threads} threads")
    text = header + "\n\n" + table(rows) + "\n"
    print(text)
    if args.out:
        Path(args.out).write_text("# Peak memory of SentenceEncoder.encode\n\n" + text, encoding="utf-8")


if __name__ == "__main__":
    main()
