"""The local streaming runner: Beam's DirectRunner (its streaming, bundle-based
implementation) with changes to what it spends per bundle or waits for, none to what it
computes.

Profiled on the streaming job (py-spy, the publisher in its own process), the
DirectRunner spent most of its time on bookkeeping it repeats for every bundle of
every step, not on the job's work:

- **Pulls of ten messages.** Its Pub/Sub reader pulls at most 10 messages a bundle, so
  every 10 messages pay each downstream step's per-bundle cost. Here the reader pulls up
  to `PULL_MAX` at once: a pull still returns what the subscription holds (a quiet
  stream still makes small bundles, as soon as each message arrives); a busy one makes
  larger bundles instead of more of them. Messages are acknowledged as they are pulled,
  as Beam's reader does.
- **Empty pulls held half a second.** The Pub/Sub emulator holds a pull that finds
  nothing for 0.5 s before answering (it does not wake when a message arrives), and the
  reader pulls on the runner's only worker thread: each moment a subscription is
  empty stalled every step, timers and writes included, for half a second. Here pulls
  ask to return at once (`return_immediately`, which the emulator honours), and a
  subscription whose last pull was empty is pulled again no sooner than
  `EMPTY_WAIT_S[0]` after it, doubling with each further empty pull up to
  `EMPTY_WAIT_S[1]`: a quiet stream waits at most that long for its next message, and
  an idle one does not become a loop of pulls burning the core. The wait happens on
  that same thread, so it is taken only when the runner has nothing else to do: while
  other steps' bundles (or updates the runner has yet to schedule) are queued, a pull
  that is not due yet is skipped instead (an empty answer, no request), and the read
  comes back after that work. (The runner queues its reads together once nothing else
  runs: waiting regardless held the messages one subscription's pull had just found
  behind the other's wait, up to `EMPTY_WAIT_S[1]`, before any step took them.) An
  empty pull is no error: it makes no bundle, as in Beam's reader; the messages a pull
  returns are acknowledged as before.
- **Introspecting each DoFn per bundle.** `userstate.get_dofn_specs` (which state and
  timers a DoFn declares) inspects the signature of every method of the DoFn, and the
  runner calls it two to three times per bundle per step: 60% of the job's time at
  150 msg/s. Its answer depends only on the DoFn's class and on the functions of the
  bound methods it holds, so it is remembered under those. Likewise each DoFn's
  signature, which the runner builds from its methods' signatures at every bundle of
  every step: `get_signature` is remembered per function (`_remembered_signature`).
- **Copying each DoFn per bundle.** The runner works on a copy of each DoFn at every
  bundle (`pickler.roundtrip`), pickling it anew each time; here the copy is
  unpickled from bytes pickled once per DoFn object (`_PicklerPickOnce`): as fresh a
  copy, at a quarter of the cost.
- **Reading the pipeline's options per pull.** The Pub/Sub read's evaluator, made for
  each pull, works out its subscription from the pipeline's options, which re-parses
  every option's flags; the first one's answer is kept on the transform.
- **Scanning every key for due timers after every bundle.** The runner's monitor task,
  queued after each bundle, asks every key of every stateful step whether a timer is
  due: a cost that grows with the keys (entities) the job has seen, paid once per
  bundle. For a pipeline reading Pub/Sub, the scan runs at most every `TIMER_SCAN_S`,
  or `SCAN_SPACING` times its own last duration when that is longer (a scan then takes
  at most a quarter of the time, however many keys): a due timer fires that much
  later. The runner's watermarks do not wait for due timers either way (a timer holds
  no watermark there), so nothing the steps compute changes. Pipelines without Pub/Sub
  (`TestStream` tests, which end once their watermarks are final) keep the scan after
  every bundle.
- **Running every step on empty bundles.** A step's bundle commits one output bundle
  per output, empty or not, and the runner schedules every consumer of each: a bundle
  of validated events also ran the dead-letter and late-event branches' steps (seven
  each, to their Pub/Sub writes) on nothing, every time. Its own watermarks already
  ignore empty bundles (they hold no element, so no watermark), so here their
  consumers are not scheduled either (`skip_empty_bundles`), as Dataflow does not run
  a step on nothing. Timer firings, which the runner hands a step with an empty bundle
  of its own, are untouched.
- **Waiting on sinks with one thread.** The runner has one worker thread, so every
  write to an emulator (the raw archive's inserts into BigQuery, about 9 ms a call
  whatever its rows; the online stores' writes; dead-letter publishes) held every other
  step, the next pull included, until it answered: at 100 msg/s the archive's inserts
  alone were a third of the thread's time. In a pipeline reading Pub/Sub, each *sink*
  runs on a thread of its own (`_SinkLanes`), one bundle at a time in the order they
  came. A sink is a stateless ParDo without side inputs whose outputs no step reads, or
  whose DoFn says `SINK = True` (the online stores' writer, whose refused rows go on to
  the dead letters). Its bundles, retries, failures, counters and watermarks are the
  runner's as before; the first thread goes on with the other steps meanwhile. When
  the sink bundles waiting hold more than `SINK_BACKLOG` elements, the runner takes no
  more input until they drain, so a slow sink holds the job back instead of piling
  elements up in memory.
- **One sink call for all the bundles that waited.** A sink pays its store's cost per
  call (the BigQuery emulator's `insertAll` 20-30 ms a call on an empty table, growing
  with it: 70-150 ms once it held 25-40k rows), so a lane that made one call a bundle
  fell behind a stream that had run a few minutes, its backlog paused the reads, and
  every event waited for the archive.
  A lane's bundle takes the bundles of its sink queued behind it into one
  (`_LaneExecutor`), in their order: one call for what waited, and its watermark held
  by the one bundle in their place. The backlog that pauses the reads is counted in
  elements, not bundles: 8 bundles of a 20 ms cycle waited behind one 200 ms insert
  and paused the reads though they were to make one call.
- **Deep-copying each key's timers per bundle.** A bundle works on a copy of each key's
  state it touches, and Beam's copy deep-copies the key's timers (about 115 µs for two):
  here the timestamps and windows, which nothing changes in place, are shared
  (`_copy_key_state`).
- **Reading pulled messages through proto-plus.** Each message's fields went through
  proto-plus's wrappers (about 90 µs a message); here they are read from the protobuf
  (`_pulled`), into the same `PubsubMessage`.
- **Asking every key for due timers.** The timer scan asks only the keys whose committed
  state changed since the last scan or whose earliest timer is due
  (`_indexed_transform_timers`).
- **Full garbage collections over the imports.** Before a Pub/Sub pipeline runs, the
  heap is collected and frozen (`settle_the_heap`), so Python's full collections no
  longer walk the objects of every module imported, and the youngest generation is
  collected every `GC_YOUNG` allocations.

Dataflow runs none of this: `make_pipeline` uses this runner only when no `--runner` is
named.
"""

from __future__ import annotations

import collections
import copy
import gc
import inspect
import queue
import threading
import time
import types
import warnings
import weakref
from collections.abc import Callable, Hashable, MutableMapping
from typing import Any, TypeVar

from apache_beam.internal import pickler
from apache_beam.io.gcp.pubsub import PubsubMessage, ReadFromPubSub
from apache_beam.pipeline import AppliedPTransform, PTransformOverride
from apache_beam.runners.direct import transform_evaluator
from apache_beam.runners.direct.direct_runner import BundleBasedDirectRunner, _DirectReadFromPubSub
from apache_beam.runners.direct.evaluation_context import DirectUnmergedState
from apache_beam.runners.direct.executor import (
    TransformExecutor,
    _CompletionCallback,
    _ExecutorService,
    _ExecutorServiceParallelExecutor,
    _ParallelEvaluationState,
)
from apache_beam.runners.direct.util import TimerFiring
from apache_beam.runners.direct.watermark_manager import _TransformWatermarks
from apache_beam.transforms import core, userstate
from apache_beam.transforms.timeutil import TimeDomain
from apache_beam.transforms.window import BoundedWindow
from apache_beam.typehints import decorators
from apache_beam.utils.timestamp import Timestamp
from proto.datetime_helpers import DatetimeWithNanoseconds

PULL_MAX = 1000  # messages a local Pub/Sub pull may return (Pub/Sub's own limit per pull)
TIMER_SCAN_S = 0.1  # at most this often, the due timers of a Pub/Sub pipeline are looked for
SCAN_SPACING = 3.0  # and no sooner than this many times the last scan's duration after it
SINK_BACKLOG = 5 * PULL_MAX  # elements of sink bundles waiting on the lanes before input pauses
GC_YOUNG = 20_000  # allocations between collections of the youngest generation (Python: 700)
EMPTY_WAIT_S = (0.005, 0.05)  # after an empty pull, the next one of that subscription waits
# the first, doubling with each further empty pull up to the second

RETURN_IMMEDIATELY_WARNING = "The return_immediately flag is deprecated"

Specs = tuple[set[Any], set[Any]]
T = TypeVar("T")


class LocalStreamingRunner(BundleBasedDirectRunner):
    """Beam's streaming DirectRunner, pulling up to `pull_max` messages a bundle,
    remembering each DoFn's state and timer specs and, in a pipeline that reads Pub/Sub,
    scanning for due timers at most every `timer_scan_s` (see the module's docstring)."""

    def __init__(self, pull_max: int = PULL_MAX, timer_scan_s: float = TIMER_SCAN_S) -> None:
        super().__init__()
        if not 1 <= pull_max <= PULL_MAX:
            msg = f"pull_max must be in 1..{PULL_MAX}, got {pull_max}"
            raise ValueError(msg)
        if not 0 <= timer_scan_s <= 1:
            msg = f"timer_scan_s must be in 0..1 s, got {timer_scan_s}"
            raise ValueError(msg)
        self.pull_max, self.timer_scan_s = pull_max, timer_scan_s

    def run_pipeline(self, pipeline: Any, options: Any) -> Any:
        # The client warns at each pull asking `return_immediately` (deprecated for the
        # service, which may then answer with fewer messages; the emulator does not).
        warnings.filterwarnings("ignore", RETURN_IMMEDIATELY_WARNING, DeprecationWarning)
        remember_dofn_specs()
        pickle_dofns_once()
        remember_signatures()
        copy_key_states_lightly()
        index_timers()
        space_timer_scans()
        skip_empty_bundles()
        _SKIPS_EMPTY.add(options)
        run_sinks_on_lanes()
        override = _WidePullOverride(self.pull_max)
        pipeline.replace_all([override])
        if override.replaced:
            settle_the_heap()
        run: Callable[[Any, Any], Any] = super().run_pipeline
        result = run(pipeline, options)
        if override.replaced and self.timer_scan_s:
            # read by `_spaced_fire_timers` from the first scan after this
            result._evaluation_context.timer_scan_s = self.timer_scan_s
        if override.replaced:
            _SinkLanes.open(result._executor._executor)
        return result


def settle_the_heap() -> None:
    """Collects the garbage there is, then moves every object left (the modules
    imported, the pipeline's graph) out of the cyclic garbage collector's sight
    (`gc.freeze`). Python's full collections walk every object it tracks: a job's
    process holds ~670k of them, most from its imports (Beam, Feast, the Google
    clients), so each full collection took about a second on a loaded machine, with
    the interpreter lock held, every few seconds of a busy stream (measured: 8 full
    collections, 9.0 s, in a 71 s phase at 600 msg/s in which the process used 19.3
    CPU-seconds; after, 14 of them took 3.9 s). Frozen objects are still freed when
    nothing refers to them; only a reference cycle among them would now stay. The
    youngest generation is then collected every `GC_YOUNG` allocations instead of
    Python's 700: a bundle's objects mostly die with it, so fewer, larger young
    collections walk fewer survivors, and far fewer of them reach a full collection
    (at 600 msg/s: 14 full collections a phase became 1, the collector's time 6.4 s
    and 6.1 s became 5.0 s and 1.6 s in two alternated runs)."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(GC_YOUNG, *gc.get_threshold()[1:])


class _WidePubSubRead(_DirectReadFromPubSub):
    """The DirectRunner's native Pub/Sub read, with its pull size and the pacing of its
    empty pulls."""

    def __init__(self, source: Any, max_messages: int) -> None:
        init: Callable[[Any], None] = super().__init__
        init(source)
        self.max_messages = max_messages
        self.empty_pulls = EmptyPulls()
        self.subscription_path: str | None = None  # the evaluator's, once it knows it


class _WidePullOverride(PTransformOverride):
    def __init__(self, max_messages: int) -> None:
        self.max_messages = max_messages
        self.replaced = 0

    def matches(self, applied_ptransform: AppliedPTransform) -> bool:
        return isinstance(applied_ptransform.transform, ReadFromPubSub)

    def get_replacement_transform_for_applied_ptransform(
        self, applied_ptransform: AppliedPTransform
    ) -> _WidePubSubRead:
        self.replaced += 1
        read: Any = applied_ptransform.transform
        return _WidePubSubRead(read._source, self.max_messages)


class EmptyPulls:
    """The empty pulls of one subscription in a row, and when the last one ended: the
    next pull waits until `spacing()` after it (none after a pull that found messages).
    Only the subscription's own reader changes it, one pull at a time."""

    def __init__(self, wait_s: tuple[float, float] = EMPTY_WAIT_S) -> None:
        first, most = wait_s
        if not 0 < first <= most <= 1:
            msg = f"empty-pull waits must be 0 < first <= most <= 1 s, got {wait_s}"
            raise ValueError(msg)
        self.wait_s = wait_s
        self.in_a_row = 0
        self.last_ended = 0.0

    def spacing(self) -> float:
        if not self.in_a_row:
            return 0.0
        first, most = self.wait_s
        return float(min(most, first * 2 ** min(self.in_a_row - 1, 30)))

    def ready(self) -> bool:
        """Whether to pull now: at once when the pull is due; when it is not, False while
        the runner has other work queued (the thread goes to it), else after sleeping
        until it is due (nothing else would run meanwhile)."""
        due = self.last_ended + self.spacing() - time.monotonic()
        if due <= 0:
            return True
        if other_work_queued():
            return False
        time.sleep(due)
        return True

    def pulled(self, messages: int) -> None:
        self.in_a_row = 0 if messages else self.in_a_row + 1
        self.last_ended = time.monotonic()


class _Unanswered:
    """A pull that was not made: as an empty answer, it holds no messages."""

    received_messages: tuple[Any, ...] = ()


_NOT_YET = _Unanswered()


def other_work_queued() -> bool:
    """Whether the runner's task queue, seen from one of its worker threads, holds work
    besides Pub/Sub reads: a step's bundle, or the monitor with bundles to schedule. False
    on any other thread."""
    tasks = getattr(threading.current_thread(), "queue", None)
    if not isinstance(tasks, queue.Queue):
        return False
    with tasks.mutex:
        queued = list(tasks.queue)
    return any(_is_work(task) for task in queued)


def _is_work(task: Any) -> bool:
    applied = getattr(task, "_applied_ptransform", None)
    if applied is not None:
        return not isinstance(applied.transform, _WidePubSubRead)
    executor = getattr(task, "_executor", None)  # the monitor
    updates = getattr(getattr(executor, "all_updates", None), "_queue", None)
    return isinstance(updates, queue.Queue) and updates.qsize() > 0


class _WidePull:
    """A subscriber client whose pulls ask for up to `max_messages`, return at once
    when the subscription is empty, and come no sooner than `empty_pulls` allows."""

    def __init__(self, client: Any, max_messages: int, empty_pulls: EmptyPulls) -> None:
        self.client, self.max_messages, self.empty_pulls = client, max_messages, empty_pulls

    def pull(self, *, subscription: str, max_messages: int, timeout: float) -> Any:
        if not self.empty_pulls.ready():
            return _NOT_YET  # no request: the runner's other work goes first
        response = self.client.pull(
            subscription=subscription,
            max_messages=self.max_messages,
            return_immediately=True,
            timeout=timeout,
        )
        self.empty_pulls.pulled(len(response.received_messages))
        return response

    def acknowledge(self, *, subscription: str, ack_ids: list[str]) -> Any:
        return self.client.acknowledge(subscription=subscription, ack_ids=ack_ids)


class _WidePullEvaluator(transform_evaluator._PubSubReadEvaluator):
    """Beam's Pub/Sub read evaluator, made anew for each pull: the subscription it
    works out at its first (reading the pipeline's options, which parses every
    option's flags again: 7% of the job's time) is kept on the transform for the
    next ones."""

    def __init__(
        self,
        evaluation_context: Any,
        applied_ptransform: AppliedPTransform,
        input_committed_bundle: Any,
        side_inputs: Any,
    ) -> None:
        read: Any = applied_ptransform.transform
        if read.subscription_path is None:
            init: Callable[..., None] = super().__init__
            init(evaluation_context, applied_ptransform, input_committed_bundle, side_inputs)
            read.subscription_path = self._sub_name
            return
        base: Callable[..., None] = transform_evaluator._TransformEvaluator.__init__
        base(self, evaluation_context, applied_ptransform, input_committed_bundle, side_inputs)
        self.source = read._source
        self._sub_name = read.subscription_path

    def _read_from_pubsub(self, timestamp_attribute: str | None) -> list[tuple[Timestamp, Any]]:
        """Beam's pull and acknowledgement, with each message read from the response's
        protobuf (`_pulled`) instead of through its proto-plus wrapper (90 µs a message
        there, 16 here). A source with a timestamp attribute is read by Beam's."""
        if timestamp_attribute:
            read: Callable[[Any], list[tuple[Timestamp, Any]]] = super()._read_from_pubsub
            return read(timestamp_attribute)
        client = self._get_subscriber_client(self._applied_ptransform)
        response = client.pull(subscription=self._sub_name, max_messages=10, timeout=30)
        received = () if response is _NOT_YET else response._pb.received_messages
        results = [_pulled(rm.message) for rm in received]
        ack_ids = [rm.ack_id for rm in received]
        if ack_ids:
            client.acknowledge(subscription=self._sub_name, ack_ids=ack_ids)
        return results

    @classmethod
    def _get_subscriber_client(cls, transform: AppliedPTransform) -> _WidePull:
        get: Callable[[Any], Any] = super()._get_subscriber_client
        read: Any = transform.transform
        return _WidePull(get(transform), read.max_messages, read.empty_pulls)


def _pulled(message: Any) -> tuple[Timestamp, PubsubMessage]:
    """A pulled message (the `PubsubMessage` protobuf) as Beam's reader gives it: its
    publish time as the element's timestamp, and Beam's `PubsubMessage` with the data,
    attributes, id, publish time (as proto-plus gives it) and ordering key."""
    if not message.HasField("publish_time"):
        error = f"No publish time present in message: {message}"
        raise ValueError(error)
    published = DatetimeWithNanoseconds.from_timestamp_pb(message.publish_time)
    parsed = PubsubMessage(message.data, dict(message.attributes))
    if message.message_id:
        parsed.message_id = message.message_id
    parsed.publish_time = published
    if message.ordering_key:
        parsed.ordering_key = message.ordering_key
    return Timestamp.from_utc_datetime(published), parsed


# The registry's hook for evaluators of transforms it does not know; keyed by our own
# transform class, so no other pipeline's reads change.
transform_evaluator.TransformEvaluatorRegistry._test_evaluators_overrides[_WidePubSubRead] = (
    _WidePullEvaluator
)


_SPECS: dict[Hashable, Specs] = {}
_LOCK = threading.Lock()
_ORIGINAL: Callable[[Any], Specs] = userstate.get_dofn_specs


def _specs_key(dofn: Any) -> Hashable:
    """What `get_dofn_specs` reads of a DoFn: its class's methods, and the functions of
    the bound methods its instance holds (a `beam.Map` of a bound method)."""
    held = getattr(dofn, "__dict__", {})
    bound = tuple(
        sorted(
            (
                (name, value.__func__)
                for name, value in held.items()
                if isinstance(value, types.MethodType)
            ),
            key=lambda pair: pair[0],
        )
    )
    return type(dofn), bound


def _remembered(memo: MutableMapping[Any, T], key: Any, compute: Callable[[], T]) -> T:
    """`memo[key]`, computed once (outside the lock: two threads may both compute it)."""
    with _LOCK:
        found = memo.get(key)
    if found is None:
        found = compute()
        with _LOCK:
            memo[key] = found
    return found


def _remembered_specs(dofn: Any) -> Specs:
    states, timers = _remembered(_SPECS, _specs_key(dofn), lambda: _ORIGINAL(dofn))
    return set(states), set(timers)  # copies: a caller may change what it gets


def remember_dofn_specs() -> None:
    """Puts `_remembered_specs` where the DirectRunner looks `get_dofn_specs` up
    (`is_stateful_dofn` and `validate_stateful_dofn` call it through `userstate`)."""
    userstate.get_dofn_specs = _remembered_specs
    setattr(transform_evaluator, "get_dofn_specs", _remembered_specs)  # noqa: B010


class _PicklerPickOnce:
    """Stands in for the `pickler` module in the DirectRunner's evaluators, which copy
    each DoFn at every bundle with `pickler.roundtrip`: the same fresh copy, unpickled
    from bytes pickled once per DoFn object (the runner never changes the DoFn it
    copies from); pickling was three quarters of the copy. Anything else is
    `pickler`'s own."""

    def __init__(self) -> None:
        self._pickled: dict[int, tuple[weakref.ref[Any], bytes]] = {}
        self._lock = threading.Lock()

    def __getattr__(self, name: str) -> Any:
        return getattr(pickler, name)

    def roundtrip(self, o: Any) -> Any:
        lib: Any = pickler.desired_pickle_lib
        dumps, loads = getattr(lib, "_dumps", None), getattr(lib, "_loads", None)
        if dumps is None or loads is None:
            return pickler.roundtrip(o)
        key = id(o)
        with self._lock:
            held = self._pickled.get(key)
        if held is None or held[0]() is not o:
            data = dumps(o)

            def forget(_gone: object) -> None:
                self._pickled.pop(key, None)

            try:
                ref = weakref.ref(o, forget)
            except TypeError:  # an object without weak references: pickled each time
                return loads(data)
            with self._lock:
                self._pickled[key] = (ref, data)
        else:
            data = held[1]
        return loads(data)


_PICKLE_ONCE = _PicklerPickOnce()


def pickle_dofns_once() -> None:
    """Puts `_PICKLE_ONCE` where the DirectRunner's evaluators look `pickler` up."""
    setattr(transform_evaluator, "pickler", _PICKLE_ONCE)  # noqa: B010


_GET_SIGNATURE: Callable[[Any], inspect.Signature] = decorators.get_signature
_SIGNATURES: weakref.WeakKeyDictionary[Any, inspect.Signature] = weakref.WeakKeyDictionary()
_BOUND_SIGNATURES: weakref.WeakKeyDictionary[Any, inspect.Signature] = weakref.WeakKeyDictionary()


def _remembered_signature(func: Any) -> inspect.Signature:
    """Beam's `get_signature`, remembered for plain functions and for methods bound to
    one (whose signature is their function's, less the first parameter); anything
    else asks Beam each time. The DirectRunner builds each DoFn's signature from its
    methods at every bundle of every step (9% of the job's time at 190 msg/s)."""
    if isinstance(func, types.FunctionType):
        memo, key = _SIGNATURES, func
    elif isinstance(func, types.MethodType) and isinstance(func.__func__, types.FunctionType):
        memo, key = _BOUND_SIGNATURES, func.__func__
    else:
        return _GET_SIGNATURE(func)
    return _remembered(memo, key, lambda: _GET_SIGNATURE(func))


def remember_signatures() -> None:
    """Puts `_remembered_signature` where `core.get_function_args_defaults` (which
    the DoFn signatures are built with) looks `get_signature` up."""
    setattr(core, "get_signature", _remembered_signature)  # noqa: B010


# Values no step changes in place: shared by a key state's copy instead of copied.
_UNCHANGING = (Timestamp, BoundedWindow, int, float, str, bytes, bool, type(None))


def _unchanging(value: Any) -> Any:
    """`value` itself when nothing changes it in place (a timestamp, a window, a
    number, a string, a tuple of those), else a deep copy of it."""
    if isinstance(value, _UNCHANGING):
        return value
    if type(value) is tuple and all(isinstance(part, _UNCHANGING) for part in value):
        return value
    return copy.deepcopy(value)


def _new_window_state() -> collections.defaultdict[Any, list[Any]]:
    return collections.defaultdict(list)


def _copy_key_state(state: Any) -> Any:
    """`InMemoryUnmergedState.copy` for the DirectRunner's per-key state: the copy of a
    key's state each bundle works on until it commits. Beam deep-copies the key's timers
    (window -> (timer, domain, tag) -> timestamp) and global values, through each
    object's `__reduce__`: about 115 µs for a key holding two timers, paid for every key
    of every stateful step at every bundle (more than the exact-windows step's own work
    per event). Timestamps, windows and the timers' tags are values nothing changes in
    place, so the copy shares them and copies the dictionaries that hold them (anything
    else is still deep-copied); the state's lists are copied as Beam does."""
    cloned = DirectUnmergedState.__new__(type(state))
    cloned.defensive_copy = state.defensive_copy
    timers: collections.defaultdict[Any, dict[Any, Any]] = collections.defaultdict(dict)
    for window, held in state.timers.items():
        timers[_unchanging(window)] = {
            _unchanging(tag): _unchanging(at) for tag, at in held.items()
        }
    cloned.timers = timers
    cloned.global_state = {tag: _unchanging(value) for tag, value in state.global_state.items()}
    cloned.state = collections.defaultdict(_new_window_state)
    for window, tagged in state.state.items():
        if tagged:
            cloned.state[window] = _new_window_state()
            cloned.state[window].update((tag, copy.copy(values)) for tag, values in tagged.items())
    return cloned


def copy_key_states_lightly() -> None:
    """Puts `_copy_key_state` in the DirectRunner's per-key state class."""
    setattr(DirectUnmergedState, "copy", _copy_key_state)  # noqa: B010


def _earliest_timer(state: Any) -> Any:
    """The earliest of a key state's timers when all of them are event-time (watermark)
    timers (None when it has none), else `_EVERY_SCAN`: it must be looked at each time."""
    earliest = None
    for held in state.timers.values():
        for (_name, domain, _tag), at in held.items():
            if domain != TimeDomain.WATERMARK:
                return _EVERY_SCAN
            if earliest is None or at < earliest:
                earliest = at
    return earliest


_EVERY_SCAN: Any = object()


def _indexed_transform_timers(watermarks: Any) -> tuple[list[Any], bool]:
    """`_TransformWatermarks.extract_transform_timers`: the step's timers due at its
    input watermark (and whether any key holds a processing-time timer), as Beam's, which
    asks every key the step has seen (`InMemoryUnmergedState.get_timers`) at every scan.
    The runner never changes a committed key state: a bundle works on a copy and its
    commit puts the copy in the old one's place. So a key whose state is the same object
    as at an earlier scan, and whose earliest timer (all of them event-time timers) lies
    after the watermark, or which has none, has nothing due: it is skipped. Every other
    key is asked as by Beam, and what it answers is the same."""
    with watermarks._lock:
        index: dict[Any, tuple[Any, Any]] = watermarks.__dict__.setdefault("timer_index", {})
        watermark = watermarks._input_watermark
        fired: list[Any] = []
        has_realtime_timer = False
        for encoded_key, state in watermarks._keyed_states.items():
            seen = index.get(encoded_key)
            if seen is not None and seen[0] is state:
                earliest = seen[1]
                if earliest is None or (earliest is not _EVERY_SCAN and watermark < earliest):
                    continue
            timers, had_realtime_timer = state.get_timers(
                watermark=watermark, processing_time=watermarks._clock.time()
            )
            if had_realtime_timer:
                has_realtime_timer = True
            for window, (name, time_domain, timestamp, dynamic_timer_tag) in timers:
                fired.append(
                    TimerFiring(
                        encoded_key,
                        window,
                        name,
                        time_domain,
                        timestamp,
                        dynamic_timer_tag=dynamic_timer_tag,
                    )
                )
            index[encoded_key] = (state, _earliest_timer(state))
        watermarks._fired_timers.update(fired)
        return fired, has_realtime_timer


_ORIGINAL_EXTRACT: Callable[[Any], tuple[list[Any], bool]] = (
    _TransformWatermarks.extract_transform_timers
)


def index_timers() -> None:
    """Puts `_indexed_transform_timers` in the DirectRunner's per-step watermarks."""
    setattr(_TransformWatermarks, "extract_transform_timers", _indexed_transform_timers)  # noqa: B010


def space_timer_scans() -> None:
    """Puts `_spaced_fire_timers` in the monitor task (it changes nothing for a pipeline
    whose evaluation context has no `timer_scan_s`)."""
    setattr(_MONITOR, "_fire_timers", _spaced_fire_timers)  # noqa: B010


_MONITOR = _ExecutorServiceParallelExecutor._MonitorTask
_FIRE_TIMERS: Callable[[Any], bool] = _MONITOR._fire_timers


def _spaced_fire_timers(monitor: Any) -> bool:
    """The monitor's timer scan, spaced by the `timer_scan_s` of the pipeline's
    evaluation context (set by `LocalStreamingRunner`; other pipelines: every call) or
    `SCAN_SPACING` times its last duration. Skipped: False, as the monitor reads it
    (no timer fired now)."""
    context = monitor._executor.evaluation_context
    every = getattr(context, "timer_scan_s", None)
    if every is None:
        return _FIRE_TIMERS(monitor)
    began = time.monotonic()
    if began < getattr(context, "next_timer_scan", 0.0):
        return False
    fired = _FIRE_TIMERS(monitor)
    ended = time.monotonic()
    context.next_timer_scan = ended + max(every, SCAN_SPACING * (ended - began))
    return fired


def skip_empty_bundles() -> None:
    """Puts `_offer_outputs` in the runner's completion callback (it changes nothing for
    a pipeline `LocalStreamingRunner` does not run)."""
    setattr(_CompletionCallback, "handle_result", _offer_outputs)  # noqa: B010


_HANDLE_RESULT: Callable[..., Any] = _CompletionCallback.handle_result
_SKIPS_EMPTY: weakref.WeakSet[Any] = weakref.WeakSet()  # the options of the pipelines it runs


def _offer_outputs(
    callback: Any, transform_executor: Any, input_committed_bundle: Any, transform_result: Any
) -> Any:
    """The completion callback's `handle_result`: the result is committed as by Beam
    (watermarks, counters, state), and the monitor is offered only the output bundles
    that hold elements, so no step is scheduled on an empty one, in a pipeline
    `LocalStreamingRunner` runs (its options are in `_SKIPS_EMPTY`)."""
    context = callback._evaluation_context
    if getattr(context, "pipeline_options", None) not in _SKIPS_EMPTY:
        return _HANDLE_RESULT(
            callback, transform_executor, input_committed_bundle, transform_result
        )
    committed = context.handle_result(
        input_committed_bundle, callback._timer_firings, transform_result
    )
    update: Callable[..., Any] = _ExecutorServiceParallelExecutor._ExecutorUpdate
    for bundle in committed:
        if bundle.has_elements():
            callback._all_updates.offer(update(transform_executor, committed_bundle=bundle))
    for unprocessed in transform_result.unprocessed_bundles:
        callback._all_updates.offer(update(transform_executor, unprocessed_bundle=unprocessed))
    return committed


class _SinkLanes:
    """A worker thread for each of a pipeline's sinks (see the module's docstring): the
    runner's executor schedules a sink's bundles on its lane (`_schedule_consumption`),
    and its monitor schedules no reads while they hold more than `SINK_BACKLOG` elements
    (`_add_work_if_necessary`) and sees no stall while any waits (`_should_shutdown`)."""

    def __init__(self, executor: Any) -> None:
        self.services = {sink: _ExecutorService(1) for sink in _sinks(executor)}
        scheduled: set[Any] = set()  # every lane's, for the backlog
        self.states = {
            sink: _ParallelEvaluationState(service, scheduled)
            for sink, service in self.services.items()
        }
        self.scheduled = scheduled

    @classmethod
    def open(cls, executor: Any) -> None:
        """Gives `executor` (the runner's `_ExecutorServiceParallelExecutor`) its lanes,
        shut down with its own executor service."""
        lanes = cls(executor)
        main = executor.executor_service
        shut_main = main.shutdown

        def shutdown() -> None:
            shut_main()
            for service in lanes.services.values():
                service.shutdown()

        main.shutdown = shutdown
        executor.sink_lanes = lanes

    def backlog(self) -> int:
        """The elements of the sink bundles scheduled on the lanes and not done."""
        return sum(getattr(work, "elements", 1) for work in list(self.scheduled))


def _sinks(executor: Any) -> frozenset[Any]:
    """The pipeline's sinks: stateless ParDos without side inputs whose DoFn says
    `SINK = True` or none of whose outputs any step reads."""
    consumers, registry = executor.value_to_consumers, executor.transform_evaluator_registry
    return frozenset(
        node
        for node in executor.all_nodes
        if isinstance(node.transform, core.ParDo)
        and not node.side_inputs
        and not registry.should_execute_serially(node)
        and (
            getattr(node.transform.fn, "SINK", False) is True
            or not any(consumers.get(output) for output in node.outputs.values())
        )
    )


def run_sinks_on_lanes() -> None:
    """Puts `_schedule_consumption` in the runner's executor and `_add_work_if_necessary`
    and `_should_shutdown` in its monitor (they change nothing for an executor without
    `_SinkLanes`)."""
    setattr(_ExecutorServiceParallelExecutor, "schedule_consumption", _schedule_consumption)  # noqa: B010
    setattr(_MONITOR, "_add_work_if_necessary", _add_work_if_necessary)  # noqa: B010
    setattr(_MONITOR, "_should_shutdown", _should_shutdown)  # noqa: B010


_SCHEDULE: Callable[..., None] = _ExecutorServiceParallelExecutor.schedule_consumption
_ADD_WORK: Callable[[Any, bool], None] = _MONITOR._add_work_if_necessary
_SHOULD_SHUTDOWN: Callable[[Any], bool] = _MONITOR._should_shutdown


def _schedule_consumption(
    executor: Any, consumer: Any, committed_bundle: Any, fired_timers: Any, on_complete: Any
) -> None:
    """Beam's `schedule_consumption`, with a sink's bundles on its lane (when the
    executor has lanes)."""
    lanes: _SinkLanes | None = getattr(executor, "sink_lanes", None)
    lane = None if lanes is None else lanes.states.get(consumer)
    if lane is None:
        _SCHEDULE(executor, consumer, committed_bundle, fired_timers, on_complete)
        return
    work = _LaneExecutor(
        executor.transform_evaluator_registry,
        executor.evaluation_context,
        committed_bundle,
        fired_timers,
        consumer,
        on_complete,
        lane,
    )
    work.elements = sum(1 for _ in committed_bundle.get_elements_iterable())
    lane.schedule(work)


class _LaneExecutor(TransformExecutor):
    """A sink's bundle on its lane. When it starts, the bundles of the same sink queued
    on the lane behind it join it: their elements follow its own, in the order they
    came, in one bundle that the sink's watermarks hold as pending in their place (the
    same elements, so the same earliest timestamp; the new one is added before the old
    ones are removed, so the watermark never passes them). They are no longer queued
    or scheduled; the bundle's result, retries and failure are the runner's as for any
    bundle."""

    elements = 0  # in its bundle, for the lanes' backlog

    def call(self, state_sampler: Any) -> None:
        if self._call_count == 0 and not self._fired_timers:
            self._take_queued()
        call: Callable[[Any], None] = super().call
        call(state_sampler)

    def _take_queued(self) -> None:
        lane: Any = self._transform_evaluation_state
        tasks: queue.Queue[Any] = lane.executor_service.queue
        with tasks.mutex:
            behind = [
                task
                for task in tasks.queue
                if isinstance(task, _LaneExecutor)
                and task._applied_ptransform is self._applied_ptransform
                and task._call_count == 0
                and not task._fired_timers
            ]
            for task in behind:
                tasks.queue.remove(task)
        if not behind:
            return
        bundles = [self._input_bundle, *(task._input_bundle for task in behind)]
        context = self._evaluation_context
        joined = context.create_bundle(self._input_bundle.pcollection)
        for bundle in bundles:
            for value in bundle.get_elements_iterable():
                joined.add(value)
        joined.commit(getattr(self._input_bundle, "_synchronized_processing_time", None))
        watermarks = context._watermark_manager.get_watermarks(self._applied_ptransform)
        watermarks.add_pending(joined)
        for bundle in bundles:
            watermarks.remove_pending(bundle)
        self._input_bundle = joined
        self.elements += sum(task.elements for task in behind)
        for task in behind:
            lane.complete(task)
            tasks.task_done()


def _add_work_if_necessary(monitor: Any, timers_fired: bool) -> None:
    """Beam's: the roots' pending bundles (the reads) are scheduled when no step's bundle
    is in progress on the runner's thread; here not while the executor's sink lanes
    (when it has them) hold more than `SINK_BACKLOG` elements (the monitor comes back a
    millisecond later)."""
    lanes: _SinkLanes | None = getattr(monitor._executor, "sink_lanes", None)
    if lanes is not None and lanes.backlog() > SINK_BACKLOG:
        time.sleep(0.001)
        return
    _ADD_WORK(monitor, timers_fired)


def _should_shutdown(monitor: Any) -> bool:
    """Beam's check that the pipeline ended (or stalled), made only once the executor's
    sink lanes (when it has them) hold no bundle, no update a lane's bundle offered
    waits for the monitor, and no root's bundle waits to be scheduled: a read held back
    by the sinks' backlog is no stall, nor is a lane's last bundle whose outputs the
    monitor has yet to schedule (a lane offers its result before it leaves the lane, so
    a lane found empty with no update waiting has had its outputs scheduled)."""
    executor = monitor._executor
    lanes: _SinkLanes | None = getattr(executor, "sink_lanes", None)
    if lanes is not None and (
        lanes.scheduled
        or executor.all_updates._queue.qsize()
        or any(executor.node_to_pending_bundles.values())
    ):
        return False
    return _SHOULD_SHUTDOWN(monitor)
