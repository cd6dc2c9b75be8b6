"""Shared helpers for the lessons: loading the packaged models once, finding a word's vector
through the tokenizer's offsets, unit vectors and cosine tables, PCA, the output folder, a
progress line, the on-disk cache of slow measures, and running a lesson file as a notebook.

Nothing here is a model. Every vector comes from minibert / minielmo through their public API;
this file only picks rows out of their outputs and compares them.
"""

from __future__ import annotations

import functools
import hashlib
import importlib
import os
import re
import runpy
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

DEFAULT_MODEL = "all-MiniLM-L6-v2"
# Set to 1, the lessons draw small samples (the notebook tests run every lesson this way); the
# printed numbers are then rough, and every lesson says so.
QUICK_ENV = "MINICONTEXT_LESSONS_QUICK"
# Where slow measures are kept between runs (see measure_cache); default ~/.cache/minicontext.
CACHE_ENV = "MINICONTEXT_CACHE"


class LessonError(ValueError):
    """Bad input from the learner (unknown word, lesson, folder). The CLI prints the message
    without a traceback; the lessons raise it instead of letting an IndexError escape."""


# ----------------------------------------------------------------------------- models
# One process-wide copy of each model: `python -m lessons all` and the tests reuse them.


@functools.lru_cache(maxsize=None)
def load_bert(name: str = DEFAULT_MODEL):
    """(BertModel, Tokenizer) from the packaged all-MiniLM-L6-v2 (or a local directory)."""
    import minibert

    model = minibert.BertModel.from_pretrained(name)
    model.eval()
    tokenizer = minibert.Tokenizer.from_pretrained(name)
    return model, tokenizer


@functools.lru_cache(maxsize=None)
def load_sentence_encoder(name: str = DEFAULT_MODEL):
    import minibert

    return minibert.SentenceEncoder.from_pretrained(name)


@functools.lru_cache(maxsize=None)
def load_elmo_bilm():
    """minielmo's default shipped biLM (minielmo.DEFAULT_MODEL); elmo_label() names it."""
    import minielmo

    bilm = minielmo.BiLM.from_pretrained()
    bilm.eval()
    return bilm


def elmo_label(name: str | None = None) -> str:
    """How tables, pictures and the lab name an ELMo shipped with minielmo (default: the default
    model, "ELMo (small)"). The fixture, which a learner can pick by name, is said to be untrained."""
    import minielmo

    name = name or minielmo.DEFAULT_MODEL
    return "ELMo (untrained test fixture)" if name == "fixture" else f"ELMo ({name})"


def quick() -> bool:
    """True when MINICONTEXT_LESSONS_QUICK=1: small samples, for the notebook tests."""
    return os.environ.get(QUICK_ENV) == "1"


def sample_size(full: int, small: int) -> int:
    """`full` normally, `small` in quick mode."""
    return small if quick() else full


# ----------------------------------------------------------------------------- words


def find_word(sentence: str, word: str) -> tuple[int, int]:
    """Character span (start, end) of the first whole-word, case-insensitive match of `word`."""
    if not word.strip():
        raise LessonError("the word to look up is empty")
    match = re.search(r"(?<!\w)" + re.escape(word) + r"(?!\w)", sentence, flags=re.IGNORECASE)
    if match is None:
        raise LessonError(f"the word {word!r} does not occur in the sentence {sentence!r}")
    return match.span()


def word_piece_positions(offsets: list[tuple[int, int]], span: tuple[int, int]) -> list[int]:
    """Indices of the word pieces whose character offsets fall inside `span`.

    Special tokens and padding have offsets (0, 0) and so never match a real word."""
    start, end = span
    positions = [i for i, (s, e) in enumerate(offsets) if e > s and s >= start and e <= end]
    if not positions:
        raise LessonError(f"no word piece covers characters {start}:{end} of the sentence "
                          "(was it cut at the model's length limit?)")
    return positions


@torch.no_grad()
def bert_span_vectors(model, tokenizer, sentences: list[str], spans: list[tuple[int, int]], batch: int = 64,
                      what: str | None = None):
    """The one way the lessons take BERT vectors of a word: the word pieces inside `spans[i]`
    (character offsets in `sentences[i]`), found through the tokenizer's offsets, averaged.

    Returns (static, layers, pieces):
      static  (N, D)       mean of the word pieces' rows of the input embedding table;
      layers  (L+1, N, D)  mean of the word pieces' vectors in each hidden state
                           (index 0 = embedding output, which already adds position and LayerNorm);
      pieces  list of the word-piece strings used, per sentence.
    Sentences of similar length share a batch of `batch`; `what` names a progress line."""
    L, D = model.config.num_hidden_layers, model.config.hidden_size
    static = np.zeros((len(sentences), D), dtype=np.float32)
    layers = np.zeros((L + 1, len(sentences), D), dtype=np.float32)
    pieces: list[list[str]] = [[] for _ in sentences]
    table = model.embeddings.word_embeddings.weight  # (V, D)
    order = sorted(range(len(sentences)), key=lambda i: len(sentences[i]))
    batches = [order[i:i + batch] for i in range(0, len(order), batch)]
    for rows in progress(batches, what) if what else batches:
        enc = tokenizer([sentences[i] for i in rows], return_offsets=True)
        hidden = model(enc["input_ids"], attention_mask=enc["attention_mask"],
                       token_type_ids=enc["token_type_ids"], output_hidden_states=True).hidden_states
        hidden = torch.stack(hidden)  # L+1 x (B, T, D) -> (L+1, B, T, D)
        for n, i in enumerate(rows):
            pos = word_piece_positions(enc["offsets"][n], spans[i])
            static[i] = table[enc["input_ids"][n, pos]].mean(0).numpy()  # (P, D) -> (D,)
            layers[:, i] = hidden[:, n, pos].mean(1).numpy()  # (L+1, P, D) -> (L+1, D)
            pieces[i] = [enc["tokens"][n][p] for p in pos]
    return static, layers, pieces


def bert_word_vectors(model, tokenizer, sentences: list[str], word: str):
    """bert_span_vectors for the first whole-word match of `word` in each sentence."""
    return bert_span_vectors(model, tokenizer, sentences, [find_word(s, word) for s in sentences])


# ELMo reads words; the shipped biLM was trained on text split by minielmo.words ("don't" ->
# "don", "'", "t"), so the lessons split their sentences with the same function.
ELMO_WORDS = "minielmo.words.split_words"  # part of every cache key of ELMo measures


def simple_words(sentence: str) -> list[str]:
    """The words ELMo reads, split exactly as the shipped biLM's training text was."""
    from minielmo.words import split_words

    return split_words(sentence)


def simple_word_spans(sentence: str) -> list[tuple[int, int]]:
    """Character spans of simple_words(sentence), in order."""
    from minielmo.words import split_words_with_spans

    return [span for _, span in split_words_with_spans(sentence)]


def word_index(words: list[str], word: str, sentence: str) -> int:
    lowered = [w.lower() for w in words]
    if word.lower() not in lowered:
        raise LessonError(f"the word {word!r} does not occur in the sentence {sentence!r}")
    return lowered.index(word.lower())


@torch.no_grad()
def elmo_word_vectors(bilm, sentences: list[str], word: str) -> np.ndarray:
    """(n_layers + 1, N, 2P): the biLM's layer-0 (char-CNN) and biLSTM-layer vectors of `word`."""
    import minielmo

    tokenised = [simple_words(s) for s in sentences]
    index = [word_index(w, word, s) for w, s in zip(tokenised, sentences)]
    out = bilm(minielmo.batch_to_ids(tokenised))
    rows = torch.arange(len(sentences))
    # +1: the biLM adds a beginning-of-sentence token in front of every sentence.
    cols = torch.tensor(index) + 1
    return torch.stack([act[rows, cols] for act in out["activations"]]).numpy()


# ----------------------------------------------------------------------------- numbers


# A zero vector stays zero instead of turning into NaN: its cosine with anything is 0.
UNIT_EPS = 1e-12


def unit(x: np.ndarray) -> np.ndarray:
    """Rows of `x` scaled to length 1 (a zero row stays 0): the one normalisation in the lessons."""
    return x / np.maximum(np.linalg.norm(x, axis=-1, keepdims=True), UNIT_EPS)


def cosine_matrix(a: np.ndarray, b: np.ndarray | None = None) -> np.ndarray:
    """Cosine similarity of every row of `a` with every row of `b` (default: `a`)."""
    return unit(a) @ unit(a if b is None else b).T


def sense_separation(vectors: np.ndarray, senses: list[str]) -> tuple[float, float, float]:
    """(mean same-sense cosine, mean different-sense cosine, their difference).

    Pairs of a vector with itself are left out: they would pull "same sense" to 1."""
    sims = cosine_matrix(vectors)
    labels = np.asarray(senses)
    same = labels[:, None] == labels[None, :]
    off_diagonal = ~np.eye(len(labels), dtype=bool)
    same_mean = float(sims[same & off_diagonal].mean())
    diff_mean = float(sims[~same].mean())
    return same_mean, diff_mean, same_mean - diff_mean


def pca_2d(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Project rows of `x` onto their first two principal components.

    Returns (points (N, 2), explained-variance ratio of the two components). PCA by SVD of the
    centred data: the right singular vectors are the principal axes."""
    centred = x - x.mean(axis=0, keepdims=True)
    _, singular, axes = np.linalg.svd(centred, full_matrices=False)
    points = centred @ axes[:2].T  # (N, D) @ (D, 2) -> (N, 2)
    variance = singular**2
    total = variance.sum()
    ratio = variance[:2] / total if total > 0 else np.zeros(2)
    return points, ratio


def softmax(x: np.ndarray) -> np.ndarray:
    z = np.exp(x - x.max())
    return z / z.sum()


def format_table(header: list[str], rows: list[list], floatfmt: str = "{:.3f}") -> str:
    """A plain fixed-width text table (no third-party dependency): numbers right-aligned,
    text left-aligned."""
    cells = [[floatfmt.format(c) if isinstance(c, float) else str(c) for c in row] for row in rows]
    numeric = [all(isinstance(row[i], (int, float)) for row in rows) for i in range(len(header))]
    widths = [max(len(str(h)), *(len(r[i]) for r in cells)) for i, h in enumerate(header)]

    def line(row):
        return "  ".join((c.rjust(w) if num else c.ljust(w))
                         for c, w, num in zip(map(str, row), widths, numeric)).rstrip()

    return "\n".join([line(header), line(["-" * w for w in widths]), *map(line, cells)])


def interval(value: float, ci: tuple[float, float]) -> str:
    """'0.672 [0.641, 0.700]': an estimate with its 95% confidence interval."""
    return f"{value:.3f} [{ci[0]:.3f}, {ci[1]:.3f}]"


def text_or_default(text: str | None, default: str, empty_error: str) -> str:
    """The learner's `text`, or `default` when none was given; a blank text raises
    LessonError(empty_error) rather than run the lesson on nothing."""
    text = default if text is None else text
    if not text.strip():
        raise LessonError(empty_error)
    return text


def short(text: str, width: int = 38) -> str:
    return text if len(text) <= width else text[: width - 1] + "…"


# ----------------------------------------------------------------------------- output


def prepare_out(out: str | os.PathLike) -> Path:
    """Create the output folder if needed and prove it is writable, before any model runs."""
    path = Path(out)
    if path.exists() and not path.is_dir():
        raise LessonError(f"output folder {str(path)!r} exists and is not a folder")
    try:
        path.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=path, prefix=".write-test-"):
            pass
    except OSError as err:
        raise LessonError(f"cannot write to output folder {str(path)!r}: {err.strerror or err}") from None
    return path


# ----------------------------------------------------------------------------- progress


def _clock(seconds: float) -> str:
    minutes, seconds = divmod(int(round(seconds)), 60)
    return f"{minutes}:{seconds:02d}"


def progress(items, what: str, total: int | None = None):
    """Yield from `items` while one line on stderr, redrawn in place, says what is computed, how
    far it is and the time left (as tqdm does): `what [#####.....] 12/40, 0:31 left`."""
    total = len(items) if total is None else total
    start = time.perf_counter()
    width = 24

    def draw(done: int) -> None:
        elapsed = time.perf_counter() - start
        left = f"{_clock(elapsed / done * (total - done))} left" if done else "starting"
        filled = width * done // max(total, 1)
        sys.stderr.write(f"\r{what} [{'#' * filled}{'.' * (width - filled)}] {done}/{total}, "
                         f"{_clock(elapsed)} so far, {left} ")
        sys.stderr.flush()

    draw(0)
    for done, item in enumerate(items, 1):
        yield item
        draw(done)
    sys.stderr.write("\n")
    sys.stderr.flush()


# ----------------------------------------------------------------------------- cache


def cache_dir() -> Path:
    """$MINICONTEXT_CACHE, else $XDG_CACHE_HOME/minicontext, else ~/.cache/minicontext."""
    if os.environ.get(CACHE_ENV):
        return Path(os.environ[CACHE_ENV])
    base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return base / "minicontext"


def weights_hash(model: torch.nn.Module | np.ndarray) -> str:
    """sha256 over a model's parameter names, shapes and values (or one array's): the cache key
    of its weights, so a retrained model with the same name gets another key."""
    tensors = {"array": torch.from_numpy(model)} if isinstance(model, np.ndarray) else model.state_dict()
    digest = hashlib.sha256()
    for name, tensor in sorted(tensors.items()):
        digest.update(f"{name}:{tuple(tensor.shape)}:{tensor.dtype}".encode())
        digest.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()[:16]


def text_hash(*parts) -> str:
    """sha256 of the parts' repr: a short key for data and settings."""
    return hashlib.sha256(repr(parts).encode()).hexdigest()[:16]


def measure_cache(kind: str, key: str, compute):
    """{name: array} from cache_dir()/lessons/<kind>-<key>.npz, else compute() and save it.

    Arrays only (np.load with allow_pickle=False): a cache file never runs code."""
    path = cache_dir() / "lessons" / f"{kind}-{key}.npz"
    if path.is_file():
        try:
            with np.load(path, allow_pickle=False) as stored:
                return {name: stored[name] for name in stored.files}
        except (OSError, ValueError):
            pass  # a damaged cache file is recomputed and overwritten
    arrays = compute()
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        partial = path.with_suffix(".partial.npz")
        np.savez(partial, **arrays)
        os.replace(partial, path)
    except OSError as err:
        print(f"(not cached: cannot write {path}: {err.strerror or err})", file=sys.stderr)
    return arrays


# ----------------------------------------------------------------------------- notebooks


def run_notebook(module: str, **parameters) -> dict:
    """Run a lesson file top to bottom as Jupyter would (every cell, as __main__), with
    `parameters` in place of the defaults of its parameters cell; returns its RESULT.

    The CLI and the tests run each lesson this way, so the notebook is the lesson."""
    path = importlib.import_module(module).__file__
    return runpy.run_path(path, init_globals={"PARAMETERS": parameters}, run_name="__main__")["RESULT"]


def parameters(namespace: dict, **defaults) -> tuple[dict, Path]:
    """(P, out): the defaults of a lesson's parameters cell (one of them `out`), updated with what
    run_notebook passed, and the output folder P["out"] made ready by prepare_out, so that a bad
    folder stops the lesson before any model runs."""
    unknown = set(namespace.get("PARAMETERS", {})) - set(defaults)
    if unknown:
        raise LessonError(f"unknown lesson parameters: {sorted(unknown)}")
    if quick():
        print(f"QUICK MODE ({QUICK_ENV}=1): small samples, so the numbers below are rough\n")
    chosen = {**defaults, **namespace.get("PARAMETERS", {})}
    return chosen, prepare_out(chosen["out"])
