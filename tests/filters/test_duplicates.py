"""Near-duplicates: the same footage re-encoded at half resolution in another shard is one group with one
kept clip, whichever shard runs first; different footage is never grouped."""

from __future__ import annotations

import numpy as np
from conftest import run_filters

import generate as g


def _fingerprints(result):
    from panda_dagster.lib.filters.duplicates import fingerprints_from_rows

    return fingerprints_from_rows([vars(r) for r in result.rows if r.keep])


def test_half_resolution_reupload_in_another_shard_is_a_duplicate(tmp_path):
    original = g.moving_objects(tmp_path / "original.mp4", size=(432, 240), seed=21)
    reupload = g.reencode_half(original, tmp_path / "reupload.mp4")
    other = g.moving_objects(tmp_path / "other.mp4", size=(432, 240), seed=22)
    enabled = ["quality", "duplicates"]  # the half-size copy is below 240p: quality rates it, not the test

    first = run_filters(original, enabled=enabled, shard="s-a")
    assert all(row.keep and row.duplicate_of is None for row in first.rows)
    second = run_filters(reupload, enabled=["duplicates"], shard="s-b", others=_fingerprints(first))
    (copy,) = second.rows
    assert copy.reasons == ["duplicate"] and copy.duplicate_of == first.rows[0].clip_id
    assert copy.duplicate_distance <= 8

    # Re-running the first shard against the second one's kept clips changes nothing: one copy stays kept.
    again = run_filters(original, enabled=enabled, shard="s-a", others=_fingerprints(second))
    assert [row.keep for row in again.rows] == [True]

    unrelated = run_filters(other, enabled=["duplicates"], shard="s-c", others=_fingerprints(first))
    assert all(row.keep for row in unrelated.rows)
    assert all(row.duplicate_distance > 8 for row in unrelated.rows)


def test_within_a_shard_the_longest_copy_is_kept():
    from panda_dagster.lib.filters.duplicates import DuplicateParams, Fingerprint, find_duplicates, phash

    frame = g.photo(120, 200, seed=5)
    noisy = np.clip(frame.astype(int) + np.random.default_rng(0).integers(-6, 7, frame.shape), 0, 255).astype(np.uint8)
    hashes_a, hashes_b = [phash(frame)], [phash(noisy)]
    different = [phash(g.photo(120, 200, seed=6))]
    clips = [Fingerprint("short", "s", 3.0, 100.0, hashes_a), Fingerprint("long", "s", 5.0, 50.0, hashes_b),
             Fingerprint("else", "s", 4.0, 80.0, different)]
    matches = find_duplicates(clips, [], DuplicateParams())
    assert matches["short"].duplicate_of == "long"
    assert matches["long"].duplicate_of is None and matches["else"].duplicate_of is None


def test_a_clip_dropped_for_another_reason_is_never_the_keeper():
    from panda_dagster.lib.filters.duplicates import DuplicateParams, Fingerprint, find_duplicates, phash

    hashes = [phash(g.photo(120, 200, seed=7))]
    clips = [Fingerprint("blurry-long", "s", 9.0, 5.0, hashes, dropped_by_others=True),
             Fingerprint("sharp-short", "s", 4.0, 500.0, hashes)]
    matches = find_duplicates(clips, [], DuplicateParams())
    assert matches["blurry-long"].duplicate_of == "sharp-short"


def test_embeddings_join_what_the_hash_misses():
    from panda_dagster.lib.filters.duplicates import DuplicateParams, Fingerprint, find_duplicates, phash

    vector = np.ones(8) / np.sqrt(8)
    a = Fingerprint("a", "s", 5.0, 100.0, [phash(g.photo(120, 200, seed=8))], vector)
    b = Fingerprint("b", "s", 4.0, 100.0, [phash(g.photo(120, 200, seed=9))], vector)
    assert find_duplicates([a, b], [], DuplicateParams())["b"].duplicate_of == "a"
    b.embedding = -vector
    assert find_duplicates([a, b], [], DuplicateParams())["b"].duplicate_of is None
