"""The embedded reference set's prompts, written by the project from templates and word lists.

Nothing here is downloaded: every name, place and passage is composed from the lists below with
a seeded RNG, so the same seed always gives the same prompts. Three categories:

* ``qa``: a fact sheet about invented places and people, then one question whose answer is a
  sentence of the sheet (the ground truth);
* ``summarization``: an invented report (a survey, a festival, a workshop) with a templated
  summary of its key facts as the ground truth;
* ``arithmetic``: multi-step word problems with an exact integer answer.

Prompt length is steered by a per-sample word budget drawn log-uniformly, so that with the chat
template the inputs spread over roughly 50–1000 tokens (the build step checks the real counts).
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass

from pydantic import BaseModel, ConfigDict, Field

CATEGORIES = ("qa", "summarization", "arithmetic")

_SYL_A = (
    "var",
    "dun",
    "mel",
    "tor",
    "ash",
    "bri",
    "cal",
    "fen",
    "gal",
    "hol",
    "kel",
    "lor",
    "mor",
    "nes",
    "ost",
    "pel",
)
_SYL_B = ("neth", "mere", "brook", "ford", "wick", "holm", "stead", "mouth", "ridge", "dale", "vale", "haven", "moor")
_GIVEN = (
    "Ilsa", "Bram", "Corin", "Dara", "Edwin", "Fenna", "Garrick", "Hanna", "Ivo", "Jorun", "Kasia", "Lenn",
    "Mirela", "Nils", "Oona", "Petra", "Quill", "Rosalind", "Soren", "Talia", "Ulric", "Vera", "Wendel", "Yara",
)  # fmt: skip
_FAMILY = (
    "Morrow", "Ashdown", "Blackwell", "Crane", "Delacourt", "Everly", "Fairholt", "Greaves", "Holloway",
    "Ingram", "Kestrel", "Lathom", "Marsh", "Northcott", "Oakley", "Pennick", "Rowe", "Stroud", "Thorne",
)  # fmt: skip
_JOBS = (
    "baker", "clockmaker", "ferry pilot", "glassblower", "librarian", "mapmaker", "beekeeper", "weaver",
    "bridge engineer", "harbour master", "schoolteacher", "potter", "astronomer", "carpenter", "botanist",
)  # fmt: skip
_THINGS = (
    "lighthouse", "observatory", "mill", "library", "bridge", "market hall", "clock tower", "seed bank",
    "ferry station", "weather station", "museum of maps", "glassworks", "orchard", "canal lock",
)  # fmt: skip
_COLOURS = ("red", "blue", "green", "amber", "grey", "white", "violet", "copper", "silver", "ochre")
_GOODS = (
    "apples", "pears", "notebooks", "lanterns", "jars of honey", "loaves", "candles", "bolts of cloth",
    "crates of tiles", "sacks of flour", "bottles of ink", "baskets of plums", "spools of wire",
)  # fmt: skip
_EVENTS = ("harvest festival", "river survey", "lantern parade", "clock repair", "orchard census", "bridge inspection")
_WEATHER = ("clear", "windy", "foggy", "rainy", "cold but bright", "humid", "stormy in the evening")
_FILLER = (
    "The records were copied by hand and checked twice before they were filed.",
    "Visitors often remark on the narrow streets and the smell of woodsmoke in the mornings.",
    "Most of the work was done by volunteers who met every second evening.",
    "A small committee kept the accounts and published them on the notice board.",
    "Nobody expected the project to draw so many people from the neighbouring valleys.",
    "The older residents still call the square by its former name.",
    "Several letters from that period survive in the town archive.",
    "The path along the river is lined with willows planted a century earlier.",
    "Deliveries arrived by barge on Tuesdays and by cart on Fridays.",
    "The notes mention that the ink froze in its pot during the coldest week.",
)  # fmt: skip


class ReferencePrompt(BaseModel):
    """One written sample before any model has seen it."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    index: int = Field(ge=0)
    category: str
    prompt: str = Field(min_length=1)
    target: str = Field(min_length=1)
    answer: str | None = None


@dataclass
class _Budget:
    words: int


def _place(rng: random.Random) -> str:
    return (rng.choice(_SYL_A) + rng.choice(_SYL_B)).capitalize()


def _person(rng: random.Random) -> str:
    return f"{rng.choice(_GIVEN)} {rng.choice(_FAMILY)}"


def _fact(rng: random.Random) -> tuple[str, str, str]:
    """A fact sentence, a question about it and the short answer."""
    kind = rng.randrange(5)
    place, person = _place(rng), _person(rng)
    if kind == 0:
        thing, year = rng.choice(_THINGS), rng.randint(1700, 1990)
        return (
            f"The {thing} of {place} was built in {year}.",
            f"In what year was the {thing} of {place} built?",
            str(year),
        )
    if kind == 1:
        job = rng.choice(_JOBS)
        return (f"{person} works as a {job} in {place}.", f"What is the job of {person}?", job)
    if kind == 2:
        thing, colour = rng.choice(_THINGS), rng.choice(_COLOURS)
        return (
            f"The roof of the {thing} in {place} is painted {colour}.",
            f"What colour is the roof of the {thing} in {place}?",
            colour,
        )
    if kind == 3:
        n = rng.randint(120, 9800)
        return (f"{place} has {n} inhabitants.", f"How many inhabitants does {place} have?", str(n))
    other = _place(rng)
    km = rng.randint(3, 240)
    return (
        f"The road from {place} to {other} is {km} kilometres long.",
        f"How long is the road from {place} to {other}?",
        f"{km} kilometres",
    )


def _qa(index: int, rng: random.Random, budget: _Budget) -> ReferencePrompt:
    facts = [_fact(rng) for _ in range(max(1, budget.words // 11))]
    pick = rng.randrange(len(facts))
    sheet = " ".join(f[0] for f in facts)
    sentence, question, short = facts[pick]
    prompt = (
        f"Read the fact sheet and answer the question in one sentence.\n\nFact sheet: {sheet}\n\nQuestion: {question}"
    )
    return ReferencePrompt(index=index, category="qa", prompt=prompt, target=sentence, answer=short)


def _report_sentences(rng: random.Random, place: str, event: str, n: int) -> tuple[list[str], str]:
    lead, helper = _person(rng), _person(rng)
    year, days = rng.randint(1850, 2020), rng.randint(2, 12)
    people, goods, count = rng.randint(40, 900), rng.choice(_GOODS), rng.randint(20, 600)
    weather = rng.choice(_WEATHER)
    key = [
        f"In {year} the town of {place} held its {event}, which lasted {days} days.",
        f"It was organised by {lead}, with help from {helper}.",
        f"About {people} people took part, and {count} {goods} were gathered or sold.",
        f"The weather was mostly {weather}.",
    ]
    body = list(key)
    while len(" ".join(body).split()) < n:
        if rng.random() < 0.55:
            body.append(rng.choice(_FILLER))
        else:
            body.append(_fact(rng)[0])
    # Keep the key facts in order but spread them through the passage.
    rest = body[len(key) :]
    rng.shuffle(rest)
    merged: list[str] = []
    step = max(1, len(rest) // len(key))
    for i, k in enumerate(key):
        merged.append(k)
        merged.extend(rest[i * step : (i + 1) * step])
    merged.extend(rest[len(key) * step :])
    summary = (
        f"{place} held a {days}-day {event} in {year}, organised by {lead} with {helper}. "
        f"About {people} people took part and {count} {goods} were gathered or sold; the weather was mostly {weather}."
    )
    return merged, summary


def _summarization(index: int, rng: random.Random, budget: _Budget) -> ReferencePrompt:
    place, event = _place(rng), rng.choice(_EVENTS)
    sentences, summary = _report_sentences(rng, place, event, budget.words)
    paragraphs = [" ".join(sentences[i : i + 5]) for i in range(0, len(sentences), 5)]
    prompt = f"Summarize the following report about {place} in two or three sentences.\n\n" + "\n\n".join(paragraphs)
    return ReferencePrompt(index=index, category="summarization", prompt=prompt, target=summary)


def _arithmetic(index: int, rng: random.Random, budget: _Budget) -> ReferencePrompt:
    person, goods = _person(rng).split()[0], rng.choice(_GOODS)
    start = rng.randint(5, 400)
    steps: list[str] = [f"{person} has {start} {goods}."]
    total = start
    n_steps = 2 + min(4, budget.words // 40)
    for _ in range(n_steps):
        op = rng.randrange(3)
        if op == 0:
            k = rng.randint(2, 150)
            total += k
            steps.append(f"Then {person} buys {k} more.")
        elif op == 1 and total > 3:
            k = rng.randint(1, total - 1)
            total -= k
            steps.append(f"Then {person} gives {k} away.")
        else:
            k = rng.randint(2, 5)
            total *= k
            steps.append(f"Then the number of {goods} is multiplied by {k} after a large delivery.")
    context: list[str] = []
    while len(" ".join(context + steps).split()) < budget.words - 20:
        context.append(rng.choice(_FILLER))
    prompt = (
        ("Background: " + " ".join(context) + "\n\n" if context else "")
        + "Solve the problem and finish with the final number.\n\n"
        + " ".join(steps)
        + f" How many {goods} does {person} have now?"
    )
    target = f"{person} has {total} {goods} now. The answer is {total}."
    return ReferencePrompt(index=index, category="arithmetic", prompt=prompt, target=target, answer=str(total))


# Word budgets per category (log-uniform); ~1.3 tokens per word plus ~35 template tokens lands the
# inputs in 50–1000 tokens.
_WORD_RANGES = {"qa": (8, 380), "summarization": (130, 640), "arithmetic": (10, 260)}
_WRITERS = {"qa": _qa, "summarization": _summarization, "arithmetic": _arithmetic}


def write_prompts(n: int = 510, seed: int = 20261122) -> list[ReferencePrompt]:
    """``n`` samples cycling through the categories; deterministic for a given ``(n, seed)``."""
    if n < len(CATEGORIES):
        raise ValueError(f"n: expected at least {len(CATEGORIES)} samples, got {n}")
    out: list[ReferencePrompt] = []
    for i in range(n):
        cat = CATEGORIES[i % len(CATEGORIES)]
        rng = random.Random(f"{seed}:{i}")
        lo, hi = _WORD_RANGES[cat]
        words = round(math.exp(rng.uniform(math.log(lo), math.log(hi))))
        out.append(_WRITERS[cat](i, rng, _Budget(words)))
    return out
