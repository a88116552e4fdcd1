"""Names of the messaging resources, derived from the sources, and planned changes."""

from __future__ import annotations

from dataclasses import dataclass

from feature_store.registry import Registry

STREAM_ACK_DEADLINE_S = 60


def dlq_topic(topic: str) -> str:
    return f"{topic}-dlq"


def late_topic(topic: str) -> str:
    return f"{topic}-late"


def stream_subscription(topic: str) -> str:
    """The subscription the streaming job reads."""
    return f"{topic}-stream"


def inspect_subscription(topic: str) -> str:
    """A subscription on a side topic (dead letters, late events) for people to read."""
    return f"{topic}-inspect"


@dataclass(frozen=True)
class TopicSpec:
    name: str
    subscriptions: tuple[str, ...]


def topics(registry: Registry) -> list[TopicSpec]:
    out = []
    for source in registry.sources:
        out.append(TopicSpec(source.topic, (stream_subscription(source.topic),)))
        for side in (dlq_topic(source.topic), late_topic(source.topic)):
            out.append(TopicSpec(side, (inspect_subscription(side),)))
    return out


@dataclass(frozen=True)
class Change:
    """One resource `apply` would create (or found in place)."""

    kind: str
    name: str
    action: str  # "create" or "exists" (or "update" for Feast objects)

    def __str__(self) -> str:
        mark = {"create": "+", "update": "~", "delete": "-", "exists": "="}.get(self.action, "?")
        return f"{mark} {self.kind} {self.name}"
