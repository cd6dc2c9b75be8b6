"""python -m bench.memory: peak memory of SentenceEncoder.encode on many long texts.

encode() reads its input chunk by chunk (minibert/sentence.py, CHUNK_BATCHES batches at a time):
each chunk is tokenized, embedded and dropped, so its memory should not grow with the number of
texts N, beyond the (N, D) float32 result (N * 384 * 4 bytes: 73 MiB for 50,000 texts). Each
measurement runs in a fresh process (peak RSS only ever grows); texts are ~400 words of the bench
corpus's prose (seeded, about 500 word pieces, cut to 256 by max_seq_length as usual), made on the
fly by a generator so that the caller's own copy of the texts does not count.

  encode N            load the encoder, warm it up, then encode N texts: peak RSS and its growth
                      over the RSS before the call. Run with --texts and with a tenth of it: a
                      peak that does not grow with N is bounded by the batch.
  tokenize, chunks    the part of encode whose memory could grow with N, on its own: the N texts
                      tokenized chunk by chunk, as encode does now (no model run).
  tokenize, all       what encode did before: all N texts as a list, tokenized up front.

`--encode-texts` sets N for the encode rows separately: the model's forward pass on 256-word-piece
texts runs at about 10 texts/s on 2 free cores, so 50,000 texts take well over an hour there.
Prints a table and, with --out, writes it as Markdown.
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


def long_texts(n: int, words: int, seed: int = 0):
    """n texts of about `words` words each, generated lazily; the same seed gives the same texts."""
    rng = random.Random(seed)
    for _ in range(n):
        yield make_sentence(rng, words)


def child(mode: str, n: int, words: int, batch_size: int, device: str, threads: int) -> dict:
    """One measurement, run in a fresh process; returns RSS figures in MB."""
    import torch

    if threads:
        torch.set_num_threads(threads)
    import minibert
    from minibert import sentence

    encoder = minibert.SentenceEncoder.from_pretrained("all-MiniLM-L6-v2", device=device)
    if mode == "tokenize-all":
        texts = list(long_texts(n, words))
        rss_before = current_rss_mb()
        start = time.perf_counter()
        pieces = encoder.tokenizer.encode_each(texts, max_length=encoder.max_seq_length)
        return {"mode": mode, "texts": n, "rss_before_mb": rss_before, "peak_rss_mb": peak_rss_mb(),
                "seconds": time.perf_counter() - start, "word_pieces": sum(map(len, pieces))}
    if mode == "tokenize-chunks":
        rss_before = current_rss_mb()
        start = time.perf_counter()
        for chunk in sentence._chunks(long_texts(n, words), batch_size * sentence.CHUNK_BATCHES):
            encoder.tokenized_batches(chunk, batch_size)
        return {"mode": mode, "texts": n, "rss_before_mb": rss_before, "peak_rss_mb": peak_rss_mb(),
                "seconds": time.perf_counter() - start}
    encoder.encode(list(long_texts(2 * batch_size, words, seed=1)), batch_size=batch_size)  # warm-up
    rss_before = current_rss_mb()
    start = time.perf_counter()
    vectors = encoder.encode(long_texts(n, words), batch_size=batch_size, show_progress_bar=True)
    seconds = time.perf_counter() - start
    assert vectors.shape == (n, encoder.get_sentence_embedding_dimension())
    return {"mode": mode, "texts": n, "rss_before_mb": rss_before, "peak_rss_mb": peak_rss_mb(),
            "seconds": seconds, "result_mb": vectors.nbytes / 2**20}


def measure(mode: str, n: int, args) -> dict:
    command = [sys.executable, "-m", "bench.memory", "--child", mode, "--texts", str(n), "--words", str(args.words),
               "--batch-size", str(args.batch_size), "--device", args.device, "--threads", str(args.threads)]
    # stderr is not captured: the child's progress bar (and any error) shows as it runs.
    done = subprocess.run(command, cwd=ROOT, stdout=subprocess.PIPE, text=True, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"bench.memory child {mode} {n} failed (its error is above)")
    return json.loads(done.stdout.strip().splitlines()[-1])


NAMES = {"encode": "encode (model run, in chunks)", "tokenize-chunks": "tokenize only, in chunks (as encode now)",
         "tokenize-all": "tokenize only, all up front (as encode before)"}


def table(rows: list[dict]) -> str:
    lines = ["| measurement | texts | RSS before MiB | peak RSS MiB | growth MiB | seconds | texts/s |",
             "|---|---|---|---|---|---|---|"]
    for row in rows:
        growth = row["peak_rss_mb"] - row["rss_before_mb"]
        lines.append(f"| {NAMES[row['mode']]} | {row['texts']:,} | {row['rss_before_mb']:.0f} | {row['peak_rss_mb']:.0f} | "
                     f"{growth:.0f} | {row['seconds']:.1f} | {row['texts'] / row['seconds']:.1f} |")
    return "\n".join(lines)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.memory", description=__doc__.split("\n\n")[0])
    parser.add_argument("--texts", type=int, default=50_000, help="number of long texts (default 50,000)")
    parser.add_argument("--encode-texts", type=int, default=0,
                        help="number of texts for the encode rows (default: --texts)")
    parser.add_argument("--words", type=int, default=400, help="words per text (default 400)")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--device", default="cpu", help="where the model runs (default cpu)")
    parser.add_argument("--threads", type=int, default=0, help="torch threads (default: torch's own)")
    parser.add_argument("--skip-tokenize-all", action="store_true", help="leave out the up-front tokenization")
    parser.add_argument("--out", help="also write the table here (Markdown)")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        print(json.dumps(child(args.child, args.texts, args.words, args.batch_size, args.device, args.threads)))
        return

    encode_n = args.encode_texts or args.texts
    plan = [("encode", max(1, encode_n // 10)), ("encode", encode_n), ("tokenize-chunks", args.texts)]
    plan += [] if args.skip_tokenize_all else [("tokenize-all", args.texts)]
    rows = []
    for mode, n in plan:
        print(f"measuring {mode} on {n:,} texts ...", file=sys.stderr, flush=True)
        rows.append(measure(mode, n, args))
        print(json.dumps(rows[-1]), file=sys.stderr, flush=True)  # each row as it completes
    import torch

    header = (f"`python -m bench.memory --texts {args.texts} --encode-texts {encode_n} --words {args.words} "
              f"--batch-size {args.batch_size} "
              f"--device {args.device}`, {datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M} UTC, "
              f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, torch {torch.__version__}, "
              f"{torch.get_num_threads() if not args.threads else args.threads} threads")
    text = header + "\n\n" + table(rows) + "\n"
    print(text)
    if args.out:
        Path(args.out).write_text("# Peak memory of SentenceEncoder.encode\n\n" + text, encoding="utf-8")


if __name__ == "__main__":
    main()
