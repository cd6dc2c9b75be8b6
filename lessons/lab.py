"""The lab: a local web page where the learner types sentences and compares static, ELMo and BERT
vectors of one word across them, live.

`python -m lessons lab` loads the models once, starts a small HTTP server on 127.0.0.1 (a free
port unless --port says otherwise) and prints its address. On the page the learner types 2 to 8
sentences, picks a word that occurs in each, and sees:

- the cosine matrix of that word across the sentences, for every representation: GloVe 6B 50d
  (static), MiniLM's input word-piece embedding, its embedding output and each of its 6 layers,
  and ELMo's layer 0 (char-CNN), each biLSTM layer and an even scalar mix (Peters et al. 2018,
  Eq. 1 with s_j = 0, gamma = 1: a task would learn its own weights);
- with a sense label typed beside each sentence, the "sense separation" per representation:
  mean same-sense cosine minus mean different-sense cosine (lessons.common.sense_separation);
- the nearest neighbours of the word in each sentence among a fixed, seeded sample of MiniLM's
  whole-word vocabulary, each vocabulary word embedded on its own (no context), in the chosen
  representation;
- the sentence-embedding similarity matrix (minibert.SentenceEncoder);
- a link that opens the attention explorer for any one sentence.

A word made of several word pieces gets the mean of its pieces (lessons.common.bert_word_vectors).
The ELMo model is minielmo.DEFAULT_MODEL; the page labels the tiny allennlp test model as untrained.

The server is the standard library's ThreadingHTTPServer: the page needs three routes and one JSON
call, which a framework would not make shorter, and it keeps the lessons' dependencies as they
are. It serves one page from a fixed table (no file path ever comes from a request), limits the
body, the number and length of sentences, and runs the models under one lock.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import re
import signal
import socket
import sys
import threading
import time
from dataclasses import dataclass
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from importlib import resources
from urllib.parse import parse_qs, urlsplit

import numpy as np
import torch

from minibert.attention import explore

from .common import (
    DEFAULT_MODEL, LessonError, bert_word_vectors, cosine_matrix, elmo_word_vectors, find_word,
    load_bert, load_sentence_encoder, sense_separation, simple_words, word_piece_positions,
)

# ----------------------------------------------------------------------------- limits
MIN_SENTENCES, MAX_SENTENCES = 2, 8
MAX_SENTENCE_CHARS = 300  # about 50 words; far below MiniLM's 512 word pieces, so nothing is cut
MAX_WORD_CHARS = 40
MAX_SENSE_CHARS = 30
MAX_BODY_BYTES = 16 * 1024  # 8 sentences of 300 characters, JSON-escaped, fit with room to spare
# A client that sends a body over the limit still gets its 413: the server reads and drops up to
# this much first (closing a socket with unread data makes the kernel reset the connection, which
# can throw the answer away before the client reads it). Past this, it just closes.
MAX_DRAIN_BYTES = 1024 * 1024
SOCKET_TIMEOUT_S = 10  # a client that stops sending mid-request cannot hold a thread for longer

# ----------------------------------------------------------------------------- neighbours
VOCABULARY_SAMPLE = 2000  # words the neighbours are drawn from
VOCABULARY_SEED = 0
NEIGHBOURS = 5
EMBED_CHUNK = 256  # vocabulary words per model call when embedding the sample at start-up

LOOPBACK = {"127.0.0.1", "localhost", "::1"}
# One word as ELMo's tokenisation (common.simple_words) sees it: letters/digits, maybe 's or n't.
WORD_PATTERN = re.compile(r"\w+(?:'\w+)?")
PAGE = "lab.html"


class LabError(LessonError):
    """Input the lab refuses; the message is shown on the page as it is."""


def elmo_label(name: str) -> str:
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


def check_sentence(sentence, where: str) -> str:
    if not isinstance(sentence, str):
        raise LabError(f"{where} must be text, got {type(sentence).__name__}")
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


def unit_rows(x: np.ndarray) -> np.ndarray:
    return x / np.maximum(np.linalg.norm(x, axis=-1, keepdims=True), 1e-12)


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
        rows: dict[str, list[np.ndarray]] = {}
        for start in range(0, len(words), EMBED_CHUNK):
            chunk = words[start:start + EMBED_CHUNK]
            enc = self.tokenizer(chunk, return_offsets=True)
            out = self.bert(enc["input_ids"], attention_mask=enc["attention_mask"],
                            token_type_ids=enc["token_type_ids"], output_hidden_states=True)
            hidden = torch.stack(out.hidden_states)  # L+1 x (B, T, D) -> (L+1, B, T, D)
            table = self.bert.embeddings.word_embeddings.weight  # (V, D)
            for n, word in enumerate(chunk):
                pos = word_piece_positions(enc["offsets"][n], (0, len(word)))
                rows.setdefault("bert-input", []).append(table[enc["input_ids"][n, pos]].mean(0).numpy())
                for i in range(hidden.shape[0]):
                    rows.setdefault(f"bert-{i}", []).append(hidden[i, n, pos].mean(0).numpy())
            out = self.bilm(minielmo.batch_to_ids([[w] for w in chunk]))
            layers = [act[:, 1] for act in out["activations"]]  # L+1 x (B, 2P); position 0 is <S>
            for j, layer in enumerate(layers):
                rows.setdefault(f"elmo-{j}", []).extend(layer.numpy())
            rows.setdefault("elmo-mix", []).extend(self.scalar_mix(layers).numpy())
        table = {key: (torch.from_numpy(unit_rows(np.stack(found))), words) for key, found in rows.items()}
        if self.glove is not None:
            known = [w for w in words if w in self.glove]
            table["glove"] = (torch.from_numpy(unit_rows(np.stack([self.glove.vector(w) for w in known]))), known)
        return table

    def neighbours(self, key: str, vectors: np.ndarray, word: str) -> list[list[list]]:
        """Per sentence, the NEIGHBOURS sampled words closest (cosine) to the word's vector,
        leaving out the word itself."""
        unit, words = self.vocabulary_vectors[key]
        # torch, not numpy: numpy's threaded BLAS waited ~50 ms per call here on a busy 2-core machine
        scores = (torch.from_numpy(unit_rows(vectors)) @ unit.T).numpy()  # (N, D) @ (D, V) -> (N, V)
        found = []
        for row in scores:
            # one more than needed, in case the word itself is among them
            top = np.argpartition(-row, NEIGHBOURS)[:NEIGHBOURS + 1]
            top = top[np.argsort(-row[top], kind="stable")]
            best = [int(k) for k in top if words[k] != word.lower()][:NEIGHBOURS]
            found.append([[words[k], float(row[k])] for k in best])
        return found

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
            neighbours = {key: self.neighbours(key, v, request.word) for key, v in vectors.items()}
        reps = []
        for rep in self.representations():
            rep = dict(rep)
            if rep["key"] in vectors:
                rep["matrix"] = finite(cosine_matrix(vectors[rep["key"]]))
            else:
                rep["matrix"] = None
            rep["note"] = self._note(rep["key"], request.word)
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
            "neighbours": neighbours,
            "sentence_similarity": finite(cosine_matrix(sentence_vectors)),
            "seconds": time.perf_counter() - start,
        }

    def _note(self, key: str, word: str) -> str | None:
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
            return "built from the word's characters only: no context yet"
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
            "models": {"bert": DEFAULT_MODEL, "elmo": self.elmo_name, "elmo_label": elmo_label(self.elmo_name),
                       "glove": self.glove is not None, "glove_note": self.glove_note,
                       "vocabulary_sample": len(self.vocabulary), "vocabulary_seed": VOCABULARY_SEED},
            "representations": self.representations(),
            "example": {"word": "bank", "sentences": [s for s, _ in example], "senses": [k for _, k in example]},
        }


# ----------------------------------------------------------------------------- HTTP


class HttpError(Exception):
    def __init__(self, status: HTTPStatus, message: str):
        super().__init__(message)
        self.status = status


class LabHandler(BaseHTTPRequestHandler):
    """Routes: GET / (the page), GET /api/info, GET /explorer?sentence=..., POST /api/compare.
    Every error is a JSON {"error": message} with its HTTP status."""

    server_version = "minicontext-lab"
    timeout = SOCKET_TIMEOUT_S
    GET_ROUTES = ("/", "/api/info", "/explorer")
    POST_ROUTES = ("/api/compare",)

    lab: Lab  # set on the subclass make_server builds
    quiet = False

    def do_GET(self):
        self._dispatch("GET")

    def do_POST(self):
        self._dispatch("POST")

    def do_PUT(self):
        self._dispatch("PUT")

    def do_DELETE(self):
        self._dispatch("DELETE")

    def do_PATCH(self):
        self._dispatch("PATCH")

    def _dispatch(self, method: str) -> None:
        try:
            self._route(method)
        except HttpError as error:
            self._send_json({"error": str(error)}, error.status)
        except LabError as error:
            self._send_json({"error": str(error)}, HTTPStatus.BAD_REQUEST)
        except Exception as error:  # a bug, not bad input: say so, keep serving
            self.log_error("internal error on %s %s: %r", method, self.path, error)
            self._send_json({"error": f"internal error: {type(error).__name__}: {error}"},
                            HTTPStatus.INTERNAL_SERVER_ERROR)

    def _route(self, method: str) -> None:
        url = urlsplit(self.path)
        path = url.path
        # Exact matches only: nothing here maps a request path onto the file system.
        allowed = [m for m, routes in (("GET", self.GET_ROUTES), ("POST", self.POST_ROUTES)) if path in routes]
        if not allowed:
            raise HttpError(HTTPStatus.NOT_FOUND, f"no such page: {path[:80]!r}")
        if method not in allowed:
            self._allow = ", ".join(allowed)
            raise HttpError(HTTPStatus.METHOD_NOT_ALLOWED, f"{path} takes {' or '.join(allowed)}, not {method}")
        if path == "/":
            page = resources.files("lessons").joinpath(PAGE).read_bytes()
            self._send(page, "text/html; charset=utf-8")
        elif path == "/api/info":
            self._send_json(self.lab.info())
        elif path == "/explorer":
            try:
                query = parse_qs(url.query, max_num_fields=4)
            except ValueError:  # more fields than that
                raise HttpError(HTTPStatus.BAD_REQUEST, "give one sentence: /explorer?sentence=...") from None
            sentences = query.get("sentence", [])
            if len(sentences) != 1:
                raise HttpError(HTTPStatus.BAD_REQUEST, "give one sentence: /explorer?sentence=...")
            self._send(self.lab.explorer_html(sentences[0]).encode("utf-8"), "text/html; charset=utf-8")
        else:
            payload = self._read_json()
            self._send_json(self.lab.answer(parse_compare(payload)))

    def _read_json(self):
        if self.headers.get("Transfer-Encoding"):
            raise HttpError(HTTPStatus.LENGTH_REQUIRED, "send the body with a Content-Length, not chunked")
        length = self.headers.get("Content-Length")
        if length is None:
            raise HttpError(HTTPStatus.LENGTH_REQUIRED, "a POST needs a Content-Length header")
        try:
            size = int(length)
        except ValueError:
            raise HttpError(HTTPStatus.BAD_REQUEST, f"Content-Length {length[:20]!r} is not a number") from None
        if size < 0:
            raise HttpError(HTTPStatus.BAD_REQUEST, "Content-Length is negative")
        if size > MAX_BODY_BYTES:
            self._drain = size
            raise HttpError(HTTPStatus.REQUEST_ENTITY_TOO_LARGE,
                            f"the request is {size} bytes; the lab takes at most {MAX_BODY_BYTES} "
                            f"({MAX_SENTENCES} sentences of {MAX_SENTENCE_CHARS} characters fit)")
        if self.headers.get_content_type() != "application/json":
            # Also keeps other web sites from posting here: a cross-origin JSON POST needs a CORS
            # preflight, which this server never grants.
            self._drain = size
            raise HttpError(HTTPStatus.UNSUPPORTED_MEDIA_TYPE, "send the body as application/json")
        try:
            body = self.rfile.read(size)
        except TimeoutError:
            raise HttpError(HTTPStatus.REQUEST_TIMEOUT, f"the body did not arrive within {self.timeout} s") from None
        if len(body) < size:
            raise HttpError(HTTPStatus.BAD_REQUEST, f"the body ended after {len(body)} of {size} bytes")
        try:
            return json.loads(body.decode("utf-8"))
        except UnicodeDecodeError:
            raise HttpError(HTTPStatus.BAD_REQUEST, "the body is not UTF-8 text") from None
        except ValueError as error:
            raise HttpError(HTTPStatus.BAD_REQUEST, f"the body is not valid JSON: {error}") from None
        except RecursionError:
            raise HttpError(HTTPStatus.BAD_REQUEST, "the body is not valid JSON: nested too deeply") from None

    def _send_json(self, payload, status: HTTPStatus = HTTPStatus.OK) -> None:
        self._send(json.dumps(payload, allow_nan=False).encode("utf-8"), "application/json", status)

    def _send(self, body: bytes, content_type: str, status: HTTPStatus = HTTPStatus.OK) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        self.send_header("X-Content-Type-Options", "nosniff")
        if status == HTTPStatus.METHOD_NOT_ALLOWED:
            self.send_header("Allow", getattr(self, "_allow", "GET"))
        self.end_headers()
        self.wfile.write(body)
        self.wfile.flush()
        drain = min(getattr(self, "_drain", 0), MAX_DRAIN_BYTES)
        while drain > 0:  # see MAX_DRAIN_BYTES
            try:
                chunk = self.rfile.read1(min(drain, 65536))
            except OSError:
                break
            if not chunk:
                break
            drain -= len(chunk)

    def log_message(self, format, *args):
        if not self.quiet:
            super().log_message(format, *args)


def make_server(lab: Lab, host: str = "127.0.0.1", port: int = 0, quiet: bool = False) -> ThreadingHTTPServer:
    """A bound, not yet serving, server for `lab`; port 0 picks a free port (server.server_port)."""
    handler = type("BoundLabHandler", (LabHandler,), {"lab": lab, "quiet": quiet})
    server_class = ThreadingHTTPServer
    if ":" in host:
        server_class = type("ThreadingHTTPServerV6", (ThreadingHTTPServer,), {"address_family": socket.AF_INET6})
    server = server_class((host, port), handler)
    server.daemon_threads = True  # Ctrl-C does not wait for a slow client
    return server


@contextlib.contextmanager
def serving(lab: Lab, host: str = "127.0.0.1", port: int = 0, quiet: bool = True):
    """Serve `lab` from a background thread for the duration of a `with` block (a notebook or a
    test keeps its own thread free); yields the server, whose address() is the page's URL."""
    server = make_server(lab, host, port, quiet=quiet)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()


def address(server: ThreadingHTTPServer) -> str:
    host, port = server.server_address[:2]
    return f"http://[{host}]:{port}/" if ":" in host else f"http://{host}:{port}/"


def bind_warning(host: str) -> str | None:
    if host in LOOPBACK:
        return None
    return (f"warning: binding to {host} lets other machines reach the lab; it has no "
            "authentication and runs the models for anyone who connects")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m lessons lab",
                                     description="Start the lab: a local page to compare GloVe, ELMo "
                                                 "and BERT vectors of one word across your sentences.")
    parser.add_argument("--port", type=int, default=0, help="port to listen on (default: a free one)")
    parser.add_argument("--host", default="127.0.0.1",
                        help="address to bind (default 127.0.0.1: only this machine can connect)")
    parser.add_argument("--quiet", action="store_true", help="do not log each request")
    parser.add_argument("--threads", type=int, default=1,
                        help="torch threads (default 1: a request is a handful of short sentences, "
                             "and on a busy machine a second thread mostly waits for a core)")
    args = parser.parse_args(argv)
    if args.threads < 1:
        parser.error("--threads must be at least 1")
    torch.set_num_threads(args.threads)
    if not 0 <= args.port <= 65535:
        parser.error(f"--port {args.port} is out of range 0-65535")
    if threading.current_thread() is threading.main_thread():
        # Ctrl-C stops the lab even when its shell started it with SIGINT ignored (a background
        # job), and `kill` (SIGTERM) takes the same clean way out.
        signal.signal(signal.SIGINT, signal.default_int_handler)
        signal.signal(signal.SIGTERM, signal.default_int_handler)
    warning = bind_warning(args.host)
    if warning:
        print(warning, file=sys.stderr)
    try:
        print("loading GloVe, MiniLM, the sentence encoder and ELMo ...", flush=True)
        lab = Lab()
        try:
            server = make_server(lab, args.host, args.port, args.quiet)
        except OSError as error:
            print(f"error: cannot listen on {args.host}:{args.port}: {error.strerror or error}", file=sys.stderr)
            return 2
        with server:
            print(f"lab running at {address(server)}  (Ctrl-C to stop)", flush=True)
            try:
                server.serve_forever()
            except KeyboardInterrupt:
                pass
    except KeyboardInterrupt:
        pass
    print("\nlab stopped", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
