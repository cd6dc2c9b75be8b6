"""The sentences the lessons run on. Written for this project; none is tuned to a model's output.

Each polysemous word has three sentences per sense, so "same sense" and "different sense" pairs
are both plentiful. The zero-shot set has ten sentences per label, none of which contains its
label word, so a template cannot win by string overlap.
"""

# The seed lesson's four sentences (also minibert's default `similarity` job).
SEED_SENTENCES = [
    "The bank approved my loan application.",
    "We sat on the bank of the river.",
    "I need to bank this money quickly.",
    "The investment bank offers great returns.",
]

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

# Lesson 4: a small collection to search with a query typed on the command line.
SEARCH_CORPUS = [
    "The bank approved my loan application.",
    "We sat on the bank of the river.",
    "I need to bank this money quickly.",
    "The investment bank offers great returns.",
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

# Lesson 5: the seed's zero-shot example and labels.
ZERO_SHOT_TEXT = "The river bank was eroding due to heavy rainfall."
ZERO_SHOT_LABELS = ["finance", "geography", "action", "institution"]
TEMPLATES = {
    "template": "This text is about {}.",
    "bare word": "{}",
}

# Lesson 5: a small labelled set, ten per label, written without the label words themselves.
LABELLED = [
    # finance
    ("The central bank raised interest rates by half a percent.", "finance"),
    ("Her savings account earns very little each month.", "finance"),
    ("Investors sold their shares when profits disappointed.", "finance"),
    ("The company borrowed millions to pay its debts.", "finance"),
    ("Mortgage payments take a third of his salary.", "finance"),
    ("The price of gold climbed to a record high.", "finance"),
    ("They split the restaurant bill and paid by card.", "finance"),
    ("Inflation eroded the value of their pensions.", "finance"),
    ("The startup raised fresh capital from venture investors.", "finance"),
    ("Taxes on imported goods will rise next quarter.", "finance"),
    # geography
    ("The Nile flows north through Egypt into the Mediterranean.", "geography"),
    ("Mount Everest lies on the border of Nepal and China.", "geography"),
    ("The desert stretches for hundreds of miles without a town.", "geography"),
    ("Glaciers carved deep valleys into the mountains.", "geography"),
    ("The island sits off the western coast of the continent.", "geography"),
    ("A wide delta forms where the river meets the sea.", "geography"),
    ("The plateau is cold, dry and sparsely populated.", "geography"),
    ("Volcanic eruptions created the chain of islands.", "geography"),
    ("The lake is fed by melting snow from the surrounding peaks.", "geography"),
    ("Rainforests cover most of the northern part of the country.", "geography"),
    # action
    ("She sprinted across the field and leapt over the fence.", "action"),
    ("He grabbed the rope and climbed to the top.", "action"),
    ("The goalkeeper dived to his left and caught the ball.", "action"),
    ("They kicked the door open and rushed inside.", "action"),
    ("The boy threw the stone as far as he could.", "action"),
    ("She lifted the heavy box and carried it upstairs.", "action"),
    ("The dancers spun and jumped across the stage.", "action"),
    ("He ducked under the branch and kept running.", "action"),
    ("The firefighter smashed the window and pulled the child out.", "action"),
    ("We paddled hard against the current.", "action"),
    # institution
    ("The university appointed a new dean of medicine.", "institution"),
    ("The supreme court will hear the case next month.", "institution"),
    ("Parliament voted to reform the election law.", "institution"),
    ("The hospital board approved a new cancer ward.", "institution"),
    ("The museum's trustees met to discuss the collection.", "institution"),
    ("The ministry of education published new school rules.", "institution"),
    ("The United Nations held an emergency session.", "institution"),
    ("The city council rejected the housing proposal.", "institution"),
    ("The church has run the orphanage since 1890.", "institution"),
    ("The central library extended its opening hours.", "institution"),
]
