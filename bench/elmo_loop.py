"""ELMo training loop against its own step: does the data pipeline keep the device fed?

    python -m bench.elmo_loop                    # CPU, the shipped size
    python -m bench.elmo_loop --device cuda      # a GPU, when there is one (a line says so if not)
    python -m bench.elmo_loop --quick            # the tiny size, a smoke run for the tests

Both rates use minielmo.train's own pieces on the same batches, in the same process:

- step-bound: every batch's tensors are built (TokenArrays.batch) and moved to the device first,
  then only `training_step` (forward, backward, clipping, Adam) is timed;
- loop: the batches are built inside the timed loop, one per step, exactly as `train()` does.

loop / step-bound is the share of the step rate the end-to-end loop keeps; the target is 0.70.
The text is the bench corpus (bench/corpus.py: English words, realistic lengths) cut into
sentences, with a vocabulary of its own words. Rounds alternate (step-bound, loop, step-bound,
...) and the ratio is the median of per-round ratios, so a machine that slows down mid-run
affects both sides alike.
"""

from __future__ import annotations

import argparse
import datetime
import pathlib
import platform
import random
import sys
import time

import torch
from torch import nn

from bench.corpus import make_sentence

TARGET_SHARE = 0.70  # the loop must keep 70% of the step-bound rate
REPORT = pathlib.Path(__file__).resolve().parent / "ELMO_LOOP.md"


def _corpus(sentences: int, seed: int = 0) -> list[list[str]]:
    from minielmo.words import split_words

    rng = random.Random(seed)
    return [split_words(make_sentence(rng, rng.randint(4, 30))) for _ in range(sentences)]


def measure(size: str = "small", device: str = "cpu", sentences: int = 3000, steps: int = 6,
            rounds: int = 3, bf16: bool = False) -> dict:
    from minielmo import train
    from minielmo.bilm import BiLM
    from minielmo.corpus import build_vocab

    torch.manual_seed(0)
    text = _corpus(sentences)
    vocab = train.Vocabulary(build_vocab(text, 30000)[0])
    arrays = train.TokenArrays(text, vocab)
    batches = train.make_batches(arrays.lengths, seed=0, epoch=0)[:steps]
    config = train.SIZES[size]
    bilm = BiLM(config, dropout=train.DROPOUT).to(device).train()
    softmax = train.SharedSoftmax(config.projection_dim, len(vocab)).to(device).train()
    optimizer = torch.optim.Adam(list(bilm.parameters()) + list(softmax.parameters()), lr=1e-4)
    dropout = nn.Dropout(train.DROPOUT)

    def sync():
        if device.startswith("cuda"):
            torch.cuda.synchronize()

    def run(prebuilt):
        tokens = 0
        sync()
        begin = time.perf_counter()
        for i, batch in enumerate(batches):
            char_ids, word_ids = prebuilt[i] if prebuilt else arrays.batch(batch, device)
            outcome = train.training_step(bilm, softmax, optimizer, char_ids, word_ids, dropout, 1e-4, bf16)
            tokens += outcome[2]
        sync()
        return tokens / (time.perf_counter() - begin)

    prebuilt = [arrays.batch(batch, device) for batch in batches]
    run(prebuilt)  # warm-up: first-call allocations, thread pools, kernels
    step_rates, loop_rates, ratios = [], [], []
    for _ in range(rounds):
        step_rates.append(run(prebuilt))
        loop_rates.append(run(None))
        ratios.append(loop_rates[-1] / step_rates[-1])
    median = lambda values: sorted(values)[len(values) // 2]  # noqa: E731
    build_seconds = []
    for batch in batches:
        begin = time.perf_counter()
        arrays.batch(batch, device)
        sync()
        build_seconds.append(time.perf_counter() - begin)
    return {"size": size, "device": device, "bf16": bf16, "threads": torch.get_num_threads(),
            "steps": len(batches), "tokens_per_step": round(sum(int(arrays.lengths[b].sum()) + len(b) for b in batches) / len(batches), 1),
            "step_bound_tokens_per_s": round(median(step_rates), 1), "loop_tokens_per_s": round(median(loop_rates), 1),
            "loop_share": round(median(ratios), 3), "batch_build_ms": round(1000 * median(build_seconds), 2),
            "target_share": TARGET_SHARE}


def main(argv=None) -> dict | None:
    parser = argparse.ArgumentParser(prog="python -m bench.elmo_loop", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cpu", help="cpu or cuda (default: %(default)s)")
    parser.add_argument("--bf16", action="store_true", help="bfloat16 autocast (default: float32)")
    parser.add_argument("--quick", action="store_true", help="the tiny size on a few batches: a smoke run")
    parser.add_argument("--note", default="", help="what else the machine was doing, for the report (default: nothing said)")
    args = parser.parse_args(argv)
    if args.device.startswith("cuda") and not torch.cuda.is_available():
        print("ELMo training loop on CUDA: skipped, no CUDA device on this machine")
        return None
    if args.device.startswith("cuda"):
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
    settings = dict(size="tiny", sentences=300, steps=3, rounds=3) if args.quick else {}
    result = measure(device=args.device, bf16=args.bf16, **settings)
    verdict = "met" if result["loop_share"] >= TARGET_SHARE else "NOT met"
    print(f"ELMo training loop, {result['size']} size on {result['device']}"
          f"{' (bf16)' if result['bf16'] else ''}, {result['threads']} threads, "
          f"{result['tokens_per_step']:.0f} targets per step:")
    print(f"  step-bound {result['step_bound_tokens_per_s']:,.0f} tokens/s, loop {result['loop_tokens_per_s']:,.0f} "
          f"tokens/s: the loop keeps {result['loop_share']:.0%} of the step rate (target {TARGET_SHARE:.0%}: "
          f"{verdict if not args.quick else 'not judged in a quick run'}); building one batch takes "
          f"{result['batch_build_ms']} ms", file=sys.stdout)
    if not args.quick:
        write_report(result, args.note)
    return result


def write_report(result: dict, note: str) -> None:
    """Append this run to bench/ELMO_LOOP.md: the docs quote the file, never a copied number."""
    if not REPORT.exists():
        REPORT.write_text("# ELMo training loop against its own step\n\nWritten by `python -m bench.elmo_loop` "
                          "(bench/elmo_loop.py says what is timed). One row per run; target: the loop keeps "
                          f"{TARGET_SHARE:.0%} of the step-bound rate.\n\n| when (UTC) | machine | device | size | "
                          "threads | targets/step | step-bound tokens/s | loop tokens/s | loop share | batch build ms | "
                          "note |\n|---|---|---|---|---|---|---|---|---|---|---|\n", encoding="utf-8")
    when = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M")
    row = (f"| {when} | {platform.machine()} {platform.processor() or ''} | {result['device']}"
           f"{' bf16' if result['bf16'] else ''} | {result['size']} | {result['threads']} | "
           f"{result['tokens_per_step']:.0f} | {result['step_bound_tokens_per_s']:,.0f} | "
           f"{result['loop_tokens_per_s']:,.0f} | {result['loop_share']:.2f} | {result['batch_build_ms']} | {note} |\n")
    with open(REPORT, "a", encoding="utf-8") as file:
        file.write(row)


if __name__ == "__main__":
    main()
