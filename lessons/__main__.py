"""python -m lessons <lesson> [options] [--out DIR]   |   python -m lessons all [--out DIR]

One subcommand per lesson, each with its own options (`python -m lessons <lesson> -h`).
Bad input, missing data and usage errors end with one line on stderr and exit status 2; missing
data names the command that installs it. Every lesson is also a notebook: see lessons/common.py
run_notebook.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import sys
import time
from pathlib import Path

from .common import LessonError, prepare_out
from .glove import GloveMissing
from .wordnet import WordNetMissing


# lesson name -> its file in lessons/ (each file is also a notebook)
LESSON_MODULES = {"static-vs-contextual": "static_vs_contextual", "elmo-layers": "elmo_layers",
                  "attention": "attention", "similarity": "similarity", "zero-shot": "zero_shot", "wsd": "wsd",
                  "layers": "layer_probes", "compare": "compare"}


def _static_vs_contextual(out, args):
    from . import static_vs_contextual
    return static_vs_contextual.lesson(out, word=args.word, sentences=args.sentence, senses=args.sense)


def _elmo_layers(out, args):
    from . import elmo_layers
    return elmo_layers.lesson(out, word=args.word, sentences=args.sentence, senses=args.sense)


def _attention(out, args):
    from . import attention
    return attention.lesson(out, sentences=args.sentence, layer=args.layer, head=args.head, pairs=args.pair)


def _similarity(out, args):
    from . import similarity
    return similarity.lesson(out, query=args.query)


def _zero_shot(out, args):
    from . import zero_shot
    labels = args.labels.split(",") if args.labels is not None else None
    return zero_shot.lesson(out, text=args.text, labels=labels)


def _wsd(out, args):
    from . import wsd
    return wsd.lesson(out)


def _layers(out, args):
    from . import layer_probes
    return layer_probes.lesson(out)


def _compare(out, args):
    from . import compare
    return compare.lesson(out)


class _Parser(argparse.ArgumentParser):
    """argparse, but a usage error is one line on stderr (the message and where to find help),
    exit status 2, as the project's other command lines do."""

    def error(self, message):
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def build_parser() -> argparse.ArgumentParser:
    from .data import DEFAULT_QUERY, POLYSEMY, ZERO_SHOT_LABELS, ZERO_SHOT_TEXT

    parser = _Parser(prog="python -m lessons",
                     description="Runnable lessons on contextual embeddings (offline, packaged models).")
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--out", default="lesson_output", help="folder for PNG/HTML (default: ./lesson_output)")
    lessons = parser.add_subparsers(dest="lesson", metavar="LESSON", title="lessons", parser_class=_Parser)
    words = ", ".join(POLYSEMY)

    def add(subparsers, name, run, help):
        """One subcommand: the shared --out, then the lesson's own options."""
        sub = subparsers.add_parser(name, parents=[common], help=help, description=help)
        sub.set_defaults(run=run)
        return sub

    def own_sentences(p, default_word):
        p.add_argument("--word", help=f"the word to follow: one of {words} (default: {default_word}), "
                                      "or any word of your own --sentence values")
        p.add_argument("--sentence", action="append",
                       help="your own sentence containing --word (repeat it; default: the prepared sentences)")
        p.add_argument("--sense", action="append",
                       help="a sense label for each --sentence, in order (repeat it; e.g. --sense money "
                            "--sense river; default: none); with them the lesson measures how far the "
                            "senses are apart")

    own_sentences(add(lessons, "static-vs-contextual", _static_vs_contextual,
                      "one vector per word (GloVe, BERT's input table) vs one per occurrence"), f"all of {words}")
    own_sentences(add(lessons, "elmo-layers", _elmo_layers,
                      "how ELMo builds a word vector: char-CNN, highway, biLSTM, scalar mix"), "bank")

    p = add(lessons, "attention", _attention,
            "BERT attention heads: heatmaps, entropy, roles over WordNet sentences, explorer")
    p.add_argument("--sentence", action="append",
                   help="your own sentence (repeat it for several in the explorer; default: a prepared one)")
    p.add_argument("--pair", nargs=2, action="append", metavar=("FIRST", "SECOND"),
                   help="a sentence pair for the explorer, drawn with segment colours (repeatable; default: none)")
    p.add_argument("--layer", type=int,
                   help="layer (1-based) of the head whose Q·K scores are shown (default: the most focused head's)")
    p.add_argument("--head", type=int, help="head (1-based) whose Q·K scores are shown (default: the most focused)")

    p = add(lessons, "similarity", _similarity,
            "sentence embeddings: the seed's cosine matrix and semantic search")
    p.add_argument("--query", help=f"the search query (default: {DEFAULT_QUERY!r})")

    p = add(lessons, "zero-shot", _zero_shot,
            "zero-shot labels by similarity, scored on WordNet's noun files")
    p.add_argument("--text", help=f"classify this text only, skipping the WordNet evaluation "
                                  f"(default: {ZERO_SHOT_TEXT!r}, then the evaluation)")
    p.add_argument("--labels", help=f"comma-separated labels (default: {','.join(ZERO_SHOT_LABELS)})")

    add(lessons, "wsd", _wsd, "word-sense disambiguation by gloss similarity on WordNet examples")

    add(lessons, "layers", _layers, "which layer knows senses, which knows noun vs verb (WordNet, with controls)")

    add(lessons, "compare", _compare, "GloVe vs ELMo vs BERT: size, context, speed, sense separation")

    parser.lesson_names = list(lessons.choices)  # every lesson, in the order `all` runs them
    add(lessons, "all", None, "run every lesson in turn with its defaults")
    # listed for -h only: main() hands `lab ...` to lessons.lab_server.main, which has its own options
    lessons.add_parser("lab", add_help=False, help="a local page comparing GloVe, ELMo and BERT on your "
                                                   "sentences (python -m lessons lab -h)")
    return parser


def lesson_names() -> list[str]:
    return build_parser().lesson_names


class _Tee(io.TextIOBase):
    """Writes to every stream it was given: the screen and the lesson's transcript."""

    def __init__(self, *streams):
        self.streams = streams

    def write(self, text: str) -> int:
        for stream in self.streams:
            stream.write(text)
        return len(text)

    def flush(self) -> None:
        for stream in self.streams:
            stream.flush()


def run_lesson(name: str, run, out: Path, args) -> dict:
    """Run one lesson; what it prints also goes to OUT/<name>.txt, the transcript the docs
    link to (so their numbers are the latest run's, never typed in)."""
    transcript = io.StringIO()
    with contextlib.redirect_stdout(_Tee(sys.stdout, transcript)):
        result = run(out, args)
    (out / f"{name}.txt").write_text(transcript.getvalue(), encoding="utf-8")
    return result


def run_lessons(names: list[str], out) -> dict[str, dict]:
    """Run lessons with their defaults, in turn, with a banner and timing each; returns their
    numbers by name (the tests read these)."""
    parser = build_parser()
    out = prepare_out(out)
    results = {}
    for name in names:
        print(f"\n{'=' * 78}\nlesson: {name}\n{'=' * 78}")
        start, cpu = time.perf_counter(), time.process_time()
        args = parser.parse_args([name, "--out", str(out)])
        results[name] = run_lesson(name, args.run, out, args)
        # CPU seconds beside wall seconds: on a busy shared machine the wall clock mostly waits
        print(f"({name} took {time.perf_counter() - start:.1f} s, {time.process_time() - cpu:.1f} s of CPU)")
    return results


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["lab"]:  # a local web app, not a lesson run: its own options
        from .lab_server import main as lab_main
        return lab_main(argv[1:])
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.lesson is None:
        parser.print_help()
        return 0
    try:
        out = prepare_out(Path(args.out))
        if args.run is None:
            run_lessons(lesson_names(), out)
        else:
            run_lesson(args.lesson, args.run, out, args)
    except (LessonError, GloveMissing, WordNetMissing) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    except (FileNotFoundError, ValueError) as err:
        # missing weights (the loaders' message says where they looked) or input the models
        # reject with their own clear ValueError: a message, not a traceback
        print(f"error: {err}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
