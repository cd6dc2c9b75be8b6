"""Shared helpers for the lessons: loading the packaged models once, finding a word's vector
through the tokenizer's offsets, cosine tables, PCA, and the output folder.

Nothing here is a model. Every vector comes from minibert / minielmo through their public API;
this file only picks rows out of their outputs and compares them.
"""

from __future__ import annotations

import functools
import os
import re
import tempfile
from pathlib import Path

import numpy as np
import torch

DEFAULT_MODEL = "all-MiniLM-L6-v2"


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
    """minielmo's default shipped biLM (minielmo.DEFAULT_MODEL); elmo_label() says which."""
    import minielmo

    bilm = minielmo.BiLM.from_pretrained()
    bilm.eval()
    return bilm


def elmo_is_fixture() -> bool:
    import minielmo

    return minielmo.DEFAULT_MODEL == "fixture"


def elmo_label() -> str:
    """How tables name the default ELMo: the fixture is allennlp's 16-dim test model, trained on
    almost nothing, and every lesson says so."""
    import minielmo

    if elmo_is_fixture():
        return "ELMo (untrained test fixture)"
    return f"ELMo ({minielmo.DEFAULT_MODEL})"


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
def bert_word_vectors(model, tokenizer, sentences: list[str], word: str):
    """Vectors of `word` in each sentence, static and per layer.

    Returns (static, layers, pieces):
      static  (N, D)       mean of the word pieces' rows of the input embedding table;
      layers  (L+1, N, D)  mean of the word pieces' vectors in each hidden state
                           (index 0 = embedding output, which already adds position and LayerNorm);
      pieces  list of the word-piece strings used, per sentence.
    """
    spans = [find_word(s, word) for s in sentences]
    enc = tokenizer(sentences, return_offsets=True)
    out = model(
        enc["input_ids"],
        attention_mask=enc["attention_mask"],
        token_type_ids=enc["token_type_ids"],
        output_hidden_states=True,
    )
    hidden = torch.stack(out.hidden_states)  # L+1 x (N, T, D) -> (L+1, N, T, D)
    table = model.embeddings.word_embeddings.weight  # (V, D)
    static, layers, pieces = [], [], []
    for n, span in enumerate(spans):
        pos = word_piece_positions(enc["offsets"][n], span)
        ids = enc["input_ids"][n, pos]
        static.append(table[ids].mean(0))  # (P, D) -> (D,)
        layers.append(hidden[:, n, pos].mean(1))  # (L+1, P, D) -> (L+1, D)
        pieces.append([enc["tokens"][n][p] for p in pos])
    return torch.stack(static).numpy(), torch.stack(layers, 1).numpy(), pieces


SIMPLE_WORD = re.compile(r"\w+(?:'\w+)?|[^\w\s]")


def simple_words(sentence: str) -> list[str]:
    """Whitespace-and-punctuation split, the tokenisation ELMo's character input expects."""
    return SIMPLE_WORD.findall(sentence)


def simple_word_spans(sentence: str) -> list[tuple[int, int]]:
    """Character spans of simple_words(sentence), in order."""
    return [m.span() for m in SIMPLE_WORD.finditer(sentence)]


def word_index(words: list[str], word: str, sentence: str) -> int:
    lowered = [w.lower() for w in words]
    if word.lower() not in lowered:
        raise LessonError(f"the word {word!r} does not occur in the sentence {sentence!r}")
    return lowered.index(word.lower())


@torch.no_grad()
def elmo_word_vectors(bilm, sentences: list[str], word: str) -> np.ndarray:
    """(3, N, 2P): the biLM's layer-0 (char-CNN), layer-1 and layer-2 vectors of `word`."""
    import minielmo

    tokenised = [simple_words(s) for s in sentences]
    index = [word_index(w, word, s) for w, s in zip(tokenised, sentences)]
    out = bilm(minielmo.batch_to_ids(tokenised))
    rows = torch.arange(len(sentences))
    # +1: the biLM adds a beginning-of-sentence token in front of every sentence.
    cols = torch.tensor(index) + 1
    return torch.stack([act[rows, cols] for act in out["activations"]]).numpy()


# ----------------------------------------------------------------------------- numbers


def cosine_matrix(a: np.ndarray, b: np.ndarray | None = None) -> np.ndarray:
    """Cosine similarity of every row of `a` with every row of `b` (default: `a`)."""
    b = a if b is None else b
    a = a / np.linalg.norm(a, axis=-1, keepdims=True)
    b = b / np.linalg.norm(b, axis=-1, keepdims=True)
    return a @ b.T


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
