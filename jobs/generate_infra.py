"""Terraform (as `.tf.json`) and Flex Template metadata, generated from the registry.

    python -m jobs.generate_infra            # rewrite infra/terraform and infra/templates
    python -m jobs.generate_infra --check    # exit 1 when the committed files are stale

Every name comes from the same functions `feature-store apply` uses (topics and
subscriptions, BigQuery table specs, Feast's Bigtable table names), so a new feature
view or source needs no hand edit: regenerate and commit. Terraform reads JSON
configuration natively; `${...}` strings are its expressions.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from feature_store.config import PlatformConfig
from feature_store.registry import Registry

ROOT = Path(__file__).resolve().parents[1] / "infra"
TERRAFORM = ROOT / "terraform"
TEMPLATES = ROOT / "templates"
PROVIDER_VERSION = "6.14.0"
JOBS = ("stream", "backfill")
NAME = "feature-store"
STREAM_JOB = f"{NAME}-stream"
BACKFILL_JOB = f"{NAME}-backfill"
BUCKET = "${var.project}-dataflow"
# No AUTH string in the job parameters (visible to whoever may view the job): the workers
# read it from Secret Manager with their own service account.
REDIS_URL = "${google_redis_instance.online.host}:${google_redis_instance.online.port}"
REDIS_SECRET = "${google_secret_manager_secret.redis_auth.id}/versions/latest"
IMAGE = "${var.region}-docker.pkg.dev/${var.project}/" + NAME + "/worker:${var.image_tag}"

Doc = dict[str, Any]


def _tf_id(name: str) -> str:
    """A Terraform resource name for a cloud resource name."""
    return name.replace("-", "_").replace(".", "_")


def _config() -> PlatformConfig:
    return PlatformConfig().for_project("${var.project}")


def main_tf() -> Doc:
    variables = {
        "project": {"type": "string", "description": "GCP project id."},
        "region": {"type": "string", "description": "Region of every regional resource."},
        "zone": {"type": "string", "description": "Zone of the Bigtable cluster."},
        "bigquery_location": {"type": "string", "default": "US"},
        "image_tag": {"type": "string", "description": "Tag of the worker image to run."},
        "network": {"type": "string", "default": "default"},
        "subnetwork": {
            "type": "string",
            "description": "Worker subnetwork, regions/REGION/subnetworks/NAME.",
        },
        "redis_memory_gb": {"type": "number", "default": 5},
        "bigtable_min_nodes": {"type": "number", "default": 1},
        "bigtable_max_nodes": {"type": "number", "default": 3},
        "backfill_schedule": {"type": "string", "default": "0 2 * * *"},
        "backfill_time_zone": {"type": "string", "default": "Etc/UTC"},
        "stream_max_workers": {"type": "number", "default": 10},
        "kms_key": {
            "type": "string",
            "description": "Cloud KMS key (projects/P/locations/L/keyRings/R/cryptoKeys/K) for "
            "BigQuery, Pub/Sub and the bucket.",
        },
    }
    region = {"project": "${var.project}", "region": "${var.region}"}
    return {
        "provider": {"google": region, "google-beta": region},
        "variable": variables,
        "resource": {
            "google_artifact_registry_repository": {
                "worker": {
                    "repository_id": NAME,
                    "location": "${var.region}",
                    "format": "DOCKER",
                    "description": "Worker and Flex Template launcher image.",
                    "kms_key_name": "${var.kms_key}",
                }
            },
            "google_storage_bucket": {
                "dataflow": {
                    "name": BUCKET,
                    "location": "${var.region}",
                    "uniform_bucket_level_access": True,
                    "public_access_prevention": "enforced",
                    # Temp and staging files: no soft-delete copies to pay for.
                    "soft_delete_policy": {"retention_duration_seconds": 0},
                    "versioning": {"enabled": True},
                    "encryption": {"default_kms_key_name": "${var.kms_key}"},
                    "logging": {"log_bucket": BUCKET + "-logs"},
                }
            },
        },
    }


def versions_tf() -> str:
    """The `terraform` block, in native syntax: checkov's JSON reader skips it otherwise."""
    lines = ["terraform {", '  required_version = ">= 1.5"', "  required_providers {"]
    for name in ("google", "google-beta"):
        lines += [
            f"    {name} = {{",
            f'      source  = "hashicorp/{name}"',
            f'      version = "{PROVIDER_VERSION}"',
            "    }",
        ]
    return "\n".join([*lines, "  }", "}", ""])


def pubsub_tf(registry: Registry) -> Doc:
    from feature_store.resources import STREAM_ACK_DEADLINE_S, topics

    topic_res: Doc = {}
    subs: Doc = {}
    for spec in topics(registry):
        topic_res[_tf_id(spec.name)] = {
            "name": spec.name,
            "kms_key_name": "${var.kms_key}",
            "message_retention_duration": "604800s",
        }
        for sub in spec.subscriptions:
            subs[_tf_id(sub)] = {
                "name": sub,
                "topic": "${google_pubsub_topic." + _tf_id(spec.name) + ".id}",
                "ack_deadline_seconds": STREAM_ACK_DEADLINE_S,
                "message_retention_duration": "604800s",
                "expiration_policy": {"ttl": ""},  # never expires
            }
    return {"resource": {"google_pubsub_topic": topic_res, "google_pubsub_subscription": subs}}


def bigquery_tf(registry: Registry) -> Doc:
    from feature_store.schemas import all_tables

    config = _config()
    specs = all_tables(registry, config.features_dataset, config.archive_dataset)
    datasets = {
        _tf_id(name): {
            "dataset_id": name,
            "location": "${var.bigquery_location}",
            "default_encryption_configuration": {"kms_key_name": "${var.kms_key}"},
        }
        for name in sorted({s.dataset for s in specs})
    }
    tables: Doc = {}
    for spec in specs:
        schema = [
            {"name": c.name, "type": c.type, "mode": c.mode, "description": c.description}
            for c in spec.columns
        ]
        table: Doc = {
            "dataset_id": "${google_bigquery_dataset." + _tf_id(spec.dataset) + ".dataset_id}",
            "table_id": spec.name,
            "description": spec.description,
            "schema": json.dumps(schema),
            "deletion_protection": True,
            "encryption_configuration": {"kms_key_name": "${var.kms_key}"},
        }
        if spec.partition_field:
            table["time_partitioning"] = {"type": "DAY", "field": spec.partition_field}
        if spec.clustering:
            table["clustering"] = list(spec.clustering)
        tables[_tf_id(f"{spec.dataset}.{spec.name}")] = table
    return {"resource": {"google_bigquery_dataset": datasets, "google_bigquery_table": tables}}


def bigtable_tables(registry: Registry) -> list[str]:
    """Feast's Bigtable table names of the views (one per entity combination)."""
    from feast import FeatureView
    from feast.repo_config import RepoConfig

    from feature_store.feast_repo import feast_objects, repo_config
    from online.feast_layout import bigtable_table_name

    config = _config()
    raw = repo_config(config, "bigtable")
    raw["registry"] = "gs://unused/registry.db"  # a name only: nothing is read
    repo = RepoConfig(**raw)
    views = [o for o in feast_objects(registry, config) if isinstance(o, FeatureView)]
    return sorted({bigtable_table_name(repo, v) for v in views})


def bigtable_tf(registry: Registry) -> Doc:
    from online.feast_layout import BIGTABLE_FAMILY

    config = _config()
    instance = {
        "name": config.bigtable_instance,
        "deletion_protection": True,
        "cluster": [
            {
                "cluster_id": f"{config.bigtable_instance}-c1",
                "zone": "${var.zone}",
                "storage_type": "SSD",
                "kms_key_name": "${var.kms_key}",
                "autoscaling_config": {
                    "min_nodes": "${var.bigtable_min_nodes}",
                    "max_nodes": "${var.bigtable_max_nodes}",
                    "cpu_target": 60,
                },
            }
        ],
    }
    tables = {
        _tf_id(name): {
            "name": name,
            "instance_name": "${google_bigtable_instance.online.name}",
            "column_family": [{"family": BIGTABLE_FAMILY}],
        }
        for name in bigtable_tables(registry)
    }
    return {
        "resource": {
            "google_bigtable_instance": {"online": instance},
            "google_bigtable_table": tables,
        }
    }


def redis_tf() -> Doc:
    return {
        "resource": {
            "google_redis_instance": {
                "online": {
                    "name": NAME,
                    "tier": "STANDARD_HA",
                    "memory_size_gb": "${var.redis_memory_gb}",
                    "region": "${var.region}",
                    "redis_version": "REDIS_7_2",
                    "authorized_network": "${var.network}",
                    "connect_mode": "PRIVATE_SERVICE_ACCESS",
                    # TLS needs the instance's CA on every worker; not done yet (README).
                    "transit_encryption_mode": "DISABLED",
                    "auth_enabled": True,
                    "customer_managed_key": "${var.kms_key}",
                }
            },
            # The AUTH string, for the workers only (each job's account may read it).
            "google_secret_manager_secret": {
                "redis_auth": {
                    "secret_id": f"{NAME}-redis-auth",
                    "replication": {"auto": {}},
                }
            },
            "google_secret_manager_secret_version": {
                "redis_auth": {
                    "secret": "${google_secret_manager_secret.redis_auth.id}",
                    "secret_data": "${google_redis_instance.online.auth_string}",
                }
            },
            "google_secret_manager_secret_iam_member": {
                f"{job}_redis_auth": {
                    "secret_id": "${google_secret_manager_secret.redis_auth.id}",
                    "role": "roles/secretmanager.secretAccessor",
                    "member": _member(job),
                }
                for job in JOBS
            },
        },
        "output": {
            "redis_url": {"value": REDIS_URL},
            "redis_password_secret": {"value": REDIS_SECRET},
        },
    }


def _member(account: str) -> str:
    return "serviceAccount:${google_service_account." + account + ".email}"


def iam_tf(registry: Registry) -> Doc:
    """One service account per job, each with only what its stages touch."""
    from feature_store.resources import dlq_topic, late_topic, stream_subscription

    config = _config()
    accounts = {
        "stream": {"account_id": STREAM_JOB, "display_name": "Streaming feature job"},
        "backfill": {"account_id": BACKFILL_JOB, "display_name": "Nightly backfill job"},
        "scheduler": {
            "account_id": f"{NAME}-scheduler",
            "display_name": "Launches the nightly backfill template",
        },
    }
    project_roles: Doc = {}
    for job in JOBS:
        for role in ("dataflow.worker", "bigquery.jobUser"):
            project_roles[f"{job}_{_tf_id(role)}"] = {
                "project": "${var.project}",
                "role": f"roles/{role}",
                "member": _member(job),
            }
    project_roles["scheduler_dataflow_developer"] = {
        "project": "${var.project}",
        "role": "roles/dataflow.developer",
        "member": _member("scheduler"),
    }
    subs, pubs = {}, {}
    for source in registry.sources:
        sub = stream_subscription(source.topic)
        subs[f"stream_{_tf_id(sub)}"] = {
            "subscription": "${google_pubsub_subscription." + _tf_id(sub) + ".name}",
            "role": "roles/pubsub.subscriber",
            "member": _member("stream"),
        }
        for side in (dlq_topic(source.topic), late_topic(source.topic)):
            pubs[f"stream_{_tf_id(side)}"] = {
                "topic": "${google_pubsub_topic." + _tf_id(side) + ".name}",
                "role": "roles/pubsub.publisher",
                "member": _member("stream"),
            }
    datasets = {
        # The stream appends to the archive and reads it back (warm start).
        "stream_archive": (config.archive_dataset, "dataEditor", "stream"),
        "backfill_archive": (config.archive_dataset, "dataViewer", "backfill"),
        "backfill_features": (config.features_dataset, "dataEditor", "backfill"),
    }
    dataset_iam = {
        key: {
            "dataset_id": "${google_bigquery_dataset." + _tf_id(ds) + ".dataset_id}",
            "role": f"roles/bigquery.{role}",
            "member": _member(job),
        }
        for key, (ds, role, job) in datasets.items()
    }
    per_job: Doc = {"bigtable": {}, "bucket": {}, "registry": {}}
    for job in JOBS:
        per_job["bigtable"][job] = {
            "instance": "${google_bigtable_instance.online.name}",
            "role": "roles/bigtable.user",
            "member": _member(job),
        }
        per_job["bucket"][job] = {
            "bucket": "${google_storage_bucket.dataflow.name}",
            "role": "roles/storage.objectAdmin",
            "member": _member(job),
        }
        per_job["registry"][job] = {
            "location": "${var.region}",
            "repository": "${google_artifact_registry_repository.worker.name}",
            "role": "roles/artifactregistry.reader",
            "member": _member(job),
        }
    per_job["bucket"]["scheduler"] = {
        "bucket": "${google_storage_bucket.dataflow.name}",
        "role": "roles/storage.objectViewer",
        "member": _member("scheduler"),
    }
    act_as = {
        "scheduler_as_backfill": {
            "service_account_id": "${google_service_account.backfill.name}",
            "role": "roles/iam.serviceAccountUser",
            "member": _member("scheduler"),
        }
    }
    return {
        "resource": {
            "google_service_account": accounts,
            "google_project_iam_member": project_roles,
            "google_pubsub_subscription_iam_member": subs,
            "google_pubsub_topic_iam_member": pubs,
            "google_bigquery_dataset_iam_member": dataset_iam,
            "google_bigtable_instance_iam_member": per_job["bigtable"],
            "google_storage_bucket_iam_member": per_job["bucket"],
            "google_artifact_registry_repository_iam_member": per_job["registry"],
            "google_service_account_iam_member": act_as,
        }
    }


def _environment(job: str) -> Doc:
    """Launch-time environment of a job's template (the Flex Template API's field names)."""
    return {
        "serviceAccountEmail": "${google_service_account." + job + ".email}",
        "tempLocation": f"gs://{BUCKET}/tmp",
        "stagingLocation": f"gs://{BUCKET}/staging",
        "sdkContainerImage": IMAGE,
        "network": "${var.network}",
        "subnetwork": "${var.subnetwork}",
        "ipConfiguration": "WORKER_IP_PRIVATE",
        "additionalExperiments": ["enable_prime"],
        "kmsKeyName": "${var.kms_key}",
    }


def dataflow_tf() -> Doc:
    stream_env = _environment("stream")
    stream = {
        "provider": "google-beta",
        "name": STREAM_JOB,
        "region": "${var.region}",
        "container_spec_gcs_path": f"gs://{BUCKET}/templates/stream.json",
        "parameters": {"redis_url": REDIS_URL, "redis_password_secret": REDIS_SECRET},
        "service_account_email": stream_env["serviceAccountEmail"],
        "temp_location": stream_env["tempLocation"],
        "staging_location": stream_env["stagingLocation"],
        "sdk_container_image": IMAGE,
        "network": "${var.network}",
        "subnetwork": "${var.subnetwork}",
        "ip_configuration": "WORKER_IP_PRIVATE",
        "enable_streaming_engine": True,
        "max_workers": "${var.stream_max_workers}",
        "additional_experiments": ["enable_prime"],
        "kms_key_name": "${var.kms_key}",
        # A new version whose state is incompatible: drain, then the new job warm-starts.
        "on_delete": "drain",
    }
    return {"resource": {"google_dataflow_flex_template_job": {"stream": stream}}}


def scheduler_tf() -> Doc:
    body = {
        "launchParameter": {
            "jobName": BACKFILL_JOB,
            "containerSpecGcsPath": f"gs://{BUCKET}/templates/backfill.json",
            "parameters": {
                "redis_url": REDIS_URL,
                "redis_password_secret": REDIS_SECRET,
                "dead_letters": f"gs://{BUCKET}/dead_letters/backfill",
            },
            "environment": _environment("backfill"),
        }
    }
    launch = (
        "https://dataflow.googleapis.com/v1b3/projects/${var.project}/locations/"
        "${var.region}/flexTemplates:launch"
    )
    return {
        "resource": {
            "google_cloud_scheduler_job": {
                "nightly_backfill": {
                    "name": f"{NAME}-nightly-backfill",
                    "region": "${var.region}",
                    "schedule": "${var.backfill_schedule}",
                    "time_zone": "${var.backfill_time_zone}",
                    "attempt_deadline": "320s",
                    "retry_config": {"retry_count": 1},
                    "http_target": {
                        "http_method": "POST",
                        "uri": launch,
                        "headers": {"Content-Type": "application/json"},
                        "body": "${base64encode(jsonencode(" + _hcl(body) + "))}",
                        "oauth_token": {
                            "service_account_email": "${google_service_account.scheduler.email}"
                        },
                    },
                }
            }
        }
    }


def _hcl(value: Any) -> str:
    """A JSON value as an HCL expression (object keys quoted, `${...}` unwrapped)."""
    if isinstance(value, Mapping):
        items = ", ".join(f"{json.dumps(k)} = {_hcl(v)}" for k, v in value.items())
        return "{" + items + "}"
    if isinstance(value, list):
        return "[" + ", ".join(_hcl(v) for v in value) + "]"
    whole = isinstance(value, str) and value.startswith("${") and value.endswith("}")
    if whole and value.count("${") == 1:
        return str(value[2:-1])
    if isinstance(value, str):
        return json.dumps(value)
    return json.dumps(value)


def template_metadata(job: str) -> Doc:
    """Flex Template metadata: the parameters `jobs.flex_template.parser` accepts."""
    from jobs.flex_template import parser

    params = []
    for action in parser(job)._actions:
        name = action.option_strings[0].removeprefix("--")
        param: Doc = {
            "name": name,
            "label": name.replace("_", " ").capitalize(),
            "helpText": action.help or "",
            "isOptional": not action.required,
        }
        if name == "dead_letters":
            param["regexes"] = ["^gs:\\/\\/[^\\n\\r]+$"]
        if name == "redis_url":
            param["regexes"] = ["^[^:@\\s]+:[0-9]+$"]
        if name == "redis_password_secret":
            param["regexes"] = ["^projects/[^/\\s]+/secrets/[^/\\s]+/versions/[^/\\s]+$"]
        params.append(param)
    description = {
        "stream": "Pub/Sub events to exact sliding-window features in Redis and Bigtable.",
        "backfill": "The event archive to BigQuery change-point tables and the online stores.",
    }[job]
    return {
        "name": f"{NAME}-{job}",
        "description": description,
        "streaming": job == "stream",
        "sdkInfo": {"language": "PYTHON"},
        "parameters": params,
    }


def build(registry: Registry) -> dict[Path, str]:
    """Every generated file and its content."""
    docs: dict[Path, Doc] = {
        TERRAFORM / "main.tf.json": main_tf(),
        TERRAFORM / "pubsub.tf.json": pubsub_tf(registry),
        TERRAFORM / "bigquery.tf.json": bigquery_tf(registry),
        TERRAFORM / "bigtable.tf.json": bigtable_tf(registry),
        TERRAFORM / "redis.tf.json": redis_tf(),
        TERRAFORM / "iam.tf.json": iam_tf(registry),
        TERRAFORM / "dataflow.tf.json": dataflow_tf(),
        TERRAFORM / "scheduler.tf.json": scheduler_tf(),
    }
    stream = docs[TERRAFORM / "dataflow.tf.json"]["resource"]["google_dataflow_flex_template_job"]
    stream["stream"]["depends_on"] = [
        f"google_bigtable_table.{_tf_id(t)}" for t in bigtable_tables(registry)
    ] + [
        "google_redis_instance.online",
        "google_project_iam_member.stream_dataflow_worker",
        "google_secret_manager_secret_version.redis_auth",
        "google_secret_manager_secret_iam_member.stream_redis_auth",
    ]
    for job in JOBS:
        docs[TEMPLATES / f"{job}-metadata.json"] = template_metadata(job)
    files = {path: json.dumps(doc, indent=2, sort_keys=True) + "\n" for path, doc in docs.items()}
    files[TERRAFORM / "versions.tf"] = versions_tf()
    return files


def main(argv: list[str] | None = None) -> int:
    from feature_store.registry import load_registry

    args = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    args.add_argument("--definitions", default="feature_store.reference:REGISTRY")
    args.add_argument("--check", action="store_true", help="compare, write nothing")
    ns = args.parse_args(argv)
    files = build(load_registry(ns.definitions))
    stale = [p for p, text in files.items() if not p.exists() or p.read_text() != text]
    if ns.check:
        for path in stale:
            sys.stderr.write(f"stale: {path}\n")
        return 1 if stale else 0
    for path, text in files.items():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
