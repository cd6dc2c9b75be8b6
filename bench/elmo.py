"""ELMo section of the bench: minielmo's readable loop against its fast path, in tokens/s.

Two models: the tiny fixture shipped in the package (cell 64, projection 16, where per-op overhead
dominates) and a random-weight model of the released "original" size (cell 4096, projection 512,
where matmuls dominate), written in the original hdf5 layout and read by the real loader. Each is
also timed as its dense ops alone (convolutions and matmuls at the same shapes, nothing else),
the matmul-bound rate the fast path is measured against.
"""

import pathlib
import tempfile

import torch

from bench import ceiling
from bench.corpus import make_corpus
from bench.elmo_synth import ORIGINAL_OPTIONS, scaled_options, write_elmo
from bench.timing import interleaved, median, per_call, seconds

WARMUP_CALLS = 3


def sentences(batch: int, steps: int) -> list[list[str]]:
    """`batch` corpus sentences cut to exactly `steps` words (no padding: the dense-op time then
    describes exactly the work the model does)."""
    out = []
    for text in make_corpus(4 * batch, seed=1):
        words = text.replace(",", " ,").replace(".", " .").split()
        if len(words) >= steps:
            out.append(words[:steps])
        if len(out) == batch:
            return out
    raise RuntimeError(f"the corpus has fewer than {batch} sentences of {steps}+ words")


def set_fast(bilm, fast: bool) -> None:
    bilm.fast_path = fast


def bench_model(label: str, options_file, weight_file, options: dict, batch: int, steps: int,
                repeats: int, min_time: float, log) -> dict:
    import minielmo

    log(f"  {label}: loading through weights.elmo_hdf5")
    load_s = seconds(lambda: minielmo.BiLM.from_files(options_file, weight_file))
    bilm = minielmo.BiLM.from_files(options_file, weight_file)
    char_ids = minielmo.batch_to_ids(sentences(batch, steps))
    tokens = batch * steps
    dense_only = ceiling.elmo_dense_ops(options, batch, steps)

    def run(fast):
        def job():
            set_fast(bilm, fast)
            with torch.inference_mode():
                # Seconds per call over at least min_time: one call of the fixture model takes
                # ~10-40 ms, too short for a single wall-clock sample on a shared machine.
                return per_call(lambda: bilm(char_ids), min_time)
        return job

    with torch.inference_mode():
        # Not timed: TorchScript's profiling executor optimises the scripted loop only after its
        # first profiled calls, and the first calls also pick kernels and grow the heap.
        for fast in (False, True):
            set_fast(bilm, fast)
            for _ in range(WARMUP_CALLS):
                bilm(char_ids)
        dense_only()
    log(f"  {label}: readable / fast / dense ops only, {repeats} interleaved repeats")
    samples = interleaved({"readable": run(False), "fast": run(True),
                           "dense": lambda: per_call(dense_only, min_time)}, repeats)
    with torch.inference_mode():
        set_fast(bilm, False)
        readable_out = bilm(char_ids)["activations"]
        set_fast(bilm, True)
        fast_out = bilm(char_ids)["activations"]
    max_diff = max((a - b).abs().max().item() for a, b in zip(readable_out, fast_out))
    rate = {name: tokens / median(times) for name, times in samples.items()}
    return {
        "model": label,
        "batch": f"{batch} x {steps}",
        "load s": load_s,
        "readable tok/s": rate["readable"],
        "fast tok/s": rate["fast"],
        "fast / readable": rate["fast"] / rate["readable"],
        "dense-only tok/s": rate["dense"],
        "fast % of dense-only": 100 * rate["fast"] / rate["dense"],
        "max abs diff fast vs readable": max_diff,
    }


def bench_elmo(settings, log) -> dict:
    import minielmo

    batch, steps = settings.elmo_batch
    fixture_options = __import__("json").loads(pathlib.Path(minielmo.FIXTURE_OPTIONS).read_text())
    rows = [bench_model("fixture (cell 64, proj 16)", minielmo.FIXTURE_OPTIONS, minielmo.FIXTURE_WEIGHTS,
                        fixture_options, batch, steps, settings.repeats, settings.min_time, log)]
    options = ORIGINAL_OPTIONS if settings.elmo_divisor == 1 else scaled_options(settings.elmo_divisor)
    label = ("original size (cell 4096, proj 512), random weights" if settings.elmo_divisor == 1
             else f"original / {settings.elmo_divisor} (cell {options['lstm']['dim']}, "
                  f"proj {options['lstm']['projection_dim']}), random weights")
    with tempfile.TemporaryDirectory(prefix="minicontext-bench-elmo-") as tmp:
        log(f"  writing {label} in the original hdf5 layout")
        options_file, weight_file = write_elmo(pathlib.Path(tmp), options)
        rows.append(bench_model(label, options_file, weight_file, options, batch, steps,
                                settings.repeats, settings.min_time, log))

    from bench.run import markdown_table

    header = list(rows[0])
    markdown = ["## ELMo biLM: readable loop vs fast path (tokens/s, batch sentences x tokens)", "",
                markdown_table(header, [[row[h] for h in header] for row in rows]), "",
                "dense-only: the same model's matmuls at the same shapes (char convolutions as matmuls over "
                "unfolded windows, recurrent "
                "step batched over both directions), with no gates, clipping, masking or Python "
                "bookkeeping: the matmul-bound rate.", ""]
    return {"rows": rows, "markdown": markdown}
