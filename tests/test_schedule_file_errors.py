"""Schedule files (`--schedule FILE`) that are not what they claim are refused with file:line."""

from __future__ import annotations

from pathlib import Path

import pytest

from dse.errors import SpecError
from dse.pipeline.fused import load_schedule, parse_schedule_option


def _load(tmp_path: Path, text: str):
    path = tmp_path / "s.yaml"
    path.write_text(text)
    return load_schedule(path)


@pytest.mark.parametrize("text, expect", [
    ("schedule:\n  kind: fused\n  segments:\n    - [conv1, pool1]\n",
     "s.yaml:3: at 'schedule.segments[0]': expected a mapping of keys"),
    ("schedule:\n  kind: fused\n  stages:\n    - {name: A, layers: [a], group: 0}\n",
     "s.yaml:2: at 'schedule.kind': `stages:` belongs to a pipeline schedule"),
    ("schedule:\n  stages:\n    - {name: A, layers: [a], group: 0}\n",
     "s.yaml:2: at 'schedule.kind': `stages:` belongs to a pipeline schedule"),
    ("schedule:\n  kind: fusd\n  segments: []\n",
     "s.yaml:2: at 'schedule.kind': unknown schedule kind"),
    ("schedule:\n  version: 2\n  kind: pipeline\n  stages: []\n",
     "s.yaml:2: at 'schedule.version': unsupported schedule version"),
])
def test_misfiled_schedule_is_refused_with_its_line(tmp_path, text, expect) -> None:
    with pytest.raises(SpecError) as exc:
        _load(tmp_path, text)
    assert expect in str(exc.value)


def test_a_typo_kind_gets_a_suggestion(tmp_path) -> None:
    with pytest.raises(SpecError, match="did you mean 'pipeline'"):
        _load(tmp_path, "schedule:\n  kind: pipelin\n  stages: []\n")


def test_schedule_option_names_every_kind(tmp_path) -> None:
    with pytest.raises(SpecError, match="layerwise, fused, pipeline, auto or a schedule YAML"):
        parse_schedule_option(str(tmp_path / "missing.yaml"))
