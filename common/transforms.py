"""Beam transforms both jobs share (no I/O): validation with a dead-letter output, and
keying events by (view, entity) for the aggregation core.

Sharing them is what makes the twin jobs compute the same thing from the same events.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator, Mapping, Sequence
from datetime import timedelta
from typing import Any

import apache_beam as beam
from apache_beam import pvalue
from apache_beam.pvalue import PCollection

from common.archive import ARCHIVE, archive_row
from common.metrics import JobCounter
from common.stages import DEAD_LETTER_HINTS, VALIDATION_HINTS, Stage
from feature_store.core.derived_fields import add_derived
from feature_store.core.plan import ViewPlan
from feature_store.definitions import DType
from feature_store.events import (
    DEFAULT_CLOCK_SKEW,
    Contract,
    DeadLetter,
    Event,
    Reason,
    contracts_of,
    from_micros,
    validate,
)
from feature_store.limits import failed, oversized
from feature_store.reference import REGISTRY
from feature_store.registry import Registry

log = logging.getLogger(__name__)

DEAD_LETTER = "dead_letter"
Message = tuple[str, bytes, Mapping[str, str]] | tuple[str, bytes, Mapping[str, str], int | None]


class _Validate(beam.DoFn):
    def __init__(
        self,
        namespace: str,
        archive_fields: Mapping[str, tuple[tuple[str, ...], tuple[str, ...]]] | None,
        history: bool,
        received_us: int | None,
        clock_skew: timedelta,
        contracts: Mapping[str, Contract] | None = None,
    ) -> None:
        """`contracts`: each topic's, by topic (None: the reference sources')."""
        self.valid = JobCounter(namespace, "events_valid" if not history else "history_events")
        self.invalid = JobCounter(namespace, "events_invalid" if not history else "history_invalid")
        self.archive_fields = archive_fields
        self.contracts = contracts if contracts is not None else contracts_of(REGISTRY.sources)
        self.history = history
        self.received_us = received_us
        self.clock_skew = clock_skew

    def process(self, message: Message) -> Iterator[Any]:
        result, archived = self._check(message)
        if isinstance(result, DeadLetter):
            self.invalid.inc()
            yield pvalue.TaggedOutput(DEAD_LETTER, result)
            return
        self.valid.inc()
        if archived is not None:
            yield pvalue.TaggedOutput(ARCHIVE, archived)
        yield result

    def _check(self, message: Message) -> tuple[dict[str, Any] | DeadLetter, Any]:
        """(the record or its dead letter, the (topic, archive row) pair or None)."""
        topic, raw, attributes = message[0], message[1], message[2]
        publish_us = message[3] if len(message) > 3 else None
        # event_time is bounded by when the message was received: its publish time, or
        # for files the run's start; with neither, validation takes the wall clock.
        received_us = publish_us if publish_us is not None else self.received_us
        received = from_micros(received_us) if received_us is not None else None
        result: Event | DeadLetter
        too_big = oversized(topic, raw, attributes)  # checked before anything is parsed
        contract = self.contracts.get(topic)
        if too_big is not None:
            result = too_big
        elif contract is None:
            detail = f"topic {topic!r} is not one of {', '.join(self.contracts)}"
            result = DeadLetter(topic, bytes(raw), dict(attributes), Reason.UNKNOWN_TOPIC, detail)
        else:
            try:
                result = validate(
                    contract, raw, attributes, received=received, clock_skew=self.clock_skew
                )
            except Exception as err:  # a bug must not make a poison message
                # The type only: the message may carry personal data.
                log.error("validating a message of %s raised %s", topic, type(err).__name__)
                result = failed(topic, raw, attributes, err)
        if isinstance(result, DeadLetter):
            return result, None
        record = result.record()
        record["topic"] = topic
        if publish_us is not None:
            record["publish_us"] = publish_us
        if self.history:
            record["history"] = True
        archived = None
        if self.archive_fields is not None:
            fields, timestamps = self.archive_fields[topic]
            archived = (topic, archive_row(raw, attributes, publish_us, record, fields, timestamps))
        return record, archived


class _ValidateBlocks(_Validate):
    """Lists of messages → a list of records per list; dead letters and archive pairs
    one by one (the batch jobs: one Beam call and one coder round trip per list)."""

    def process(self, block: Sequence[Message]) -> Iterator[Any]:  # type: ignore[override]
        records = []
        for message in block:
            result, archived = self._check(message)
            if isinstance(result, DeadLetter):
                yield pvalue.TaggedOutput(DEAD_LETTER, result)
                continue
            if archived is not None:
                yield pvalue.TaggedOutput(ARCHIVE, archived)
            records.append(result)
        if len(records) < len(block):
            self.invalid.inc(len(block) - len(records))
        if records:
            self.valid.inc(len(records))
            yield records


class ValidateEvents(Stage):
    """(topic, raw, attributes[, publish µs]) → records (main), `DeadLetter`s (tag
    `dead_letter`) and, with `archive=True`, (topic, archive row) pairs (tag `archive`).
    `history=True` marks records read back from the archive. `batched=True`: the
    messages come in lists (`ReadEventFiles(block_lines=...)`) and the valid records
    leave in lists, one per input list that has any.

    Each topic is parsed by the contract generated from its source in `registry` (the
    reference registry when None): a record holds every declared field.

    An event_time after the message's publish time plus `clock_skew_s` is invalid; a
    message without a publish time (a file) is bounded by `received_us` (the run's start),
    or by the wall clock when that is None too."""

    RESOURCE_HINTS = VALIDATION_HINTS

    def __init__(
        self,
        namespace: str = "events",
        registry: Registry | None = None,
        *,
        archive: bool = False,
        history: bool = False,
        received_us: int | None = None,
        clock_skew_s: float = DEFAULT_CLOCK_SKEW.total_seconds(),
        batched: bool = False,
    ) -> None:
        super().__init__()
        self.namespace, self.history, self.batched = namespace, history, batched
        self.received_us = received_us
        self.clock_skew = timedelta(seconds=clock_skew_s)
        registry = registry or REGISTRY
        self.contracts = contracts_of(registry.sources)
        self.archive_fields = (
            {
                s.topic: (
                    tuple(f.name for f in s.fields),
                    tuple(f.name for f in s.fields if f.dtype is DType.TIMESTAMP),
                )
                for s in registry.sources
            }
            if archive
            else None
        )

    def expand(self, messages: PCollection[Any]) -> pvalue.DoOutputsTuple:
        kind = _ValidateBlocks if self.batched else _Validate
        fn = kind(
            self.namespace,
            self.archive_fields,
            self.history,
            self.received_us,
            self.clock_skew,
            self.contracts,
        )
        pardo = beam.ParDo(fn)
        tagged = pardo.with_outputs(DEAD_LETTER, ARCHIVE, main="valid")
        outputs: pvalue.DoOutputsTuple = messages | "Validate" >> tagged
        return outputs


def _dead_letter_json(dead: DeadLetter) -> str:
    return json.dumps(dead.to_json(), sort_keys=True)


def write_dead_letter_file(dead_letters: PCollection[DeadLetter], path: str) -> None:
    """The batch jobs' dead letters: JSON lines files under `path` (stages
    `DeadLetterJson` and `WriteDeadLetters`, applied where the caller stands)."""
    _ = (
        dead_letters
        | "DeadLetterJson" >> beam.Map(_dead_letter_json).with_resource_hints(**DEAD_LETTER_HINTS)
        | "WriteDeadLetters"
        >> beam.io.WriteToText(path, file_name_suffix=".jsonl").with_resource_hints(
            **DEAD_LETTER_HINTS
        )
    )


class KeyByViewEntity(beam.DoFn):
    """One slim record per view of the event's source that the event can affect, keyed
    by (view, entity key); built-in derived fields (e.g. text length) are added here.

    A view that reads model outputs takes only records the model stage wrote to (a record
    it refused, or outside its sample, carries none of its fields and counts for the other
    views); a record that carries some of them counts where they are set, as the
    definition reads a null."""

    def __init__(
        self, registry: Registry, plans: Sequence[ViewPlan], end: int | None = None
    ) -> None:
        self.plans = list(plans)
        self.derived = {s.name: registry.derived_fields(s.name) for s in registry.sources}
        self.end = end
        modelled = {
            (s.name, d.name) for s in registry.sources for d in self.derived[s.name] if d.model
        }
        self.model_fields = {
            p.view: tuple(f.name for f in p.fields if (p.source, f.name) in modelled)
            for p in self.plans
        }

    def process(self, record: dict[str, Any]) -> Iterator[tuple[tuple[str, str], dict[str, Any]]]:
        if self.end is not None and record["event_time"] > self.end:
            return
        # A copy: Beam forbids changing an input element (another consumer may share it).
        record = add_derived(dict(record), self.derived.get(record["topic"], ()))
        for plan in self.plans:
            if plan.source != record["topic"]:
                continue
            if plan.where is not None and record.get(plan.where.field) not in plan.where.values:
                continue
            wanted = self.model_fields[plan.view]
            if wanted and all(record.get(name) is None for name in wanted):
                continue
            key = record.get(plan.join_key)
            if key is None:
                continue
            slim = {"event_id": record["event_id"], "event_time": record["event_time"]}
            for optional in ("publish_us", "history"):
                if record.get(optional) is not None:
                    slim[optional] = record[optional]
            slim.update({f.name: record.get(f.name) for f in plan.fields})
            yield (plan.view, str(key)), slim
