"""The committed Terraform and template metadata are the generator's output, name what
the registry declares, and are well-formed where this machine can tell (JSON, every
`${...}` expression parsed by an HCL parser, every reference defined)."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import hcl2
import pytest

from feature_store.reference import REGISTRY
from jobs import generate_infra as generate
from jobs.flex_template import parser

TF = generate.TERRAFORM


def _load(name: str) -> dict[str, Any]:
    return json.loads((TF / name).read_text())


def _resources() -> dict[str, dict[str, Any]]:
    merged: dict[str, dict[str, Any]] = {}
    for path in sorted(TF.glob("*.tf.json")):
        for kind, items in json.loads(path.read_text()).get("resource", {}).items():
            merged.setdefault(kind, {}).update(items)
    return merged


def _strings(node: Any) -> list[str]:
    if isinstance(node, dict):
        return [s for v in node.values() for s in _strings(v)]
    if isinstance(node, list):
        return [s for v in node for s in _strings(v)]
    return [node] if isinstance(node, str) else []


def _expressions(text: str) -> list[str]:
    """The `${...}` expressions of a Terraform template string (braces may nest)."""
    out, i = [], text.find("${")
    while i != -1:
        depth, j = 0, i + 1
        while j < len(text):
            depth += {"{": 1, "}": -1}.get(text[j], 0)
            if depth == 0:
                break
            j += 1
        assert depth == 0, f"unbalanced expression in {text!r}"
        out.append(text[i + 2 : j])
        i = text.find("${", j)
    return out


def test_committed_files_are_the_generators_output() -> None:
    files = generate.build(REGISTRY)
    assert {p.name for p in files} == {p.name for p in TF.glob("*.tf*")} | {
        p.name for p in generate.TEMPLATES.glob("*-metadata.json")
    }
    for path, text in files.items():
        assert path.read_text() == text, f"{path.name} is stale: run python -m jobs.generate_infra"


def test_topics_and_subscriptions_are_the_registrys() -> None:
    res = _resources()
    topics = {t["name"] for t in res["google_pubsub_topic"].values()}
    subs = {s["name"] for s in res["google_pubsub_subscription"].values()}
    want_topics, want_subs = set(), set()
    for source in REGISTRY.sources:
        t = source.topic
        want_topics |= {t, f"{t}-dlq", f"{t}-late"}
        want_subs |= {f"{t}-stream", f"{t}-dlq-inspect", f"{t}-late-inspect"}
    assert topics == want_topics
    assert subs == want_subs


def test_bigquery_tables_are_what_apply_creates() -> None:
    from common.bigquery_admin import table_definition
    from feature_store.schemas import all_tables

    res = _resources()
    tables = {
        (t["dataset_id"].split(".")[1], t["table_id"]): t
        for t in res["google_bigquery_table"].values()
    }
    want = {(v.name) for v in REGISTRY.views} | {s.archive for s in REGISTRY.sources}
    # the backfill's snapshot of the unbounded features, and its manifest (the warm start)
    snapshots = {"unbounded_snapshot", "unbounded_snapshots"}
    assert {name for _, name in tables} == want | {"dead_letters"} | snapshots
    for spec in all_tables(REGISTRY, "features", "events"):
        made = table_definition("p", spec)  # the Table object `apply` creates
        tf = tables[(spec.dataset, spec.name)]
        schema = [f.to_api_repr() for f in made.schema]
        assert [(f["name"], f["type"], f["mode"]) for f in json.loads(tf["schema"])] == [
            (f["name"], f["type"], f["mode"]) for f in schema
        ]
        partitioning = made.time_partitioning
        assert tf.get("time_partitioning") == (
            {"type": partitioning.type_, "field": partitioning.field} if partitioning else None
        )
        assert tf.get("clustering") == made.clustering_fields
    datasets = {d["dataset_id"] for d in res["google_bigquery_dataset"].values()}
    assert datasets == {"features", "events"}


def test_bigtable_tables_hold_every_views_entities() -> None:
    res = _resources()
    names = {t["name"] for t in res["google_bigtable_table"].values()}
    for view in REGISTRY.views:
        assert any(n.startswith("reviews.") and view.entity in n for n in names), view.name
    instance = res["google_bigtable_instance"]["online"]
    assert instance["name"] == "feature-store"


def test_each_job_has_its_own_least_privilege_account() -> None:
    res = _resources()
    accounts = {a["account_id"] for a in res["google_service_account"].values()}
    assert accounts == {"feature-store-stream", "feature-store-backfill", "feature-store-scheduler"}
    grants = [
        (kind, g["role"], g["member"])
        for kind, items in res.items()
        if kind.endswith("_iam_member")
        for g in items.values()
    ]
    roles = {role for _, role, _ in grants}
    assert not roles & {"roles/owner", "roles/editor", "roles/viewer"}
    assert all("google_service_account." in m for _, _, m in grants)
    stream_grants = {(k, r) for k, r, m in grants if "google_service_account.stream." in m}
    backfill_grants = {(k, r) for k, r, m in grants if "google_service_account.backfill." in m}
    assert ("google_pubsub_subscription_iam_member", "roles/pubsub.subscriber") in stream_grants
    assert not any("pubsub" in k for k, _ in backfill_grants)
    features = [
        g
        for g in res["google_bigquery_dataset_iam_member"].values()
        if "features" in g["dataset_id"]
    ]
    assert [g["member"] for g in features] == [
        "serviceAccount:${google_service_account.backfill.email}"
    ]


def test_expressions_parse_and_references_are_defined() -> None:
    res = _resources()
    variables = set(_load("main.tf.json")["variable"])
    for path in sorted(TF.glob("*.tf.json")):
        for text in _strings(json.loads(path.read_text())):
            for expr in _expressions(text):
                hcl2.loads(f"x = {expr}\n")  # raises on a syntax error
                for var in re.findall(r"\bvar\.(\w+)", expr):
                    assert var in variables, f"{path.name}: undefined var.{var}"
                for kind, name in re.findall(r"\b(google_\w+)\.(\w+)\.", expr):
                    assert name in res.get(kind, {}), f"{path.name}: undefined {kind}.{name}"


def test_versions_pin_the_providers() -> None:
    block = hcl2.loads((TF / "versions.tf").read_text())["terraform"][0]
    providers = block["required_providers"][0]
    versions = {p["version"].strip('"') for k, p in providers.items() if k != "__is_block__"}
    assert versions == {generate.PROVIDER_VERSION}


def test_a_bad_expression_is_caught() -> None:
    with pytest.raises(Exception):  # noqa: B017 (the parser's own error types vary)
        hcl2.loads('x = base64encode(jsonencode(({"a" = 1}))\n')


@pytest.mark.parametrize("job", ["stream", "backfill"])
def test_template_parameters_are_the_entry_points(job: str) -> None:
    meta = json.loads((generate.TEMPLATES / f"{job}-metadata.json").read_text())
    options = {a.option_strings[0][2:]: a.required for a in parser(job)._actions}
    assert {p["name"]: not p["isOptional"] for p in meta["parameters"]} == options
    assert meta["streaming"] is (job == "stream")


def test_launches_pass_the_required_parameters() -> None:
    res = _resources()
    stream = res["google_dataflow_flex_template_job"]["stream"]
    required = {a.option_strings[0][2:] for a in parser("stream")._actions if a.required}
    assert required <= set(stream["parameters"])
    assert stream["enable_streaming_engine"] is True
    assert stream["additional_experiments"] == ["enable_prime"]
    body = res["google_cloud_scheduler_job"]["nightly_backfill"]["http_target"]["body"]
    required = {a.option_strings[0][2:] for a in parser("backfill")._actions if a.required}
    for name in required:
        assert f'"{name}" =' in body
    assert '"additionalExperiments" = ["enable_prime"]' in body


def test_check_mode_reports_a_stale_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    copy = tmp_path / "terraform"
    copy.mkdir()
    for path in TF.glob("*.tf.json"):
        (copy / path.name).write_text(path.read_text())
    (copy / "pubsub.tf.json").write_text("{}\n")
    monkeypatch.setattr(generate, "TERRAFORM", copy)
    assert generate.main(["--check"]) == 1


def test_the_redis_auth_string_travels_only_through_secret_manager() -> None:
    resources = _resources()
    for text in _strings(resources["google_dataflow_flex_template_job"]) + _strings(
        resources["google_cloud_scheduler_job"]
    ):
        assert "auth_string" not in text, text
    version = resources["google_secret_manager_secret_version"]["redis_auth"]
    assert version["secret_data"] == "${google_redis_instance.online.auth_string}"
    readers = resources["google_secret_manager_secret_iam_member"]
    assert {r["member"] for r in readers.values()} == {
        "serviceAccount:${google_service_account.stream.email}",
        "serviceAccount:${google_service_account.backfill.email}",
    }
    assert {r["role"] for r in readers.values()} == {"roles/secretmanager.secretAccessor"}
    stream = resources["google_dataflow_flex_template_job"]["stream"]["parameters"]
    assert stream["redis_password_secret"] == generate.REDIS_SECRET
    known, _ = parser("stream").parse_known_args(
        ["--redis_url", "h:6379", "--redis_password_secret", "projects/p/secrets/s/versions/1"]
    )
    assert known.redis_password_secret == "projects/p/secrets/s/versions/1"
