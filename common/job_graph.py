"""A job graph as Dataflow receives it: each top-level step with the resource hints of
its leaf transforms and whether it breaks fusion (a shuffle). Reads the pipeline proto
(`Pipeline.to_runner_api()`), so it shows what is submitted, not what was intended."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

MIN_RAM = "beam:resources:min_ram_bytes:v1"
ACCELERATOR = "beam:resources:accelerator:v1"
_FUSION_BREAKS = ("beam:transform:group_by_key:v1", "beam:transform:reshuffle:v1")


@dataclass(frozen=True, kw_only=True)
class Stage:
    """One top-level step of a job graph as Dataflow receives it."""

    label: str
    min_ram: tuple[str, ...]  # distinct values over the step's leaf transforms
    accelerator: tuple[str, ...]
    fusion_break: bool
    unhinted: tuple[str, ...] = ()  # leaf transforms that run in no hinted environment


def stages(proto: Any) -> list[Stage]:
    """The top-level steps of a pipeline proto, in the order they were applied."""
    components = proto.components
    transforms, envs = components.transforms, components.environments
    root = transforms[proto.root_transform_ids[0]]
    out = []
    for tid in root.subtransforms:
        leaves = _leaves(transforms, tid)
        rams, accels, unhinted, breaks = set(), set(), [], False
        for leaf_id in leaves:
            leaf = transforms[leaf_id]
            breaks |= leaf.spec.urn in _FUSION_BREAKS or _stateful(leaf)
            env = envs[leaf.environment_id] if leaf.environment_id else None
            if env is None:
                continue
            found = dict(env.resource_hints)
            if MIN_RAM in found:
                rams.add(_gigabytes(found[MIN_RAM]))
            else:
                unhinted.append(leaf.unique_name)
            if ACCELERATOR in found:
                accels.add(found[ACCELERATOR].decode())
        breaks |= transforms[tid].spec.urn in _FUSION_BREAKS
        out.append(
            Stage(
                label=transforms[tid].unique_name,
                min_ram=tuple(sorted(rams, key=lambda r: float(r[:-2]))),
                accelerator=tuple(sorted(accels)),
                fusion_break=breaks,
                unhinted=tuple(unhinted),
            )
        )
    return out


def _stateful(transform: Any) -> bool:
    """A ParDo with state or timers: Dataflow shuffles its input by key first."""
    if transform.spec.urn != "beam:transform:pardo:v1":
        return False
    from apache_beam.portability.api import beam_runner_api_pb2

    payload = beam_runner_api_pb2.ParDoPayload.FromString(transform.spec.payload)
    return bool(payload.state_specs or payload.timer_family_specs)


def _leaves(transforms: Any, tid: str) -> list[str]:
    node = transforms[tid]
    if not node.subtransforms:
        return [tid]
    return [leaf for sub in node.subtransforms for leaf in _leaves(transforms, sub)]


def _gigabytes(raw: bytes) -> str:
    return f"{int(raw.decode()) / 1e9:g}GB"


def graph_text(job: str, stage_list: Sequence[Stage], skipped: Mapping[str, str]) -> str:
    """The dry run's report: one line per step, its resources and fusion breaks."""
    lines = [f"{job}: {len(stage_list)} steps (min_ram | accelerator | fusion)"]
    width = max(len(s.label) for s in stage_list)
    for s in stage_list:
        ram = ",".join(s.min_ram) or "-"
        accel = ",".join(s.accelerator) or "-"
        mark = "fusion break (shuffle or keyed state)" if s.fusion_break else ""
        lines.append(f"  {s.label:<{width}}  {ram:<10} {accel:<10} {mark}".rstrip())
    for view, reason in skipped.items():
        lines.append(f"  skipped view {view}: {reason}")
    return "\n".join(lines)
