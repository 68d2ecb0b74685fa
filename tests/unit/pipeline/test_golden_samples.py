"""Every sample in events/ maps to exactly its golden file (``<name>.expected.jsonl``).

Given a sample body, when it goes through ``python -m tools.transform`` with the demo GUIDs and the golden clock,
then the output lines equal the golden lines. Regenerate after an intended mapping change with
``UPDATE_GOLDENS=1 .venv/bin/python -m pytest tests/unit/pipeline/test_golden_samples.py`` and review the diff.
"""

from __future__ import annotations

import io
import os
from pathlib import Path

import orjson
import pytest

from functions.pipeline.contract import parse_timestamp
from functions.pipeline.settings import Settings
from tools import transform
from tools.samples import DEMO_ENV, GOLDEN_NOW, golden_path, route_for, sample_paths

SAMPLES = sample_paths()


def run_transform(sample: Path) -> tuple[int, list[dict[str, object]]]:
    out = io.BytesIO()
    status = transform.run(
        io.BytesIO(sample.read_bytes()),
        out,
        Settings.from_env(DEMO_ENV),
        route_for(sample),
        parse_timestamp(GOLDEN_NOW),
    )
    return status, [orjson.loads(line) for line in out.getvalue().splitlines()]


def test_there_are_samples_for_every_kind_of_event() -> None:
    names = {sample.name for sample in SAMPLES}
    assert {"ios_install.json", "android_install.json", "purchase_nested.json", "segment_batch.json"} <= names
    assert len([name for name in names if name.startswith("invalid_")]) >= 4


@pytest.mark.parametrize("sample", SAMPLES, ids=[sample.stem for sample in SAMPLES])
def test_sample_matches_its_golden_file(sample: Path) -> None:
    status, lines = run_transform(sample)
    golden = golden_path(sample)
    if os.environ.get("UPDATE_GOLDENS"):
        golden.write_bytes(b"".join(orjson.dumps(line, option=orjson.OPT_SORT_KEYS) + b"\n" for line in lines))
    expected = [orjson.loads(line) for line in golden.read_bytes().splitlines()]
    assert lines == expected
    rejected = any(line["status"] == "rejected" for line in lines)
    assert status == (1 if rejected else 0)
    assert rejected == sample.name.startswith("invalid_"), "only invalid_* samples may be rejected"
