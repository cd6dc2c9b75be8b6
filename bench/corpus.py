"""A deterministic, seeded English corpus for the speed bench: no downloads, same text every run.

Sentence embedders spend their time in proportion to tokens, and padding waste depends on how
mixed the lengths are, so the corpus imitates ordinary prose: many short and medium sentences and
a long tail (about 41 word pieces on average, about 150 at most for 2,000 sentences, counted with
the all-MiniLM-L6-v2 tokenizer including [CLS] and [SEP]). Sentences are built from clause
templates over small hand-written word lists; a few long, rare words make the word-piece tokenizer
split words the way real text does.
"""

import random

SUBJECTS = [
    "the teacher", "a student", "my neighbour", "the old fisherman", "our team", "the committee",
    "a young doctor", "the engineers", "her brother", "the small company", "the city council",
    "a tired traveller", "the museum guide", "the children", "his grandmother", "the new manager",
    "a local farmer", "the orchestra", "the research group", "a quiet librarian", "the pilot",
    "the baker", "two musicians", "the reporter", "an experienced nurse", "the gardener",
]
VERBS = [
    "finished", "explained", "repaired", "described", "organised", "discovered", "painted",
    "questioned", "delivered", "measured", "carried", "planned", "visited", "recorded", "studied",
    "cleaned", "opened", "photographed", "translated", "rebuilt", "borrowed", "compared", "sold",
    "wrote about", "argued about", "looked for", "talked about", "worried about", "read",
]
OBJECTS = [
    "the report", "a wooden bridge", "the annual budget", "an ancient map", "the broken window",
    "a long letter", "the results of the experiment", "the garden fence", "a new recipe",
    "the train timetable", "the history of the valley", "a difficult question", "the harvest",
    "the concert programme", "the photosynthesis lecture", "an unbelievably complicated contract",
    "the neighbourhood newsletter", "the electricity bill", "a collection of postcards",
    "the weather forecast", "the hospital's new wing", "a pair of hiking boots", "the software",
]
ADJECTIVES = [
    "careful", "surprising", "quiet", "enormous", "bright", "uncomfortable", "ordinary",
    "remarkable", "muddy", "expensive", "thoughtful", "ridiculous", "peaceful", "crowded",
]
PLACES = [
    "in the morning", "near the harbour", "after lunch", "during the storm", "at the station",
    "before the holidays", "in the village square", "on the top floor", "behind the library",
    "across the river", "at the end of the week", "in a hurry", "without any help",
    "with great patience", "under the bright lights", "despite the heavy rain",
]
CONNECTORS = [
    ", and", ", but", ", so", " because", " while", " although", " after", " before", ", since",
    "; meanwhile,", ", which meant that", ", even though",
]
OPENERS = ["", "", "", "Yesterday, ", "Surprisingly, ", "In the end, ", "As usual, ", "Later, "]


def _clause(rng: random.Random) -> str:
    parts = [rng.choice(SUBJECTS), rng.choice(VERBS), rng.choice(OBJECTS)]
    if rng.random() < 0.4:
        parts.insert(2, "the " + rng.choice(ADJECTIVES) + " details of")
    if rng.random() < 0.6:
        parts.append(rng.choice(PLACES))
    return " ".join(parts)


def make_sentence(rng: random.Random, target_words: int) -> str:
    """Join clauses until the sentence has at least `target_words` words."""
    text = rng.choice(OPENERS) + _clause(rng)
    while len(text.split()) < target_words:
        text += rng.choice(CONNECTORS) + " " + _clause(rng)
    return text[0].upper() + text[1:] + rng.choice([".", ".", ".", "!", "?"])


def make_corpus(n: int = 2000, seed: int = 0) -> list[str]:
    """`n` sentences of mixed length; the same `seed` always gives the same list.

    Target word counts are log-normal (median ~25 words) and capped at 122 words; with seed 0 and
    n=2000 that gives 41.1 word pieces on average and 152 at most (measured with the
    all-MiniLM-L6-v2 tokenizer).
    """
    rng = random.Random(seed)
    corpus = []
    for _ in range(n):
        target_words = min(122, max(3, round(rng.lognormvariate(3.22, 0.57))))
        corpus.append(make_sentence(rng, target_words))
    return corpus
