"""The lab: the learner types sentences and compares static, ELMo and BERT vectors of one word
across them, live. This module holds the computations (`Lab`, which a notebook can use as it is);
lessons.lab_server serves them as a local web page (`python -m lessons lab`).

For 2 to 8 sentences and a word that occurs in each, `Lab.compare` gives:

- the cosine matrix of that word across the sentences, for every representation: GloVe 6B 50d
  (static), MiniLM's input word-piece embedding, its embedding output and each of its 6 layers,
  and ELMo's layer 0 (char-CNN), each biLSTM layer and an even scalar mix (Peters et al. 2018,
  Eq. 1 with s_j = 0, gamma = 1: a task would learn its own weights);
- with a sense label typed beside each sentence, the "sense separation" per representation:
  mean same-sense cosine minus mean different-sense cosine (lessons.common.sense_separation);
- the nearest neighbours of the word in each sentence among a fixed, seeded sample of MiniLM's
  whole-word vocabulary, each vocabulary word embedded on its own (no context), in the chosen
  representation, shown only where they stand out from the word's cosines to the whole sample
  (NEIGHBOUR_FLOOR_SD), so a list of chance-level words is not shown as meaning;
- the sentence-embedding similarity matrix (minibert.SentenceEncoder);
- (`explorer_html`) the attention explorer for any one sentence.

A word made of several word pieces gets the mean of its pieces (lessons.common.bert_word_vectors).
The ELMo model is minielmo.DEFAULT_MODEL; the page labels the tiny allennlp test model as untrained.
Every input is checked here (`parse_compare`), with a one-line LabError, whoever calls; the models
run under one lock.
"""

from __future__ import annotations

import re
import threading
import time
from dataclasses import dataclass

import numpy as np
import torch

from minibert.attention import explore

from .common import (
    DEFAULT_MODEL, LessonError, bert_word_vectors, cosine_matrix, elmo_word_vectors, find_word,
    bert_span_vectors, load_bert, load_sentence_encoder, sense_separation, simple_words, unit,
)

# ----------------------------------------------------------------------------- limits
MIN_SENTENCES, MAX_SENTENCES = 2, 8
MAX_SENTENCE_CHARS = 300  # about 50 words; far below MiniLM's 512 word pieces, so nothing is cut
MAX_WORD_CHARS = 40
MAX_SENSE_CHARS = 30
MAX_BODY_BYTES = 16 * 1024  # 8 sentences of 300 characters, JSON-escaped, fit with room to spare

# ----------------------------------------------------------------------------- neighbours
VOCABULARY_SAMPLE = 2000  # words the neighbours are drawn from
VOCABULARY_SEED = 0
NEIGHBOURS = 5
EMBED_CHUNK = 256  # vocabulary words per model call when embedding the sample at start-up
# A neighbour is shown only if its cosine stands this many standard deviations above the mean
# cosine of the word's vector to the whole sample (the floor, per sentence and representation).
# Representations differ widely in how close unrelated words sit, so no one cosine could be the
# floor. Were the cosines normal, the best of VOCABULARY_SAMPLE unrelated words would pass it in
# one list of ten: Phi(z) ** 2000 = 0.9 gives z = 3.88. ELMo's lists rarely pass: its vectors of
# lone words are close to one another, and the word's vector is no closer to any of them.
NEIGHBOUR_FLOOR_SD = 3.9

# One word as ELMo's tokenisation (common.simple_words, the shipped biLM's training split) sees
# it: letters and digits; an apostrophe or hyphen splits a word ("don't" is "don", "'", "t").
WORD_PATTERN = re.compile(r"\w+")
# JSON can carry "\ud800" alone, which Python decodes to a lone surrogate: not Unicode text, and
# the tokenizers refuse it.
LONE_SURROGATE = re.compile("[\ud800-\udfff]")


class LabError(LessonError):
    """Input the lab refuses; the message is shown on the page as it is."""


def elmo_description(name: str) -> str:
    """What the page says about the ELMo model, from its name in minielmo.PRETRAINED."""
    if name == "fixture":
        return "allennlp's tiny test model, untrained: its numbers show the mechanics, not meanings"
    return f"minielmo's shipped model {name!r}"


# ----------------------------------------------------------------------------- input checks


@dataclass(frozen=True)
class CompareRequest:
    sentences: tuple[str, ...]
    word: str
    senses: tuple[str, ...] | None  # one label per sentence, or None when none was typed


def check_unicode(text: str, where: str) -> None:
    found = LONE_SURROGATE.search(text)
    if found:
        raise LabError(f"{where} holds a lone surrogate ({found.group()!r} at character {found.start() + 1}), "
                       "which is not Unicode text")


def check_sentence(sentence, where: str) -> str:
    if not isinstance(sentence, str):
        raise LabError(f"{where} must be text, got {type(sentence).__name__}")
    check_unicode(sentence, where)
    sentence = sentence.strip()
    if not sentence:
        raise LabError(f"{where} is empty")
    if len(sentence) > MAX_SENTENCE_CHARS:
        raise LabError(f"{where} has {len(sentence)} characters; the lab takes at most {MAX_SENTENCE_CHARS}")
    return sentence


def check_word_occurs(sentence: str, word: str, where: str) -> None:
    """The word must occur in the sentence as one of ELMo's tokens (common.simple_words), and its
    first whole-word match, which BERT's offsets use (common.find_word), must be that token."""
    try:
        start, _ = find_word(sentence, word)
    except LessonError:
        raise LabError(f"{where} does not contain the word {word!r}") from None
    tokens = [t.lower() for t in simple_words(sentence)]
    # the match is ELMo's token exactly when as many tokens come before it as before that token
    if word.lower() not in tokens or len(simple_words(sentence[:start])) != tokens.index(word.lower()):
        inside = simple_words(sentence[start:])[0]
        raise LabError(f"in {where}, {word!r} first occurs inside {inside!r}; "
                       "make its first occurrence a word on its own")


def parse_compare(payload) -> CompareRequest:
    """The JSON body of /api/compare -> CompareRequest, or LabError with a one-line reason."""
    if not isinstance(payload, dict):
        raise LabError("the request must be a JSON object with 'sentences' (a list) and 'word'")
    unknown = sorted(set(payload) - {"sentences", "word", "senses"})
    if unknown:
        raise LabError(f"unknown field(s): {', '.join(map(repr, unknown))}; expected sentences, word, senses")
    sentences = payload.get("sentences")
    if not isinstance(sentences, list):
        raise LabError("'sentences' must be a list of text")
    if not MIN_SENTENCES <= len(sentences) <= MAX_SENTENCES:
        raise LabError(f"give {MIN_SENTENCES} to {MAX_SENTENCES} sentences, got {len(sentences)}")
    sentences = [check_sentence(s, f"sentence {i + 1}") for i, s in enumerate(sentences)]

    word = payload.get("word")
    if not isinstance(word, str):
        raise LabError("'word' must be text: the word to follow across the sentences")
    check_unicode(word, "the word")
    word = word.strip()
    if not word:
        raise LabError("pick a word that occurs in every sentence")
    if len(word) > MAX_WORD_CHARS:
        raise LabError(f"the word has {len(word)} characters; at most {MAX_WORD_CHARS}")
    if not WORD_PATTERN.fullmatch(word):
        raise LabError(f"{word!r} is not one word: use letters and digits (an apostrophe inside is fine)")
    for i, sentence in enumerate(sentences):
        check_word_occurs(sentence, word, f"sentence {i + 1}")

    senses = payload.get("senses")
    if senses is not None:
        if not isinstance(senses, list) or not all(isinstance(s, str) for s in senses):
            raise LabError("'senses' must be a list of text, one label per sentence")
        for i, label in enumerate(senses):
            check_unicode(label, f"the sense label of sentence {i + 1}")
        if len(senses) != len(sentences):
            raise LabError(f"got {len(senses)} sense labels for {len(sentences)} sentences")
        senses = [s.strip() for s in senses]
        too_long = next((i for i, s in enumerate(senses) if len(s) > MAX_SENSE_CHARS), None)
        if too_long is not None:
            raise LabError(f"the sense label of sentence {too_long + 1} is longer than {MAX_SENSE_CHARS} characters")
        if not any(senses):
            senses = None
    return CompareRequest(tuple(sentences), word, None if senses is None else tuple(senses))


def separation_blocker(senses: tuple[str, ...] | None) -> str | None:
    """Why no sense-separation curve can be drawn for these labels, or None when it can."""
    if senses is None:
        return "type a sense label beside each sentence (e.g. 'money', 'river') to see this curve"
    if not all(senses):
        return "every sentence needs a sense label for this curve"
    counts = {label: senses.count(label) for label in senses}
    if len(counts) < 2:
        return "the curve needs at least two different sense labels"
    if max(counts.values()) < 2:
        return "the curve needs two sentences with the same sense label"
    return None


# ----------------------------------------------------------------------------- the models


def finite(matrix: np.ndarray) -> list:
    """Nested lists for JSON; a non-finite cosine (a zero vector) becomes null, never NaN."""
    return [[float(v) if np.isfinite(v) else None for v in row] for row in np.asarray(matrix, dtype=np.float64)]


class Lab:
    """The models, loaded once, and the computations behind the page. Thread-safe: every model
    call runs under one lock (torch modules and the Rust tokenizer's settings are shared state).

    `compare()` is the Python API the page shows: the browser test checks the page against it."""

    def __init__(self, elmo_model: str | None = None):
        import minielmo

        from .glove import GloveMissing, load_glove

        self.lock = threading.Lock()
        self.bert, self.tokenizer = load_bert()
        self.encoder = load_sentence_encoder()
        self.elmo_name = minielmo.DEFAULT_MODEL if elmo_model is None else elmo_model
        self.bilm = minielmo.BiLM.from_pretrained(self.elmo_name).eval()
        # Even weights, gamma 1: the scalar mix a task would start from (scalar_mix.py).
        self.scalar_mix = minielmo.ScalarMix(self.bilm.num_layers).eval()
        try:
            self.glove, self.glove_note = load_glove(), None
        except GloveMissing as error:
            self.glove, self.glove_note = None, str(error)
        self.vocabulary = self._sample_vocabulary()
        self.vocabulary_vectors = self._embed_vocabulary()  # key -> (unit rows (V_r, D) tensor, words)
        # One comparison at start-up, so one-off work on a model's first call (the fast paths'
        # prepared weights, allocator growth) is not paid by the learner's first request.
        example = self.info()["example"]
        self.compare(example["sentences"], example["word"], example["senses"])

    # -- representations ------------------------------------------------------------------

    def representations(self) -> list[dict]:
        """Key, model and name of every representation, in the order the page shows them."""
        reps = [{"key": "glove", "model": "GloVe", "name": "GloVe 6B 50d"},
                {"key": "bert-input", "model": "MiniLM", "name": "input embedding"},
                {"key": "bert-0", "model": "MiniLM", "name": "embedding output"}]
        reps += [{"key": f"bert-{i}", "model": "MiniLM", "name": f"layer {i}"}
                 for i in range(1, self.bert.config.num_hidden_layers + 1)]
        reps += [{"key": "elmo-0", "model": "ELMo", "name": "layer 0 (char-CNN)"}]
        reps += [{"key": f"elmo-{j}", "model": "ELMo", "name": f"biLSTM layer {j}"}
                 for j in range(1, self.bilm.num_layers)]
        reps += [{"key": "elmo-mix", "model": "ELMo", "name": "scalar mix (even weights)"}]
        return reps

    @torch.no_grad()
    def _vectors(self, sentences: list[str], word: str) -> tuple[dict[str, np.ndarray], list[list[str]]]:
        """(key -> (N, D) vectors of `word` in each sentence, BERT's word pieces of it per
        sentence). Without GloVe, or a word GloVe lacks, there is no 'glove' key."""
        static, layers, pieces = bert_word_vectors(self.bert, self.tokenizer, sentences, word)
        elmo = elmo_word_vectors(self.bilm, sentences, word)  # (L+1, N, 2P)
        vectors = {"bert-input": static}
        vectors.update({f"bert-{i}": layer for i, layer in enumerate(layers)})
        vectors.update({f"elmo-{j}": layer for j, layer in enumerate(elmo)})
        vectors["elmo-mix"] = self.scalar_mix(list(torch.from_numpy(elmo))).numpy()  # (N, 2P)
        if self.glove is not None and word in self.glove:
            vectors["glove"] = np.stack([self.glove.vector(word)] * len(sentences))  # one row per sentence, all equal
        return vectors, pieces

    # -- the vocabulary the neighbours come from -----------------------------------------------

    def _sample_vocabulary(self) -> list[str]:
        """A seeded sample of MiniLM's whole-word, lower-case, alphabetic vocabulary (3+ letters):
        every word is one word piece, and the same sample serves every representation."""
        vocab = self.tokenizer.backend.get_vocab()
        words = sorted((w for w in vocab if len(w) >= 3 and w.isascii() and w.isalpha() and w.islower()),
                       key=vocab.__getitem__)
        rng = np.random.default_rng(VOCABULARY_SEED)
        picked = rng.choice(len(words), size=min(VOCABULARY_SAMPLE, len(words)), replace=False)
        return sorted(words[i] for i in picked)

    @torch.no_grad()
    def _embed_vocabulary(self) -> dict[str, tuple[torch.Tensor, list[str]]]:
        """Each sampled word embedded on its own (a one-word sentence) in every representation."""
        import minielmo

        words = self.vocabulary
        static, hidden, _ = bert_span_vectors(self.bert, self.tokenizer, words, [(0, len(w)) for w in words],
                                              batch=EMBED_CHUNK)
        rows: dict[str, list[np.ndarray]] = {"bert-input": list(static)}
        for i, layer in enumerate(hidden):
            rows[f"bert-{i}"] = list(layer)
        for start in range(0, len(words), EMBED_CHUNK):
            chunk = words[start:start + EMBED_CHUNK]
            out = self.bilm(minielmo.batch_to_ids([[w] for w in chunk]))
            layers = [act[:, 1] for act in out["activations"]]  # L+1 x (B, 2P); position 0 is <S>
            for j, layer in enumerate(layers):
                rows.setdefault(f"elmo-{j}", []).extend(layer.numpy())
            rows.setdefault("elmo-mix", []).extend(self.scalar_mix(layers).numpy())
        table = {key: (torch.from_numpy(unit(np.stack(found))), words) for key, found in rows.items()}
        if self.glove is not None:
            known = [w for w in words if w in self.glove]
            table["glove"] = (torch.from_numpy(unit(np.stack([self.glove.vector(w) for w in known]))), known)
        return table

    def neighbours(self, key: str, vectors: np.ndarray, word: str) -> tuple[list[list[list]], list[float]]:
        """Per sentence, up to NEIGHBOURS sampled words closest (cosine) to the word's vector,
        leaving out the word itself and any below the floor; and the floor per sentence."""
        table, words = self.vocabulary_vectors[key]  # (V_r, D) unit rows
        # torch, not numpy: it runs on the threads --threads sets, where numpy's BLAS would
        # start a thread pool of its own
        scores = (torch.from_numpy(unit(vectors)) @ table.T).numpy()  # (N, D) @ (D, V) -> (N, V)
        floors = scores.mean(-1) + NEIGHBOUR_FLOOR_SD * scores.std(-1)  # (N, V) -> (N,)
        found = []
        for row, floor in zip(scores, floors):
            # one more than needed, in case the word itself is among them
            top = np.argpartition(-row, NEIGHBOURS)[:NEIGHBOURS + 1]
            top = top[np.argsort(-row[top], kind="stable")]
            best = [int(k) for k in top if words[k] != word.lower() and row[k] >= floor][:NEIGHBOURS]
            found.append([[words[k], float(row[k])] for k in best])
        return found, [float(f) for f in floors]

    # -- the page's computations --------------------------------------------------------------

    def compare(self, sentences: list[str], word: str, senses: list[str] | None = None) -> dict:
        """Everything the page shows for one word across the sentences, checked as /api/compare
        checks it. Cosines are float32 values; null where a vector is zero."""
        payload = {"sentences": list(sentences), "word": word}
        if senses is not None:
            payload["senses"] = list(senses)
        return self.answer(parse_compare(payload))

    def answer(self, request: CompareRequest) -> dict:
        start = time.perf_counter()
        with self.lock:
            vectors, pieces = self._vectors(list(request.sentences), request.word)
            sentence_vectors = self.encoder.encode(list(request.sentences))  # (N, D), unit length
            nearest = {key: self.neighbours(key, v, request.word) for key, v in vectors.items()}
        forms = sorted({sentence[slice(*find_word(sentence, request.word))] for sentence in request.sentences})
        reps = []
        for rep in self.representations():
            rep = dict(rep)
            if rep["key"] in vectors:
                rep["matrix"] = finite(cosine_matrix(vectors[rep["key"]]))
            else:
                rep["matrix"] = None
            rep["note"] = self._note(rep["key"], request.word, forms)
            reps.append(rep)

        blocker = separation_blocker(request.senses)
        separation = None
        if blocker is None:
            separation = []
            for rep in reps:
                if rep["key"] in vectors:
                    same, different, gap = sense_separation(vectors[rep["key"]], list(request.senses))
                    separation.append({"key": rep["key"], "same": same, "different": different, "gap": gap})
        return {
            "word": request.word,
            "sentences": list(request.sentences),
            "senses": None if request.senses is None else list(request.senses),
            "pieces": pieces,
            "representations": reps,
            "separation": separation,
            "separation_note": blocker,
            "neighbours": {key: found for key, (found, _) in nearest.items()},
            "neighbour_floors": {key: floors for key, (_, floors) in nearest.items()},
            "sentence_similarity": finite(cosine_matrix(sentence_vectors)),
            "seconds": time.perf_counter() - start,
        }

    def _note(self, key: str, word: str, forms: list[str]) -> str | None:
        """What the page says under a representation's matrix; `forms`: the word as written in
        the sentences (e.g. ['Spring', 'spring'])."""
        if key == "glove":
            if self.glove is None:
                return self.glove_note
            if word not in self.glove:
                return f"{word!r} is not in GloVe's 400,000-word vocabulary"
            return "one vector per word: the same in every sentence"
        if key == "bert-input":
            return "the word-piece rows of the input table: no context yet"
        if key == "bert-0":
            return "the row plus position and segment embeddings, LayerNorm: no context, only the position"
        if key == "elmo-0":
            note = ("built from the word's characters only: no context yet, but case-sensitive "
                    "(\"Spring\" and \"spring\" are different characters, so different vectors)")
            if len(forms) > 1:
                note += f"; here the word is written {' and '.join(map(repr, forms))}, so cosines below 1 are spelling, not context"
            return note
        return None

    def explorer_html(self, sentence: str) -> str:
        """The self-contained attention explorer page for one sentence."""
        sentence = check_sentence(sentence, "the sentence")
        with self.lock:
            try:
                return explore(self.bert, self.tokenizer, [sentence], model_name=DEFAULT_MODEL).html
            except ValueError as error:  # e.g. more word pieces than the page draws
                raise LabError(f"cannot draw the explorer: {error}") from None

    def info(self) -> dict:
        """What the page needs before the first comparison: limits, models, an example."""
        from . import data

        bank = data.POLYSEMY["bank"]
        example = [(s, sense) for sense, group in bank.items() for s in group[:2]]
        return {
            "limits": {"min_sentences": MIN_SENTENCES, "max_sentences": MAX_SENTENCES,
                       "max_sentence_chars": MAX_SENTENCE_CHARS, "max_word_chars": MAX_WORD_CHARS,
                       "max_sense_chars": MAX_SENSE_CHARS, "max_body_bytes": MAX_BODY_BYTES},
            "models": {"bert": DEFAULT_MODEL, "elmo": self.elmo_name, "elmo_label": elmo_description(self.elmo_name),
                       "glove": self.glove is not None, "glove_note": self.glove_note,
                       "vocabulary_sample": len(self.vocabulary), "vocabulary_seed": VOCABULARY_SEED,
                       "neighbours": NEIGHBOURS, "neighbour_floor_sd": NEIGHBOUR_FLOOR_SD},
            "representations": self.representations(),
            "example": {"word": "bank", "sentences": [s for s, _ in example], "senses": [k for _, k in example]},
        }
