"""parse_subtitles on the real sample VTT and on generated well-formed and broken files."""

from __future__ import annotations

import numpy as np
import pytest

from panda_dagster.lib.subtitles import Cue, ParsedSubtitles, SubtitleError, parse_subtitles, write_srt, write_vtt


@pytest.mark.shared_videos
def test_sample_vtt(shared_videos):
    parsed = parse_subtitles(shared_videos / "mdn_friday.vtt")
    assert isinstance(parsed, ParsedSubtitles)
    assert parsed.format == "vtt" and parsed.problems == []
    assert len(parsed.cues) == 5
    assert parsed.cues[0] == Cue(0.0, 0.999, "Hildy!")
    assert parsed.cues[2].text == "Tell me, is the lord of the universe in?"  # <u> stripped, line:80% ignored
    assert parsed.cues[-1] == Cue(4.3, 6.0, "Somebody must've stolen the crown jewels")
    assert parsed.text.startswith("Hildy! How are you? Tell me")


VTT = """WEBVTT - with a title
Kind: captions
Language: en

NOTE this is a comment
that spans two lines

STYLE
::cue(.yellow) { color: yellow; }

intro
00:01.000 --> 00:02.500 line:80% position:10% align:start
<v Roger Bingham>We are in New York City</v>

00:00:02.500 --> 00:00:04.000
<c.yellow>Two</c> <i>lines</i>
<b>joined</b> &amp; unescaped

1:00:03.250 --> 1:00:05.000
An hour &lt;later&gt;

00:04.000 --> 00:05.000
<00:04.000>Karaoke <00:04.500>words
"""


def test_vtt_features():
    parsed = parse_subtitles(VTT, inline=True)
    assert parsed.format == "vtt" and parsed.problems == []
    assert parsed.cues == [
        Cue(1.0, 2.5, "We are in New York City"),
        Cue(2.5, 4.0, "Two lines joined & unescaped"),
        Cue(4.0, 5.0, "Karaoke words"),
        Cue(3603.25, 3605.0, "An hour <later>"),
    ]


@pytest.mark.parametrize(
    "encoding,note",
    [("utf-8", None), ("utf-8-sig", None), ("utf-16", "UTF-16 (BOM)"), ("utf-16-be", "UTF-16-BE without"),
     ("cp1252", "cp1252")],
)
def test_encodings_bom_and_crlf(tmp_path, encoding, note):
    text = VTT.replace("New York City", "Café in New York City")
    data = text.replace("\n", "\r\n").encode(encoding)
    if encoding == "utf-16-be":  # no BOM: detected from the NUL pattern
        assert not data.startswith(b"\xfe\xff")
    path = tmp_path / "subs.vtt"
    path.write_bytes(data)
    parsed = parse_subtitles(path)
    assert parsed.cues[0] == Cue(1.0, 2.5, "We are in Café in New York City")
    assert len(parsed.cues) == 4
    if note is None:
        assert parsed.problems == []
    else:
        assert len(parsed.problems) == 1 and note in parsed.problems[0]


SRT = """1
00:00:05,000 --> 00:00:07,250
<font color="#ffff00">Third</font> by time

2
00:00:01,000 --> 00:00:02,000
{\\an8}First line
second line

3
00:00:xx,000 --> 00:00:04,000
broken start

4
00:00:09,000 --> 00:00:08,000
ends before it starts

5
00:00:03,5 --> 00:00:04,25
Second, short fractions
"""


def test_srt_with_broken_cues(tmp_path):
    path = tmp_path / "subs.srt"
    path.write_text(SRT, encoding="utf-8")
    parsed = parse_subtitles(path)
    assert parsed.format == "srt"
    assert parsed.cues == [
        Cue(1.0, 2.0, "First line second line"),
        Cue(3.5, 4.25, "Second, short fractions"),
        Cue(5.0, 7.25, "Third by time"),
    ]
    problems = "\n".join(parsed.problems)
    assert "line 11: cue skipped, unparseable timing '00:00:xx,000 --> 00:00:04,000'" in problems
    assert "line 15: cue skipped, ends before it starts ('00:00:09,000 --> 00:00:08,000')" in problems
    assert len(parsed.problems) == 2


def test_stray_text_is_reported_not_parsed():
    text = "1\n00:00:01,000 --> 00:00:02,000\nHello\n\nstray paragraph\n\n2\n00:00:03,000 --> 00:00:04,000\nBye\n"
    parsed = parse_subtitles(text, inline=True)
    assert [c.text for c in parsed.cues] == ["Hello", "Bye"]
    assert parsed.problems == ["line 5: text outside any cue ignored ('stray paragraph')"]


@pytest.mark.parametrize("writer,suffix", [(write_srt, ".srt"), (write_vtt, ".vtt")])
def test_write_then_parse_round_trip(tmp_path, writer, suffix):
    cues = [Cue(0.0, 1.5, "Zero"), Cue(61.25, 3725.125, "Over an hour\nsecond line"), Cue(2.0, 3.0, "Ünïcode – ok")]
    path = writer(cues, tmp_path / f"out{suffix}")
    parsed = parse_subtitles(path)
    assert parsed.format == suffix[1:] and parsed.problems == []
    assert parsed.cues == [Cue(0.0, 1.5, "Zero"), Cue(2.0, 3.0, "Ünïcode – ok"), Cue(61.25, 3725.125, "Over an hour second line")]
    assert ("01:02:05,125" if suffix == ".srt" else "01:02:05.125") in path.read_text(encoding="utf-8")


def test_empty_source_gives_no_cues(tmp_path):
    path = tmp_path / "empty.srt"
    path.write_bytes(b"")
    parsed = parse_subtitles(path)
    assert parsed.cues == [] and parsed.problems == ["no cues: the subtitle source is empty"]
    header_only = parse_subtitles("WEBVTT\n\n", inline=True)
    assert header_only.cues == [] and header_only.format == "vtt" and "no cues" in header_only.problems[0]


@pytest.mark.parametrize(
    "data,message",
    [
        (b"1\n00:00:0x,000 --> 00:00:01,000\nA\n\n2\n00:00:05,000 --> 00:00:04,000\nB\n", r"^no usable cues: all 2 cues are broken"),
        (np.random.default_rng(0).bytes(4000), r"^not text: "),
        (b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 8, r"^not text: "),
        (b"Just a paragraph of prose.\nNo timings here.\n", r"^not a subtitle file: no cue timings"),
    ],
    ids=["all-broken", "random-bytes", "binary-with-nuls", "prose"],
)
def test_unusable_sources_raise(tmp_path, data, message):
    path = tmp_path / "bad.srt"
    path.write_bytes(data)
    with pytest.raises(SubtitleError, match=message):
        parse_subtitles(path)


def test_missing_file_and_directory(tmp_path):
    with pytest.raises(SubtitleError, match="^file not found"):
        parse_subtitles(tmp_path / "nope.vtt")
    with pytest.raises(SubtitleError, match="is a directory"):
        parse_subtitles(tmp_path)
