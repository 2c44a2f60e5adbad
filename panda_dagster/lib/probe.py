"""Probe a video file with a real demuxer and decoder (PyAV).

Headers lie (WebM has no frame count, container durations include longer audio, truncated files
keep their full-length index), so the facts come from the packets themselves:
  * frames are counted by demuxing the video stream (no decoding);
  * duration is the span of the packet timestamps, fps the average rate, VFR from pts deltas;
  * decoding is checked at the start, at the keyframe nearest the middle and over the last GOP,
    so a file whose data is missing or corrupt is caught before it reaches the pipeline.
A file that opens but whose tail is missing still probes as long as >= 1 s decodes:
`decodable_s < duration_s` and `partial_reason` says why. Everything else unusable raises
`ProbeError` with a message meant for the quarantine table.
"""

from __future__ import annotations

import hashlib
import os
import stat
from dataclasses import dataclass
from pathlib import Path

MIN_DECODABLE_S = 1.0  # a partial file is kept only if at least this much decodes
_MIDDLE_FRAMES = 3  # frames decoded at the middle keyframe
_SNIFF_BYTES = 4096


MIN_PLAUSIBLE_FPS = 0.1  # one frame per 10 s (time-lapse slides)
MAX_PLAUSIBLE_FPS = 1000.0  # high-speed cameras record 960 fps


class ProbeError(Exception):
    """The file is not a usable video; the message says why in plain words."""


@dataclass
class ProbeResult:
    container: str  # short container name: mp4, mov, webm, matroska, avi, ...
    codec: str  # canonical video codec name: h264, vp9, av1, mjpeg, ...
    pix_fmt: str
    duration_s: float  # video duration (from packets; from the header when the tail is missing)
    fps: float  # average frame rate
    n_frames: int  # video packets present in the file
    width: int
    height: int
    is_vfr: bool
    has_audio: bool
    n_audio_streams: int
    audio_codec: str | None
    size_bytes: int
    sha256: str
    decodable_s: float  # seconds that really decode; == duration_s for a healthy file
    partial_reason: str | None  # why decodable_s < duration_s (None for a healthy file)

    @property
    def is_partial(self) -> bool:
        return self.partial_reason is not None


# ---------------------------------------------------------------------------------- file checks


def _check_file(path: Path) -> os.stat_result:
    try:
        info = path.stat()
    except FileNotFoundError:
        if path.is_symlink():
            raise ProbeError(f"file not found: broken symbolic link ({path})") from None
        raise ProbeError(f"file not found: {path}") from None
    except PermissionError:
        raise ProbeError(f"cannot read: permission denied ({path})") from None
    if stat.S_ISDIR(info.st_mode):
        raise ProbeError("not a video: is a directory")
    if not stat.S_ISREG(info.st_mode):
        raise ProbeError("not a video: not a regular file")
    if info.st_size == 0:
        raise ProbeError("file is empty (0 bytes)")
    return info


def _sha256_and_head(path: Path) -> tuple[str, bytes]:
    digest = hashlib.sha256()
    try:
        with open(path, "rb") as handle:
            head = handle.read(_SNIFF_BYTES)
            digest.update(head)
            for chunk in iter(lambda: handle.read(1 << 20), b""):
                digest.update(chunk)
    except PermissionError:
        raise ProbeError("cannot read: permission denied") from None
    except OSError as error:
        raise ProbeError(f"cannot read: {error.strerror or error}") from None
    return digest.hexdigest(), head


def _looks_like_text(head: bytes) -> bool:
    sample = head[:1024]
    if sample.startswith((b"\xff\xfe", b"\xfe\xff")):  # UTF-16 text
        return True
    if not sample or b"\x00" in sample:
        return False
    try:
        text = sample.decode("utf-8")
    except UnicodeDecodeError as error:
        if error.start < len(sample) - 4:  # not just a multibyte char cut off at the end
            return False
        text = sample[: error.start].decode("utf-8")
    printable = sum(ch.isprintable() or ch in "\r\n\t" for ch in text)
    return len(text) > 0 and printable / len(text) > 0.95


def _mp4_top_level_boxes(path: Path, size: int) -> list[bytes] | None:
    """Top-level ISO-BMFF box types, or None when the file does not start like an MP4/MOV."""
    boxes: list[bytes] = []
    with open(path, "rb") as handle:
        offset = 0
        while offset + 8 <= size and len(boxes) < 10_000:
            handle.seek(offset)
            header = handle.read(16)
            box_size = int.from_bytes(header[:4], "big")
            box_type = header[4:8]
            if not boxes and box_type not in (b"ftyp", b"wide", b"free", b"mdat", b"moov", b"skip"):
                return None
            if box_size == 1 and len(header) >= 16:
                box_size = int.from_bytes(header[8:16], "big")
            elif box_size == 0:  # box runs to the end of the file
                box_size = size - offset
            boxes.append(box_type)
            if box_size < 8:
                break
            offset += box_size
    return boxes


def _describe_open_failure(path: Path, size: int, head: bytes, error: Exception) -> str:
    boxes = _mp4_top_level_boxes(path, size)
    if boxes is not None and b"moov" not in boxes and b"moof" not in boxes:
        return "moov atom not found (truncated mp4? the index is written at the end, so the file must be complete)"
    if _looks_like_text(head):
        return "cannot open: looks like a text file, not a media file"
    message = str(getattr(error, "strerror", None) or error).strip()
    lowered = message.lower()
    if "invalid data" in lowered:
        return "cannot open: invalid data found when processing input (not a media file?)"
    if "permission" in lowered:
        return "cannot read: permission denied"
    if "resource busy" in lowered or "cannot allocate memory" in lowered:
        # What FFmpeg says when the header declares a frame it refuses to allocate (e.g. 100000x100000).
        return f"cannot open: the header declares an unusable stream (absurd resolution?): {message}"
    return f"cannot open: {message or type(error).__name__}"


# -------------------------------------------------------------------------------------- helpers


def _container_name(format_name: str, suffix: str, brand: str | None) -> str:
    names = format_name.split(",")
    suffix = suffix.lower().lstrip(".")
    if "mov" in names:
        if brand and brand.strip().lower() == "qt":
            return "mov"
        return suffix if suffix in names else "mp4"
    if "matroska" in names:
        return "webm" if suffix == "webm" else "matroska"
    if suffix in names:
        return suffix
    return names[0]


def _codec_name(stream) -> str:
    try:
        return stream.codec_context.codec.canonical_name  # "av1", not the decoder name "libdav1d"
    except Exception:
        return stream.codec_context.name


def _is_cover_art(stream) -> bool:
    import av

    try:
        return bool(stream.disposition & av.stream.Disposition.attached_pic)
    except Exception:
        return False


def _frame_time(frame, stream) -> float | None:
    # frame.time is NaN for frames drained with decode(None) (no time base attached): use the stream's.
    pts = frame.pts if frame.pts is not None else frame.dts
    return None if pts is None else pts * float(stream.time_base)


@dataclass
class _Window:
    frames: int
    last_time: float | None
    error: str | None
    width: int = 0
    height: int = 0
    pix_fmt: str | None = None


@dataclass
class _PacketScan:
    pts: list[int]  # presentation timestamps, in decode order
    end_pts: int  # max(pts + duration)
    keyframes: list[tuple[int, int]]  # (packet index, pts) of keyframes
    error: str | None  # demuxing stopped early with this error
    first: _Window  # decoding the first frames, done during the scan


def _scan_packets(container, stream) -> _PacketScan:
    """Demux every video packet (no decoding), except the first few, which are decoded."""
    import av

    pts_list: list[int] = []
    keyframes: list[tuple[int, int]] = []
    end_pts = None
    error = None
    context = stream.codec_context
    first = _Window(0, None, None)
    decoding = True
    rate = stream.average_rate or stream.guessed_rate
    missing_pts_step = max(1, round(1 / (float(rate) * float(stream.time_base)))) if rate else 1

    def take(decoded):
        for frame in decoded:
            first.frames += 1
            first.width, first.height, first.pix_fmt = frame.width, frame.height, frame.format.name
            time = _frame_time(frame, stream)
            if time is not None:
                first.last_time = time if first.last_time is None else max(first.last_time, time)

    try:
        for packet in container.demux(stream):
            if not packet.size or packet.is_discard:
                continue  # flush packets, AVI "dropped frame" markers, edit-list discards
            pts = packet.pts if packet.pts is not None else packet.dts
            if pts is None:  # raw elementary streams carry no timestamps: count frames at the nominal rate
                pts = pts_list[-1] + missing_pts_step if pts_list else 0
            if packet.is_keyframe:
                keyframes.append((len(pts_list), pts))
            pts_list.append(pts)
            end = pts + (packet.duration or 0)
            end_pts = end if end_pts is None else max(end_pts, end)
            if decoding:
                try:
                    take(context.decode(packet))
                except av.error.DecoderNotFoundError:
                    raise
                except av.error.FFmpegError as exc:
                    first.error = first.error or str(exc)
                if first.frames >= _MIDDLE_FRAMES or len(pts_list) >= 64:
                    decoding = False
                    try:
                        take(context.decode(None))
                    except av.error.FFmpegError as exc:
                        first.error = first.error or str(exc)
                    context.flush_buffers()
    except av.error.DecoderNotFoundError:
        raise
    except av.error.FFmpegError as exc:
        error = str(exc)
    if decoding:  # fewer packets than the window: drain what is there
        try:
            take(context.decode(None))
        except av.error.FFmpegError as exc:
            first.error = first.error or str(exc)
        context.flush_buffers()
    if first.frames:
        first.error = None
    return _PacketScan(pts_list, end_pts or 0, keyframes, error, first)


def _decode_packets(stream, packets, frame_limit: int | None = None) -> tuple[int, float | None, int, str | None]:
    """Decode `packets` (an iterator) from a clean decoder state.

    Returns (frames decoded, time of the last frame, packets that failed, first error)."""
    import av

    frames = 0
    last_time = None
    failures = 0
    first_error = None
    context = stream.codec_context

    def take(decoded):
        nonlocal frames, last_time
        for frame in decoded:
            frames += 1
            time = _frame_time(frame, stream)
            if time is not None:
                last_time = time if last_time is None else max(last_time, time)

    for packet in packets:
        try:
            take(context.decode(packet))
        except av.error.FFmpegError as exc:
            failures += 1
            first_error = first_error or str(exc)
        if frame_limit is not None and frames >= frame_limit:
            break
    try:
        take(context.decode(None))  # drain frames still held by (threaded) decoding
    except av.error.FFmpegError as exc:
        failures += 1
        first_error = first_error or str(exc)
    context.flush_buffers()
    return frames, last_time, failures, first_error


def _video_packets(container, stream):
    for packet in container.demux(stream):
        if packet.size and not packet.is_discard:
            yield packet


def _packets_from_keyframe(container, stream, key_pts: int, key_index: int, path: Path):
    """Packets from a keyframe on, via a seek; falls back to demuxing from the start when the
    seek does not land exactly on that keyframe (containers without a usable index)."""
    import av

    try:
        container.seek(key_pts, stream=stream, backward=True, any_frame=False)
        packets = _video_packets(container, stream)
        first = next(packets, None)
        if first is not None and first.pts == key_pts:
            def chained():
                yield first
                yield from packets
            return chained(), None
    except av.error.FFmpegError:
        pass
    fresh = av.open(str(path))
    fresh_stream = fresh.streams[stream.index]
    fresh_stream.thread_type = "AUTO"
    packets = _video_packets(fresh, fresh_stream)
    for _ in range(key_index):
        next(packets, None)
    return packets, fresh  # caller closes `fresh` and decodes with its stream


# ------------------------------------------------------------------------------------------ probe


def probe_video(path: Path | str) -> ProbeResult:
    """Probe `path`; raises ProbeError (human-readable reason) when it is not a usable video."""
    import av

    path = Path(path)
    info = _check_file(path)
    if not os.access(path, os.R_OK):
        raise ProbeError("cannot read: permission denied")
    sha256, head = _sha256_and_head(path)
    try:
        container = av.open(str(path), metadata_errors="ignore")
    except av.error.FFmpegError as error:
        raise ProbeError(_describe_open_failure(path, info.st_size, head, error)) from error
    except (UnicodeDecodeError, OSError) as error:
        raise ProbeError(_describe_open_failure(path, info.st_size, head, error)) from error
    with container:
        return _probe_open(container, path, info.st_size, sha256)


def _probe_open(container, path: Path, size_bytes: int, sha256: str) -> ProbeResult:
    """The probe of an opened file, step by step; each step raises ProbeError for what it finds unusable."""
    stream, audio_streams = _video_stream(container)
    codec = _codec_name(stream)
    scan = _scan_video(container, stream, codec)
    _require_frames(container, stream, scan)
    timing = _timing(container, stream, scan)
    fps = _frame_rate(stream, timing)
    first = scan.first
    width = stream.codec_context.width or first.width
    height = stream.codec_context.height or first.height
    pix_fmt = stream.codec_context.pix_fmt or first.pix_fmt
    decodable_s = _decodable_s(container, stream, scan, path, timing)
    if not width or not height:
        raise ProbeError("video stream has no frame size")
    decodable_s, partial_reason = _partial(timing, decodable_s)
    return ProbeResult(
        container=_container_name(
            container.format.name, path.suffix, (container.metadata or {}).get("major_brand")
        ),
        codec=codec,
        pix_fmt=pix_fmt or "unknown",
        duration_s=round(timing.duration_s, 6),
        fps=fps,
        n_frames=len(scan.pts),
        width=int(width),
        height=int(height),
        is_vfr=timing.is_vfr,
        has_audio=bool(audio_streams),
        n_audio_streams=len(audio_streams),
        audio_codec=_codec_name(audio_streams[0]) if audio_streams else None,
        size_bytes=size_bytes,
        sha256=sha256,
        decodable_s=round(decodable_s, 6),
        partial_reason=partial_reason,
    )


def _video_stream(container) -> tuple[object, list]:
    """The first real video stream (cover art is not video) and the audio streams; says what the file
    holds instead when it has no video."""
    audio_streams = list(container.streams.audio)
    video_streams = [s for s in container.streams.video if not _is_cover_art(s)]
    if not video_streams:
        if audio_streams:
            codecs = sorted({_codec_name(s) for s in audio_streams})
            noun = "stream" if len(audio_streams) == 1 else "streams"
            extra = " and a cover image" if list(container.streams.video) else ""
            raise ProbeError(
                f"not a video: no video stream (audio only: {len(audio_streams)} {'/'.join(codecs)} {noun}{extra})"
            )
        subtitles = list(container.streams.subtitles)
        if subtitles:
            codecs = sorted({s.codec_context.name for s in subtitles})
            noun = "stream" if len(subtitles) == 1 else "streams"
            raise ProbeError(
                f"not a video: no video stream (subtitles only: {len(subtitles)} {'/'.join(codecs)} {noun})"
            )
        kinds = sorted({s.type for s in container.streams})
        raise ProbeError(f"not a video: no video stream ({', '.join(kinds) or 'no streams at all'})")
    stream = video_streams[0]
    stream.thread_type = "AUTO"
    return stream, audio_streams


def _scan_video(container, stream, codec: str) -> _PacketScan:
    import av

    if stream.time_base is None:
        raise ProbeError("cannot read timestamps: the video stream has no time base")
    try:
        return _scan_packets(container, stream)
    except av.error.DecoderNotFoundError:
        raise ProbeError(f"cannot decode: no decoder for codec {codec}") from None


def _header_length(container, stream) -> tuple[int, float]:
    """(frames, seconds) the header promises; 0 where it does not say."""
    import av

    header_frames = stream.frames or 0
    tb = float(stream.time_base)
    header_s = (stream.duration * tb) if stream.duration else ((container.duration or 0) / av.time_base)
    return header_frames, header_s


def _require_frames(container, stream, scan: _PacketScan) -> None:
    n_frames = len(scan.pts)
    if n_frames > 1:
        return
    header_frames, header_s = _header_length(container, stream)
    if header_frames > 2 or header_s > 0.5:  # the index promises more: data is missing
        raise ProbeError(
            f"truncated or corrupt: only {n_frames} frame{'s' if n_frames != 1 else ''} present"
            + (f" of {header_frames}" if header_frames else "")
            + (f" (header says {header_s:.2f} s)" if header_s else "")
        )
    if n_frames == 0:
        raise ProbeError("video stream has no frames" + (f" ({scan.error})" if scan.error else ""))
    raise ProbeError("video has only 1 frame")


@dataclass
class _Timing:
    """What the packet timestamps say about the video's length and regularity."""

    tb: float  # seconds per timestamp tick
    sorted_pts: list[int]
    start_pts: int
    frame_s: float  # typical frame interval
    packet_span_s: float
    duration_s: float
    is_vfr: bool
    truncated: bool  # the header or the demuxer says frames are missing at the end
    header_frames: int
    missing_frames: int
    gap: tuple[float, float] | None  # (start_s, end_s) of a hole in a constant-rate video


def _timing(container, stream, scan: _PacketScan) -> _Timing:
    tb = float(stream.time_base)
    n_frames = len(scan.pts)
    sorted_pts = sorted(scan.pts)
    deltas = [b - a for a, b in zip(sorted_pts, sorted_pts[1:])]
    median_delta = sorted(deltas)[len(deltas) // 2]
    start_pts = sorted_pts[0]
    end_pts = max(scan.end_pts, sorted_pts[-1] + median_delta if scan.end_pts <= sorted_pts[-1] else 0)
    packet_span_s = (end_pts - start_pts) * tb
    if packet_span_s <= 0:
        raise ProbeError("broken timestamps: all video frames have the same time")

    # VFR: more than 2% of frame intervals off the typical one (beyond timestamp rounding).
    tolerance = 0.15 * median_delta + 1.5
    irregular = sum(abs(d - median_delta) > tolerance for d in deltas)
    is_vfr = irregular > 0.02 * len(deltas)

    # Nominal length from the header, to notice a file whose tail is missing.
    header_frames, header_s = _header_length(container, stream)
    missing_frames = header_frames - n_frames if header_frames else 0
    truncated = (
        scan.error is not None
        or missing_frames > max(2, 0.01 * header_frames)
        or (not header_frames and header_s - packet_span_s > max(0.5, 0.05 * header_s))
    )
    frame_s = median_delta * tb
    duration_s = max(packet_span_s, header_s, header_frames * frame_s) if truncated else packet_span_s

    # A constant-rate video with a long hole in its timestamps lost data there (a demuxer that
    # resyncs after corrupt bytes skips whole clusters); VFR videos may legitimately pause.
    gap = None
    if not is_vfr:
        gap_ticks = max(1.0 / tb, 10 * median_delta)
        for a, b in zip(sorted_pts, sorted_pts[1:]):
            if b - a > gap_ticks:
                gap = ((a - start_pts) * tb + frame_s, (b - start_pts) * tb)
                break
    return _Timing(tb, sorted_pts, start_pts, frame_s, packet_span_s, duration_s, is_vfr, truncated,
                   header_frames, missing_frames, gap)


def _frame_rate(stream, timing: _Timing) -> float:
    """The measured average rate, snapped to the header's exact rational rate when they agree."""
    sorted_pts, start_pts, tb = timing.sorted_pts, timing.start_pts, timing.tb
    n_frames = len(sorted_pts)
    measured_fps = (n_frames - 1) / ((sorted_pts[-1] - start_pts) * tb) if sorted_pts[-1] > start_pts else 0.0
    fps = measured_fps
    for nominal in (stream.average_rate, stream.guessed_rate, stream.base_rate):
        if nominal and measured_fps and abs(float(nominal) - measured_fps) <= 0.01 * measured_fps:
            fps = float(nominal)  # exact 30000/1001 instead of 29.9700...
            break
    if not fps:
        raise ProbeError("cannot determine the frame rate")
    if not MIN_PLAUSIBLE_FPS <= fps <= MAX_PLAUSIBLE_FPS:
        # Frame timestamps this dense or sparse are a broken header, not a video: its "duration" would
        # be a fraction of a millisecond (or days), and every clip cut from it meaningless.
        raise ProbeError(f"implausible frame rate {fps:g} fps (accepted: {MIN_PLAUSIBLE_FPS:g}-{MAX_PLAUSIBLE_FPS:g})")
    return fps


def _decodable_s(container, stream, scan: _PacketScan, path: Path, timing: _Timing) -> float:
    """Seconds that decode: the first frames (decoded during the scan), the keyframe nearest the middle
    and the last GOP are decoded; when any of them yields nothing, the whole file is."""
    first, frame_s = scan.first, timing.frame_s
    start_s = timing.start_pts * timing.tb
    keyframes = scan.keyframes or [(0, scan.pts[0])]
    middle_index = len(scan.pts) // 2
    middle_key = max((k for k in keyframes if k[0] <= middle_index), default=keyframes[0])
    last_key = keyframes[-1]

    middle = _decode_from_keyframe(container, stream, middle_key, path, frame_limit=_MIDDLE_FRAMES, frame_s=frame_s)
    last = _decode_from_keyframe(container, stream, last_key, path, frame_limit=None, frame_s=frame_s)
    if first.frames and middle.frames and last.frames and last.last_time is not None:
        return min(timing.duration_s, last.last_time - start_s + frame_s)
    full = _decode_from_keyframe(container, stream, keyframes[0], path, frame_limit=None, frame_s=frame_s)
    if full.frames == 0 or full.last_time is None:
        reason = full.error or first.error or "no frame decodes"
        raise ProbeError(f"cannot decode any frame: {reason}")
    return min(timing.duration_s, full.last_time - start_s + frame_s)


def _partial(timing: _Timing, decodable_s: float) -> tuple[float, str | None]:
    """(decodable_s, partial_reason): a file missing data keeps its decodable part when that is at
    least MIN_DECODABLE_S; a healthy file counts as decodable over its whole duration."""
    duration_s, frame_s, gap = timing.duration_s, timing.frame_s, timing.gap
    if gap is not None:
        decodable_s = min(decodable_s, gap[0])
    slack = max(2 * frame_s, 0.02 * duration_s)
    if not (timing.truncated or gap is not None or decodable_s < duration_s - slack):
        return duration_s, None  # decodable_s >= duration_s - slack here
    if decodable_s < MIN_DECODABLE_S:
        raise ProbeError(f"truncated or corrupt: only {decodable_s:.2f} s of {duration_s:.2f} s decodes")
    reason = f"truncated or corrupt: frames decode up to {decodable_s:.2f} s of {duration_s:.2f} s"
    if timing.missing_frames > 0:
        reason += f" ({timing.missing_frames} of {timing.header_frames} frames missing)"
    if gap is not None:
        reason += f" (no frames between {gap[0]:.2f} s and {gap[1]:.2f} s)"
    return decodable_s, reason


def _decode_from_keyframe(
    container, stream, key: tuple[int, int], path: Path, frame_limit: int | None, frame_s: float
) -> _Window:
    key_index, key_pts = key
    packets, fresh = _packets_from_keyframe(container, stream, key_pts, key_index, path)
    try:
        decode_stream = fresh.streams[stream.index] if fresh is not None else stream
        frames, last_time, failures, error = _decode_packets(decode_stream, packets, frame_limit)
    finally:
        if fresh is not None:
            fresh.close()
    if frames and last_time is None:  # decoded frames without timestamps (raw streams): count them
        last_time = key_pts * float(stream.time_base) + (frames - 1) * frame_s
    # A few failing packets in a window that otherwise decodes is noise (e.g. a cut-off last packet).
    return _Window(frames, last_time, error if failures and frames == 0 else None)
