"""The simulated world and its valid events, drawn as numpy columns.

Users (home country, a few IPs and devices, an activity level, perhaps a signup inside the
span), businesses (category, popularity, quality), the legitimate activity of the users,
the fraud scenarios and the flags on reviews. Every event is a row of int64 columns
(`COLUMNS`, -1 for absent); `simulator` turns rows into message bodies.
"""

from __future__ import annotations

import logging
import random
from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final

import numpy as np
import numpy.typing as npt

from simulator import vocabulary as vocab

if TYPE_CHECKING:
    from simulator.traffic import SimulationConfig

logger = logging.getLogger(__name__)

Array = npt.NDArray[Any]

SECOND: Final = 1_000_000
MINUTE: Final = 60 * SECOND
HOUR: Final = 60 * MINUTE
NEVER: Final = -(2**63)  # the signup time of accounts older than the span

# event type codes of the `etype` column
CREATED, FLAGGED, LOGIN, SIGNUP, PROFILE = range(5)
TYPE_NAMES: Final = ("review_created", "review_flagged", "login", "signup", "profile_update")
REASONS: Final = ("spam", "fake", "abuse", "other")
FRAUD_LABELS: Final = (None, "boost", "campaign", "spam")  # codes of the `fraud` column
REVIEW_NUMBERS: Final = 2**32  # review ids are a bijection of the numbers below this
BOOST, CAMPAIGN, SPAM = 1, 2, 3


# ----------------------------------------------------------------------------- time


def diurnal_times(rng: np.random.Generator, n: int, start: int, span: int) -> Array:
    """`n` sorted event times (UTC us) from a day/week-shaped rate over [start, start+span)."""
    minutes = max(1, -(-span // MINUTE))
    grid = start + np.arange(minutes, dtype=np.int64) * MINUTE
    hour = (grid // HOUR) % 24
    weekday = (grid // (24 * HOUR) + 3) % 7  # 1970-01-01 was a Thursday; 5, 6 = Sat, Sun
    weight = (1.0 + 0.7 * np.cos(2 * np.pi * (hour - 19) / 24)) * np.where(weekday >= 5, 1.2, 1)
    cumulative = np.cumsum(weight)
    picks = np.searchsorted(cumulative, rng.random(n) * cumulative[-1], side="right")
    offsets = rng.integers(0, MINUTE, size=n)
    times = np.minimum(grid[np.minimum(picks, minutes - 1)] + offsets, start + span - 1)
    return np.sort(times)


# ----------------------------------------------------------------------------- world


@dataclass(frozen=True)
class World:
    user_weight: Array  # activity, 0 for fraud accounts
    signup: Array  # UTC us; int64 min for accounts older than the span
    home: Array  # country index into vocab.COUNTRIES
    language: Array  # index into vocab.LANGUAGES of the user's local language (0: English only)
    ips: Array  # (users, 3) indices into ip_country / ip_key
    n_ips: Array
    devices: Array  # (users, 2) indices into device_key
    n_devices: Array
    category: Array  # business -> index into vocab.CATEGORIES
    popularity: Array
    rating_cdf: Array  # (businesses, 5)

    def businesses_for(self, rng: np.random.Generator, kind: int, size: int) -> Array:
        """Boosts favour small businesses, campaigns hit popular ones, spam goes anywhere."""
        count = self.popularity.size
        if kind == BOOST:
            return np.full(size, rng.integers(0, count), dtype=np.int64)
        if kind == CAMPAIGN:
            return np.full(size, rng.choice(count, p=self.popularity), dtype=np.int64)
        return rng.choice(count, size=size, p=self.popularity)

    def ratings(self, rng: np.random.Generator, businesses: Array) -> Array:
        above = rng.random(businesses.size)[:, None] > self.rating_cdf[businesses, :4]
        ratings: Array = 1 + above.sum(axis=1)
        return ratings


class Keys:
    """Growing pools of IPs and devices (their hashed ids are drawn at render time)."""

    def __init__(self, ip_country: Array, devices: int) -> None:
        self._countries = [ip_country]
        self.ips = ip_country.size
        self.devices = devices

    def ip_country(self) -> Array:
        self._countries = [np.concatenate(self._countries)]
        return self._countries[0]

    def new_ips(self, countries: Array) -> Array:
        self._countries.append(countries)
        self.ips += countries.size
        return np.arange(self.ips - countries.size, self.ips, dtype=np.int64)

    def new_devices(self, n: int) -> Array:
        self.devices += n
        return np.arange(self.devices - n, self.devices, dtype=np.int64)


def build_world(
    rng: np.random.Generator, config: SimulationConfig, start: int, span: int
) -> tuple[World, Keys]:
    users, businesses = config.users, config.businesses
    home = rng.choice(len(vocab.COUNTRIES), size=users, p=vocab.COUNTRY_WEIGHTS)
    n_ips = rng.choice(3, size=users, p=(0.5, 0.35, 0.15)) + 1
    ips = np.arange(users * 3, dtype=np.int64).reshape(users, 3)
    households = np.flatnonzero(rng.random(users) < 0.04)  # share a home IP with someone
    if users > 1 and households.size:
        partners = rng.integers(0, users, size=households.size)
        ips[households, 0] = ips[partners, 0]
        home[households] = home[partners]
    ip_country = np.repeat(home, 3)
    language = np.array([vocab.LOCAL_LANGUAGE.get(c, 0) for c in vocab.COUNTRIES])[home]
    n_devices = rng.choice(2, size=users, p=(0.6, 0.4)) + 1
    devices = np.arange(users * 2, dtype=np.int64).reshape(users, 2)
    signup = np.full(users, NEVER, dtype=np.int64)
    new = np.flatnonzero(rng.random(users) < config.new_user_share)
    signup[new] = diurnal_times(rng, new.size, start, span)[rng.permutation(new.size)]
    category = rng.integers(0, len(vocab.CATEGORIES), size=businesses)
    popularity = 1.0 / np.arange(1, businesses + 1) ** 0.9
    popularity = popularity[rng.permutation(businesses)]
    quality = np.clip(rng.normal(0.3, 0.7, size=businesses), -1.5, 1.5)
    base = np.array([0.10, 0.07, 0.11, 0.25, 0.47])
    tilted = base * np.exp(np.outer(quality, np.arange(-2, 3)) * 0.6)
    rating_cdf = np.cumsum(tilted / tilted.sum(axis=1, keepdims=True), axis=1)
    world = World(
        user_weight=rng.lognormal(0.0, 0.9, size=users),
        signup=signup,
        home=home,
        language=language,
        ips=ips,
        n_ips=n_ips,
        devices=devices,
        n_devices=n_devices,
        category=category,
        popularity=popularity / popularity.sum(),
        rating_cdf=rating_cdf,
    )
    return world, Keys(ip_country, users * 2)


# ----------------------------------------------------------------------------- columns

# Valid events are rows of int64 columns; -1 means absent.
COLUMNS: Final = (
    "t",
    "etype",
    "user",
    "business",
    "review",
    "rating",
    "ip",
    "device",
    "country",
    "lang",
    "reason",
    "text",
    "rnd",
    "fraud",
)
Rows = dict[str, Array]


def _rows(n: int, **columns: Array | int) -> Rows:
    defaults = {"lang": 0, "fraud": 0, "rnd": 0}
    out: Rows = {}
    for name in COLUMNS:
        value = columns.get(name, defaults.get(name, -1))
        out[name] = np.broadcast_to(np.asarray(value, dtype=np.int64), (n,)).copy()
    return out


def _concat(parts: Iterable[Rows]) -> Rows:
    parts = list(parts)
    return {name: np.concatenate([p[name] for p in parts]) for name in COLUMNS}


def _pick(rng: np.random.Generator, table: Array, counts: Array, owners: Array) -> Array:
    """For each owner, one of its first `counts[owner]` entries of `table` at random."""
    slot = (rng.random(owners.size) * counts[owners]).astype(np.int64)
    picked: Array = np.asarray(table[owners, slot], dtype=np.int64)
    return picked


def _weights(weight: Array) -> Array:
    total = weight.sum()
    return weight / total if total > 0 else np.full(weight.size, 1.0 / weight.size)


# ----------------------------------------------------------------------------- fraud


@dataclass
class _Ring:
    accounts: Array
    ips: Array
    devices: Array
    country: int


class _FraudPlanner:
    """Fraud scenarios, each a few dozen reviews with the logins and signups around them."""

    def __init__(
        self,
        rng: np.random.Generator,
        world: World,
        keys: Keys,
        *,
        seed: int,
        start: int,
        span: int,
    ) -> None:
        self.rng, self.prng, self.world, self.keys = rng, random.Random(seed), world, keys
        self.start, self.span = start, span
        self.free = list(rng.permutation(world.user_weight.size).tolist())
        self.max_accounts = world.user_weight.size // 5
        self.rings: list[_Ring] = []
        self.claimed: list[tuple[_Ring, int]] = []  # every ring made, with its first scenario
        self.texts: list[str] = []
        self.parts: list[Rows] = []

    def _ring(self, size: int, kind: int) -> _Ring | None:
        reuse = kind != SPAM  # a spammer works alone
        if reuse and self.rings and self.prng.random() < 0.3:
            return self.prng.choice(self.rings)
        if len(self.free) <= self.world.user_weight.size - self.max_accounts + size:
            return None
        accounts = np.array([self.free.pop() for _ in range(size)], dtype=np.int64)
        country = self.prng.randrange(len(vocab.COUNTRIES))
        ring = _Ring(
            accounts=accounts,
            ips=self.keys.new_ips(np.full(self.prng.randint(1, 3), country)),
            devices=self.keys.new_devices(self.prng.randint(1, 3)),
            country=country,
        )
        self.world.user_weight[accounts] = 0.0  # no legitimate activity from these accounts
        self.claimed.append((ring, kind))
        if reuse:
            self.rings.append(ring)
        return ring

    def plan(self, budget: int) -> int:
        """Scenarios until `budget` reviews are used; returns the reviews planned."""
        planned = 0
        while planned < budget:
            kind = self.prng.choices((BOOST, CAMPAIGN, SPAM), weights=(0.45, 0.35, 0.2))[0]
            low, high = {BOOST: (15, 60), CAMPAIGN: (10, 40), SPAM: (8, 30)}[kind]
            size = min(self.prng.randint(low, high), budget - planned)
            if not self._scenario(kind, size):
                logger.info("fraud stops after %d reviews: too few users for more", planned)
                break
            planned += size
        self._signups()
        return planned

    def _scenario(self, kind: int, size: int) -> bool:
        rng, world = self.rng, self.world
        ring = self._ring(1 if kind == SPAM else int(np.clip(size // 2, 4, 25)), kind)
        if ring is None:
            return False
        hours = {BOOST: (0.5, 3.0), CAMPAIGN: (6.0, 36.0), SPAM: (1.0, 4.0)}[kind]
        window = min(int(self.prng.uniform(*hours) * HOUR), self.span)
        first = self.start + self.prng.randrange(self.span - window + 1)
        t = np.sort(rng.integers(first, first + window, size=size))
        users = rng.permutation(np.resize(rng.permutation(ring.accounts), size))
        businesses = world.businesses_for(rng, kind, size)
        rating = 1 if kind == CAMPAIGN else 5
        ratings = np.where(rng.random(size) < 0.9, rating, 4 if rating == 5 else 2)
        category = int(world.category[businesses[0]])
        base = (
            vocab.spam_base(category, self.prng)
            if kind == SPAM
            else vocab.fraud_base(category, rating, self.prng)
        )
        first_text = len(self.texts)
        self.texts += [
            vocab.escape(vocab.near_duplicate(base, self.prng, positive=rating >= 4))
            for _ in range(size)
        ]
        ips = ring.ips[rng.integers(0, ring.ips.size, size=size)]
        devices = ring.devices[rng.integers(0, ring.devices.size, size=size)]
        common: dict[str, Array | int] = {"user": users, "ip": ips, "fraud": kind}
        self.parts.append(
            _rows(
                size,
                t=t,
                etype=CREATED,
                business=businesses,
                rating=ratings,
                device=devices,
                text=np.arange(first_text, first_text + size),
                **common,
            )
        )
        login_t = np.maximum(t - rng.integers(MINUTE, 20 * MINUTE, size=size), self.start)
        self.parts.append(_rows(size, t=login_t, etype=LOGIN, country=ring.country, **common))
        return True

    def _signups(self) -> None:
        """Each ring account signs up 10 minutes to 3 days before its first activity
        (an event only when that is inside the span)."""
        if not self.parts:
            return
        rows = _concat(self.parts)
        first = np.full(self.world.user_weight.size, np.iinfo(np.int64).max)
        np.minimum.at(first, rows["user"], rows["t"])
        for ring, kind in self.claimed:
            accounts = ring.accounts[first[ring.accounts] < np.iinfo(np.int64).max]
            lead = self.rng.integers(10 * MINUTE, 72 * HOUR, size=accounts.size)
            signup = first[accounts] - lead
            self.world.signup[accounts] = signup
            inside = signup >= self.start
            self.parts.append(
                _rows(
                    int(inside.sum()),
                    t=signup[inside],
                    etype=SIGNUP,
                    user=accounts[inside],
                    ip=ring.ips[0],
                    country=ring.country,
                    fraud=kind,
                )
            )


# ----------------------------------------------------------------------------- background


def _active_users(rng: np.random.Generator, world: World, t: Array) -> Array:
    """Users by activity; one drawn before their signup is swapped for an older account."""
    users = rng.choice(world.user_weight.size, size=t.size, p=_weights(world.user_weight))
    early = np.flatnonzero(t < world.signup[users])
    old = np.flatnonzero((world.signup == NEVER) & (world.user_weight > 0))
    if early.size and old.size:
        users[early] = rng.choice(old, size=early.size, p=_weights(world.user_weight[old]))
    return np.asarray(users, dtype=np.int64)


def _first_visits(rng: np.random.Generator, world: World, users: Array) -> Array:
    """A business by popularity for each review; a user seldom reviews one business twice
    (a repeat is redrawn, uniformly, a few times over)."""
    count = world.popularity.size
    businesses = rng.choice(count, size=users.size, p=world.popularity)
    for _ in range(3):
        _, first = np.unique(users * count + businesses, return_index=True)
        repeat = np.ones(users.size, dtype=bool)
        repeat[first] = False
        if not repeat.any():
            break
        businesses[repeat] = rng.integers(0, count, size=int(repeat.sum()))
    return businesses


def _background(
    rng: np.random.Generator,
    world: World,
    keys: Keys,
    *,
    counts: dict[int, int],
    newcomers: Array,
    start: int,
    span: int,
) -> list[Rows]:
    """Legitimate reviews, profile updates, logins and signups."""
    n = counts[CREATED]
    t = diurnal_times(rng, n, start, span)
    users = _active_users(rng, world, t)
    businesses = _first_visits(rng, world, users)
    local = (world.language[users] > 0) & (rng.random(n) < 0.6)
    ips = np.where(rng.random(n) < 0.02, -1, _pick(rng, world.ips, world.n_ips, users))
    devices = _pick(rng, world.devices, world.n_devices, users)
    reviews = _rows(
        n,
        t=t,
        etype=CREATED,
        user=users,
        business=businesses,
        rating=world.ratings(rng, businesses),
        ip=ips,
        device=np.where(rng.random(n) < 0.04, -1, devices),
        lang=np.where(local, world.language[users], 0),
        rnd=rng.integers(0, 2**62, size=n),
    )
    parts = [reviews]
    ip_country = keys.ip_country()
    for etype in (PROFILE, LOGIN):
        n = counts[etype]
        t = diurnal_times(rng, n, start, span)
        users = _active_users(rng, world, t)
        ips = _pick(rng, world.ips, world.n_ips, users)
        country = ip_country[ips]
        if etype == LOGIN:  # a few logins from elsewhere: travel, a VPN
            away = np.flatnonzero(rng.random(n) < 0.03)
            countries = rng.choice(len(vocab.COUNTRIES), size=away.size)
            ips[away] = keys.new_ips(countries)
            country[away] = countries
        country = np.where(rng.random(n) < 0.02, -1, country)
        parts.append(_rows(n, t=t, etype=etype, user=users, ip=ips, country=country))
    home_ips = world.ips[newcomers, 0]
    parts.append(
        _rows(
            newcomers.size,
            t=world.signup[newcomers],
            etype=SIGNUP,
            user=newcomers,
            ip=home_ips,
            country=ip_country[home_ips],
        )
    )
    return parts


def _flags(rng: np.random.Generator, created: Rows, n: int, end: int) -> Rows:
    """`review_flagged` events, three in four on fraudulent reviews, each after its review."""
    fraud = np.flatnonzero(created["fraud"] > 0)
    legit = np.flatnonzero(created["fraud"] == 0)
    on_fraud = rng.random(n) < (0.75 if fraud.size else 0.0)
    if legit.size == 0:
        on_fraud[:] = True
    targets = np.empty(n, dtype=np.int64)
    targets[on_fraud] = rng.choice(fraud, size=int(on_fraud.sum())) if fraud.size else 0
    targets[~on_fraud] = rng.choice(legit, size=int((~on_fraud).sum())) if legit.size else 0
    kind = created["fraud"][targets]
    reason = np.select(
        [kind == SPAM, kind > 0],
        [
            rng.choice(4, size=n, p=(0.85, 0.1, 0.0, 0.05)),
            rng.choice(4, size=n, p=(0.2, 0.65, 0.1, 0.05)),
        ],
        rng.choice(4, size=n, p=(0.2, 0.15, 0.3, 0.35)),
    )
    delay = MINUTE + rng.exponential(3 * HOUR, size=n).astype(np.int64)
    t = np.minimum(created["t"][targets] + delay, end - 1)
    return _rows(
        n,
        t=np.maximum(t, created["t"][targets]),
        etype=FLAGGED,
        user=created["user"][targets],
        business=created["business"][targets],
        review=created["review"][targets],
        reason=reason,
    )


def plan_valid_events(
    rng: np.random.Generator, config: SimulationConfig, n_valid: int, start: int, span: int
) -> tuple[Rows, World, Keys, list[str]]:
    """All valid events as columns sorted by event time; exactly `n_valid` rows."""
    world, keys = build_world(rng, config, start, span)
    counts = {
        CREATED: round(n_valid * config.review_share),
        PROFILE: round(n_valid * config.profile_share),
    }
    n_flags = round(n_valid * config.flag_share) if counts[CREATED] else 0
    rest = n_valid - counts[CREATED] - counts[PROFILE] - n_flags
    budget = round(counts[CREATED] * config.fraud_share) if counts[CREATED] >= 50 else 0
    planner = _FraudPlanner(rng, world, keys, seed=config.seed, start=start, span=span)
    fraud_reviews = planner.plan(min(budget, rest // 3))
    counts[CREATED] -= fraud_reviews
    fraud = _concat(planner.parts) if planner.parts else _rows(0)
    rest -= fraud["t"].size - fraud_reviews  # their logins and signups
    eligible = np.flatnonzero((world.signup >= start) & (world.user_weight > 0))
    newcomers = np.sort(rng.permutation(eligible)[: rest // 10])  # signups stay a small share
    world.signup[np.setdiff1d(eligible, newcomers)] = NEVER
    counts[LOGIN] = rest - newcomers.size
    rows = _concat(
        [
            fraud,
            *_background(
                rng, world, keys, counts=counts, newcomers=newcomers, start=start, span=span
            ),
        ]
    )
    created = np.flatnonzero(rows["etype"] == CREATED)
    rows["review"][created] = (config.first_review + np.arange(created.size)) % REVIEW_NUMBERS
    if n_flags:
        review_rows = {name: column[created] for name, column in rows.items()}
        rows = _concat([rows, _flags(rng, review_rows, n_flags, start + span)])
    order = np.argsort(rows["t"], kind="stable")
    return {name: column[order] for name, column in rows.items()}, world, keys, planner.texts
