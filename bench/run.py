"""python -m bench [--quick]: minicontext's speed against the reference libraries, in one process.

Sections: the fp32 matmul ceiling at the models' own shapes; sentence embeddings on a
seeded corpus (ours fast / ours teaching / sentence-transformers / transformers sdpa) with
throughput, single-sentence latency, load time, peak RSS and max|diff| against
sentence-transformers; ELMo's readable loop against its fast path on the fixture model and on a
random-weight model of the released "original" size, each against its dense-op-only time.
Contenders are interleaved, every timing is the median of >= 3 repeats, and the tables are printed
and written to bench/RESULTS.md. `--quick` shrinks everything to a smoke run for the test suite.
Peak memory of SentenceEncoder.encode on many long texts is measured by `python -m bench.memory`.
"""

import argparse
import dataclasses
import datetime
import gc
import json
import os
import pathlib
import platform
import shlex
import subprocess
import sys

import numpy as np
import torch

from bench import bert, ceiling
from bench.corpus import make_corpus
from bench.timing import interleaved, markdown_table, median, paired_speedup, per_call, seconds

RESULTS = pathlib.Path(__file__).resolve().parent / "RESULTS.md"
LATENCY_SENTENCE = "The cat sat on the warm mat."  # 9 word pieces with [CLS] and [SEP]


@dataclasses.dataclass
class Settings:
    sentences: int = 2000
    repeats: int = 3
    min_time: float = 0.3  # seconds per latency / matmul sample
    memory: tuple = tuple(bert.CONTENDERS)  # contenders whose peak RSS is measured in a child
    elmo_batch: tuple = (32, 25)  # sentences x tokens
    elmo_divisor: int = 1  # 1 = the original size; --quick shrinks every width
    output: pathlib.Path = RESULTS


# The smoke run: every code path once (3 repeats, a child process, the hdf5 writer and loader),
# on tiny inputs. Its numbers mean nothing.
QUICK = Settings(sentences=8, repeats=3, min_time=0.0, memory=("minibert",),
                 elmo_batch=(2, 5), elmo_divisor=16, output=None)


def machine() -> dict:
    cpu = platform.processor() or platform.machine()
    try:
        for line in pathlib.Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {
        "date (UTC)": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M"),
        "cpu": f"{cpu}, {os.cpu_count()} logical cores",
        "torch": f"{torch.__version__}, {torch.get_num_threads()} threads, "
                 f"MKL {'on' if torch.backends.mkl.is_available() else 'off'}",
        "python": platform.python_version(),
        "load average at start": " ".join(f"{x:.2f}" for x in os.getloadavg()),
    }


def token_lengths(texts: list[str]) -> list[int]:
    """Word pieces per sentence including [CLS]/[SEP], from the model's own tokenizer.json."""
    from tokenizers import Tokenizer

    tokenizer = Tokenizer.from_file(str(bert.model_dir() / "tokenizer.json"))
    tokenizer.no_truncation()
    tokenizer.no_padding()
    return [len(e.ids) for e in tokenizer.encode_batch(texts)]


def memory_in_child(kind: str, name: str, settings: Settings) -> dict:
    cmd = [sys.executable, "-m", "bench.child", kind, name, "--sentences", str(settings.sentences),
           "--threads", str(torch.get_num_threads())]
    root = pathlib.Path(__file__).resolve().parent.parent
    done = subprocess.run(cmd, cwd=root, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"memory child {kind}/{name} failed:\n{done.stderr[-2000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def bench_bert(settings: Settings, corpus: list[str], lengths: list[int], log) -> dict:
    names = list(bert.CONTENDERS)
    contenders = {name: bert.CONTENDERS[name]() for name in names}
    for name, contender in contenders.items():
        log(f"  loading {name}")
        contender.load()
        contender.encode(corpus[:8])  # first-call work (lazy init, kernel selection) is not timed

    def reload(name):
        def job():
            gc.collect()  # the previous contender's garbage is not this one's load time
            return seconds(bert.CONTENDERS[name]().load)
        return job

    log("  load time")
    load = interleaved({n: reload(n) for n in names}, settings.repeats)

    log("  single-sentence latency")
    latency = interleaved({n: (lambda c=c: per_call(lambda: c.encode([LATENCY_SENTENCE]), settings.min_time))
                           for n, c in contenders.items()}, settings.repeats)

    log("  corpus throughput")
    outputs = {}

    def throughput(name):
        def job():
            def encode():
                outputs[name] = np.asarray(contenders[name].encode(corpus))
            return seconds(encode)
        return job

    times = interleaved({n: throughput(n) for n in names}, settings.repeats)

    log("  fp32 matmul ceiling")
    config = contenders["minibert"].encoder.model.config
    batch_tokens = bert.BATCH_SIZE * round(sum(lengths) / len(lengths))
    ceil = ceiling.minilm_ceiling(lengths, batch_tokens, config.num_hidden_layers,
                                  config.num_attention_heads, settings.min_time, settings.repeats)

    memory = {}
    for name in settings.memory:
        log(f"  peak RSS of {name} in a child process")
        memory[name] = memory_in_child("bert", name, settings)

    reference = outputs[bert.REFERENCE]
    rows = {}
    for name in names:
        sent_s = len(corpus) / median(times[name])
        rows[name] = {
            "contender": contenders[name].name,
            "sent/s": sent_s,
            "tokens/s": sum(lengths) / median(times[name]),
            "x ST": paired_speedup(times, name, bert.REFERENCE),
            "% ceiling": 100 * sent_s / ceil["sentences_per_s"],
            "latency ms": 1e3 * median(latency[name]),
            "load ms": 1e3 * median(load[name]),
            "max abs diff vs ST": float(np.abs(outputs[name] - reference).max()),
            "samples s": times[name],
            "x teaching": paired_speedup(times, name, "minibert-teaching"),
        }
    return {"rows": rows, "ceiling": ceil, "memory": memory, "batch_tokens": batch_tokens}


def report(env: dict, stats: dict, bert_result: dict | None, elmo_result: dict | None,
           settings: Settings, argv: list[str]) -> str:
    out = ["# minicontext speed bench", "",
           f"Command: `{shlex.join(['python', '-m', 'bench', *argv])}`", ""]
    out += [f"- {k}: {v}" for k, v in env.items()]
    out += [f"- corpus: {stats['sentences']} seeded sentences, {stats['mean']:.1f} word pieces on "
            f"average, {stats['max']} at most ({stats['tokens']} in all)",
            f"- every timing is the median of {settings.repeats} interleaved repeats; every ratio "
            f"(x ST, fast / readable, % of dense-only, the targets) is the median of the per-repeat "
            f"ratios, both sides timed seconds apart in the same repeat", ""]
    if bert_result:
        ceil = bert_result["ceiling"]
        out += ["## fp32 matmul ceiling (MiniLM shapes, "
                f"{bert_result['batch_tokens']} rows = one batch of 32 typical sentences)", ""]
        out.append(markdown_table(["matmul", "GFLOP/s"], [[k, v] for k, v in ceil["rates_gflops"].items()]))
        out += ["", f"MiniLM needs {ceil['mflop_per_token']:.1f} MFLOP per real token on this corpus; "
                f"at the rates above the matmuls alone allow **{ceil['sentences_per_s']:.0f} sentences/s**.", ""]
        out += ["## Sentence embeddings (all-MiniLM-L6-v2, batch_size=32)", ""]
        header = ["contender", "sent/s", "tokens/s", "x ST", "% ceiling", "latency ms", "load ms",
                  "max abs diff vs ST"]
        out.append(markdown_table(header, [[r[h] for h in header] for r in bert_result["rows"].values()]))
        out += ["", "sent/s and tokens/s: the whole corpus through `encode` (tokenizing included). "
                "latency: one 9-token sentence through `encode`. load: `from_pretrained` in this "
                "process (warm file cache, libraries imported). max abs diff: over every value of the "
                "N x 384 unit-length embeddings.", ""]
        rows = [[bert.CONTENDERS[name].name, m["peak_rss_mb"], m["rss_after_import_mb"],
                 m["rss_after_load_mb"], m["import_s"], m["load_s"]]
                for name, m in bert_result["memory"].items()]
        out += ["### Memory and cold start (one fresh child process per contender)", "",
                markdown_table(["contender", "peak RSS MiB", "RSS after imports MiB", "RSS after load MiB",
                                "cold import s", "cold load s"], rows), "",
                "Each child imports only what its contender needs, loads the model, encodes the "
                "corpus once and reports its own high-water mark (VmHWM; ru_maxrss would include "
                "the parent's, inherited through fork and exec).", ""]
    if elmo_result:
        out += elmo_result["markdown"]
    checks = targets(bert_result, elmo_result)
    if checks:
        out += ["## Speed targets, as measured in this run", "",
                markdown_table(["target", "measured", "met"], checks), ""]
    return "\n".join(out) + "\n"


def targets(bert_result: dict | None, elmo_result: dict | None) -> list[list[str]]:
    """Each speed target with this run's ratio, as table rows."""
    rows = []

    def check(name, value, ok, unit=""):
        rows.append([name, f"{value:.3g}{unit}", "yes" if ok else "**no**"])

    if bert_result:
        r = bert_result["rows"]
        ours, st, teaching = r["minibert"], r[bert.REFERENCE], r["minibert-teaching"]
        check("SentenceEncoder throughput >= 1.2x sentence-transformers", ours["x ST"], ours["x ST"] >= 1.2, "x")
        check("embeddings within 1e-5 of sentence-transformers", ours["max abs diff vs ST"],
              ours["max abs diff vs ST"] <= 1e-5)
        check("single-sentence latency <= sentence-transformers'", ours["latency ms"] / st["latency ms"],
              ours["latency ms"] <= st["latency ms"], "x")
        check("load time <= sentence-transformers'", ours["load ms"] / st["load ms"], ours["load ms"] <= st["load ms"], "x")
        memory = bert_result["memory"]
        if "minibert" in memory and bert.REFERENCE in memory:
            ratio = memory["minibert"]["peak_rss_mb"] / memory[bert.REFERENCE]["peak_rss_mb"]
            check("peak RSS <= sentence-transformers'", ratio, ratio <= 1.0, "x")
        slowdown = ours["x teaching"]
        check("teaching path at most 1.5x slower than the fast path", slowdown, slowdown <= 1.5, "x")
    if elmo_result:
        fixture, fresh, original = elmo_result["rows"]
        check("minielmo fast path >= 3x the readable loop (fixture model, bench process)",
              fixture["fast / readable"], fixture["fast / readable"] >= 3, "x")
        check("minielmo fast path >= 3x the readable loop (fixture model, fresh process)",
              fresh["fast / readable"], fresh["fast / readable"] >= 3, "x")
        check(f"minielmo fast path >= 90% of the matmul-bound rate ({original['model'].split(' (')[0]})",
              original["fast % of dense-only"], original["fast % of dense-only"] >= 90, "%")
    return rows


def main(argv=None) -> dict:
    argv = sys.argv[1:] if argv is None else argv
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="tiny smoke run (the test suite runs this)")
    parser.add_argument("--sentences", type=int, help="corpus size (default 2000)")
    parser.add_argument("--repeats", type=int, help="interleaved repeats per timing (>= 3)")
    parser.add_argument("--skip", nargs="*", default=[], choices=["bert", "elmo"], help="sections to leave out")
    parser.add_argument("--note", default="", help="a line on the conditions of this run, written into the report")
    parser.add_argument("--output", type=pathlib.Path, help="where to write the markdown (default bench/RESULTS.md; "
                                                            "--quick writes nothing unless given)")
    args = parser.parse_args(argv)
    settings = dataclasses.replace(QUICK) if args.quick else Settings()
    if args.sentences:
        settings.sentences = args.sentences
    if args.repeats:
        if args.repeats < 3:
            parser.error("--repeats must be at least 3: a median of fewer says little")
        settings.repeats = args.repeats
    if args.output:
        settings.output = args.output

    def log(msg):
        print(msg, file=sys.stderr, flush=True)

    env = machine()
    if args.note:
        env["conditions"] = args.note
    corpus = make_corpus(settings.sentences)
    lengths = token_lengths(corpus)
    stats = {"sentences": len(corpus), "mean": sum(lengths) / len(lengths), "max": max(lengths),
             "tokens": sum(lengths)}
    bert_result = elmo_result = None
    torch.manual_seed(0)
    if "bert" not in args.skip:
        log("sentence embeddings")
        bert_result = bench_bert(settings, corpus, lengths, log)
    if "elmo" not in args.skip:
        from bench import elmo

        log("elmo")
        elmo_result = elmo.bench_elmo(settings, log)
    env["load average at end"] = " ".join(f"{x:.2f}" for x in os.getloadavg())
    text = report(env, stats, bert_result, elmo_result, settings, argv)
    print(text)
    if settings.output:
        settings.output.write_text(text)
        log(f"written to {settings.output}")
    return {"bert": bert_result, "elmo": elmo_result, "markdown": text}


if __name__ == "__main__":
    main()
