"""python -m lessons <name> [--out DIR] [options]   |   python -m lessons all   |   --list"""

from __future__ import annotations

import argparse
import importlib
import sys
import time

from . import LESSONS
from .common import LessonError, prepare_out

OPTION_HELP = {
    "word": "static-vs-contextual, elmo-layers: the polysemous word to follow",
    "sentence": "static-vs-contextual (repeatable, with --word), attention: your own sentence",
    "layer": "attention: layer (1-based) of the head whose Q·K scores are shown",
    "head": "attention: head (1-based) whose Q·K scores are shown",
    "query": "similarity: the search query",
    "text": "zero-shot: the text to classify",
}


def build_parser() -> argparse.ArgumentParser:
    lines = "\n".join(f"  {name:<22}{summary}" for name, (_, _, summary) in LESSONS.items())
    parser = argparse.ArgumentParser(
        prog="python -m lessons",
        description="Runnable lessons on contextual embeddings (offline, packaged models).",
        epilog=f"lessons:\n{lines}\n  {'all':<22}run every lesson in turn\n"
               f"  {'lab':<22}a local page comparing GloVe, ELMo and BERT on your sentences (lab --help)",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("lesson", nargs="?", help="lesson name, or 'all'")
    parser.add_argument("--out", default="lesson_output", help="folder for PNG/HTML (default ./lesson_output)")
    parser.add_argument("--list", action="store_true", help="list the lessons and exit")
    parser.add_argument("--word", help=OPTION_HELP["word"])
    parser.add_argument("--sentence", action="append", help=OPTION_HELP["sentence"])
    parser.add_argument("--layer", type=int, help=OPTION_HELP["layer"])
    parser.add_argument("--head", type=int, help=OPTION_HELP["head"])
    parser.add_argument("--query", help=OPTION_HELP["query"])
    parser.add_argument("--text", help=OPTION_HELP["text"])
    return parser


def lesson_options(name: str, args: argparse.Namespace) -> dict:
    """The options this lesson accepts; an option given to a lesson that ignores it is an error,
    so a typo never silently runs the default."""
    _, accepted, _ = LESSONS[name]
    options = {}
    for key in OPTION_HELP:
        value = getattr(args, key)
        if value is None:
            continue
        if key not in accepted:
            raise LessonError(f"lesson {name!r} takes no --{key} (it accepts: "
                              f"{', '.join('--' + a for a in accepted) or 'no options'})")
        options[key] = value
    if name == "attention" and options.get("sentence"):
        if len(options["sentence"]) > 1:
            raise LessonError("the attention lesson takes one --sentence")
        options["sentence"] = options["sentence"][0]
    return options


def run_lesson(name: str, out, **options) -> dict:
    """Run one lesson by name (the CLI and the tests both come through here)."""
    if name not in LESSONS:
        raise LessonError(f"unknown lesson {name!r}; choose one of: {', '.join(LESSONS)}, all")
    module = importlib.import_module(f"lessons.{LESSONS[name][0]}")
    return module.run(prepare_out(out), **options)


def run_lessons(names: list[str], out, options_for=lambda name: {}) -> dict[str, dict]:
    """Run lessons in turn, with a banner and timing each; returns their numbers by name."""
    results = {}
    for name in names:
        print(f"\n{'=' * 78}\nlesson: {name}\n{'=' * 78}")
        start = time.perf_counter()
        results[name] = run_lesson(name, out, **options_for(name))
        print(f"({name} took {time.perf_counter() - start:.1f} s)")
    return results


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["lab"]:  # a local web app, not a lesson run: its own options
        from .lab import main as lab_main
        return lab_main(argv[1:])
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.list or not args.lesson:
        parser.print_help()
        return 0
    try:
        if args.lesson == "all":
            if any(getattr(args, key) is not None for key in OPTION_HELP):
                raise LessonError("'all' runs every lesson with its defaults; options need one lesson name")
            names = list(LESSONS)
        else:
            if args.lesson not in LESSONS:
                raise LessonError(f"unknown lesson {args.lesson!r}; choose one of: {', '.join(LESSONS)}, all")
            names = [args.lesson]
        options = {name: lesson_options(name, args) for name in names}  # all checked up front
        out = prepare_out(args.out)
        run_lessons(names, out, options.get)
    except LessonError as err:
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
