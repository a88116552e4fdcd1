"""Every hint level of common.stages is one Beam accepts, with the values written here."""

from __future__ import annotations

from apache_beam.transforms import resources

from common import stages

MIN_RAM = "beam:resources:min_ram_bytes:v1"
ACCELERATOR = "beam:resources:accelerator:v1"


def test_levels_parse_to_the_intended_bytes() -> None:
    expected = {
        "IO_HINTS": b"4000000000",
        "VALIDATION_HINTS": b"4000000000",
        "DEAD_LETTER_HINTS": b"4000000000",
        "ARCHIVE_HINTS": b"4000000000",
        "DEDUP_HINTS": b"8000000000",
        "HISTORY_HINTS": b"16000000000",
        "FEATURE_HINTS": b"32000000000",
        "INFERENCE_HINTS": b"8000000000",
        "DEFAULT_HINTS": b"4000000000",
    }
    for name, ram in expected.items():
        parsed = resources.parse_resource_hints(dict(getattr(stages, name)))
        assert parsed[MIN_RAM] == ram, name
    inference = resources.parse_resource_hints(dict(stages.INFERENCE_HINTS))
    assert inference[ACCELERATOR] == b"type:nvidia-tesla-t4;count:1;install-nvidia-driver"


def test_hints_as_pipeline_option_values() -> None:
    assert stages.as_option(stages.INFERENCE_HINTS) == [
        "accelerator=type:nvidia-tesla-t4;count:1;install-nvidia-driver",
        "min_ram=8GB",
    ]
