"""The README's *Extending* examples are real code: copied out of README.md, registered with their one
line each, and run (a teacher kind, a shot detector, an export format)."""

from __future__ import annotations

import importlib
import re
import sys
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import yaml

README = Path(__file__).resolve().parents[2] / "README.md"


def _extending_blocks() -> dict[str, str]:
    """Code blocks of the Extending section by the file their first line names (yaml: 'yaml')."""
    text = README.read_text(encoding="utf-8")
    section = text.split("\n## Extending\n", 1)[1].split("\n## ", 1)[0]
    blocks = {}
    for lang, body in re.findall(r"```(python|yaml)\n(.*?)```", section, flags=re.S):
        if lang == "yaml":
            blocks["yaml"] = body
        else:
            first = body.splitlines()[0]
            assert first.startswith("# panda_dagster/"), first
            blocks[first[2:].strip()] = body
    return blocks


@pytest.fixture
def readme_modules(tmp_path, monkeypatch):
    """The README's modules as package `readme_ext` (module name = the file's name)."""
    package = tmp_path / "readme_ext"
    package.mkdir()
    (package / "__init__.py").write_text("")
    names = {}
    for path, code in _extending_blocks().items():
        if path != "yaml":
            (package / Path(path).name).write_text(code)
            names[Path(path).stem] = path
    monkeypatch.syspath_prepend(str(tmp_path))
    yield {stem: importlib.import_module(f"readme_ext.{stem}") for stem in names}
    for name in [m for m in sys.modules if m.startswith("readme_ext")]:
        del sys.modules[name]


def test_the_three_examples_are_there():
    assert set(_extending_blocks()) == {"panda_dagster/lib/teachers/kinds/title.py", "yaml",
                                        "panda_dagster/lib/video/detectors/luma.py", "panda_dagster/lib/export/tsv.py"}


def test_readme_teacher_kind(readme_modules, monkeypatch, panda_home):
    from panda_dagster.lib.ids import clip_id
    from panda_dagster.lib.teachers import kinds
    from panda_dagster.lib.teachers.engine import caption_shard
    from panda_dagster.lib.teachers.inputs import ClipInput, VideoInput
    from panda_dagster.lib.teachers.registry import load_registry

    monkeypatch.setattr(kinds, "KIND_MODULES", (*kinds.KIND_MODULES, "readme_ext.title"))  # the one line
    kinds.teacher_kinds.cache_clear()
    try:
        (entry,) = yaml.safe_load(_extending_blocks()["yaml"])
        spec = load_registry("tiny", {entry["name"]: entry}).teacher("title")
        videos = {"a": VideoInput("a", "/nonexistent/a.mp4", title="Fixing a bike chain"),
                  "b": VideoInput("b", "/nonexistent/b.mp4")}
        clips = [ClipInput(clip_id(v, 0.0, 2.0), v, 0.0, 2.0) for v in ("a", "b")]
        result = caption_shard("s", [spec], clips, videos, [], profile="tiny")
        assert [(c.video_id, c.caption, c.kind) for c in result.captions] == [("a", "Fixing a bike chain", "title")]
        assert [(f.video_id, f.reason) for f in result.failures] == [("b", "the video has no title")]
    finally:
        kinds.teacher_kinds.cache_clear()


def test_readme_detector(readme_modules, monkeypatch):
    from panda_dagster.lib.video import detectors

    monkeypatch.setitem(sys.modules, "panda_dagster.lib.video.detectors.luma", readme_modules["luma"])
    monkeypatch.setitem(detectors.REGISTRY, "luma", "luma:LumaDetector")  # the one line
    detector = detectors.make_detector("luma")
    assert isinstance(detector, detectors.ShotDetector)
    scorer = detector.frame_scorer()
    for index in range(20):
        scorer(index, index / 25.0, np.full((36, 64, 3), 20 if index < 12 else 200, dtype=np.uint8))
    detection = detector.detect(scorer.scores, 25.0)
    assert detection.cuts == [12] and detection.detector == "luma"


def test_readme_exporter(readme_modules, monkeypatch, tmp_path):
    from panda_dagster.lib.export import registry
    from panda_dagster.lib.export.base import ExportOptions

    exporter_class = readme_modules["tsv"].TsvExporter
    monkeypatch.setitem(registry.EXPORTERS, exporter_class.name, exporter_class)  # the one line
    exporter = exporter_class(ExportOptions(formats=["tsv"]))
    rows = [SimpleNamespace(clip_id="c1", start_s=0.0, end_s=2.5, caption="a man fixes a bike chain")]
    out = exporter.write(rows, tmp_path)
    assert out.files == ["captions.tsv"] and out.n_rows == 1 and out.n_bytes > 0
    assert (tmp_path / "captions.tsv").read_text().splitlines() == [
        "clip_id\tstart_s\tend_s\tcaption", "c1\t0.000\t2.500\ta man fixes a bike chain"]
