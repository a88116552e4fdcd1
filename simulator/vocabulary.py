"""Review texts for the simulator: English sentences from templates x vocabulary.

Each of eight business categories has its own places, items, staff and occasions; each
rating its own openings, body sentences and closings, so a text reads as one review of
one kind of business with one sentiment (which is what a text-embedding or sentiment
model should see). A few Spanish, French, German and Portuguese sentences cover the
non-English share. Texts are kept JSON-escaped, ready to be pasted into a body.
"""

from __future__ import annotations

import json
import random
from dataclasses import dataclass
from typing import Final

COUNTRIES: Final = (
    "US", "GB", "CA", "AU", "IN", "DE", "FR", "ES", "MX", "BR",
    "NL", "IE", "JP", "PH", "NG", "ZA", "SE", "IT", "PL", "SG",
)  # fmt: skip
_WEIGHTS = (36, 10, 7, 5, 8, 5, 4, 3, 3, 4, 2, 2, 2, 2, 1, 1, 1, 2, 1, 1)
COUNTRY_WEIGHTS: Final = tuple(w / sum(_WEIGHTS) for w in _WEIGHTS)
LANGUAGES: Final = ("en", "es", "fr", "de", "pt")
LOCAL_LANGUAGE: Final = {"ES": 1, "MX": 1, "FR": 2, "DE": 3, "BR": 4}  # index into LANGUAGES


@dataclass(frozen=True)
class Category:
    name: str
    places: tuple[str, ...]
    items: tuple[str, ...]
    staff: tuple[str, ...]
    visits: tuple[str, ...]


CATEGORIES: Final = (
    Category(
        "restaurant",
        ("restaurant", "place", "spot", "bistro", "kitchen"),
        ("pasta", "burger", "steak", "tacos", "ramen", "pizza", "salad", "seafood platter",
         "curry", "dessert", "brunch menu", "wine list", "fried chicken", "soup of the day"),
        ("our server", "the waiter", "the hostess", "the chef", "the bartender", "the manager"),
        ("dinner", "lunch", "a birthday dinner", "date night", "a quick lunch",
         "Sunday brunch", "a team dinner"),
    ),
    Category(
        "cafe",
        ("cafe", "coffee shop", "spot", "bakery"),
        ("latte", "cappuccino", "cold brew", "croissant", "avocado toast", "banana bread",
         "matcha", "espresso", "cinnamon roll", "breakfast sandwich"),
        ("the barista", "the owner", "the cashier", "the guy at the counter"),
        ("a morning coffee", "a work session", "breakfast", "an afternoon break",
         "a catch-up with a friend"),
    ),
    Category(
        "hotel",
        ("hotel", "property", "resort", "inn"),
        ("room", "bed", "breakfast buffet", "pool", "bathroom", "view", "lobby", "wifi",
         "spa", "room service"),
        ("the front desk clerk", "the concierge", "the housekeeper", "the night manager",
         "the valet"),
        ("a weekend getaway", "a business trip", "our anniversary", "a three-night stay",
         "a family vacation", "a conference"),
    ),
    Category(
        "salon",
        ("salon", "studio", "barbershop"),
        ("haircut", "color", "balayage", "blowout", "beard trim", "highlights", "manicure",
         "keratin treatment"),
        ("my stylist", "the receptionist", "the colorist", "the barber"),
        ("a quick trim", "a full color appointment", "a wedding updo", "my monthly cut"),
    ),
    Category(
        "auto_repair",
        ("shop", "garage", "auto shop", "service center"),
        ("brake job", "oil change", "transmission repair", "tire rotation", "diagnostic",
         "alignment", "AC repair", "battery replacement"),
        ("the mechanic", "the service advisor", "the owner", "the technician"),
        ("a check engine light", "a routine service", "a flat tire", "a pre-trip inspection",
         "a strange noise from the engine"),
    ),
    Category(
        "dentist",
        ("practice", "dental office", "clinic"),
        ("cleaning", "filling", "crown", "whitening", "root canal", "checkup", "x-ray",
         "night guard"),
        ("the hygienist", "the dentist", "the receptionist", "the dental assistant"),
        ("a routine cleaning", "a toothache", "my first visit", "an emergency appointment",
         "my kid's checkup"),
    ),
    Category(
        "gym",
        ("gym", "fitness center", "studio", "fitness club"),
        ("equipment", "spin class", "locker room", "weight room", "yoga class",
         "personal training session", "sauna", "group class"),
        ("the trainer", "the front desk attendant", "the instructor", "the manager"),
        ("a trial week", "early morning workouts", "a monthly membership", "a drop-in class"),
    ),
    Category(
        "home_services",
        ("company", "plumbing service", "crew", "contractor"),
        ("repair", "water heater install", "drain cleaning", "leak fix", "estimate",
         "pipe replacement", "bathroom remodel", "furnace tune-up"),
        ("the plumber", "the technician", "the dispatcher", "the foreman"),
        ("a burst pipe", "a clogged drain", "a kitchen remodel", "a weekend emergency",
         "a leaking faucet"),
    ),
)  # fmt: skip

_ADJECTIVES: Final = {
    5: ("amazing", "outstanding", "fantastic", "excellent", "superb", "perfect", "incredible"),
    4: ("good", "solid", "really nice", "very good", "great", "pleasant", "well done"),
    3: ("okay", "decent", "fine", "average", "hit or miss", "not bad", "a bit uneven"),
    2: ("disappointing", "mediocre", "underwhelming", "sloppy", "overpriced", "not great"),
    1: ("terrible", "awful", "horrible", "unacceptable", "a complete mess", "a joke"),
}
_STAFF_GOOD: Final = ("friendly", "attentive", "professional", "helpful", "welcoming",
                      "knowledgeable", "patient", "quick")  # fmt: skip
_STAFF_BAD: Final = ("rude", "dismissive", "slow", "unprofessional", "careless", "unhelpful",
                     "clueless", "pushy")  # fmt: skip
_WAITS: Final = ("twenty minutes", "half an hour", "forty-five minutes", "over an hour",
                 "two hours")  # fmt: skip
_NAMES: Final = ("Maria", "James", "Priya", "Tom", "Aisha", "Carlos", "Mei", "Olga", "Sam",
                 "Fatima", "Luca", "Grace")  # fmt: skip

_OPENINGS: Final = {
    5: ("Absolutely loved this {place}!", "Best {place} in town, hands down.",
        "Came here for {visit} and it was {adj}.", "Five stars without hesitation.",
        "What a find!", "I can't say enough good things about this {place}.",
        "This {place} is a gem."),
    4: ("Really good experience overall.", "Came here for {visit} and enjoyed it.",
        "Solid {place} with a few small quirks.", "Glad we tried this {place}.",
        "A pleasant surprise for {visit}.", "Good {place}, would recommend."),
    3: ("It was an okay experience.", "Came here for {visit}; mixed feelings.",
        "Not bad, not great.", "An average {place}, nothing special.",
        "Some things were good, some were not."),
    2: ("Expected more from this {place}.", "Came here for {visit} and left disappointed.",
        "Not a great experience.", "I wouldn't rush back.", "Had higher hopes for this {place}."),
    1: ("Stay away from this {place}.", "Worst {place} I have been to in years.",
        "Came here for {visit} and regretted it.", "Absolutely terrible experience.",
        "Do not waste your money here."),
}  # fmt: skip
_POSITIVE: Final = (
    "The {item} was {adj}.", "{Staff} was {good} and {good2}.",
    "Prices were fair for the quality.", "Everything was clean and well organized.",
    "The {item} exceeded my expectations.", "{Staff} took the time to explain everything.",
    "Booking was easy and they were right on time.",
    "I have been coming here for years and it never disappoints.",
    "The {item} alone is worth the trip.", "{Staff} remembered us from last time.",
)  # fmt: skip
_MIXED: Final = (
    "The {item} was {adj}, but the {item2} could be better.",
    "{Staff} was {good}, though we waited {wait}.", "A little pricey for what you get.",
    "Service was slow but the {item} made up for it.", "Clean enough, but it felt dated.",
    "The {item} was fine; nothing I would rave about.",
    "{Staff} seemed {bad} at first but sorted it out in the end.",
)  # fmt: skip
_NEGATIVE: Final = (
    "The {item} was {adj}.", "{Staff} was {bad} and {bad2}.",
    "We waited {wait} and nobody apologized.",
    "They charged us for things we never asked for.", "The place was dirty and smelled bad.",
    "I had to call three times to get an answer.", "The {item} was not worth the price.",
    "{Staff} ignored us for {wait}.", "When I complained about the {item}, {staff} shrugged.",
)  # fmt: skip
_CLOSINGS: Final = {
    5: ("Highly recommend!", "Will definitely be back.", "Can't wait to come back for the {item}.",
        "Ask for {name}, you won't regret it.", "Ten out of ten."),
    4: ("Would come back.", "Recommended.", "Worth a visit.", "We'll be back for the {item}."),
    3: ("Might give it another try.", "It's fine if you're nearby.", "Three stars feels right."),
    2: ("Probably won't return.", "There are better options nearby.", "Not worth the hype."),
    1: ("Never again.", "Avoid.", "I asked for the manager and got no response.",
        "Save yourself the trouble."),
}  # fmt: skip
_FOREIGN: Final = {  # language -> (negative, mixed, positive) sentences
    "es": (("Muy mala experiencia.", "El servicio fue lento y caro.", "No volveré."),
           ("Estuvo bien, nada especial.", "Un poco caro para lo que es."),
           ("¡Excelente servicio!", "El personal fue muy amable.", "Volveremos pronto.")),
    "fr": (("Très déçu.", "Le service était lent et le personnel désagréable.", "À éviter."),
           ("Correct, sans plus.", "Un peu cher pour ce que c'est."),
           ("Excellent, je recommande !", "Personnel très accueillant.", "On reviendra.")),
    "de": (("Sehr enttäuschend.", "Lange Wartezeit und unfreundliches Personal.", "Nie wieder."),
           ("Ganz okay, nichts Besonderes.", "Etwas teuer für das Gebotene."),
           ("Hervorragend!", "Sehr freundliches Personal.", "Wir kommen gerne wieder.")),
    "pt": (("Péssima experiência.", "Atendimento demorado e caro.", "Não volto mais."),
           ("Foi razoável, nada de especial.", "Um pouco caro pelo que oferece."),
           ("Excelente atendimento!", "Equipe muito simpática.", "Voltaremos com certeza.")),
}  # fmt: skip
_SPAM: Final = (
    "Best {item} deals in town! Get 30% off at {{domain}} with code {{code}}.",
    "Loved it! Check {{domain}} for the same {item} at half the price, code {{code}}.",
    "Great {place}. For discounts on your next {item} visit {{domain}} (code {{code}}).",
)  # fmt: skip
_SPAM_DOMAINS: Final = ("best-deals-now.example", "cheap-offers.example", "promo4u.example")


def escape(text: str) -> str:
    """`text` as it appears between the quotes of a JSON string (UTF-8 kept)."""
    return json.dumps(text, ensure_ascii=False)[1:-1]


def _fill(template: str, category: Category, rating: int, rng: random.Random) -> str:
    staff = rng.choice(category.staff)
    item, item2 = rng.sample(category.items, 2)
    good, good2 = rng.sample(_STAFF_GOOD, 2)
    bad, bad2 = rng.sample(_STAFF_BAD, 2)
    return template.format(
        place=rng.choice(category.places),
        item=item,
        item2=item2,
        staff=staff,
        Staff=staff[0].upper() + staff[1:],
        visit=rng.choice(category.visits),
        adj=rng.choice(_ADJECTIVES[rating]),
        good=good,
        good2=good2,
        bad=bad,
        bad2=bad2,
        wait=rng.choice(_WAITS),
        name=rng.choice(_NAMES),
    )


def _pool(
    templates: tuple[str, ...], category: Category, rating: int, rng: random.Random, size: int
) -> tuple[str, ...]:
    sentences = {_fill(rng.choice(templates), category, rating, rng) for _ in range(size)}
    return tuple(sorted(escape(s) for s in sentences))


_Pools = tuple[tuple[str, ...], tuple[tuple[str, ...], ...], tuple[str, ...]]


class TextPools:
    """Escaped sentence pools per (category, rating); `compose` draws one review text.

    Body sentences are pooled per template, and one text never uses a template twice.
    """

    def __init__(self, seed: int, fills: int = 24) -> None:
        rng = random.Random(seed)
        self._pools: list[_Pools] = []
        for category in CATEGORIES:
            for rating in range(1, 6):
                templates = _POSITIVE if rating >= 4 else _MIXED if rating == 3 else _NEGATIVE
                bodies = tuple(_pool((t,), category, rating, rng, fills) for t in templates)
                openings = _pool(_OPENINGS[rating], category, rating, rng, fills)
                closings = _pool(_CLOSINGS[rating], category, rating, rng, fills)
                self._pools.append((openings, bodies, closings))
        self._foreign = {
            language: tuple(tuple(escape(s) for s in group) for group in groups)
            for language, groups in _FOREIGN.items()
        }

    def compose(self, category: int, rating: int, language: str, r: int) -> str:
        """An escaped review text; `r` is a random integer in [0, 2**62)."""
        if language != "en":
            group = self._foreign[language][0 if rating <= 2 else 1 if rating == 3 else 2]
            first = r % len(group)
            second = (first + 1 + (r >> 8) % (len(group) - 1)) % len(group)
            return f"{group[first]} {group[second]}"
        openings, bodies, closings = self._pools[category * 5 + rating - 1]
        parts = [openings[r % len(openings)]]
        r >>= 8
        template = r % len(bodies)
        for _ in range(1 + (r >> 4) % 3):
            r >>= 9
            template = (template + 1 + r % 2) % len(bodies)
            fills = bodies[template]
            parts.append(fills[(r >> 1) % len(fills)])
        if (r >> 8) % 5 < 3:
            parts.append(closings[(r >> 11) % len(closings)])
        return " ".join(parts)


def fraud_base(category: int, rating: int, rng: random.Random) -> str:
    """An over-the-top review that a ring copies with small edits."""
    cat = CATEGORIES[category]
    bodies = _POSITIVE if rating >= 4 else _NEGATIVE
    parts = [_fill(rng.choice(_OPENINGS[rating]), cat, rating, rng)]
    parts += [_fill(rng.choice(bodies), cat, rating, rng) for _ in range(2)]
    parts.append(_fill(rng.choice(_CLOSINGS[rating]), cat, rating, rng))
    return " ".join(parts)


def spam_base(category: int, rng: random.Random) -> str:
    code = f"{rng.choice(('SAVE', 'DEAL', 'VIP'))}{rng.randint(10, 99)}"
    return (
        _fill(rng.choice(_SPAM), CATEGORIES[category], 5, rng)
        .replace("{domain}", rng.choice(_SPAM_DOMAINS))
        .replace("{code}", code)
    )


_SWAPS: Final = (("amazing", "awesome"), ("great", "excellent"), ("terrible", "awful"),
                 ("Highly recommend!", "Highly recommended!!"), ("never", "NEVER"),
                 ("best", "very best"), ("worst", "absolute worst"))  # fmt: skip
_TAILS: Final = {
    True: (" 5 stars!", " 10/10.", " Must try!", " Thank you!", " Trust me."),
    False: (" Zero stars if I could.", " Avoid!", " Trust me.", " Never again!", " Beware."),
}


def near_duplicate(base: str, rng: random.Random, *, positive: bool) -> str:
    """`base` with one or two small edits, as copy-paste reviewers make them."""
    text, tails = base, _TAILS[positive]
    for _ in range(rng.randint(1, 2)):
        edit = rng.randrange(4)
        if edit == 0:
            old, new = rng.choice(_SWAPS)
            text = text.replace(old, new, 1) if old in text else text + rng.choice(tails)
        elif edit == 1:
            text += rng.choice(tails)
        elif edit == 2:
            text = text.replace(". ", "! ", 1) if ". " in text else text + rng.choice(tails)
        else:
            text = rng.choice(("Wow. ", "OMG! ", "Update: ", "Honest review: ")) + text
    return text
