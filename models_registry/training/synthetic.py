"""Deterministic synthetic datasets for tests, benchmarks and demos (no data can be downloaded here).

Rows look like what contributors upload: short user utterances labelled with an intent, and small
instruction/response pairs. The same ``seed`` always yields the same rows, ids and contributors.
"""

from __future__ import annotations

import random
from collections.abc import Sequence

from .spec import TrainingRow

_SLOTS: dict[str, tuple[str, ...]] = {
    "city": ("paris", "tokyo", "lagos", "lima", "oslo", "cairo", "denver", "madrid", "seoul", "dublin"),
    "day": ("today", "tomorrow", "on monday", "this weekend", "on friday", "tonight"),
    "artist": ("miles davis", "adele", "the beatles", "nina simone", "daft punk", "bach"),
    "genre": ("jazz", "rock", "classical", "hip hop", "folk", "techno"),
    "time": ("6 am", "seven thirty", "noon", "9 pm", "half past five", "8 oclock"),
    "account": ("checking", "savings", "business", "joint", "credit card"),
    "amount": ("20 dollars", "fifty euros", "100 pounds", "3000 yen", "twelve dollars"),
    "person": ("alice", "my brother", "the landlord", "sam", "my mom", "the plumber"),
}

INTENT_TEMPLATES: dict[str, tuple[str, ...]] = {
    "weather": (
        "what is the weather in {city} {day}",
        "will it rain in {city} {day}",
        "forecast for {city} {day}",
        "is it going to be sunny in {city}",
    ),
    "play_music": (
        "play some {artist}",
        "put on {genre} music",
        "i want to hear {artist} {day}",
        "start my {genre} playlist",
    ),
    "set_alarm": (
        "wake me up at {time}",
        "set an alarm for {time} {day}",
        "alarm at {time} please",
        "make sure i get up at {time}",
    ),
    "book_flight": (
        "book a flight to {city} {day}",
        "find flights to {city}",
        "i need a plane ticket to {city} {day}",
        "fly me to {city}",
    ),
    "check_balance": (
        "what is my {account} balance",
        "how much money is in my {account} account",
        "show the balance of my {account} account",
        "do i have money left in {account}",
    ),
    "transfer_money": (
        "send {amount} to {person}",
        "transfer {amount} from {account} to {person}",
        "pay {person} {amount} {day}",
        "move {amount} to my {account} account",
    ),
}
INTENT_LABELS: tuple[str, ...] = tuple(INTENT_TEMPLATES)
_OPENERS = ("", "", "please ", "hey, ", "can you ", "i would like you to ")

_COLOURS = {
    "red": "rouge",
    "blue": "bleu",
    "green": "vert",
    "black": "noir",
    "white": "blanc",
    "grey": "gris",
}
_NUMBERS = {"one": "un", "two": "deux", "three": "trois", "four": "quatre", "five": "cinq", "six": "six"}


def synthetic_intent_rows(
    n_rows: int, seed: int = 0, n_contributors: int = 7, labels: Sequence[str] = INTENT_LABELS
) -> list[TrainingRow]:
    """``n_rows`` labelled utterances of the given intents, in round-robin so classes are balanced."""
    rng = random.Random(seed)
    rows = []
    for i in range(n_rows):
        label = labels[i % len(labels)]
        template = rng.choice(INTENT_TEMPLATES[label])
        text = rng.choice(_OPENERS) + template.format(**{k: rng.choice(v) for k, v in _SLOTS.items()})
        rows.append(_row(i, n_contributors, {"text": text, "label": label}))
    return rows


def synthetic_instruction_rows(n_rows: int, seed: int = 0, n_contributors: int = 5) -> list[TrainingRow]:
    """``n_rows`` English-to-French word instructions; every fourth row carries a context field."""
    rng = random.Random(seed)
    vocabulary = list(_COLOURS.items()) + list(_NUMBERS.items())
    rows = []
    for i in range(n_rows):
        english, french = rng.choice(vocabulary)
        fields = {"prompt": f"Translate to French: {english}", "response": french}
        if i % 4 == 0:
            fields["context"] = "Answer with one lowercase word."
        rows.append(_row(i, n_contributors, fields))
    return rows


def _row(i: int, n_contributors: int, fields: dict[str, str]) -> TrainingRow:
    return TrainingRow(
        row_id=f"row-{i:05d}", contributor_id=f"contributor-{i % n_contributors}", fields=fields
    )
