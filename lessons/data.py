"""The sentences the lessons run on. Written for this project; none is tuned to a model's output.

Each polysemous word has three sentences per sense, so "same sense" and "different sense" pairs
are both present. These few sentences illustrate; the measurements with confidence intervals run
on WordNet's example sentences (lessons/wordnet.py).
"""

# The seed lesson's four sentences: those of minibert's default `similarity` job, taken from there
# so that the lesson and `python -m minibert similarity` show the same matrix.
from minibert.__main__ import SEED_SENTENCES

# word -> {sense: [sentences]}
POLYSEMY = {
    "bank": {
        "finance": [
            "The bank approved my loan application.",
            "The investment bank offers great returns.",
            "She deposited her salary at the bank on Friday.",
        ],
        "river": [
            "We sat on the bank of the river.",
            "The river bank was eroding due to heavy rainfall.",
            "Reeds grew thickly along the muddy bank of the stream.",
        ],
    },
    "bat": {
        "animal": [
            "A bat flew out of the cave at dusk.",
            "The bat hung upside down from the branch and slept.",
            "The tiny bat hunts moths using echolocation.",
        ],
        "sport": [
            "He swung the bat and hit the ball over the fence.",
            "She bought a new cricket bat for the tournament.",
            "The baseball bat was made of maple wood.",
        ],
    },
    "spring": {
        "season": [
            "The cherry trees blossom every spring.",
            "We plan to visit our grandparents in the spring.",
            "Spring brings warmer weather and longer days.",
        ],
        "coil": [
            "The spring inside the old mattress squeaked.",
            "A small spring pushes the tip of the pen out.",
            "The watch stopped because its main spring snapped.",
        ],
    },
    "plant": {
        "factory": [
            "The car plant laid off two hundred workers.",
            "The power plant burns coal to make electricity.",
            "Chemicals leaked from the processing plant into the canal.",
        ],
        "vegetation": [
            "Water the plant on the windowsill twice a week.",
            "This plant needs plenty of sunlight to grow.",
            "The tomato plant was covered in small green fruit.",
        ],
    },
}



def sentences_and_senses(word: str) -> tuple[list[str], list[str]]:
    """POLYSEMY[word] flattened: its sentences, and the sense of each."""
    groups = POLYSEMY[word]
    return [s for g in groups.values() for s in g], [sense for sense, g in groups.items() for _ in g]


# The similarity lesson: a small collection to search with a query typed on the command line.
SEARCH_CORPUS = [
    *SEED_SENTENCES,
    "Interest rates rose for the third time this year.",
    "The stock market fell sharply after the announcement.",
    "She saved a little money from every paycheck.",
    "The river flooded the fields after days of rain.",
    "Fishermen pulled their boats onto the sandy shore.",
    "The mountain trail climbs steeply through the pine forest.",
    "A heavy storm knocked down trees across the valley.",
    "The striker scored twice in the second half.",
    "He trains for the marathon every morning before work.",
    "Add the onions and fry them until golden.",
    "This soup tastes better with fresh basil.",
    "The new phone has a faster processor and a bigger screen.",
    "Restart the router if the internet connection drops.",
    "The museum opens a new exhibition of modern paintings.",
    "The children built a sandcastle at the beach.",
    "Parliament passed the budget after a long debate.",
]
DEFAULT_QUERY = "Where can I borrow money to buy a house?"

# The zero-shot lesson: the seed's zero-shot example and labels.
ZERO_SHOT_TEXT = "The river bank was eroding due to heavy rainfall."
ZERO_SHOT_LABELS = ["finance", "geography", "action", "institution"]
TEMPLATES = {
    "template": "This text is about {}.",
    "bare word": "{}",
}
