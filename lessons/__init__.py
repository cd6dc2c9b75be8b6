"""Runnable lessons on contextual embeddings: python -m lessons <name>.

Each lesson is a module with `run(out, **options) -> dict`: it prints its numbers, writes its
pictures into `out`, and returns the numbers so tests can check their direction.
"""

# lesson name -> (module, options it accepts, one-line summary)
LESSONS = {
    "static-vs-contextual": ("static_vs_contextual", ("word", "sentence"),
                             "one vector per word vs one per occurrence ('bank', 'bat', ...)"),
    "elmo-layers": ("elmo_layers", ("word",),
                    "how ELMo builds a word vector: char-CNN, highway, biLSTM, scalar mix"),
    "attention": ("attention", ("sentence", "layer", "head"),
                  "BERT attention heads: heatmaps, entropy, roles, Q·K, HTML explorer"),
    "similarity": ("similarity", ("query",),
                   "sentence embeddings: the seed's cosine matrix and semantic search"),
    "zero-shot": ("zero_shot", ("text",),
                  "zero-shot labels by similarity, and how much the phrasing matters"),
    "compare": ("compare", (),
                "static vs ELMo vs BERT: size, context, speed, sense separation"),
}
