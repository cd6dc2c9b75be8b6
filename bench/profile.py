"""python -m bench.profile [--quick]: where the time goes, by kind of work.

The speed bench says how fast; this says why. It runs torch.profiler over
  1. minibert's fast path and sentence-transformers' `encode` on the same corpus sentences, both
     on one thread (minibert runs each batch on one thread anyway, see minibert/fast.py), so
     the per-core work of the two is compared op by op;
  2. minielmo's fast path and the dense-only reference of bench/ceiling.py at the released
     "original" size, the comparison behind the "% of dense-only" target.
Of three profiled calls, the one with the median wall time is shown. Each op's own time (self CPU time, nested calls not counted twice) is put in one bucket by its
name: matmul, attention, GELU, LayerNorm, gates and other elementwise ops, data movement. The
rest of the wall time, spent outside aten ops, is Python, tokenization and bookkeeping.
The tables go to bench/PROFILE.md; `--quick` is the smoke run the test suite executes.
"""

import argparse
import datetime
import os
import pathlib
import tempfile
import time

import torch
from torch.profiler import ProfilerActivity, profile

from bench import bert, ceiling
from bench.corpus import make_corpus

OUTPUT = pathlib.Path(__file__).resolve().parent / "PROFILE.md"

MATMUL = {"aten::mm", "aten::addmm", "aten::addmm_", "aten::bmm", "aten::baddbmm", "aten::baddbmm_"}
ATTENTION = {"aten::_scaled_dot_product_flash_attention_for_cpu", "aten::_softmax", "aten::_safe_softmax"}
MOVEMENT = {"aten::copy_", "aten::index", "aten::_index_put_impl_", "aten::index_select", "aten::cat",
            "aten::gather", "aten::stack", "aten::fill_", "aten::zero_", "aten::contiguous", "aten::clone",
            "aten::embedding", "aten::masked_fill_", "aten::where", "aten::nonzero", "aten::unfold"}
BUCKETS = ["matmul", "attention (SDPA / softmax)", "GELU", "LayerNorm", "gates & elementwise",
           "data movement", "other aten ops", "outside aten ops (Python, tokenizer)"]


def bucket(name: str) -> str:
    if name in MATMUL:
        return "matmul"
    if name in ATTENTION:
        return "attention (SDPA / softmax)"
    if name == "aten::gelu":
        return "GELU"
    if name == "aten::native_layer_norm":
        return "LayerNorm"
    if name in MOVEMENT:
        return "data movement"
    if any(word in name for word in ("sigmoid", "tanh", "relu", "clamp", "mul", "add", "sub", "div",
                                     "amax", "max", "sum", "mean", "norm", "sqrt", "exp", "erf")):
        return "gates & elementwise"
    return "other aten ops"


def profiled(fn, repeats: int = 3) -> dict[str, float]:
    """Seconds per bucket for one call of fn, on the current thread(s): of `repeats` profiled
    calls (after one untimed call), the one with the median wall time, so that one stall of a
    shared machine does not become the picture."""
    fn()
    runs = []
    for _ in range(repeats):
        start = time.perf_counter()
        with profile(activities=[ProfilerActivity.CPU]) as prof:
            fn()
        wall = time.perf_counter() - start
        seconds = dict.fromkeys(BUCKETS, 0.0)
        for event in prof.key_averages():
            seconds[bucket(event.key)] += event.self_cpu_time_total / 1e6
        # The profiler's own overhead is included in wall; it is small next to these ops.
        seconds[BUCKETS[-1]] = max(0.0, wall - sum(seconds.values()))
        seconds["total"] = wall
        runs.append(seconds)
    return sorted(runs, key=lambda run: run["total"])[len(runs) // 2]


def table(columns: dict[str, dict[str, float]], unit: float, unit_name: str) -> list[str]:
    names = list(columns)
    lines = [f"| bucket | " + " | ".join(f"{n} {unit_name}" for n in names) + " | " +
             " | ".join(f"{n} %" for n in names) + " |",
             "|---|" + "---|" * (2 * len(names))]
    for key in BUCKETS + ["total"]:
        values = [columns[n][key] for n in names]
        shares = [100 * columns[n][key] / columns[n]["total"] for n in names]
        lines.append(f"| {key} | " + " | ".join(f"{v * unit:.1f}" for v in values) + " | " +
                     " | ".join(f"{s:.1f}" for s in shares) + " |")
    return lines


def bert_section(sentences: int) -> list[str]:
    corpus = make_corpus(sentences)
    ours, reference = bert.MinibertFast(), bert.SentenceTransformers()
    ours.load()
    reference.load()
    columns = {"minibert": profiled(lambda: ours.encode(corpus)),
               "sentence-transformers": profiled(lambda: reference.encode(corpus))}
    # Achieved matmul rate of our linear layers against a one-thread matmul at the same shapes.
    tokens = sum(len(ids) for ids in ours.encoder.tokenizer.encode_each(corpus, max_length=256))
    config = ours.encoder.model.config
    linear_flops = 2 * tokens * config.num_hidden_layers * sum(
        k * n * c for k, n, c in ceiling.MINILM_LINEARS.values())
    batch_rows = bert.BATCH_SIZE * round(tokens / len(corpus))
    per_core = ceiling.matmul_gflops(batch_rows, 384, 1536, 0.3, 3)
    per_100 = 100 / len(corpus)
    lines = ["## Sentence embeddings: per-core work, one thread each", "",
             f"{len(corpus)} corpus sentences ({tokens} word pieces), batch_size={bert.BATCH_SIZE}, "
             f"torch.set_num_threads(1); ms per 100 sentences and share of each contender's time.", ""]
    lines += table(columns, 1e3 * per_100, "ms/100")
    ours_matmul = columns["minibert"]["matmul"]
    lines += ["", f"minibert's matmuls (all linear layers; attention is SDPA) run at "
              f"{linear_flops / ours_matmul / 1e9:.0f} GFLOP/s, against {per_core:.0f} GFLOP/s for a bare "
              f"one-thread ({batch_rows} x 384) @ (384 x 1536) matmul in this run: "
              f"{100 * linear_flops / ours_matmul / 1e9 / per_core:.0f}%.", ""]
    return lines


def elmo_section(divisor: int, batch: int, steps: int) -> list[str]:
    import minielmo
    from bench.elmo import sentences
    from bench.elmo_synth import ORIGINAL_OPTIONS, scaled_options, write_elmo

    options = ORIGINAL_OPTIONS if divisor == 1 else scaled_options(divisor)
    with tempfile.TemporaryDirectory(prefix="minicontext-profile-elmo-") as tmp:
        options_file, weight_file = write_elmo(pathlib.Path(tmp), options)
        bilm = minielmo.BiLM.from_files(options_file, weight_file)
    char_ids = minielmo.batch_to_ids(sentences(batch, steps))
    dense = ceiling.elmo_dense_ops(options, batch, steps)
    with torch.inference_mode():
        for _ in range(2):  # TorchScript optimises the loop after its first profiled calls
            bilm(char_ids)
        columns = {"fast path": profiled(lambda: bilm(char_ids)), "dense-only": profiled(dense)}
    tokens = batch * (steps + 2)
    cell, proj = options["lstm"]["dim"], options["lstm"]["projection_dim"]
    lines = [f"## ELMo (cell {cell}, projection {proj}, random weights): fast path against dense-only", "",
             f"One forward pass over {batch} x {steps} tokens ({tokens} with <S> and </S>), "
             f"{torch.get_num_threads()} threads; ms per pass and share of each column's time.", ""]
    lines += table(columns, 1e3, "ms")
    fast, dense = columns["fast path"], columns["dense-only"]
    lines += ["", f"Fast path at {100 * dense['total'] / fast['total']:.0f}% of dense-only in this profile. "
              f"Matmuls: {1e3 * fast['matmul']:.0f} ms against dense-only's {1e3 * dense['matmul']:.0f} ms "
              f"(the fast path accumulates into the gates and computes input products in chunks; on a "
              f"shared machine the two also drift apart by a few percent). The rest, "
              f"{1e3 * (fast['total'] - fast['matmul']):.0f} ms, is what dense-only leaves out by "
              f"definition: gates, clipping, masking, the char CNN's max-pool and the loop.", ""]
    return lines


def main(argv=None) -> str:
    parser = argparse.ArgumentParser(prog="python -m bench.profile", description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="tiny smoke run (the test suite runs this)")
    parser.add_argument("--output", type=pathlib.Path, help="default bench/PROFILE.md; --quick writes nothing")
    args = parser.parse_args(argv)
    threads = torch.get_num_threads()
    header = ["# minicontext profile: where the time goes", "",
              "Command: `python -m bench.profile`", "",
              f"- date (UTC): {datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M}",
              f"- torch: {torch.__version__}, {os.cpu_count()} logical cores", ""]
    try:
        torch.set_num_threads(1)
        text = header + bert_section(8 if args.quick else 512)
    finally:
        torch.set_num_threads(threads)
    text += elmo_section(16, 2, 5) if args.quick else elmo_section(1, 32, 25)
    markdown = "\n".join(text)
    print(markdown)
    output = args.output or (None if args.quick else OUTPUT)
    if output is not None:
        output.write_text(markdown + "\n", encoding="utf-8")
    return markdown


if __name__ == "__main__":
    main()
