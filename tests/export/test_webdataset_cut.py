"""WebDataset clip files from sources whose codec cannot be stream-copied into MP4 (VP8 in WebM): the
clip is re-encoded instead of being lost, and says so."""

from __future__ import annotations

import io
import json
import tarfile

from panda_dagster.lib.export.base import ExportOptions
from panda_dagster.lib.export.rows import Candidate, DatasetRow, SourceVideo
from panda_dagster.lib.export.webdataset import WebDatasetExporter


def test_vp8_source_is_re_encoded_not_dropped(tmp_path):
    import av

    from panda_dagster.fixtures.synth import Scene, render_video

    video = tmp_path / "vp8.webm"
    render_video(video, [Scene(4.0, seed=3)], codec="libvpx", audio=False)
    source = SourceVideo("vp8", str(video), str(video), None, None, None, None, None, 320, 180, 25.0, 4.0,
                         "vp8", "webm", False)
    row = DatasetRow("clip-1", "s", "vp8", 1.0, 3.0, 25, 75, "given", "content", 1, None, None, [], None, "none",
                     "a caption", "blip", 0.3, 0.0, True, None, 1, "scorer", None, "default",
                     [Candidate("blip", "a caption", selected=True)], source, None, [])
    out = tmp_path / "out"
    out.mkdir()
    result = WebDatasetExporter(ExportOptions(formats=["webdataset"])).write([row], out)
    assert result.n_rows == 1 and "1 clips re-encoded" in result.notes[0]
    with tarfile.open(out / result.files[0]) as tar:
        members = {m.name: tar.extractfile(m).read() for m in tar.getmembers()}
        assert {m.mtime for m in tar.getmembers()} == {0}
    record = json.loads(members["clip-1.json"])
    assert record["file"]["cut_mode"] == "reencode"
    with av.open(io.BytesIO(members["clip-1.mp4"])) as container:
        stream = container.streams.video[0]
        assert stream.codec_context.name == "h264"
        assert abs(sum(1 for _ in container.decode(stream)) - 50) <= 1  # 2 s at 25 fps, frame-exact
