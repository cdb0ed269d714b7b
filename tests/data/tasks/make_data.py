"""Seeded generator of the small task datasets in this folder (the "it learns" checks of `bert train`).

Rerun with ``python tests/data/tasks/make_data.py``: the output is byte-for-byte the same on every run and platform
(stdlib only, one ``random.Random`` per file with a fixed integer seed, sorted lists, ``\\n`` line ends). The data is
templated English built from word lists, so a few hundred examples are enough for the real MiniLM checkpoint to learn
each task in a few dozen optimizer steps; see README.md for sizes and the metric each set reaches.

Every written answer span is checked against its context (``context[answer_start:].startswith(text)``), every tag
sequence is checked to be valid IOB2 of the same length as its tokens, and train/eval sets share no example.
"""

from __future__ import annotations

import csv
import io
import json
import random
from pathlib import Path
from typing import Dict, List, Sequence, Tuple

HERE = Path(__file__).resolve().parent

# ---------------------------------------------------------------------------------------------------------------------
# Shared word lists (names and places: several split into many word pieces, some non-ASCII)

FIRST_NAMES = [
    ("Amara", "she"), ("Bogdan", "he"), ("Chiara", "she"), ("Dmitri", "he"), ("Esther", "she"), ("Farid", "he"),
    ("Greta", "she"), ("Hiroshi", "he"), ("Ingrid", "she"), ("Jamal", "he"), ("Katarzyna", "she"), ("Lars", "he"),
    ("Marisol", "she"), ("Nkechi", "she"), ("Oskar", "he"), ("Priya", "she"), ("Quentin", "he"), ("Rosalind", "she"),
    ("Santiago", "he"), ("Tamsin", "she"), ("Ulrich", "he"), ("Valentina", "she"), ("Wendell", "he"), ("Ximena", "she"),
    ("Yusuf", "he"), ("Zofia", "she"), ("Anders", "he"), ("Beatriz", "she"), ("Cormac", "he"), ("Dagny", "she"),
]  # fmt: skip
LAST_NAMES = [
    "Okonkwo", "Wojciechowski", "Thorvaldsen", "Abernathy", "Castellanos", "Delacroix", "Eriksson", "Fitzgerald",
    "Gallagher", "Haddad", "Ishikawa", "Janssen", "Kowalczyk", "Lindqvist", "Moreau", "Nakamura", "Oyelaran",
    "Petrovic", "Quiroga", "Rasmussen", "Szymanski", "Takahashi", "Underwood", "Vasquez", "Whitfield", "Yamamoto",
    "Zielinski", "Brennan", "Achterberg", "Mbeki",
]  # fmt: skip
CITIES = [
    "Lisbon", "Oslo", "Nairobi", "Montreal", "Kraków", "Valparaíso", "Reykjavik", "Edinburgh", "Osaka", "Porto",
    "Marseille", "Tallinn", "Winnipeg", "Adelaide", "Bratislava", "Cork", "Gothenburg", "Ljubljana", "Zürich",
    "New York", "Buenos Aires", "São Paulo", "Cape Town", "Hong Kong", "Los Angeles", "Rio de Janeiro", "Tel Aviv",
]  # fmt: skip
COUNTRIES = [
    "Portugal", "Norway", "Kenya", "Canada", "Poland", "Chile", "Iceland", "Scotland", "Japan", "France", "Estonia",
    "Australia", "Slovakia", "Ireland", "Sweden", "Slovenia", "Switzerland", "Argentina", "Brazil", "South Africa",
    "New Zealand", "Costa Rica", "Sri Lanka",
]  # fmt: skip
ORGS = [
    "Brightwater Labs", "Northwind Traders", "Halvorsen Shipping", "Acme Corporation", "Bluestone Capital",
    "the United Nations", "Reuters", "Siemens", "Greenfield Energy", "Kestrel Airlines", "the Red Cross",
    "Meridian Bank", "Pinecrest Media", "Orbital Dynamics", "Vantage Motors", "the World Health Organization",
    "Lumen Robotics", "Copperleaf Foods", "Starling Insurance", "Ironbridge Steel", "Solace Pharmaceuticals",
    "Tidewater Logistics",
]  # fmt: skip
#: organisations a person in a made-up biography can have founded (no real ones)
FOUNDABLE = [o for o in ORGS if not o.startswith("the ") and o not in ("Reuters", "Siemens")]
MONTHS = [
    "January", "February", "March", "April", "May", "June", "July", "August", "September", "October", "November",
    "December",
]  # fmt: skip
WEEKDAYS = ["Monday", "Tuesday", "Wednesday", "Thursday", "Friday"]


def person(rng: random.Random) -> Tuple[str, str, str]:
    """(first name, last name, pronoun)."""
    first, pronoun = rng.choice(FIRST_NAMES)
    return first, rng.choice(LAST_NAMES), pronoun


def split_train_eval(rng: random.Random, make, n_train: int, n_eval: int, key=lambda x: json.dumps(x)) -> tuple:
    """Draw examples with ``make(rng)`` until there are ``n_train + n_eval`` distinct ones; return (train, eval)."""
    seen, out = set(), []
    tries = 0
    while len(out) < n_train + n_eval:
        tries += 1
        if tries > 100 * (n_train + n_eval):
            raise RuntimeError(f"only {len(out)} distinct examples after {tries} draws; widen the templates")
        example = make(rng)
        k = key(example)
        if k not in seen:
            seen.add(k)
            out.append(example)
    return out[:n_train], out[n_train:]


# ---------------------------------------------------------------------------------------------------------------------
# text-classification: movie-review sentiment (CSV), premise/hypothesis inference (TSV), sentence similarity (JSONL)

SUBJECTS = [
    "the film", "this movie", "the plot", "the acting", "the script", "the soundtrack", "the ending", "the cast",
    "the sequel", "the documentary", "the animation", "the dialogue", "the pacing", "the camera work",
    "the lead performance", "the director's new film", "this comedy", "the thriller", "the remake", "the first half",
]  # fmt: skip
POSITIVE = [
    "was a pure delight", "kept me smiling from start to finish", "is beautifully shot and deeply moving",
    "felt fresh and clever", "is one of the best things i have seen this year", "was warm, funny and honest",
    "left the whole audience cheering", "is a charming little gem", "deserves every award it gets",
    "was gripping and well paced", "made me want to watch it again", "is smart, tender and surprising",
    "works wonderfully", "had me hooked", "is a joy to watch", "was brilliant", "is full of heart",
    "was a triumph", "is touching without being sentimental", "exceeded all my expectations",
]  # fmt: skip
NEGATIVE = [
    "was a complete waste of time", "dragged on for far too long", "felt lazy and predictable", "is painfully dull",
    "made no sense at all", "was loud, messy and boring", "left me checking my watch",
    "is the worst thing i have seen in years", "fell flat in every scene", "was clumsy and forgettable",
    "is a tedious mess", "never comes to life", "was a huge disappointment", "is badly written and worse acted",
    "put me to sleep", "was cheap and hollow", "is an insult to the audience", "felt like a chore",
    "is stiff and lifeless", "wasted a talented cast",
]  # fmt: skip
OPENERS = ["", "", "", "honestly, ", "to be fair, ", "i have to say ", "in the end, ", "overall, ", "frankly, "]
CLOSERS = {
    "positive": ["", "", "", " I would recommend it to anyone.", " Go and see it.", " Ten out of ten.", " Loved it."],
    "negative": ["", "", "", " Save your money.", " Avoid it.", " Two out of ten.", " What a letdown."],
}


def sentiment_example(rng: random.Random) -> Dict[str, str]:
    label = rng.choice(["positive", "negative"])
    good, bad = (POSITIVE, NEGATIVE) if label == "positive" else (NEGATIVE, POSITIVE)
    a, b = rng.sample(SUBJECTS, 2)
    form = rng.random()
    if form < 0.12:  # a concession, then the verdict that carries the label
        text = f"{a} {rng.choice(bad)}, but {b} {rng.choice(good)}."
    elif form < 0.45:
        text = f"{rng.choice(OPENERS)}{a} {rng.choice(good)} and {b} {rng.choice(good)}."
    else:
        text = f"{rng.choice(OPENERS)}{a} {rng.choice(good)}."
    text += rng.choice(CLOSERS[label])
    return {"text": text[0].upper() + text[1:], "label": label}


# (specific action, a more general description of it, what makes a contradiction impossible to share a moment with)
ACTIONS = [
    ("playing the guitar", "making music"), ("riding a bicycle", "riding a bike"), ("cooking dinner", "preparing food"),
    ("reading a newspaper", "reading"), ("painting a fence", "painting something"), ("kicking a ball", "playing"),
    ("swimming in a lake", "in the water"), ("climbing a rock wall", "climbing"), ("washing a car", "cleaning"),
    ("walking a dog", "outside with an animal"), ("typing on a laptop", "using a computer"),
    ("selling fruit", "working"), ("dancing with a partner", "dancing"), ("fixing a bicycle tire", "repairing something"),
    ("singing into a microphone", "singing"), ("eating a sandwich", "eating"),
]  # fmt: skip
PEOPLE = [
    ("A man", "A person"), ("A woman", "A person"), ("A young boy", "A child"), ("A little girl", "A child"),
    ("An old man", "Someone"), ("A teenager", "Someone"), ("Two friends", "Some people"),
    ("A group of students", "Some people"),
]  # fmt: skip
PLACES = [
    "on a busy street", "in a park", "at the beach", "in a small kitchen", "near a river", "in front of a school",
    "on a rooftop", "in a crowded market", "at a train station", "in the backyard",
]  # fmt: skip
STILL = ["is asleep in bed", "is sitting alone in a dark room", "is lying on the couch with eyes closed"]
EXTRAS = [
    "for the first time", "to earn some money", "to impress a friend", "while waiting for a bus", "after work",
    "because they are bored", "for a school project", "on their birthday",
]  # fmt: skip


def _be(subject: str) -> str:
    return "are" if subject.startswith(("Two", "A group", "Some")) else "is"


def nli_example(rng: random.Random) -> Dict[str, str]:
    (who, general_who), (action, general_action), place = rng.choice(PEOPLE), rng.choice(ACTIONS), rng.choice(PLACES)
    premise = f"{who} {_be(who)} {action} {place}."
    label = rng.choice(["entailment", "neutral", "contradiction"])
    if label == "entailment":
        hypothesis = rng.choice([f"{general_who} {_be(general_who)} {general_action}.", f"{who} {_be(who)} {action}."])
    elif label == "neutral":
        hypothesis = f"{who} {_be(who)} {action} {rng.choice(EXTRAS)}."
    else:
        other = rng.choice([a for a, _ in ACTIONS if a != action])
        hypothesis = rng.choice([f"{who} {_be(who)} {other} instead.", f"{who} {rng.choice(STILL)}."])
        if _be(who) == "are":
            hypothesis = hypothesis.replace(" is ", " are ").replace(" bed.", " their beds.")
    return {"text": premise, "text_pair": hypothesis, "label": label}


SYNONYMS = {
    "A man": "A guy", "A woman": "A lady", "A young boy": "A small boy", "A little girl": "A young girl",
    "An old man": "An elderly man", "A teenager": "A teen", "Two friends": "Two pals",
    "A group of students": "Some students",
}  # fmt: skip


def sts_example(rng: random.Random) -> Dict[str, object]:
    """A sentence pair scored 0..5 by what the two share (who, what, where), with a little rater noise."""
    who, action, place = rng.choice(PEOPLE)[0], rng.choice(ACTIONS)[0], rng.choice(PLACES)
    first = f"{who} {_be(who)} {action} {place}."
    kind = rng.choice(["same", "place", "action", "who", "none"])
    if kind == "same":
        new_who = SYNONYMS[who]
        second, score = f"{new_who} {_be(new_who)} {action} {place}.", 4.8
    elif kind == "place":
        second, score = f"{who} {_be(who)} {action} {rng.choice([p for p in PLACES if p != place])}.", 3.6
    elif kind == "action":
        second, score = f"{who} {_be(who)} {rng.choice([a for a, _ in ACTIONS if a != action])} {place}.", 1.6
    elif kind == "who":
        other = rng.choice([p for p, _ in PEOPLE if p != who])
        second, score = f"{other} {_be(other)} {action} {place}.", 2.8
    else:
        other = rng.choice([p for p, _ in PEOPLE if p != who])
        new_action = rng.choice([a for a, _ in ACTIONS if a != action])
        second, score = f"{other} {_be(other)} {new_action} {rng.choice([p for p in PLACES if p != place])}.", 0.4
    score = min(5.0, max(0.0, round(score + rng.uniform(-0.4, 0.4), 1)))
    return {"text": first, "text_pair": second, "label": score}


# ---------------------------------------------------------------------------------------------------------------------
# token-classification: news-style sentences with PER / LOC / ORG (IOB2)

# templates: literal words and slots {PER} {PERSHORT} {LOC} {ORG} {YEAR} {MONTH} {DAY} {NUM}
NER_TEMPLATES = [
    "{PER} was born in {LOC} in {YEAR} .",
    "{PER} joined {ORG} in {MONTH} {YEAR} .",
    "{ORG} opened a new office in {LOC} on {DAY} .",
    "According to {PER} , {ORG} will cut prices next year .",
    "{PER} and {PER} met in {LOC} to discuss the merger with {ORG} .",
    "The mayor of {LOC} , {PER} , praised the plan on {DAY} .",
    "Shares of {ORG} rose {NUM} percent in {LOC} trading .",
    "{PER} , a spokesman for {ORG} , declined to comment .",
    "{PERSHORT} said the talks in {LOC} had gone well .",
    "{ORG} hired {PER} as its new chief executive .",
    "Police in {LOC} said {PERSHORT} was released without charge .",
    "{PER} flew from {LOC} to {LOC} on {DAY} evening .",
    "The report by {ORG} was published in {MONTH} .",
    "{PERSHORT} scored twice as {LOC} beat {LOC} {NUM} - 1 .",
    "Officials from {ORG} and {ORG} will meet in {LOC} next week .",
    "It was the first visit to {LOC} by {PER} since {YEAR} .",
    "{PER} told reporters that {ORG} had no plans to leave {LOC} .",
    "Heavy rain caused flooding across {LOC} on {DAY} .",
    "The company said sales fell {NUM} percent in {MONTH} .",
    "{PER} , who grew up in {LOC} , now works for {ORG} .",
]  # fmt: skip


def _words(text: str) -> List[str]:
    return text.split()


def ner_example(rng: random.Random) -> Dict[str, List[str]]:
    tokens: List[str] = []
    tags: List[str] = []
    for part in rng.choice(NER_TEMPLATES).split():
        if part.startswith("{") and part.endswith("}"):
            slot = part[1:-1]
            if slot in ("PER", "PERSHORT"):
                first, last, _ = person(rng)
                words, kind = ([first, last] if slot == "PER" and rng.random() < 0.8 else [last]), "PER"
            elif slot == "LOC":
                words, kind = _words(rng.choice(CITIES + COUNTRIES)), "LOC"
            elif slot == "ORG":
                name = rng.choice(ORGS)
                # "the" before an organisation is not part of its name (CoNLL-2003 convention)
                if name.startswith("the "):
                    tokens.append("the")
                    tags.append("O")
                    name = name[4:]
                words, kind = _words(name[0].upper() + name[1:]), "ORG"
            else:
                value = {
                    "YEAR": lambda: str(rng.randint(1975, 2023)),
                    "MONTH": lambda: rng.choice(MONTHS),
                    "DAY": lambda: rng.choice(WEEKDAYS),
                    "NUM": lambda: str(rng.randint(2, 9)),
                }[slot]()
                words, kind = [value], None
            tokens.extend(words)
            tags.extend(["O"] * len(words) if kind is None else [f"B-{kind}"] + [f"I-{kind}"] * (len(words) - 1))
        else:
            tokens.append(part)
            tags.append("O")
    if tokens[0] == "the":
        tokens[0] = "The"
    check_iob2(tokens, tags)
    return {"tokens": tokens, "tags": tags}


def check_iob2(tokens: Sequence[str], tags: Sequence[str]) -> None:
    if len(tokens) != len(tags):
        raise AssertionError(f"{len(tokens)} tokens but {len(tags)} tags: {tokens}")
    for i, tag in enumerate(tags):
        if tag.startswith("I-") and (i == 0 or tags[i - 1][2:] != tag[2:] or tags[i - 1] == "O"):
            raise AssertionError(f"{tag} at {i} does not continue an entity: {list(zip(tokens, tags))}")


def conll(examples: Sequence[Dict[str, List[str]]]) -> str:
    """Two columns (token, tag) separated by a space, one blank line after each sentence."""
    return "".join("".join(f"{t} {g}\n" for t, g in zip(e["tokens"], e["tags"])) + "\n" for e in examples)


# ---------------------------------------------------------------------------------------------------------------------
# question-answering: SQuAD v2.0 — short biographies with one impossible question in five

PROFESSIONS = [
    "chemist", "architect", "novelist", "marine biologist", "jazz pianist", "civil engineer", "photographer",
    "economist", "sculptor", "astronomer", "documentary filmmaker", "historian",
]  # fmt: skip
FIELDS = ["chemistry", "architecture", "literature", "biology", "music", "engineering", "physics", "economics", "law"]
UNIVERSITIES = [
    "the University of Toronto", "Trinity College Dublin", "the University of Oslo", "McGill University",
    "the University of Cape Town", "Kyoto University", "the Sorbonne", "the University of Edinburgh",
    "Uppsala University", "the University of Melbourne",
]  # fmt: skip
BOOKS = [
    "The Quiet Harbour", "Salt and Iron", "A Map of Small Rivers", "The Glass Orchard", "Northern Lights",
    "Letters from the Coast", "The Long Winter", "Under a Copper Sky", "The Weight of Water", "Paper Birds",
]  # fmt: skip
PRIZES = [
    "the Aurora Prize", "the Meridian Award", "the Halcyon Medal", "the Lantern Prize", "the Silver Quill Award",
]  # fmt: skip
PRODUCTS = ["water filters", "hearing aids", "solar lamps", "bicycle frames", "school furniture", "kitchen scales"]
FAMILY = ["two children", "a partner and a dog", "a younger sister", "three cats", "an elderly father"]
HOBBIES = ["sailing", "chess", "long-distance running", "gardening", "birdwatching", "cooking"]
#: sentences that state no askable fact: they make contexts long enough to overflow one window
FILLERS = [
    "Critics have praised {his} patience and {his} eye for detail, although some found {his} later work too cautious.",
    "Colleagues describe {him} as generous, stubborn and very hard to impress.",
    "Over the years {he} has given dozens of talks to students and young professionals.",
    "{He} rarely gives interviews and prefers to let {his} work speak for itself.",
    "Much of {his} early work was done late at night in a small rented room.",
    "Friends say that {he} still answers every letter by hand.",
    "In recent years {he} has spent more time teaching than working on new projects.",
    "Some of {his} notebooks are now kept in the archive of a small local museum.",
]  # fmt: skip


class Context:
    """A context assembled sentence by sentence, keeping the character span of every named slot."""

    def __init__(self):
        self.text = ""
        self.spans: Dict[str, Tuple[int, str]] = {}

    def add(self, template: str, **slots: str) -> None:
        """Append ``template`` (with ``{name}`` slots) as a sentence; remember where each slot's value lands."""
        if self.text:
            self.text += " "
        rest = template
        while "{" in rest:
            before, _, after = rest.partition("{")
            name, _, rest = after.partition("}")
            self.text += before
            value = slots[name]
            self.spans.setdefault(name, (len(self.text), value))
            self.text += value
        self.text += rest


def bio(rng: random.Random) -> Tuple[Context, Dict[str, str]]:
    """A short biography: each askable fact appears once; 0-4 filler sentences set the length (60-150 pieces)."""
    first, last, he = person(rng)
    facts = {
        "name": f"{first} {last}",
        "first": first,
        "last": last,
        "born": f"{rng.randint(1, 28)} {rng.choice(MONTHS)} {rng.randint(1931, 1990)}",
        "profession": rng.choice(PROFESSIONS),
        "city": rng.choice(CITIES),
        "field": rng.choice(FIELDS),
        "university": rng.choice(UNIVERSITIES),
        "book": rng.choice(BOOKS),
        "prize": rng.choice(PRIZES),
        "org": rng.choice(FOUNDABLE),
        "product": rng.choice(PRODUCTS),
        "hobby": rng.choice(HOBBIES),
        "family": rng.choice(FAMILY),
        "he": he,
        "He": he.capitalize(),
        "him": {"he": "him", "she": "her"}[he],
        "his": {"he": "his", "she": "her"}[he],
        "His": {"he": "His", "she": "Her"}[he],
    }
    facts_sentences = [
        "{He} studied {field} at {university}.",
        "{His} first book, {book}, won {prize}.",
        "{He} later founded {org}, a small company that makes {product}.",
        "Outside of work, {he} enjoys {hobby}.",
    ]
    fillers = rng.sample(FILLERS, rng.choice([0, 0, 1, 1, 2, 2, 3, 4, 6]))
    # fillers land anywhere after the first sentence, so late facts sometimes fall in a second window only
    order = facts_sentences[:]
    for filler in fillers:
        order.insert(rng.randint(0, len(order)), filler)
    ctx = Context()
    article = "an" if facts["profession"][0] in "aeiou" else "a"
    ctx.add(f"{{name}} (born {{born}}) is {article} {{profession}} from {{city}}.", **facts)
    for sentence in order:
        ctx.add(sentence, **facts)
    ctx.add("{He} lives with {family}.", **facts)
    return ctx, facts


def squad_questions(rng: random.Random, ctx: Context, facts: Dict[str, str]) -> List[Dict[str, object]]:
    """Four answerable questions and one impossible one (SQuAD v2.0 fields), in random order."""
    name, last = facts["name"], facts["last"]
    answerable = [
        (rng.choice([f"When was {name} born?", f"What is the birth date of {name}?"]), "born"),
        (rng.choice([f"What is {name}'s profession?", f"What does {name} do for a living?"]), "profession"),
        (rng.choice([f"Which city is {name} from?", f"Where is {last} from?"]), "city"),
        (f"What did {name} study?", "field"),
        (f"Where did {name} study {facts['field']}?", "university"),
        (f"What was the title of {name}'s first book?", "book"),
        (f"Which prize did {facts['book']} win?", "prize"),
        (rng.choice([f"What company did {name} found?", f"Which company was founded by {last}?"]), "org"),
        (f"What does {last}'s company make?", "product"),
        (f"What does {name} enjoy outside of work?", "hobby"),
        (f"Who does {name} live with?", "family"),
    ]
    other_field = rng.choice([f for f in FIELDS if f != facts["field"]])
    impossible = [
        (f"When did {name} die?", None),
        (f"What was the title of {name}'s second book?", "book"),
        (f"Where did {name} study {other_field}?", "university"),
        (f"Who is {name}'s brother?", None),
        (f"Which prize did {name} win for {facts['his']} second book?", "prize"),
        (f"How many books has {last} sold?", None),
        (f"Which city does {name} live in now?", "city"),
    ]
    questions = []
    for question, slot in rng.sample(answerable, 4):
        start, text = ctx.spans[slot]
        questions.append({"question": question, "answers": [{"text": text, "answer_start": start}]})
    question, slot = rng.choice(impossible)
    q: Dict[str, object] = {"question": question, "answers": [], "is_impossible": True}
    if slot is not None:  # SQuAD v2 keeps the tempting wrong span as a "plausible answer"
        start, text = ctx.spans[slot]
        q["plausible_answers"] = [{"text": text, "answer_start": start}]
    questions.insert(rng.randrange(5), q)
    for q in questions:
        for answer in q["answers"] + q.get("plausible_answers", []):
            if ctx.text[answer["answer_start"] : answer["answer_start"] + len(answer["text"])] != answer["text"]:
                raise AssertionError(f"answer {answer} is not at its offset in {ctx.text!r}")
        q.setdefault("is_impossible", False)
    return questions


def squad(rng: random.Random, n_contexts: int, id_prefix: str, taken: set) -> Dict[str, object]:
    data = []
    while len(data) < n_contexts:
        ctx, facts = bio(rng)
        if facts["name"] in taken:  # one biography per person across train and eval
            continue
        taken.add(facts["name"])
        qas = squad_questions(rng, ctx, facts)
        for i, q in enumerate(qas):
            q["id"] = f"{id_prefix}-{len(data):03d}-{i}"
        paragraph = {"context": ctx.text, "qas": [{"id": q.pop("id"), **q} for q in qas]}
        data.append({"title": facts["name"].replace(" ", "_"), "paragraphs": [paragraph]})
    return {"version": "v2.0", "data": data}


# ---------------------------------------------------------------------------------------------------------------------
# multiple-choice: SWAG-style — a situation and four endings, one of which follows

SCENARIOS = [
    ("pours boiling water into a teapot and", "waits a few minutes for the tea to steep."),
    ("pulls on a pair of running shoes and", "heads out for a jog around the park."),
    ("notices that it has started to rain, so", "opens an umbrella before stepping outside."),
    ("cracks three eggs into a bowl and", "whisks them with a fork."),
    ("hears the phone ringing in the hallway and", "hurries over to answer it."),
    ("finds the front tire of the bicycle flat, so", "takes out a pump and inflates it."),
    ("sits down at the piano and", "plays the opening bars of a song."),
    ("drops a glass on the kitchen floor and", "carefully sweeps up the broken pieces."),
    ("feels cold after coming in from the snow, so", "wraps up in a thick blanket by the fire."),
    ("picks up a paintbrush and", "dips it into a pot of blue paint."),
    ("arrives at the airport late and", "runs toward the gate with a suitcase."),
    ("plants a row of seeds in the garden and", "waters the soil with a hose."),
    ("opens the oven to check on the bread and", "sees that the crust has turned golden brown."),
    ("climbs to the top of the ladder and", "changes the bulb in the ceiling light."),
    ("takes a deep breath at the edge of the pool and", "dives into the water."),
    ("sees a friend across the street and", "waves and calls out a greeting."),
    ("sharpens a pencil and", "begins to sketch a face on the paper."),
    ("loads the dirty plates into the dishwasher and", "presses the start button."),
    ("spots a small fire in the wastebasket and", "grabs the extinguisher from the wall."),
    ("ties the boat to the dock and", "steps carefully onto the wooden planks."),
    ("feeds a coin into the parking meter and", "checks how much time it gives."),
    ("finishes the last page of the novel and", "closes the book with a sigh."),
    ("puts a kettle of soup on the stove and", "stirs it slowly with a wooden spoon."),
    ("unlocks the front door after a long day and", "drops the keys on the table."),
    ("tunes the strings of the violin and", "lifts the bow to start the piece."),
    ("spreads a map out on the table and", "traces the route with a finger."),
    ("hears the alarm clock go off and", "reaches over to switch it off."),
    ("catches a fish at the end of the line and", "reels it slowly toward the boat."),
    ("buys a ticket at the cinema and", "finds a seat near the front."),
    ("gets a splinter in a finger and", "pulls it out with a pair of tweezers."),
    ("wipes the sweat from a forehead on the hot afternoon and", "takes a long drink of cold water."),
    ("hangs the wet laundry on the line and", "pins each shirt in place."),
    ("kneels by the campfire and", "blows gently on the embers."),
    ("scrolls through the recipe on a phone and", "measures out two cups of flour."),
    ("sees the bus pulling away from the stop and", "sprints after it, waving both arms."),
    ("lifts the lid of the piano bench and", "takes out a stack of sheet music."),
    ("pulls weeds from the flower bed and", "tosses them into a bucket."),
    ("opens a can of paint and", "stirs it with a flat stick."),
    ("reaches the summit of the mountain and", "takes a photo of the valley below."),
    ("sets the table for dinner and", "lights two candles in the middle."),
]  # fmt: skip
SWAG_PEOPLE = [
    "A man", "A woman", "The boy", "The girl", "An old woman", "A young man", "The teacher", "Her brother", "The chef",
    "A tourist", "The nurse", "My neighbour", "The student", "A farmer",
]  # fmt: skip


def swag_example(rng: random.Random) -> Dict[str, object]:
    situation, ending = rng.choice(SCENARIOS)
    others = rng.sample([e for s, e in SCENARIOS if e != ending], 3)
    label = rng.randrange(4)
    choices = others[:label] + [ending] + others[label:]
    return {"context": f"{rng.choice(SWAG_PEOPLE)} {situation}", "choices": choices, "label": label}


# ---------------------------------------------------------------------------------------------------------------------
# mlm: one sentence per line, a small repetitive world; pretraining: documents of a few related sentences

ANIMALS = ["cat", "dog", "horse", "rabbit", "goat", "duck", "fox", "owl"]
MLM_TEMPLATES = [
    "the {animal} sat on the {thing} in the {room}.",
    "every morning the {animal} eats {food} in the {room}.",
    "the {animal} is sleeping under the {thing}.",
    "my sister gave the {animal} some {food} after lunch.",
    "the little {animal} ran out of the {room} and hid behind the {thing}.",
    "we found the {animal} next to the {thing} in the {room}.",
    "in the evening the {animal} likes to play with the {thing}.",
    "the old {animal} does not like {food} at all.",
]  # fmt: skip
MLM_SLOTS = {
    "thing": ["mat", "chair", "table", "sofa", "box", "bed", "rug", "basket"],
    "room": ["kitchen", "garden", "hall", "bedroom", "barn", "yard"],
    "food": ["bread", "carrots", "apples", "rice", "fish", "cheese"],
}


def mlm_line(rng: random.Random) -> str:
    template = rng.choice(MLM_TEMPLATES)
    slots = {k: rng.choice(v) for k, v in MLM_SLOTS.items()}
    return template.format(animal=rng.choice(ANIMALS), **slots)


# a document is one small story about one person; the sentences follow in order, so NSP has something to learn
DOC_SENTENCES = [
    ["{first} woke up early on {day} and made a cup of coffee.", "On {day} {first} got up before sunrise."],
    ["After breakfast {he} walked to the station in {city}.", "{He} cycled through {city} to the office."],
    ["The train was late again, so {he} read the news on {his} phone.", "The roads were busy and {he} arrived late."],
    ["At work {he} spent the morning writing a report for {org}.", "{He} spent the morning answering emails from {org}."],
    ["At noon {he} met a friend for lunch in a small cafe near the river.", "{He} ate a sandwich at {his} desk."],
    ["In the afternoon the meeting ran long and everyone looked tired.", "The afternoon was quiet, so {he} left early."],
    ["On the way home {he} bought bread, apples and a bunch of flowers.", "{He} stopped at the market for vegetables."],
    ["In the evening {he} cooked dinner and called {his} mother.", "After dinner {he} watched a film with friends."],
    ["Before going to bed {he} read a few pages of a novel.", "{He} fell asleep on the sofa before ten."],
]  # fmt: skip


def document(rng: random.Random) -> List[str]:
    first, _, he = person(rng)
    slots = {
        "first": first,
        "he": he,
        "He": he.capitalize(),
        "his": {"he": "his", "she": "her"}[he],
        "day": rng.choice(WEEKDAYS),
        "city": rng.choice(CITIES),
        "org": rng.choice(ORGS),
    }
    start = rng.randrange(0, 4)
    length = rng.randint(4, 6)
    return [rng.choice(options).format(**slots) for options in DOC_SENTENCES[start : start + length]]


# ---------------------------------------------------------------------------------------------------------------------
# writing


def to_csv(rows: Sequence[Dict[str, object]], fields: Sequence[str], delimiter: str = ",") -> str:
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=list(fields), delimiter=delimiter, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return out.getvalue()


def to_jsonl(rows: Sequence[Dict[str, object]]) -> str:
    return "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows)


def build() -> Dict[str, str]:
    """{file name: contents} of every data file."""
    files: Dict[str, str] = {}

    train, dev = split_train_eval(random.Random(101), sentiment_example, 300, 80)
    files["sst_train.csv"] = to_csv(train, ["text", "label"])
    files["sst_eval.csv"] = to_csv(dev, ["text", "label"])

    train, dev = split_train_eval(random.Random(102), nli_example, 150, 60)
    files["nli_train.tsv"] = to_csv(train, ["text", "text_pair", "label"], delimiter="\t")
    files["nli_eval.tsv"] = to_csv(dev, ["text", "text_pair", "label"], delimiter="\t")

    def sts_key(ex):
        return ex["text"] + "|" + ex["text_pair"]

    train, dev = split_train_eval(random.Random(103), sts_example, 150, 50, key=sts_key)
    files["sts_train.jsonl"] = to_jsonl(train)
    files["sts_eval.jsonl"] = to_jsonl(dev)

    train, dev = split_train_eval(random.Random(104), ner_example, 300, 80)
    files["ner_train.jsonl"] = to_jsonl(train)
    files["ner_eval.jsonl"] = to_jsonl(dev)
    files["ner_eval.conll"] = conll(dev)

    rng, taken = random.Random(105), set()
    files["squad_train.json"] = json.dumps(squad(rng, 60, "train", taken), ensure_ascii=False, indent=1) + "\n"
    files["squad_eval.json"] = json.dumps(squad(rng, 16, "eval", taken), ensure_ascii=False, indent=1) + "\n"

    train, dev = split_train_eval(random.Random(106), swag_example, 300, 80)
    files["swag_train.jsonl"] = to_jsonl(train)
    files["swag_eval.jsonl"] = to_jsonl(dev)

    train, dev = split_train_eval(random.Random(107), mlm_line, 400, 100, key=str)
    files["mlm_train.txt"] = "".join(line + "\n" for line in train)
    files["mlm_eval.txt"] = "".join(line + "\n" for line in dev)

    train, dev = split_train_eval(random.Random(108), document, 120, 30)
    files["docs_train.txt"] = "\n".join("".join(s + "\n" for s in doc) for doc in train)
    files["docs_eval.txt"] = "\n".join("".join(s + "\n" for s in doc) for doc in dev)
    return files


def main() -> None:
    files = build()
    total = 0
    for name, text in sorted(files.items()):
        data = text.encode("utf-8")
        (HERE / name).write_bytes(data)
        total += len(data)
        print(f"{name:20s} {len(data):8d} bytes")
    print(f"{'total':20s} {total:8d} bytes")


if __name__ == "__main__":
    main()
