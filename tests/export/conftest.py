"""One catalog shard built once per session by running the real stages (PANDA_MODELS=tiny) on generated
videos; export tests read it (and copy it when they change the catalog)."""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path

import pytest

LICENSE = "CC-BY-4.0"


@dataclass
class BuiltShard:
    home: Path
    shard: str
    videos_dir: Path

    def catalog(self):
        from panda_dagster.lib.catalog import Catalog

        return Catalog(self.home)

    def copy_home(self, dest: Path) -> Path:
        shutil.copytree(self.home, dest, ignore=shutil.ignore_patterns("dagster"))
        return dest


def partitioned_upstream(target: str, skip: tuple[str, ...] = ("clip_filters",)) -> list[str]:
    """The per-shard assets `target` needs (itself included), whatever stages the graph has today.
    The clip filters are left out: their tests own them; here every clip stays (no rows = kept)."""
    from dagster import AssetKey

    from panda_dagster.definitions import defs

    graph = defs.get_repository_def().asset_graph
    seen, todo = set(), [AssetKey(target)]
    while todo:
        key = todo.pop()
        seen.add(key)
        todo += [p for p in graph.get(key).parent_keys if p not in seen]
    return sorted(k.to_user_string() for k in seen
                  if graph.get(k).partitions_def is not None and k.to_user_string() not in skip)


def set_home_env(mp: pytest.MonkeyPatch, home: Path, model_cache: Path) -> None:
    """What the stages and `panda export` read from the environment: the data home and the tiny models
    (the Dagster instance is ephemeral, storage local)."""
    for name, value in (("PANDA_HOME", home), ("PANDA_MODELS", "tiny"), ("PANDA_MODEL_CACHE", model_cache)):
        mp.setenv(name, str(value))
    mp.delenv("PANDA_S3_BUCKET", raising=False)


def run_stages(home: Path, source: Path, prefix: str, target: str, run_config: dict | None = None) -> str:
    from dagster import DagsterInstance, materialize

    from panda_dagster.common.partitions import video_shards
    from panda_dagster.common.resources import PandaResource
    from panda_dagster.definitions import defs
    from panda_dagster.lib.ingest import ingest_source

    panda = PandaResource(home=str(home))
    (shard,) = ingest_source(source, panda.catalog(), panda.storage(), shard_size=50, prefix=prefix).keys
    instance = DagsterInstance.ephemeral()
    instance.add_dynamic_partitions(video_shards.name, [shard])
    wanted = set(partitioned_upstream(target))
    # Only the assets this run needs: a stage elsewhere in the graph that is mid-change cannot break it.
    assets = [a for a in defs.assets if {k.to_user_string() for k in a.keys} & wanted]
    result = materialize(assets, selection=sorted(wanted), partition_key=shard, instance=instance,
                         resources={**defs.resources, "panda": panda}, run_config=run_config)
    assert result.success
    return shard


@pytest.fixture(scope="session")
def built_shard(tmp_path_factory, tiny_model_cache) -> BuiltShard:
    """Two generated videos through raw_videos → ... → selected_captions: one at 24 fps (frame times that
    are not whole milliseconds) with a licence sidecar, one at 25 fps with subtitles."""
    from panda_dagster.fixtures.synth import Scene, render_video

    root = tmp_path_factory.mktemp("export_shard")
    videos = root / "videos"
    render_video(videos / "cuts24.mp4", [Scene(5.0, seed=11), Scene(5.0, seed=21, background="red")],
                 fps=24.0, audio=False, metadata={"title": "Two scenes, 24 fps", "license": LICENSE})
    render_video(videos / "talk25.mp4", [Scene(5.0, seed=12, background="blue"), Scene(5.0, seed=22)],
                 audio=False, subtitles=[(0.2, 2.6, "a person says hello, \"twice\" and it's fine")])
    home = root / "home"
    home.mkdir()
    with pytest.MonkeyPatch.context() as mp:
        set_home_env(mp, home, tiny_model_cache)
        shard = run_stages(home, videos, "exp", "selected_captions")
    return BuiltShard(home, shard, videos)


@pytest.fixture(scope="session")
def stages():
    """The helpers above for test modules (conftest modules are not importable under importlib mode)."""
    return type("Stages", (), {"run": staticmethod(run_stages), "set_env": staticmethod(set_home_env),
                               "upstream": staticmethod(partitioned_upstream), "license": LICENSE})
