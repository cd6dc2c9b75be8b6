"""The engines people pick for fast MiniLM embeddings on a CPU, built offline from the packaged weights.

ONNX Runtime (plain, and after its BERT graph optimiser), OpenVINO, CTranslate2 and fastembed
each run all-MiniLM-L6-v2 from the same local folder the other contenders load. Nothing is
downloaded: the bench builds every engine's model file itself and keeps it in a cache folder
(`MINICONTEXT_BENCH_CACHE`, default ~/.cache/minicontext-bench), keyed on the weights file and
the engine's version, so a stale build is never reused.
  - ONNX: transformers' BertModel exported with torch's TorchScript-based ONNX exporter (its
    graph is the one ORT's BERT optimiser recognises: 6 fused Attention nodes, where the
    dynamo exporter's graph gets none); ORT, OpenVINO and fastembed all read this file.
  - ORT + BERT optimiser: `onnxruntime.transformers.optimizer.optimize_model(model_type="bert")`.
  - CTranslate2: `ctranslate2.converters.TransformersConverter`, float32.
  - fastembed: its own TextEmbedding class for sentence-transformers/all-MiniLM-L6-v2, pointed at
    a folder holding our export and the tokenizer files (specific_model_path, local_files_only).

Every peer gets what ours gets: the same tokenizer.json (cut at 256 word pieces, as
sentence_bert_config.json says), batches of 32 texts sorted by word-piece count, mean pooling
over real tokens and L2 normalisation, and as many threads as torch uses. fastembed pools and
normalises itself; it is handed the texts already sorted so that its batches are the same.
A peer whose package is missing is skipped with a line saying which package (`pip install -e
'.[bench]'` installs them all).
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import importlib.util
import os
import pathlib
import shutil
import tempfile
import time

import numpy as np

from bench.bert import BATCH_SIZE, model_dir

MAX_SEQ_LENGTH = 256  # all-MiniLM-L6-v2's sentence_bert_config.json
ONNX_INPUTS = ["input_ids", "attention_mask", "token_type_ids"]
# The files fastembed reads next to model.onnx (its load_tokenizer and config lookups).
FASTEMBED_FILES = ["config.json", "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "vocab.txt"]


def threads() -> int:
    """Every engine gets the thread count torch uses in this process."""
    import torch

    return torch.get_num_threads()


def cache_root() -> pathlib.Path:
    default = pathlib.Path.home() / ".cache" / "minicontext-bench"
    return pathlib.Path(os.environ.get("MINICONTEXT_BENCH_CACHE", default))


def _weights_stamp() -> str:
    weights = model_dir() / "model.safetensors"
    stat = weights.stat()
    return f"{weights}:{stat.st_size}:{stat.st_mtime_ns}"


def built(name: str, packages: list[str], build) -> pathlib.Path:
    """The folder `build(folder)` fills, built once per weights file and package versions.

    The folder is filled under a temporary name and renamed when complete, so an interrupted
    build is never mistaken for a finished one."""
    versions = ",".join(f"{p}={importlib.metadata.version(p)}" for p in packages)
    key = hashlib.sha256(f"{_weights_stamp()}|{versions}".encode()).hexdigest()[:16]
    folder = cache_root() / f"{name}-{key}"
    if not folder.is_dir():
        folder.parent.mkdir(parents=True, exist_ok=True)
        scratch = pathlib.Path(tempfile.mkdtemp(prefix=f".{name}-", dir=folder.parent))
        try:
            build(scratch)
            scratch.rename(folder)
        finally:
            shutil.rmtree(scratch, ignore_errors=True)
    return folder


def _export_onnx(folder: pathlib.Path) -> None:
    import torch
    from transformers import AutoModel

    class LastHiddenState(torch.nn.Module):
        """BertModel with positional inputs and one output, the form the exporter traces."""

        def __init__(self, bert):
            super().__init__()
            self.bert = bert

        def forward(self, input_ids, attention_mask, token_type_ids):
            return self.bert(input_ids=input_ids, attention_mask=attention_mask,
                             token_type_ids=token_type_ids).last_hidden_state

    bert = AutoModel.from_pretrained(str(model_dir()), attn_implementation="eager").eval()
    ids = torch.ones(2, 9, dtype=torch.long)
    dynamic = {name: {0: "batch", 1: "sequence"} for name in ONNX_INPUTS + ["last_hidden_state"]}
    torch.onnx.export(LastHiddenState(bert), (ids, torch.ones_like(ids), torch.zeros_like(ids)),
                      str(folder / "model.onnx"), dynamo=False, input_names=ONNX_INPUTS,
                      output_names=["last_hidden_state"], dynamic_axes=dynamic, opset_version=17)
    for file in FASTEMBED_FILES:
        shutil.copy(model_dir() / file, folder / file)


def onnx_folder() -> pathlib.Path:
    """Our ONNX export of the packaged model, with the tokenizer files beside it."""
    return built("onnx", ["torch", "transformers", "onnx"], _export_onnx)


def onnx_optimized_folder() -> pathlib.Path:
    def build(folder):
        from onnxruntime.transformers import optimizer

        config = model_config()
        model = optimizer.optimize_model(str(onnx_folder() / "model.onnx"), model_type="bert",
                                         num_heads=config["num_attention_heads"], hidden_size=config["hidden_size"])
        model.save_model_to_file(str(folder / "model.onnx"))

    return built("onnx-bert-optimised", ["torch", "transformers", "onnx", "onnxruntime"], build)


def ct2_folder() -> pathlib.Path:
    def build(folder):
        import ctranslate2

        # The converter refuses to write into an existing folder unless forced.
        ctranslate2.converters.TransformersConverter(str(model_dir())).convert(str(folder), force=True)

    return built("ct2", ["ctranslate2", "transformers"], build)


def model_config() -> dict:
    import json

    return json.loads((model_dir() / "config.json").read_text())


class _Tokenized:
    """tokenizer.json cut at MAX_SEQ_LENGTH, no padding: word-piece ids per text."""

    def __init__(self):
        from tokenizers import Tokenizer

        self.tokenizer = Tokenizer.from_file(str(model_dir() / "tokenizer.json"))
        self.tokenizer.enable_truncation(MAX_SEQ_LENGTH)
        self.tokenizer.no_padding()

    def batches(self, texts: list[str]):
        """Yield (text indices, ids (B, T) int64, mask (B, T) int64), longest texts first."""
        pieces = [e.ids for e in self.tokenizer.encode_batch(texts)]
        order = sorted(range(len(texts)), key=lambda i: -len(pieces[i]))
        for start in range(0, len(order), BATCH_SIZE):
            batch = order[start:start + BATCH_SIZE]
            width = len(pieces[batch[0]])
            ids = np.zeros((len(batch), width), dtype=np.int64)
            mask = np.zeros((len(batch), width), dtype=np.int64)
            for row, i in enumerate(batch):
                ids[row, :len(pieces[i])] = pieces[i]
                mask[row, :len(pieces[i])] = 1
            yield batch, ids, mask


def mean_normalise(hidden: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """(B, T, D) hidden states and (B, T) mask -> (B, D) unit-length means over real tokens."""
    weights = mask[:, :, None].astype(np.float32)  # (B, T) -> (B, T, 1)
    pooled = (hidden * weights).sum(1) / np.maximum(weights.sum(1), 1e-9)  # (B, T, D) -> (B, D)
    return pooled / np.maximum(np.linalg.norm(pooled, axis=1, keepdims=True), 1e-12)


class _Peer:
    """Shared shape of a peer: `packages` to import, `load()` the engine, `encode(texts)`."""

    name = ""
    packages: tuple[str, ...] = ()  # needed to build and run
    runtime: tuple[str, ...] = ()  # needed to run a built model
    dim = 384  # set from config.json by load()

    @classmethod
    def missing(cls) -> str | None:
        """None when every package is importable, else a one-line reason to skip."""
        absent = [p for p in cls.packages if importlib.util.find_spec(p) is None]
        if absent:
            return f"{cls.name}: skipped, {', '.join(absent)} not installed (pip install -e '.[bench]')"
        return None

    def import_libraries(self):
        """What running needs (the memory child imports only this); building needs `packages`."""
        for package in self.runtime:
            __import__(package)

    def prepare(self) -> float:
        """Build the engine's model file if it is not cached; seconds spent (0 when cached)."""
        start = time.perf_counter()
        self.model_folder()
        return time.perf_counter() - start

    def model_folder(self) -> pathlib.Path:
        raise NotImplementedError

    def run(self, ids: np.ndarray, mask: np.ndarray) -> np.ndarray:
        """(B, T) ids and mask -> (B, T, D) last hidden states."""
        raise NotImplementedError

    def encode(self, texts: list[str]) -> np.ndarray:
        out = np.empty((len(texts), self.dim), dtype=np.float32)
        for batch, ids, mask in self.tokenized.batches(texts):
            out[batch] = mean_normalise(self.run(ids, mask), mask)
        return out


class OrtPlain(_Peer):
    """ONNX Runtime on our export, with its default (all) online graph optimisations."""

    name = "ONNX Runtime fp32"
    packages = ("onnxruntime", "onnx", "transformers")
    runtime = ("onnxruntime",)

    def model_folder(self):
        return onnx_folder()

    def load(self):
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.intra_op_num_threads = threads()
        options.inter_op_num_threads = 1
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        self.session = ort.InferenceSession(str(self.model_folder() / "model.onnx"), options,
                                            providers=["CPUExecutionProvider"])
        self.tokenized = _Tokenized()
        self.dim = model_config()["hidden_size"]

    def run(self, ids, mask):
        feed = {"input_ids": ids, "attention_mask": mask, "token_type_ids": np.zeros_like(ids)}
        return self.session.run(None, feed)[0]


class OrtBertOptimised(OrtPlain):
    """ONNX Runtime on the graph its BERT optimiser rewrote (fused Attention, SkipLayerNorm, BiasGelu)."""

    name = "ONNX Runtime fp32, BERT optimiser"

    def model_folder(self):
        return onnx_optimized_folder()


class OpenVino(_Peer):
    """OpenVINO's CPU plugin on our export, f32 inference precision, latency hint (one stream)."""

    name = "OpenVINO fp32"
    packages = ("openvino", "onnx", "transformers")
    runtime = ("openvino",)

    def model_folder(self):
        return onnx_folder()

    def load(self):
        import openvino as ov

        core = ov.Core()
        # f32 explicitly: on CPUs with bf16 or AMX OpenVINO would otherwise pick bf16 itself.
        config = {"INFERENCE_PRECISION_HINT": "f32", "INFERENCE_NUM_THREADS": threads(),
                  "PERFORMANCE_HINT": "LATENCY"}
        self.compiled = core.compile_model(str(self.model_folder() / "model.onnx"), "CPU", config)
        self.request = self.compiled.create_infer_request()
        self.tokenized = _Tokenized()
        self.dim = model_config()["hidden_size"]

    def run(self, ids, mask):
        result = self.request.infer({"input_ids": ids, "attention_mask": mask, "token_type_ids": np.zeros_like(ids)})
        return result[self.compiled.output(0)]


class CTranslate2(_Peer):
    """CTranslate2's Encoder on its own conversion of the weights, float32."""

    name = "CTranslate2 fp32"
    packages = ("ctranslate2", "transformers")
    runtime = ("ctranslate2",)

    def model_folder(self):
        return ct2_folder()

    def load(self):
        import ctranslate2

        self.encoder = ctranslate2.Encoder(str(self.model_folder()), device="cpu", compute_type="float32",
                                           intra_threads=threads(), inter_threads=1)
        self.tokenized = _Tokenized()
        self.dim = model_config()["hidden_size"]

    def run(self, ids, mask):
        import ctranslate2

        lengths = ctranslate2.StorageView.from_array(mask.sum(1).astype(np.int32))
        output = self.encoder.forward_batch(ctranslate2.StorageView.from_array(ids.astype(np.int32)), lengths)
        return np.asarray(output.last_hidden_state)


class FastEmbed(_Peer):
    """fastembed.TextEmbedding for sentence-transformers/all-MiniLM-L6-v2 on our export.

    fastembed tokenizes, pools (mean) and normalises itself; it gets the texts sorted by
    word-piece count and batch_size=32, so its batches are ours."""

    name = "fastembed"
    packages = ("fastembed", "onnx", "transformers")
    runtime = ("fastembed",)
    MODEL_NAME = "sentence-transformers/all-MiniLM-L6-v2"

    def model_folder(self):
        return onnx_folder()

    def load(self):
        from fastembed import TextEmbedding

        self.model = TextEmbedding(self.MODEL_NAME, specific_model_path=str(self.model_folder()),
                                   local_files_only=True, threads=threads(),
                                   cache_dir=str(cache_root() / "fastembed-empty-cache"))
        self.tokenized = _Tokenized()

    def encode(self, texts):
        pieces = [len(e.ids) for e in self.tokenized.tokenizer.encode_batch(texts)]
        order = sorted(range(len(texts)), key=lambda i: -pieces[i])
        vectors = list(self.model.embed([texts[i] for i in order], batch_size=BATCH_SIZE))
        out = np.empty((len(texts), len(vectors[0]) if vectors else 0), dtype=np.float32)
        out[order] = np.stack(vectors) if vectors else out[order]
        return out


PEERS = {
    "ort": OrtPlain,
    "ort-bert-optimised": OrtBertOptimised,
    "openvino": OpenVino,
    "ctranslate2": CTranslate2,
    "fastembed": FastEmbed,
}
