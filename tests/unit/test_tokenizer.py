"""minibert.Tokenizer against transformers.AutoTokenizer on the all-MiniLM-L6-v2 files."""

import json
import shutil

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from transformers import AutoTokenizer

from minibert import Tokenizer

KEYS = ("input_ids", "token_type_ids", "attention_mask")

CORPUS = [
    "The bank approved my loan application.",
    "",
    "   \t\n ",
    "Héllo WÖRLD, naïve café résumé!",
    "机器学习很有趣。日本語のテキスト",
    "emoji 😀🚀 and flags 🇫🇷 and a zero\u200bwidth joiner",
    "[MASK] is special but [mask] and [ CLS ] are not; [SEP][PAD][UNK]",
    "e\u0301 combining accents, ﬁ ligature, Ａ full-width, \x00 nul, \x7f del",
    "unbelievably " * 30 + "supercalifragilisticexpialidocious" * 5,
    "word " * 600,  # far beyond the 512-token model_max_length
]
PAIRS = ["a short second text", "", "机器", "word " * 300, "x", "", "[MASK]", "y y y", "z", "é"]


@pytest.fixture(scope="module")
def ours(minilm_dir):
    return Tokenizer.from_pretrained(minilm_dir)


@pytest.fixture(scope="module")
def reference(minilm_dir):
    return AutoTokenizer.from_pretrained(str(minilm_dir))


def assert_same_ids(ours_batch, reference_batch):
    for key in KEYS:
        # Token ids are integers: they must be identical, so the tolerance is zero.
        torch.testing.assert_close(ours_batch[key], reference_batch[key], rtol=0, atol=0, msg=lambda m: f"{key}: {m}")


@pytest.mark.parametrize(
    "options",
    [
        dict(padding=True, truncation=True),
        dict(padding="longest", truncation="longest_first", max_length=16),
        dict(padding="max_length", truncation=True, max_length=40),
        dict(padding="max_length", truncation=True),  # pads to model_max_length (512)
        dict(padding=True, truncation=True, max_length=2),  # [CLS] [SEP] only
        dict(padding=True, truncation=False),
    ],
    ids=str,
)
def test_batch_matches_auto_tokenizer(ours, reference, options):
    assert_same_ids(ours(CORPUS, **options), reference(CORPUS, return_tensors="pt", **options))


@pytest.mark.parametrize("truncation", [True, "only_first", "only_second"])
def test_pairs_match_auto_tokenizer(ours, reference, truncation):
    options = dict(padding=True, truncation=truncation, max_length=24)
    # only_first / only_second cannot shorten a pair whose *other* text alone overflows, so the
    # untouched side is kept short there.
    texts = [t[:20] for t in CORPUS] if truncation == "only_second" else CORPUS
    pairs = [t[:20] for t in PAIRS] if truncation == "only_first" else PAIRS
    assert_same_ids(ours(texts, pairs, **options), reference(texts, pairs, return_tensors="pt", **options))


def test_single_string_is_a_batch_of_one(ours, reference):
    assert_same_ids(ours("One text."), reference("One text.", return_tensors="pt"))


def test_padding_false_with_equal_lengths_gives_tensors(ours, reference):
    texts = ["same length", "also same"]
    assert_same_ids(ours(texts, padding=False), reference(texts, padding=False, return_tensors="pt"))


def test_tokens_and_offsets_match_auto_tokenizer(ours, reference):
    batch = ours(CORPUS[:8], return_offsets=True)
    expected = reference(CORPUS[:8], padding=True, truncation=True, return_offsets_mapping=True)
    assert batch["tokens"] == [reference.convert_ids_to_tokens(ids) for ids in expected["input_ids"]]
    assert batch["offsets"] == [[tuple(span) for span in spans] for spans in expected["offset_mapping"]]
    # Teaching view: each word piece's span points at the text it came from.
    tokens, offsets = batch["tokens"][3], batch["offsets"][3]
    assert tokens[1] == "hello" and CORPUS[3][slice(*offsets[1])] == "Héllo"
    assert tokens[0] == "[CLS]" and offsets[0] == (0, 0)


def test_long_text_is_truncated_to_model_max_length(ours):
    assert ours.model_max_length == 512  # from tokenizer_config.json
    batch = ours(["word " * 600])
    assert batch["input_ids"].shape == (1, 512)
    assert batch["input_ids"][0, -1].item() == 102  # [SEP] survives truncation


# ----- property-based: arbitrary unicode --------------------------------------------------------

# Random unicode (every category except surrogates, which Python strings can hold but UTF-8 cannot)
# mixed with pieces that exercise BERT's special rules: special tokens, CJK, accents, emoji, ##.
_PIECES = st.sampled_from(["[MASK]", "[CLS]", "[mask]", "中文", "é", "e\u0301", "😀", "##ing", " ", "\t", "\u3000"])
_TEXT = st.lists(st.one_of(st.text(max_size=12), _PIECES), max_size=8).map("".join)
_SETTINGS = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


@_SETTINGS
@given(texts=st.lists(_TEXT, min_size=1, max_size=4))
def test_arbitrary_unicode_matches_auto_tokenizer(ours, reference, texts):
    assert_same_ids(ours(texts), reference(texts, padding=True, truncation=True, return_tensors="pt"))


@_SETTINGS
@given(pairs=st.lists(st.tuples(_TEXT, _TEXT), min_size=1, max_size=3), max_length=st.integers(3, 20))
def test_arbitrary_unicode_pairs_match_auto_tokenizer(ours, reference, pairs, max_length):
    firsts, seconds = [a for a, _ in pairs], [b for _, b in pairs]
    assert_same_ids(
        ours(firsts, seconds, max_length=max_length),
        reference(firsts, seconds, max_length=max_length, padding=True, truncation=True, return_tensors="pt"),
    )


# ----- building WordPiece from vocab.txt when there is no tokenizer.json -------------------------


@pytest.fixture(scope="module")
def vocab_only_dir(minilm_dir, tmp_path_factory):
    directory = tmp_path_factory.mktemp("vocab_only")
    for name in ("vocab.txt", "tokenizer_config.json"):
        shutil.copy(minilm_dir / name, directory / name)
    return directory


@pytest.fixture(scope="module")
def from_vocab(vocab_only_dir):
    return Tokenizer.from_pretrained(vocab_only_dir)


def test_vocab_built_pipeline_equals_tokenizer_json(ours, from_vocab):
    assert from_vocab.model_max_length == ours.model_max_length
    for options in (dict(), dict(max_length=16), dict(padding="max_length", max_length=40)):
        assert_same_ids(from_vocab(CORPUS, **options), ours(CORPUS, **options))
    assert_same_ids(from_vocab(CORPUS, PAIRS, max_length=24), ours(CORPUS, PAIRS, max_length=24))


@_SETTINGS
@given(texts=st.lists(_TEXT, min_size=1, max_size=4))
def test_vocab_built_pipeline_equals_tokenizer_json_on_arbitrary_unicode(ours, from_vocab, texts):
    assert_same_ids(from_vocab(texts), ours(texts))


def test_vocab_built_pipeline_follows_config_flags(minilm_dir, tmp_path):
    """Cased, accent-keeping, no CJK splitting: the config flags reach the normaliser."""
    shutil.copy(minilm_dir / "vocab.txt", tmp_path / "vocab.txt")
    config = json.loads((minilm_dir / "tokenizer_config.json").read_text())
    config.update(do_lower_case=False, strip_accents=False, tokenize_chinese_chars=False)
    (tmp_path / "tokenizer_config.json").write_text(json.dumps(config))
    reference = AutoTokenizer.from_pretrained(str(tmp_path))
    assert_same_ids(Tokenizer.from_pretrained(tmp_path)(CORPUS), reference(CORPUS, padding=True, truncation=True, return_tensors="pt"))


# ----- bad input gets a clear error --------------------------------------------------------------


def test_non_string_text_names_its_index(ours):
    with pytest.raises(TypeError, match=r"texts\[2\] is int"):
        ours(["a", "b", 3])
    with pytest.raises(TypeError, match=r"text_pairs\[0\] is NoneType"):
        ours(["a"], [None])
    with pytest.raises(TypeError, match="texts must be a str or a list of str"):
        ours(b"bytes are not text")


def test_pairs_length_mismatch(ours):
    with pytest.raises(ValueError, match="got 2 texts but 1 text_pairs"):
        ours(["a", "b"], ["c"])


@pytest.mark.parametrize(
    "options,message",
    [
        (dict(padding="longest_first"), "padding must be one of"),
        (dict(truncation="shortest"), "truncation must be one of"),
        (dict(max_length=0), "max_length must be a positive int"),
        (dict(max_length=1), "max_length=1 leaves no room for text"),
        (dict(padding=False), "different lengths"),
    ],
    ids=lambda v: str(v),
)
def test_bad_options(ours, options, message):
    with pytest.raises(ValueError, match=message):
        ours(["one", "two words"], **options)


def test_impossible_one_sided_truncation(ours):
    with pytest.raises(ValueError, match="cannot truncate to max_length=10 with truncation='only_first'"):
        ours(["a"], ["b " * 40], truncation="only_first", max_length=10)


def test_directory_without_tokenizer_files(tmp_path):
    with pytest.raises(FileNotFoundError, match="expected tokenizer.json, or vocab.txt"):
        Tokenizer.from_pretrained(tmp_path)


# ----- tokenizer.json and the config flags disagreeing -------------------------------------------

CASED_TEXTS = ["Hello World ÉCOLE", "Héllo WÖRLD, naïve café résumé!", "机器学习 [MASK] Ünïcode"]


def _disagreeing_dir(minilm_dir, directory, json_lowercase, tokenizer_config, with_model_config=False):
    """The MiniLM vocabulary with tokenizer.json's normaliser set to lowercase=json_lowercase, next
    to the given tokenizer_config.json (None: no such file) and optionally MiniLM's config.json."""
    tokenizer_json = json.loads((minilm_dir / "tokenizer.json").read_text())
    tokenizer_json["normalizer"]["lowercase"] = json_lowercase
    (directory / "tokenizer.json").write_text(json.dumps(tokenizer_json))
    shutil.copy(minilm_dir / "vocab.txt", directory / "vocab.txt")
    if tokenizer_config is not None:
        (directory / "tokenizer_config.json").write_text(json.dumps(tokenizer_config))
    if with_model_config:
        shutil.copy(minilm_dir / "config.json", directory / "config.json")
    return directory


@pytest.mark.parametrize(
    "json_lowercase,tokenizer_config,with_model_config",
    [
        # A: the BertTokenizer class (named, or implied by config.json's model_type "bert") rebuilds
        # the normaliser from its flags, and do_lower_case defaults to True: it lowercases although
        # tokenizer.json says not to.
        (False, {"tokenizer_class": "BertTokenizer"}, False),
        (False, {"tokenizer_class": "BertTokenizerFast"}, False),
        (False, {}, True),
        (False, None, True),
        # B: do_lower_case false wins over tokenizer.json's lowercase true.
        (True, {"do_lower_case": False, "tokenizer_class": "BertTokenizer"}, False),
        (True, {"do_lower_case": False}, True),
        (False, {"tokenizer_class": "BertTokenizer", "strip_accents": False, "tokenize_chinese_chars": False}, False),
        # Without a Bert class, transformers uses tokenizer.json as it is.
        (False, {}, False),
        (False, None, False),
        (True, {"do_lower_case": False, "tokenizer_class": "PreTrainedTokenizerFast"}, True),
    ],
    ids=str,
)
def test_config_flags_and_tokenizer_json_disagreeing_like_auto_tokenizer(
    minilm_dir, tmp_path, json_lowercase, tokenizer_config, with_model_config
):
    directory = _disagreeing_dir(minilm_dir, tmp_path, json_lowercase, tokenizer_config, with_model_config)
    reference = AutoTokenizer.from_pretrained(str(directory))
    ours = Tokenizer.from_pretrained(directory)
    expected = reference(CASED_TEXTS, padding=True, truncation=True, return_tensors="pt")
    # The generic TokenizersBackend returns no token_type_ids (not a BERT input name to it); the
    # normaliser shows in the ids anyway.
    for key in ("input_ids", "attention_mask"):
        torch.testing.assert_close(ours(CASED_TEXTS)[key], expected[key], rtol=0, atol=0, msg=lambda m: f"{key}: {m}")


# ----- padding_side / truncation_side from the config ---------------------------------------------


def _with_tokenizer_config(minilm_dir, directory, **changes):
    for name in ("tokenizer.json", "vocab.txt"):
        shutil.copy(minilm_dir / name, directory / name)
    config = json.loads((minilm_dir / "tokenizer_config.json").read_text())
    (directory / "tokenizer_config.json").write_text(json.dumps({**config, **changes}))
    return directory


@pytest.mark.parametrize(
    "sides",
    [dict(padding_side="left"), dict(truncation_side="left"), dict(padding_side="left", truncation_side="left")],
    ids=str,
)
def test_padding_and_truncation_side_follow_the_config_like_auto_tokenizer(minilm_dir, tmp_path, sides):
    directory = _with_tokenizer_config(minilm_dir, tmp_path, **sides)
    ours, reference = Tokenizer.from_pretrained(directory), AutoTokenizer.from_pretrained(str(directory))
    for options in (dict(padding=True, truncation=True), dict(padding="max_length", truncation=True, max_length=12)):
        assert_same_ids(ours(CORPUS, **options), reference(CORPUS, return_tensors="pt", **options))
        assert_same_ids(ours(CORPUS, PAIRS, **options), reference(CORPUS, PAIRS, return_tensors="pt", **options))


def test_left_padding_offsets_keep_pad_first(minilm_dir, tmp_path):
    ours = Tokenizer.from_pretrained(_with_tokenizer_config(minilm_dir, tmp_path, padding_side="left"))
    batch = ours(["a b c", "a"], return_offsets=True)
    assert batch["tokens"][1] == ["[PAD]", "[PAD]", "[CLS]", "a", "[SEP]"]
    assert batch["attention_mask"][1].tolist() == [0, 0, 1, 1, 1]


@pytest.mark.parametrize("key", ["padding_side", "truncation_side"])
def test_unknown_side_is_a_clear_error(minilm_dir, tmp_path, key):
    directory = _with_tokenizer_config(minilm_dir, tmp_path, **{key: "middle"})
    with pytest.raises(ValueError, match=f"{key} must be 'right' or 'left', got 'middle'"):
        Tokenizer.from_pretrained(directory)


# ----- encode_each + pad: __call__ split in two (SentenceEncoder batches by word-piece count) ----


@_SETTINGS
@given(texts=st.lists(_TEXT, min_size=1, max_size=4), max_length=st.one_of(st.none(), st.integers(2, 12)))
def test_encode_each_then_pad_equals_call(ours, texts, max_length):
    pieces = ours.encode_each(texts, max_length=max_length)
    assert [len(ids) for ids in pieces] == [len(ids) for ids in (ours.encode_each([t], max_length=max_length)[0] for t in texts)]
    assert_same_ids(ours.pad(pieces), ours(texts, max_length=max_length))


def test_encode_each_then_pad_on_the_corpus_with_both_padding_sides(minilm_dir, tmp_path, ours):
    left = Tokenizer.from_pretrained(_with_tokenizer_config(minilm_dir, tmp_path, padding_side="left"))
    for tokenizer in (ours, left):
        pieces = tokenizer.encode_each(CORPUS)
        assert max(len(ids) for ids in pieces) == 512  # the 600-word text is cut to model_max_length
        assert_same_ids(tokenizer.pad(pieces), tokenizer(CORPUS))
        assert_same_ids(tokenizer.pad(pieces[3:5]), tokenizer(CORPUS[3:5]))  # a subset pads to its own longest


def test_pad_of_nothing_is_an_empty_batch(ours):
    batch = ours.pad([])
    assert all(batch[key].shape == (0, 0) for key in KEYS)


def test_encode_each_rejects_what_call_rejects(ours):
    with pytest.raises(TypeError, match=r"texts\[1\] is int"):
        ours.encode_each(["fine", 3])
    with pytest.raises(ValueError, match="max_length must be a positive int"):
        ours.encode_each(["fine"], max_length=0)
    with pytest.raises(ValueError, match="truncation must be one of"):
        ours.encode_each(["fine"], truncation="middle")


def test_empty_batch_gives_empty_tensors(ours):
    assert all(ours([])[key].shape == (0, 0) for key in KEYS)


# ----- transformers' other entry points: tokenize, decode, return_tensors ------------------------


@pytest.mark.parametrize("text", CORPUS, ids=range(len(CORPUS)))
def test_tokenize_and_decode_match_auto_tokenizer(ours, reference, text):
    assert ours.tokenize(text) == reference.tokenize(text)
    assert ours.tokenize(text, add_special_tokens=True) == reference.tokenize(text, add_special_tokens=True)
    ids = reference(text, truncation=True)["input_ids"]
    assert ours.decode(ids) == reference.decode(ids)
    assert ours.decode(torch.tensor(ids), skip_special_tokens=True) == reference.decode(ids, skip_special_tokens=True)


def test_tokenize_pairs_and_batch_decode_match_auto_tokenizer(ours, reference):
    assert ours.tokenize("a b", "c d") == reference.tokenize("a b", "c d")
    batch = ours(CORPUS[:4], max_length=16)["input_ids"]
    assert ours.batch_decode(batch, skip_special_tokens=True) == reference.batch_decode(batch, skip_special_tokens=True)
    assert ours.decode(101) == reference.decode(101) == "[CLS]"


def test_return_tensors_np_and_none_match_auto_tokenizer(ours, reference):
    as_numpy = ours(CORPUS, max_length=16, return_tensors="np")
    expected = reference(CORPUS, padding=True, truncation=True, max_length=16, return_tensors="np")
    for key in KEYS:
        assert as_numpy[key].dtype == expected[key].dtype and (as_numpy[key] == expected[key]).all()
    as_lists = ours(CORPUS[:3], padding=False, truncation=False, return_tensors=None)
    assert as_lists == {key: reference(CORPUS[:3])[key] for key in KEYS}


def test_bad_decode_and_return_tensors_are_clear_errors(ours):
    with pytest.raises(ValueError, match="cannot decode id 99999: outside the vocabulary"):
        ours.decode([101, 99999])
    with pytest.raises(ValueError, match="return_tensors must be one of"):
        ours("x", return_tensors="tf")
    with pytest.raises(TypeError, match="text must be a str, got list"):
        ours.tokenize(["x"])


@pytest.mark.parametrize("content", ["{not json", '{"version": "1.0"}', "", "[]"], ids=["broken", "incomplete", "empty", "list"])
def test_corrupt_tokenizer_json_is_a_value_error_naming_the_file(minilm_dir, tmp_path, content):
    for name in ("tokenizer_config.json", "config.json"):
        shutil.copy(minilm_dir / name, tmp_path / name)
    (tmp_path / "tokenizer.json").write_text(content)
    with pytest.raises(ValueError, match=r"tokenizer.json: not a tokenizer.json the tokenizers library can read \(.+\)"):
        Tokenizer.from_pretrained(tmp_path)


def test_corrupt_tokenizer_config_is_a_value_error_naming_the_file(minilm_dir, tmp_path):
    shutil.copy(minilm_dir / "tokenizer.json", tmp_path / "tokenizer.json")
    (tmp_path / "tokenizer_config.json").write_text('{"do_lower_case": tru')
    with pytest.raises(ValueError, match=r"tokenizer_config.json is not valid JSON"):
        Tokenizer.from_pretrained(tmp_path)
    (tmp_path / "tokenizer_config.json").write_text("null")
    with pytest.raises(ValueError, match=r"tokenizer_config.json: expected a JSON object, got NoneType"):
        Tokenizer.from_pretrained(tmp_path)


# ----- one tokenizer shared by threads ------------------------------------------------------------

# Mixed per-call settings: each one would reconfigure a shared Rust tokenizer differently
# (truncation length and strategy, padding to the longest or to a fixed length, none at all).
THREAD_SETTINGS = [
    dict(padding=True, truncation=True, max_length=8),
    dict(padding="max_length", truncation=True, max_length=24),
    dict(padding=True, truncation=False),
    dict(padding=False, truncation=True, max_length=5, return_tensors=None),
    dict(padding=True, truncation="longest_first", max_length=64),
    dict(padding="max_length", truncation=True, max_length=12),
    dict(padding=False, truncation=False, return_tensors=None),
    dict(padding=True, truncation=True),
]
THREAD_ROUNDS = 40  # calls per thread: enough for the threads' calls to interleave many times


def test_one_tokenizer_shared_by_8_threads_with_mixed_settings_equals_single_threaded(minilm_dir):
    import threading

    shared = Tokenizer.from_pretrained(minilm_dir)
    texts = CORPUS[:-1] + ["word " * 80]
    expected = [shared(texts, **options) for options in THREAD_SETTINGS]  # one thread, one call at a time
    barrier = threading.Barrier(len(THREAD_SETTINGS))
    results: dict[int, list] = {}

    def work(index):
        barrier.wait()  # start together so the calls overlap
        results[index] = [shared(texts, **THREAD_SETTINGS[index]) for _ in range(THREAD_ROUNDS)]

    threads = [threading.Thread(target=work, args=(i,)) for i in range(len(THREAD_SETTINGS))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    for index, options in enumerate(THREAD_SETTINGS):
        for result in results[index]:
            for key in KEYS:
                if options.get("return_tensors", "pt") is None:
                    assert result[key] == expected[index][key], f"{options}: {key} differs from single-threaded"
                else:  # token ids are integers: identical or wrong
                    torch.testing.assert_close(result[key], expected[index][key], rtol=0, atol=0,
                                               msg=lambda m: f"{options}: {key}: {m}")


def test_calls_never_reconfigure_the_template_backend(ours):
    before = (ours.backend.padding, ours.backend.truncation)
    ours(CORPUS, padding="max_length", truncation=True, max_length=9)
    ours.encode_each(CORPUS, max_length=3)
    ours.tokenize("a text")
    assert (ours.backend.padding, ours.backend.truncation) == before


def test_lowercasing_after_first_use_reaches_every_setting(minilm_dir, tmp_path):
    """lowercase_before_normalizing changes the template; copies made before must not survive."""
    folder = tmp_path / "cased"
    shutil.copytree(minilm_dir, folder)
    config = json.loads((folder / "tokenizer_config.json").read_text())
    (folder / "tokenizer_config.json").write_text(json.dumps({**config, "do_lower_case": False}))
    tokenizer = Tokenizer.from_pretrained(folder)
    cased = tokenizer(["Bank BANK"])["input_ids"]
    tokenizer.lowercase_before_normalizing()
    lowered = tokenizer(["Bank BANK"])["input_ids"]
    assert not torch.equal(cased, lowered)
    assert tokenizer.tokenize("Bank BANK") == ["bank", "bank"]
