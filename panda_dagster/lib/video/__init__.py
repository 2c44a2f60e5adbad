"""Video splitting: shot detection, long-shot splitting, semantic stitching, narration clips.

Modules (no Dagster imports; heavy libraries are imported inside functions):
  decode      one threaded low-resolution decode pass that feeds detectors and keeps sparse samples
  segmented   one long video decoded as parallel keyframe-to-keyframe stretches, joined exactly
  detectors   hybrid (the default: cuts, gradual spans, fades, traps rejected), ContentDetector /
              AdaptiveDetector (PySceneDetect semantics) and TransNetV2
  shots       Shot records, cuts -> shots, splitting of long shots
  stitching   Panda-70M style event stitching over image embeddings
  narration   HowTo100M style clips from subtitle cues
  quality     split-quality figure (max running embedding distance inside a clip)
  keyframes   key frames per clip (chosen from the decode pass' samples), JPEG encoding
  cutting     clip files with ffmpeg (stream copy at keyframes or exact re-encode)
  split       the per-video pipeline (`split_video`, `split_videos`) and its config/result records
  shard       every video of a shard -> clip rows, key frames in storage, quarantine rows
  metrics     cut accuracy (F1 within a tolerance; gradual transitions)
  records     the catalog table `clips`
"""
