"""The local streaming runner: the DoFn specs it remembers are Beam's own answers, its
pulls ask for `pull_max` messages and an immediate answer, empty pulls are spaced, and a
stateful step with timers computes on it what the definition says."""

from __future__ import annotations

import queue
import threading
import time
from typing import Any

import apache_beam as beam
import pytest
from apache_beam.coders import VarIntCoder
from apache_beam.io.gcp.pubsub import PubsubMessage
from apache_beam.options.pipeline_options import PipelineOptions, StandardOptions
from apache_beam.testing.test_stream import TestStream as EventStream
from apache_beam.testing.util import assert_that, equal_to
from apache_beam.transforms.timeutil import TimeDomain
from apache_beam.transforms.userstate import ReadModifyWriteStateSpec, TimerSpec, on_timer
from apache_beam.transforms.window import TimestampedValue
from apache_beam.utils.timestamp import Timestamp

from jobs import local_runner
from jobs.local_runner import LocalStreamingRunner
from online.stateful import AggregateWindows, _FirstDelivery, _WindowState
from tests.unit.online.test_stateful_stream import PLAN

US = 1_000_000


class _Holder:
    def double(self, x: int) -> int:
        return 2 * x

    def flag(self, x: int, timestamp: Any = beam.DoFn.TimestampParam) -> int:
        return x


class _Stateful(beam.DoFn):
    SEEN = ReadModifyWriteStateSpec("seen", VarIntCoder())
    EXPIRY = TimerSpec("expiry", TimeDomain.WATERMARK)

    def process(
        self,
        item: tuple[str, int],
        seen: Any = beam.DoFn.StateParam(SEEN),
        expiry: Any = beam.DoFn.TimerParam(EXPIRY),
    ) -> Any:
        yield item

    @on_timer(EXPIRY)
    def expired(self) -> None:
        return None


def _names(specs: tuple[set[Any], set[Any]]) -> tuple[list[str], list[str]]:
    return sorted(s.name for s in specs[0]), sorted(s.name for s in specs[1])


def _dofns() -> list[beam.DoFn]:
    holder = _Holder()
    return [
        _WindowState([PLAN], 0, 0),
        _FirstDelivery(3600),
        _Stateful(),
        beam.Map(lambda x: x).dofn,
        beam.Map(holder.double).dofn,
        beam.FlatMap(holder.double).dofn,
        beam.FlatMap(holder.flag).dofn,
        beam.ParDo(_Stateful()).dofn,
    ]


@pytest.mark.parametrize("index", range(len(_dofns())))
def test_remembered_specs_are_beams(index: int) -> None:
    """Asked twice (the second answer from memory), the same specs as Beam's own
    function on a fresh instance."""
    dofn = _dofns()[index]
    expected = _names(local_runner._ORIGINAL(_dofns()[index]))
    assert _names(local_runner._remembered_specs(dofn)) == expected
    assert _names(local_runner._remembered_specs(_dofns()[index])) == expected


def test_specs_are_remembered_per_class_and_bound_function() -> None:
    """A `FlatMap` of a bound method holds it as its `process`, which Beam inspects: the
    function is part of the key (a `Map` wraps its callable in a plain function)."""
    holder = _Holder()
    keys = {
        local_runner._specs_key(d)
        for d in (beam.FlatMap(holder.double).dofn, beam.FlatMap(holder.flag).dofn, _Stateful())
    }
    assert len(keys) == 3
    assert local_runner._specs_key(beam.FlatMap(_Holder().double).dofn) in keys
    assert _names(local_runner._remembered_specs(_Stateful())) == (["seen"], ["ts-expiry"])


class _Response:
    def __init__(self, messages: int) -> None:
        self.received_messages = [f"m{i}" for i in range(messages)]


class _Client:
    """Answers each pull with the next of `answers` (message counts)."""

    def __init__(self, answers: list[int] | None = None) -> None:
        self.calls: list[tuple[str, Any]] = []
        self.answers = list(answers or [])

    def pull(
        self, *, subscription: str, max_messages: int, return_immediately: bool, timeout: float
    ) -> _Response:
        self.calls.append(("pull", (subscription, max_messages, return_immediately, timeout)))
        return _Response(self.answers.pop(0) if self.answers else 0)

    def acknowledge(self, *, subscription: str, ack_ids: list[str]) -> None:
        self.calls.append(("ack", (subscription, ack_ids)))


def test_pulls_ask_for_pull_max_and_an_immediate_answer() -> None:
    client = _Client([3])
    wide = local_runner._WidePull(client, 500, local_runner.EmptyPulls())
    assert wide.pull(subscription="s", max_messages=10, timeout=30).received_messages == [
        "m0",
        "m1",
        "m2",
    ]
    wide.acknowledge(subscription="s", ack_ids=["a", "b"])
    assert client.calls == [("pull", ("s", 500, True, 30)), ("ack", ("s", ["a", "b"]))]


class _Clock:
    """`time.monotonic` and `time.sleep` of a clock that only sleeping moves."""

    def __init__(self) -> None:
        self.now = 100.0
        self.slept: list[float] = []

    def monotonic(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.slept.append(round(seconds, 6))
        self.now += seconds


def test_empty_pulls_are_spaced_doubling_up_to_the_most(monkeypatch: pytest.MonkeyPatch) -> None:
    """After an empty pull the next one waits 5 ms, then 10, 20, 40, and 50 ms at most;
    a pull that found messages makes the next one go at once; so does time already
    spent elsewhere since the last pull."""
    clock = _Clock()
    monkeypatch.setattr(local_runner, "time", clock)
    client = _Client([0, 0, 0, 0, 0, 0, 2, 0, 0])
    wide = local_runner._WidePull(client, 1000, local_runner.EmptyPulls((0.005, 0.05)))
    counts = [len(wide.pull(subscription="s", max_messages=10, timeout=30).received_messages)]
    for _ in range(6):
        counts.append(
            len(wide.pull(subscription="s", max_messages=10, timeout=30).received_messages)
        )
    assert counts == [0, 0, 0, 0, 0, 0, 2]
    assert clock.slept == [0.005, 0.01, 0.02, 0.04, 0.05, 0.05]
    wide.pull(subscription="s", max_messages=10, timeout=30)  # right after messages: no wait
    assert len(clock.slept) == 6
    clock.now += 0.003  # the steps worked 3 ms since that empty pull
    wide.pull(subscription="s", max_messages=10, timeout=30)
    assert clock.slept[6:] == [0.002]


class _Step:
    """A queued task of the runner: a step's bundle (`_applied_ptransform`)."""

    def __init__(self, transform: Any) -> None:
        self._applied_ptransform = type("Applied", (), {"transform": transform})()


class _Updates:
    def __init__(self, pending: int) -> None:
        self._queue: queue.Queue[int] = queue.Queue()
        for n in range(pending):
            self._queue.put(n)


class _MonitorTask:
    def __init__(self, pending: int) -> None:
        self._executor = type("Executor", (), {"all_updates": _Updates(pending)})()


def _on_worker(tasks: list[Any], work: Any) -> Any:
    """`work()` run on a thread holding the runner's task queue, as its workers do."""
    found: list[Any] = []
    worker = threading.Thread(target=lambda: found.append(work()))
    worker.queue = queue.Queue()  # type: ignore[attr-defined]
    for task in tasks:
        worker.queue.put(task)  # type: ignore[attr-defined]
    worker.start()
    worker.join()
    return found[0]


@pytest.mark.parametrize(
    ("tasks", "work"),
    [
        ([_MonitorTask(0), _Step(beam.Map(str))], True),  # a step's bundle
        ([_MonitorTask(1)], True),  # the monitor holds a bundle to schedule
        ([_MonitorTask(0)], False),  # nothing but the monitor
        ([_MonitorTask(0), _Step(local_runner._WidePubSubRead(None, 10))], False),  # a read
        ([], False),
    ],
)
def test_other_work_is_seen_on_the_runners_thread(tasks: list[Any], work: bool) -> None:
    assert _on_worker(tasks, local_runner.other_work_queued) is work
    assert local_runner.other_work_queued() is False  # not a runner's thread


def test_a_pull_not_due_gives_way_to_queued_work(monkeypatch: pytest.MonkeyPatch) -> None:
    """While a step's bundle is queued, a pull that is not due is skipped (no request,
    no wait, an empty answer, the spacing kept); with nothing else queued it waits."""
    clock = _Clock()
    monkeypatch.setattr(local_runner, "time", clock)
    client = _Client([0, 0, 0])
    wide = local_runner._WidePull(client, 1000, local_runner.EmptyPulls((0.005, 0.05)))
    wide.pull(subscription="s", max_messages=10, timeout=30)  # empty: the next waits 5 ms
    busy = [_MonitorTask(0), _Step(beam.Map(str))]
    answer = _on_worker(busy, lambda: wide.pull(subscription="s", max_messages=10, timeout=30))
    assert list(answer.received_messages) == []
    assert (len(client.calls), clock.slept) == (1, [])
    idle = [_MonitorTask(0)]
    _on_worker(idle, lambda: wide.pull(subscription="s", max_messages=10, timeout=30))
    assert (len(client.calls), clock.slept) == (2, [0.005])
    clock.now += 0.01  # due: pulled at once, however busy
    _on_worker(busy, lambda: wide.pull(subscription="s", max_messages=10, timeout=30))
    assert (len(client.calls), clock.slept) == (3, [0.005])


@pytest.mark.parametrize("wait_s", [(0.0, 0.05), (0.06, 0.05), (0.005, 2.0)])
def test_empty_pull_waits_are_bounded(wait_s: tuple[float, float]) -> None:
    with pytest.raises(ValueError, match=str(wait_s[0])):
        local_runner.EmptyPulls(wait_s)


class _Monitor:
    def __init__(self, context: Any) -> None:
        self._executor = type("Executor", (), {"evaluation_context": context})()


def test_timer_scans_are_spaced_only_where_asked(monkeypatch: pytest.MonkeyPatch) -> None:
    """With `timer_scan_s` on the evaluation context, a scan within that time of the
    last one is skipped (reported as no timer fired); without it, every call scans."""
    scans: list[float] = []

    def scan(monitor: Any) -> bool:
        scans.append(time.monotonic())
        return True

    monkeypatch.setattr(local_runner, "_FIRE_TIMERS", scan)
    plain = _Monitor(type("Context", (), {})())
    assert [local_runner._spaced_fire_timers(plain) for _ in range(3)] == [True] * 3
    assert len(scans) == 3
    spaced_context = type("Context", (), {})()
    spaced_context.timer_scan_s = 0.2
    spaced = _Monitor(spaced_context)
    assert local_runner._spaced_fire_timers(spaced) is True
    assert local_runner._spaced_fire_timers(spaced) is False
    assert len(scans) == 4
    time.sleep(0.25)
    assert local_runner._spaced_fire_timers(spaced) is True
    assert len(scans) == 5


@pytest.mark.parametrize("pull_max", [0, 1001])
def test_pull_max_is_bounded(pull_max: int) -> None:
    with pytest.raises(ValueError, match=str(pull_max)):
        LocalStreamingRunner(pull_max)


def _record(event_id: str, t_s: float) -> dict[str, Any]:
    return {"event_id": event_id, "event_time": int(t_s * US), "key": "k"}


def test_timers_fire_on_the_local_runner() -> None:
    """A 10 s count: it changes at each event (1 s, 3 s) and as each leaves (11 s, 13 s)."""
    options = PipelineOptions()
    options.view_as(StandardOptions).streaming = True
    stream = (
        EventStream()
        .add_elements([TimestampedValue((("v", "k"), [_record("e1", 1)]), 1)])
        .add_elements([TimestampedValue((("v", "k"), [_record("e2", 3)]), 3)])
        .advance_watermark_to(100)
        .advance_watermark_to_infinity()
    )
    with beam.Pipeline(runner=LocalStreamingRunner(), options=options) as p:
        out = p | stream | AggregateWindows([PLAN], 0.0, started_us=0)
        rows = out.rows | beam.FlatMap(
            lambda b: [(at // US, b.row(i)["n"]) for i, (at, _) in enumerate(b.rows)]
        )
        assert_that(rows, equal_to([(1, 1), (3, 2), (11, 1), (13, 0)]))


class _EvaluationContext:
    """What a read evaluator asks of its evaluation context; counts the reads of the
    pipeline's options."""

    def __init__(self) -> None:
        self.options_read = 0

    @property
    def pipeline_options(self) -> PipelineOptions:
        self.options_read += 1
        return PipelineOptions(project="from-options")

    def get_execution_context(self, applied: Any) -> Any:
        return type("Execution", (), {"get_step_context": lambda _self: None})()


def test_read_evaluators_work_out_the_subscription_once() -> None:
    """Beam's own evaluator names the subscription (reading the options) for the first
    pull; the next evaluators of that read take it from the transform."""
    from apache_beam.io.gcp.pubsub import ReadFromPubSub

    sub = "projects/local-project/subscriptions/events-sub"
    read = local_runner._WidePubSubRead(ReadFromPubSub(subscription=sub)._source, 100)
    applied = type("Applied", (), {"transform": read, "outputs": {}})()
    context = _EvaluationContext()
    evaluators = [local_runner._WidePullEvaluator(context, applied, None, [])]
    by_beam = context.options_read
    assert by_beam > 0
    evaluators += [local_runner._WidePullEvaluator(context, applied, None, []) for _ in range(2)]
    assert [e._sub_name for e in evaluators] == [sub] * 3
    assert [e.source for e in evaluators] == [read._source] * 3
    assert context.options_read == by_beam


class _Counted(beam.DoFn):
    def __init__(self, n: int) -> None:
        self.n = n
        self.seen: list[int] = []

    def process(self, x: int) -> Any:
        yield x + self.n


def test_dofn_copies_are_fresh_and_pickled_once(monkeypatch: pytest.MonkeyPatch) -> None:
    """Each copy is a new object with the DoFn's state; the DoFn is pickled once, a
    second DoFn (or one made after the first is gone) pickled on its own."""
    import gc

    from apache_beam.internal import pickler

    lib: Any = pickler.desired_pickle_lib
    pickled: list[int] = []  # the `n` of each DoFn pickled
    dumps = lib._dumps
    monkeypatch.setattr(lib, "_dumps", lambda o, *a, **k: pickled.append(o.n) or dumps(o, *a, **k))
    once = local_runner._PicklerPickOnce()
    first, second = _Counted(1), _Counted(2)
    copies = [once.roundtrip(first) for _ in range(3)]
    copies[0].seen.append(7)  # a copy's changes are its own
    expected = [(1, [7], False), (1, [], False), (1, [], False)]
    assert [(c.n, c.seen, c is first) for c in copies] == expected
    assert once.roundtrip(second).n == 2
    assert pickled == [1, 2]
    del first, copies
    gc.collect()
    assert len(once._pickled) == 1
    assert once.roundtrip(_Counted(1)).n == 1
    assert pickled == [1, 2, 1]
    assert once.dumps is pickler.dumps  # the rest is pickler's own


class _Signed:
    def method(self, a: int, b: str = "x", *rest: Any) -> None:
        return None


def _plain(x: int, timestamp: Any = beam.DoFn.TimestampParam) -> int:
    return x


@pytest.mark.parametrize(
    "func",
    [
        _plain,
        _Signed().method,
        _Signed.method,
        lambda v, w=3: v,
        str.upper,
        len,
        beam.Map(_plain).dofn.process,
    ],
)
def test_remembered_signatures_are_beams(func: Any) -> None:
    from apache_beam.typehints.decorators import get_signature

    assert local_runner._remembered_signature(func) == get_signature(func)
    assert local_runner._remembered_signature(func) == get_signature(func)


def test_signatures_are_remembered_per_function() -> None:
    """A method bound to another instance gets the remembered signature (without
    `self`); the function itself its own (with it)."""
    bound = local_runner._remembered_signature(_Signed().method)
    assert local_runner._remembered_signature(_Signed().method) is bound
    assert list(bound.parameters) == ["a", "b", "rest"]
    unbound = local_runner._remembered_signature(_Signed.method)
    assert list(unbound.parameters) == ["self", "a", "b", "rest"]
    assert local_runner._remembered_signature(_Signed.method) is unbound


BUNDLES_SEEN: list[str] = []


class _Split(beam.DoFn):
    """Every element to the main output; the `none` output never gets one."""

    def process(self, x: int) -> Any:
        yield x


class _CountBundles(beam.DoFn):
    def __init__(self, name: str) -> None:
        self.name = name

    def start_bundle(self) -> None:
        BUNDLES_SEEN.append(self.name)

    def process(self, x: int) -> Any:
        yield x


def _bundles_on_an_empty_branch(runner: Any) -> list[str]:
    BUNDLES_SEEN.clear()
    options = PipelineOptions()
    options.view_as(StandardOptions).streaming = True
    stream = (
        EventStream()
        .add_elements([TimestampedValue(1, 1)])
        .add_elements([TimestampedValue(2, 3)])
        .advance_watermark_to(100)
        .add_elements([TimestampedValue(3, 101)])
        .advance_watermark_to_infinity()
    )
    with beam.Pipeline(runner=runner, options=options) as p:
        split = p | stream | beam.ParDo(_Split()).with_outputs("none", main="main")
        main = split.main | "Main" >> beam.ParDo(_CountBundles("main"))
        _ = split.none | "Empty" >> beam.ParDo(_CountBundles("empty"))
        assert_that(main, equal_to([1, 2, 3]))
    return list(BUNDLES_SEEN)


def test_no_step_runs_on_an_empty_bundle() -> None:
    """Beam's runner runs the branch that never gets an element once for each bundle
    upstream; the local runner does not run it at all, and the other branch gets every
    element."""
    from apache_beam.runners.direct.direct_runner import BundleBasedDirectRunner

    as_beam = _bundles_on_an_empty_branch(BundleBasedDirectRunner())
    assert as_beam.count("empty") >= 3 and as_beam.count("main") >= 3
    local = _bundles_on_an_empty_branch(LocalStreamingRunner())
    assert local.count("empty") == 0 and local.count("main") >= 3


def _key_state(timers: dict[Any, dict[Any, Any]]) -> Any:
    from apache_beam.runners.direct.evaluation_context import DirectUnmergedState
    from apache_beam.transforms import trigger

    state = DirectUnmergedState()
    for window, held in timers.items():
        for (name, domain, tag), at in held.items():
            state.set_timer(window, name, domain, at, tag)
    window = next(iter(timers), None)
    if window is not None:
        state.add_state(window, trigger._ListStateTag("user/events"), 1)
        state.add_state(window, trigger._ReadModifyWriteStateTag("user/head"), {"n": [1]})
    state.set_global_state(trigger._ReadModifyWriteStateTag("hold"), Timestamp(7))
    state.set_global_state(trigger._ReadModifyWriteStateTag("meta"), {"list": [1, 2]})
    return state


def _content(state: Any) -> Any:
    return (
        {w: dict(t) for w, t in state.timers.items()},
        state.global_state,
        {w: dict(tagged) for w, tagged in state.state.items()},
        state.defensive_copy,
    )


def test_key_state_copies_are_beams_and_independent() -> None:
    """A key state's light copy holds what Beam's deep copy holds, and changing the copy
    (timers, lists, global values) leaves the original as it was."""
    from apache_beam.transforms import trigger
    from apache_beam.transforms.window import GlobalWindow, IntervalWindow

    window, interval = GlobalWindow(), IntervalWindow(10, 20)
    state = _key_state(
        {
            window: {("user/change", TimeDomain.WATERMARK, ""): Timestamp(5)},
            interval: {("user/t", TimeDomain.REAL_TIME, "x"): Timestamp(9)},
        }
    )
    before = _content(state)
    beams = trigger.InMemoryUnmergedState.copy(state)
    light = local_runner._copy_key_state(state)
    assert type(light) is type(state)
    assert _content(light) == _content(beams) == before
    light.set_timer(window, "user/change", TimeDomain.WATERMARK, Timestamp(99))
    light.clear_timer(interval, "user/t", TimeDomain.REAL_TIME, "x")
    light.add_state(window, trigger._ListStateTag("user/events"), 2)
    light.global_state["meta"]["list"].append(3)
    light.set_global_state(trigger._ReadModifyWriteStateTag("hold"), Timestamp(8))
    assert _content(state) == before


def _pull_response(publish_s: int | None) -> Any:
    from google.pubsub_v1.types import PubsubMessage as Message
    from google.pubsub_v1.types import PullResponse, ReceivedMessage

    message = Message(data=b'{"a": 1}', attributes={"k": "v"}, message_id="m1", ordering_key="o")
    if publish_s is not None:
        message._pb.publish_time.FromNanoseconds(publish_s * 10**9 + 123_456_789)
    return PullResponse(received_messages=[ReceivedMessage(ack_id="a1", message=message)])


def test_pulled_messages_are_beams() -> None:
    """A message read from the pull's protobuf is the element Beam's reader makes of it
    (timestamp, data, attributes, id, publish time and its type, ordering key)."""
    response = _pull_response(1_764_000_000)
    proto_message = response.received_messages[0].message
    beams_timestamp = Timestamp.from_utc_datetime(proto_message.publish_time)
    beams = PubsubMessage._from_message(proto_message)
    timestamp, ours = local_runner._pulled(response._pb.received_messages[0].message)
    assert timestamp == beams_timestamp == Timestamp(micros=1_764_000_000_123_456)
    assert ours == beams
    assert type(ours.publish_time) is type(beams.publish_time)
    assert ours.publish_time == beams.publish_time
    assert (ours.message_id, ours.ordering_key) == ("m1", "o")


def test_a_message_without_a_publish_time_is_refused() -> None:
    message = _pull_response(None)._pb.received_messages[0].message
    with pytest.raises(ValueError, match="No publish time"):
        local_runner._pulled(message)


def _firing(fired: Any) -> tuple[Any, ...]:
    return (
        fired.encoded_key,
        fired.window,
        fired.name,
        fired.time_domain,
        fired.timestamp.micros,
        fired.dynamic_timer_tag,
    )


def test_indexed_timer_scans_find_what_beams_finds() -> None:
    """Over scans at advancing watermarks, with key states replaced (as a commit does),
    added, and holding processing-time timers, the indexed scan gives Beam's firings."""
    from apache_beam.runners.direct.watermark_manager import _TransformWatermarks
    from apache_beam.transforms.window import GlobalWindow

    window = GlobalWindow()

    def event_timer(at: int) -> Any:
        return _key_state({window: {("user/change", TimeDomain.WATERMARK, ""): Timestamp(at)}})

    class _Clock:
        def time(self) -> Timestamp:
            return Timestamp(50)

    def watermarks(states: dict[bytes, Any]) -> Any:
        tw = _TransformWatermarks(_Clock(), states, None)
        tw._fired_timers = set()
        return tw

    states = {b"a": event_timer(10), b"b": event_timer(30), b"c": _key_state({})}
    beams, ours = watermarks(states), watermarks(states)
    original = local_runner._ORIGINAL_EXTRACT

    def scan(at: int) -> None:
        beams._input_watermark = ours._input_watermark = Timestamp(at)
        expected, expected_realtime = original(beams)
        found, realtime = local_runner._indexed_transform_timers(ours)
        assert sorted(map(_firing, found)) == sorted(map(_firing, expected))
        assert realtime == expected_realtime
        assert set(map(_firing, ours._fired_timers)) == set(map(_firing, beams._fired_timers))

    for at in (0, 5, 10, 11, 20):
        scan(at)
    states[b"a"] = event_timer(40)  # a's timer fired and was set again
    states[b"d"] = event_timer(15)  # a new key
    states[b"b"] = event_timer(15)  # b's timer moved earlier, now due
    for at in (20, 35, 40):
        scan(at)
    states[b"c"] = _key_state({window: {("user/t", TimeDomain.REAL_TIME, ""): Timestamp(60)}})
    for at in (41, 45):
        scan(at)
    states[b"c"] = _key_state({window: {("user/t", TimeDomain.REAL_TIME, ""): Timestamp(40)}})
    scan(46)


def test_settling_the_heap_freezes_it_and_spaces_young_collections() -> None:
    import gc

    threshold = gc.get_threshold()
    try:
        gc.unfreeze()
        local_runner.settle_the_heap()
        assert gc.get_freeze_count() > 0
        assert gc.get_threshold() == (local_runner.GC_YOUNG, *threshold[1:])
    finally:
        gc.unfreeze()
        gc.set_threshold(*threshold)


SINK_BUNDLES: list[list[int]] = []


class _SlowSink(beam.DoFn):
    """A sink (`SINK = True`) whose every bundle takes 0.1 s, recording what it got;
    its elements go on downstream."""

    SINK = True

    def start_bundle(self) -> None:
        self.bundle: list[int] = []

    def process(self, x: int) -> Any:
        self.bundle.append(x)
        yield x

    def finish_bundle(self) -> None:
        time.sleep(0.1)
        SINK_BUNDLES.append(self.bundle)


class _LanedRunner(LocalStreamingRunner):
    """The local runner with its sink lanes open for a pipeline without Pub/Sub."""

    def run_pipeline(self, pipeline: Any, options: Any) -> Any:
        result = super().run_pipeline(pipeline, options)
        local_runner._SinkLanes.open(result._executor._executor)
        return result


def test_a_sinks_queued_bundles_join_in_order_and_exactly_once() -> None:
    """Bundles made faster than the sink takes them wait on its lane; each time the sink
    starts, those waiting join its bundle: fewer, larger sink bundles, every element
    once, in the order made, and downstream each element once; the pipeline ends, so
    no joined bundle was left holding the sink's watermark."""
    SINK_BUNDLES.clear()
    options = PipelineOptions()
    options.view_as(StandardOptions).streaming = True
    stream = EventStream()
    for n in range(30):
        stream = stream.add_elements([TimestampedValue(n, n)])
    stream = stream.advance_watermark_to_infinity()
    with beam.Pipeline(runner=_LanedRunner(), options=options) as p:
        out = p | stream | beam.Map(lambda x: x) | "Sink" >> beam.ParDo(_SlowSink())
        assert_that(out, equal_to(list(range(30))))
    got = [x for bundle in SINK_BUNDLES for x in bundle]
    assert got == list(range(30))
    assert len(SINK_BUNDLES) < 30 and max(len(b) for b in SINK_BUNDLES) > 1
