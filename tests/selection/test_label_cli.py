"""`panda label export | import | status` end to end on a generated shard."""

from __future__ import annotations

import json
import re
from pathlib import Path

from panda_dagster.cli import main
from panda_dagster.lib.catalog import Catalog
from panda_dagster.lib.selection.synthetic import make_shape_preferences

SHARD = "shard-cli"


def test_label_export_import_status(panda_home, write_shape_shard, tmp_path, capsys):
    clips = {c.clip_id: c for c in write_shape_shard(SHARD, make_shape_preferences(n_videos=3, clips_per_video=3))}

    assert main(["label", "export", "--shard", SHARD, "--n", "5"]) == 0
    page = Path(capsys.readouterr().out.strip())
    assert page.is_file() and page.parent == panda_home / "labels"
    data = json.loads(re.search(r'id="data">(.*?)</script>', page.read_text(), re.S).group(1))
    assert len(data["clips"]) == 5

    rows = ["clip_id,choice,all_bad,annotator"]
    for item in data["clips"][:4]:
        truth = clips[item["clip_id"]]
        chosen = next(c["id"] for c in item["candidates"] if c["text"] == truth.candidates[truth.chosen_index])
        rows.append(f"{item['clip_id']},{chosen},false,ann")
    rows.append(f"{data['clips'][4]['clip_id']},ALL_BAD,true,ann")
    rows.append("unknown-clip,abc,false,ann")
    (tmp_path / "labels.csv").write_text("\n".join(rows) + "\n")
    assert main(["label", "import", str(tmp_path / "labels.csv")]) == 0
    out = capsys.readouterr()
    assert "imported 5 of 6 labels" in out.out and "(1 'all bad', 1 rejected)" in out.out
    assert "labels.csv:7: clip unknown-clip: unknown clip_id" in out.err
    stored = Catalog(panda_home).query("SELECT chosen_caption, clip_id FROM caption_preferences WHERE NOT all_bad")
    assert all(clips[r.clip_id].candidates[clips[r.clip_id].chosen_index] == r.chosen_caption
               for r in stored.itertuples())

    # A second export leaves out the clips labelled already.
    assert main(["label", "export", "--shard", SHARD, "--n", "0", "--out", str(tmp_path / "rest.html")]) == 0
    capsys.readouterr()
    rest = json.loads(re.search(r'id="data">(.*?)</script>', (tmp_path / "rest.html").read_text(), re.S).group(1))
    assert {c["clip_id"] for c in rest["clips"]} == set(clips) - {c["clip_id"] for c in data["clips"]}

    assert main(["label", "status"]) == 0
    status = capsys.readouterr().out
    assert SHARD in status and "no selection model yet" in status

    assert main(["label", "export", "--shard", "no-such-shard"]) == 2
    assert "has no clips" in capsys.readouterr().err
    assert main(["label", "import", str(tmp_path / "missing.csv")]) == 2
