"""BERT's WordPiece tokenizer: the `tokenizers` library's pipeline, set up and called as transformers does.

B batch · T tokens (word pieces, [CLS]/[SEP]/[PAD] included)

Devlin et al. 2019 §3 ("Input/Output Representations"): text is cut into WordPiece units from a
30k vocabulary, framed as `[CLS] A [SEP]` (or `[CLS] A [SEP] B [SEP]` for a pair, with token type
0 for A and 1 for B), and padded with [PAD] to a rectangle whose attention mask is 0 on padding.

We do not re-implement WordPiece here (the tokenizer is not this project's lesson): the Rust
`tokenizers` library does the splitting, exactly as `transformers` does. This file only
  - builds that pipeline from `tokenizer.json`, or from `vocab.txt` + `tokenizer_config.json` the
    way transformers' `BertConverter` does when a checkpoint has no tokenizer.json (and, as
    transformers' BertTokenizer does, takes the normaliser from the config flags either way);
  - reproduces `AutoTokenizer(...)(texts, padding=..., truncation=..., max_length=...,
    return_tensors="pt")`'s padding and truncation rules;
  - exposes the word pieces and their character offsets, for teaching.

Checked against transformers 5.24 (`TokenizersBackend`, `convert_slow_tokenizer.BertConverter`)
with tokenizers 0.23. Left out: stride/overflowing tokens, pad_to_multiple_of,
pre-tokenized input.
"""

from __future__ import annotations

import json
import re
import threading
from collections import OrderedDict
from pathlib import Path

import torch
from tokenizers import AddedToken, decoders, normalizers, pre_tokenizers, processors
from tokenizers import Tokenizer as RustTokenizer

from tokenizers.models import WordPiece

from weights.common import read_json, read_optional_json, side_file

_PADDING = {True: "longest", "longest": "longest", "max_length": "max_length", False: None, "do_not_pad": None}
RETURN_TENSORS = ("pt", "np", None)
_TRUNCATION = {
    True: "longest_first",
    "longest_first": "longest_first",
    "only_first": "only_first",
    "only_second": "only_second",
    False: None,
    "do_not_truncate": None,
}


def _token_text(value) -> str:
    """Special tokens are plain strings in old configs and AddedToken dicts in newer ones."""
    return value["content"] if isinstance(value, dict) else value


def _check_texts(texts, name: str) -> list[str]:
    if isinstance(texts, str):
        return [texts]  # one text is a batch of one, as with transformers
    if not isinstance(texts, (list, tuple)):
        raise TypeError(f"{name} must be a str or a list of str, got {type(texts).__name__}")
    for i, text in enumerate(texts):
        if not isinstance(text, str):
            raise TypeError(f"{name}[{i}] is {type(text).__name__} ({text!r:.40}), expected str")
    return list(texts)


_SURROGATE = re.compile("[\ud800-\udfff]")
# How many configured copies of the Rust tokenizer (one per padding/truncation setting) a Tokenizer
# keeps; a caller cycling through more max_length values than this rebuilds copies (each as costly
# as reading tokenizer.json again).
CONFIGURED_BACKENDS = 8


def check_unicode(texts: list[str], name: str, start: int = 0) -> None:
    """A lone surrogate (what Python makes of command-line or file bytes that are not UTF-8) is
    not text the tokenizer can read: say which text and where, instead of its TypeError."""
    for i, text in enumerate(texts):
        found = _SURROGATE.search(text)
        if found:
            raise ValueError(
                f"{name}[{start + i}] holds a lone surrogate {found.group()!r} at character {found.start()}, which is "
                f"not valid Unicode (were non-UTF-8 bytes decoded with surrogateescape?); clean it first, "
                f"e.g. text.encode('utf-8', 'replace').decode('utf-8')"
            )


def _bert_normalizer(config: dict) -> normalizers.BertNormalizer:
    """BertNormalizer from tokenizer_config.json's flags, with transformers' BertTokenizer defaults.

    It drops control chars and maps whitespace to " " (clean_text), puts spaces around CJK
    ideographs so each becomes its own word, optionally lowercases and strips accents
    (strip_accents=None means "follow lowercase", as in BERT's original BasicTokenizer)."""
    return normalizers.BertNormalizer(
        clean_text=True,
        handle_chinese_chars=config.get("tokenize_chinese_chars", True),
        strip_accents=config.get("strip_accents"),
        lowercase=config.get("do_lower_case", True),
    )


def _transformers_class(directory: Path, config: dict) -> str | None:
    """The tokenizer class AutoTokenizer (transformers 5.24) picks here, "Fast" suffix dropped:
    tokenizer_config.json's tokenizer_class, else config.json's tokenizer_class, else the class
    registered for config.json's model_type (BertTokenizer for "bert"). None: the generic backend,
    which uses tokenizer.json as it is."""
    name = config.get("tokenizer_class")
    model_config_file = directory / "config.json"
    if name is None and side_file(model_config_file):
        model_config = read_json(model_config_file)
        name = model_config.get("tokenizer_class") or ("BertTokenizer" if model_config.get("model_type") == "bert" else None)
    return name.removesuffix("Fast") if isinstance(name, str) else None


class Tokenizer:
    """Text -> input_ids / attention_mask / token_type_ids, identical to transformers' BERT tokenizer.

    Safe to share between threads. transformers sets padding and truncation on its one Rust
    tokenizer before every call, so two threads with different settings can tokenize with each
    other's. Here `backend` is a template that calls never reconfigure: each setting (max_length,
    padding, truncation, sides) gets its own configured copy, made on first use and cached.
    Change the template (its normaliser) before sharing the tokenizer, or call
    `lowercase_before_normalizing`, which drops the cached copies."""

    def __init__(
        self,
        backend: RustTokenizer,
        pad_token: str = "[PAD]",
        model_max_length: int | None = None,
        padding_side: str = "right",
        truncation_side: str = "right",
    ):
        self.backend = backend
        self.pad_token = pad_token
        self.pad_token_id = backend.token_to_id(pad_token)
        if self.pad_token_id is None:
            raise ValueError(f"pad token {pad_token!r} is not in the vocabulary")
        self.model_max_length = model_max_length  # None: no limit unless the caller gives max_length
        for name, side in (("padding_side", padding_side), ("truncation_side", truncation_side)):
            if side not in ("right", "left"):
                raise ValueError(f"{name} must be 'right' or 'left', got {side!r}")
        self.padding_side = padding_side  # where [PAD]s go
        self.truncation_side = truncation_side  # which end of a too-long text is cut
        self.lowercase_first = False  # see lowercase_before_normalizing
        self.init_config: dict = {}  # tokenizer_config.json as read (from_pretrained), written back by save_pretrained
        self._configured: OrderedDict[tuple, RustTokenizer] = OrderedDict()  # setting -> copy, LRU
        self._configured_lock = threading.Lock()

    # ----- construction ---------------------------------------------------------------------------

    @classmethod
    def from_pretrained(cls, name_or_dir: str | Path) -> Tokenizer:
        """Load from a directory, or from a model name that `weights.resolve` knows (no network)."""
        directory = Path(name_or_dir)
        if not directory.is_dir():
            # Imported here so the tokenizer stays usable on a plain directory without weights/.
            from weights import resolve

            directory = resolve(name_or_dir)
        config_file = directory / "tokenizer_config.json"
        config = read_optional_json(config_file)
        pad_token = _token_text(config.get("pad_token", "[PAD]"))
        # transformers uses a huge sentinel (int(1e30)) when the config names no limit; we use None.
        model_max_length = config.get("model_max_length")
        if not isinstance(model_max_length, int) or model_max_length >= 10**20:
            model_max_length = None

        if side_file(directory / "tokenizer.json"):
            tokenizer_file = directory / "tokenizer.json"
            try:
                backend = RustTokenizer.from_file(str(tokenizer_file))
            except Exception as error:  # the Rust library raises a bare Exception
                raise ValueError(f"{tokenizer_file}: not a tokenizer.json the tokenizers library can read "
                                 f"({str(error).splitlines()[0] if str(error) else type(error).__name__})") from None
            if _transformers_class(directory, config) == "BertTokenizer":
                # transformers 5.24's BertTokenizer takes only the vocabulary (and post-processor,
                # padding, truncation) from tokenizer.json and rebuilds the normaliser and
                # pre-tokenizer from tokenizer_config.json's flags (do_lower_case defaults to True),
                # so where the two files disagree, the flags win. Do the same.
                backend.normalizer = _bert_normalizer(config)
                backend.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
        elif side_file(directory / "vocab.txt"):
            backend = cls._wordpiece_from_vocab(directory / "vocab.txt", config)
        else:
            raise FileNotFoundError(
                f"no tokenizer in {directory}: expected tokenizer.json, or vocab.txt "
                f"(+ tokenizer_config.json)"
            )
        # As in transformers: the sides come from tokenizer_config.json, else from the padding and
        # truncation settings saved in tokenizer.json, else "right".
        saved_padding, saved_truncation = backend.padding or {}, backend.truncation or {}
        tokenizer = cls(
            backend,
            pad_token=pad_token,
            model_max_length=model_max_length,
            padding_side=config.get("padding_side", saved_padding.get("direction", "right")),
            truncation_side=config.get("truncation_side", saved_truncation.get("direction", "right")),
        )
        tokenizer.init_config = config
        return tokenizer

    def save_pretrained(self, directory: str | Path) -> None:
        """Write tokenizer.json and tokenizer_config.json, which from_pretrained and transformers'
        AutoTokenizer read back into this tokenizer. (`lowercase_before_normalizing` is a
        sentence-transformers setting: SentenceEncoder.save writes it to sentence_bert_config.json.)"""
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        self.backend.save(str(directory / "tokenizer.json"))
        config = {"pad_token": self.pad_token, "padding_side": self.padding_side,
                  "truncation_side": self.truncation_side, **self.init_config}
        if self.model_max_length is not None:
            config["model_max_length"] = self.model_max_length
        (directory / "tokenizer_config.json").write_text(json.dumps(config, indent=2), encoding="utf-8")

    @staticmethod
    def _wordpiece_from_vocab(vocab_file: Path, config: dict) -> RustTokenizer:
        """The BERT pipeline from a vocab file, as transformers' `BertConverter` builds it."""
        cls_token = _token_text(config.get("cls_token", "[CLS]"))
        sep_token = _token_text(config.get("sep_token", "[SEP]"))
        unk_token = _token_text(config.get("unk_token", "[UNK]"))
        pad_token = _token_text(config.get("pad_token", "[PAD]"))
        mask_token = _token_text(config.get("mask_token", "[MASK]"))

        # One word piece per line; the line number is the id.
        lines = vocab_file.read_text(encoding="utf-8").split("\n")
        if lines and lines[-1] == "":
            lines.pop()  # the file's final newline ends the last line; it is not an empty token
        vocab = {token: i for i, token in enumerate(lines)}
        for token in (cls_token, sep_token, unk_token, pad_token):
            if token not in vocab:
                raise ValueError(f"{vocab_file}: special token {token!r} is missing from the vocabulary")

        backend = RustTokenizer(WordPiece(vocab, unk_token=unk_token, max_input_chars_per_word=100))
        backend.normalizer = _bert_normalizer(config)
        backend.pre_tokenizer = pre_tokenizers.BertPreTokenizer()  # split on whitespace and punctuation
        backend.post_processor = processors.TemplateProcessing(
            single=f"{cls_token}:0 $A:0 {sep_token}:0",
            pair=f"{cls_token}:0 $A:0 {sep_token}:0 $B:1 {sep_token}:1",
            special_tokens=[(cls_token, vocab[cls_token]), (sep_token, vocab[sep_token])],
        )
        backend.decoder = decoders.WordPiece(prefix="##")
        # Special tokens written in the text ("[MASK]") stay whole; they are matched before
        # normalisation (normalized=False), so lowercasing cannot break them.
        specials = [t for t in (pad_token, unk_token, cls_token, sep_token, mask_token) if t in vocab]
        backend.add_special_tokens([AddedToken(t, special=True, normalized=False) for t in specials])
        return backend

    def lowercase_before_normalizing(self) -> None:
        """Lowercase every text first, whatever the tokenizer's own normaliser does.

        For sentence_bert_config.json's `do_lower_case: true`: sentence-transformers 6.2 puts a
        Lowercase step in front of the tokenizer's normaliser, rather than lowercasing the text, so
        special tokens written in the text ("[MASK]") still match and offsets still point into the
        original text. We do the same.
        """
        self.lowercase_first = True  # the configured copies get the Lowercase step; the template stays as loaded
        with self._configured_lock:
            self._configured.clear()  # the copies were made without it

    # ----- encoding -------------------------------------------------------------------------------

    @property
    def vocab_size(self) -> int:
        return self.backend.get_vocab_size(with_added_tokens=True)

    def convert_ids_to_tokens(self, ids) -> list[str]:
        return [self.backend.id_to_token(int(i)) for i in ids]

    def __call__(
        self,
        texts: str | list[str],
        text_pairs: str | list[str] | None = None,
        max_length: int | None = None,
        padding: bool | str = True,
        truncation: bool | str = True,
        return_offsets: bool = False,
        return_tensors: str | None = "pt",
    ) -> dict:
        """Tokenize a batch of texts (or text pairs) into (B, T) LongTensors.

        Same rules as transformers: padding=True/"longest" pads to the longest text in the batch,
        "max_length" to `max_length` (default: model_max_length), False not at all (then every text
        must have the same length to make a tensor). truncation=True/"longest_first" cuts to
        `max_length` (default: model_max_length), special tokens included.

        Returns a dict with "input_ids", "token_type_ids", "attention_mask" and, when
        return_offsets, "tokens" (the word pieces per text, [CLS]/[SEP]/[PAD] included) and
        "offsets" ((start, end) character spans into the text; (0, 0) for special tokens and pad).
        return_tensors: "pt" (LongTensor (B, T)), "np" (int64 array (B, T)) or None (lists of
        ids per text, which may differ in length when padding=False).
        NOTE (deviation): transformers defaults to padding=False, truncation=False and
        return_tensors=None; the defaults here give a model-ready batch.
        """
        if return_tensors not in RETURN_TENSORS:
            raise ValueError(f"return_tensors must be one of {list(RETURN_TENSORS)}, got {return_tensors!r}")
        texts = _check_texts(texts, "texts")
        if text_pairs is not None:
            text_pairs = _check_texts(text_pairs, "text_pairs")
            if len(text_pairs) != len(texts):
                raise ValueError(f"got {len(texts)} texts but {len(text_pairs)} text_pairs; they pair up one to one")
        if padding not in _PADDING:
            raise ValueError(f"padding must be one of {list(_PADDING)}, got {padding!r}")
        limit = self._length_limit(truncation, max_length)

        backend = self._backend_for(limit, _PADDING[padding], _TRUNCATION[truncation], is_pair=text_pairs is not None)
        inputs = texts if text_pairs is None else list(zip(texts, text_pairs))
        try:
            encodings = self._encode_batch(backend, inputs)
        except Exception as error:  # the Rust library raises a bare Exception
            if "Truncation error" not in str(error):
                raise
            # e.g. truncation="only_first" when the second text alone is longer than max_length.
            raise ValueError(f"cannot truncate to max_length={limit} with truncation={truncation!r}: {error}") from None

        if return_tensors is None:
            batch = {"input_ids": [e.ids for e in encodings], "token_type_ids": [e.type_ids for e in encodings],
                     "attention_mask": [e.attention_mask for e in encodings]}
            return self._with_offsets(batch, encodings) if return_offsets else batch
        lengths = {len(e.ids) for e in encodings}
        if len(lengths) > 1:
            raise ValueError(
                f"the texts have different lengths {sorted(lengths)} in word pieces and cannot form one "
                f"tensor; use padding=True (or truncation with padding='max_length')"
            )
        T = lengths.pop() if lengths else 0
        batch = {
            "input_ids": torch.tensor([e.ids for e in encodings], dtype=torch.long).reshape(len(encodings), T),
            "token_type_ids": torch.tensor([e.type_ids for e in encodings], dtype=torch.long).reshape(len(encodings), T),
            "attention_mask": torch.tensor([e.attention_mask for e in encodings], dtype=torch.long).reshape(len(encodings), T),
        }
        if return_tensors == "np":
            batch = {name: tensor.numpy() for name, tensor in batch.items()}
        return self._with_offsets(batch, encodings) if return_offsets else batch

    @staticmethod
    def _with_offsets(batch: dict, encodings) -> dict:
        batch["tokens"] = [list(e.tokens) for e in encodings]
        batch["offsets"] = [[tuple(span) for span in e.offsets] for e in encodings]
        return batch

    def tokenize(self, text: str, pair: str | None = None, add_special_tokens: bool = False) -> list[str]:
        """One text (or pair) -> its word pieces, as transformers' `tokenizer.tokenize`: no [CLS]/[SEP]
        unless add_special_tokens, and no truncation."""
        for name, value in (("text", text), ("pair", pair)):
            if value is not None and not isinstance(value, str):
                raise TypeError(f"{name} must be a str, got {type(value).__name__}")
        backend = self._backend_for(None, None, None, is_pair=pair is not None)
        check_unicode([text] if pair is None else [text, pair], "text")
        return list(backend.encode(text, pair, add_special_tokens=add_special_tokens).tokens)

    def decode(self, ids, skip_special_tokens: bool = False) -> str:
        """Token ids (a list, a 1-D tensor or array, or one int) -> text, as transformers decodes:
        word pieces joined ("##" continuations glued on), lowercased text stays lowercased."""
        if isinstance(ids, int):
            ids = [ids]
        ids = [int(i) for i in (ids.tolist() if hasattr(ids, "tolist") else ids)]
        bad = [i for i in ids if not 0 <= i < self.vocab_size]
        if bad:
            raise ValueError(f"cannot decode id {bad[0]}: outside the vocabulary [0, {self.vocab_size})")
        return self.backend.decode(ids, skip_special_tokens=skip_special_tokens)

    def batch_decode(self, sequences, skip_special_tokens: bool = False) -> list[str]:
        """A batch of id sequences ((B, T) tensor or lists) -> B texts."""
        return [self.decode(ids, skip_special_tokens=skip_special_tokens) for ids in sequences]

    def encode_each(self, texts: list[str], max_length: int | None = None, truncation: bool | str = True) -> list[list[int]]:
        """Word-piece ids per text ([CLS] ... [SEP]), truncated as `__call__` truncates, not padded.

        With `pad`, this splits `__call__(texts)` in two, so a caller can first learn every text's
        length and then group texts of similar length into batches (SentenceEncoder.encode does)."""
        texts = _check_texts(texts, "texts")
        limit = self._length_limit(truncation, max_length)
        backend = self._backend_for(limit, None, _TRUNCATION[truncation], is_pair=False)
        return [encoding.ids for encoding in self._encode_batch(backend, texts)]

    def _length_limit(self, truncation, max_length) -> int | None:
        """The length `truncation` cuts to: max_length, else model_max_length; both arguments checked."""
        if truncation not in _TRUNCATION:
            raise ValueError(f"truncation must be one of {list(_TRUNCATION)}, got {truncation!r}")
        if max_length is not None and (not isinstance(max_length, int) or max_length <= 0):
            raise ValueError(f"max_length must be a positive int or None, got {max_length!r}")
        return max_length if max_length is not None else self.model_max_length

    def pad(self, id_lists: list[list[int]]) -> dict:
        """Single-text id lists (from `encode_each`) -> the dict `__call__(..., padding=True)` returns.

        Pads with [PAD] to the longest list, on `padding_side`; token type 0 everywhere (one text
        per row, and transformers pads token types with 0)."""
        T = max((len(ids) for ids in id_lists), default=0)
        left = self.padding_side == "left"
        rows, mask = [], []
        for ids in id_lists:
            fill = T - len(ids)
            rows.append([self.pad_token_id] * fill + ids if left else ids + [self.pad_token_id] * fill)
            mask.append([0] * fill + [1] * len(ids) if left else [1] * len(ids) + [0] * fill)
        input_ids = torch.tensor(rows, dtype=torch.long).reshape(len(rows), T)  # (B, T)
        return {
            "input_ids": input_ids,
            "token_type_ids": torch.zeros_like(input_ids),
            "attention_mask": torch.tensor(mask, dtype=torch.long).reshape(len(rows), T),
        }

    @staticmethod
    def _encode_batch(backend: RustTokenizer, inputs: list) -> list:
        try:
            return backend.encode_batch(inputs, add_special_tokens=True)
        except TypeError:  # the library's only words for a lone surrogate: "TextEncodeInput must be ..."
            pairs = bool(inputs) and isinstance(inputs[0], tuple)
            check_unicode([item[0] for item in inputs] if pairs else inputs, "texts")
            if pairs:
                check_unicode([item[1] for item in inputs], "text_pairs")
            raise

    def _backend_for(self, limit: int | None, padding: str | None, truncation: str | None,
                     is_pair: bool) -> RustTokenizer:
        """The Rust tokenizer configured for this setting: a cached copy of `backend`, never
        reconfigured once made, so that concurrent calls with other settings cannot change it."""
        truncate = truncation is not None and limit is not None
        if truncate:
            specials = self.backend.num_special_tokens_to_add(is_pair)
            # NOTE (deviation): below this, the tokenizers library silently skips truncation and
            # transformers passes that through; we refuse rather than return an untruncated batch.
            if limit < specials:
                raise ValueError(
                    f"max_length={limit} leaves no room for text: {specials} special tokens are added "
                    f"to each {'pair' if is_pair else 'text'}"
                )
        if padding == "max_length" and limit is None:
            raise ValueError("padding='max_length' needs max_length: this tokenizer has no model_max_length")
        key = (limit if truncate or padding == "max_length" else None, padding, truncation if truncate else None,
               self.padding_side, self.truncation_side, self.lowercase_first)
        with self._configured_lock:
            backend = self._configured.get(key)
            if backend is not None:
                self._configured.move_to_end(key)
                return backend
        backend = RustTokenizer.from_str(self.backend.to_str())  # a copy: settings never leak back
        if self.lowercase_first:
            current = backend.normalizer
            backend.normalizer = normalizers.Sequence([normalizers.Lowercase()] + ([current] if current is not None else []))
        if truncate:
            backend.enable_truncation(limit, strategy=truncation, direction=self.truncation_side)
        else:
            backend.no_truncation()
        if padding is None:
            backend.no_padding()
        else:
            backend.enable_padding(pad_id=self.pad_token_id, pad_token=self.pad_token,
                                   length=limit if padding == "max_length" else None, direction=self.padding_side)
        with self._configured_lock:
            self._configured[key] = backend
            while len(self._configured) > CONFIGURED_BACKENDS:
                self._configured.popitem(last=False)
        return backend
