"""Ingest of a large manifest: time and peak memory at 10,000 and 100,000 rows (should grow linearly).

Each size runs in a fresh process (peak RSS is per process): write a JSON-lines manifest, then
`ingest_source` into an empty catalog with 1000 videos per shard.

    python benchmarks/ingest_scale.py [--sizes 10000,100000]
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

CHILD = r"""
import json, resource, sys, time
from pathlib import Path
from panda_dagster.lib.catalog import Catalog
from panda_dagster.lib.ingest import ingest_source
from panda_dagster.lib.storage import LocalStorage
n, root = int(sys.argv[1]), Path(sys.argv[2])
manifest = root / "m.jsonl"
with open(manifest, "w") as fh:
    for i in range(n):
        fh.write(json.dumps({"path": f"/data/v{i:07d}.mp4", "video_id": f"v{i:07d}", "title": f"video {i}"}) + "\n")
base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
t = time.perf_counter()
plan = ingest_source(manifest, Catalog(root / "home"), LocalStorage(root / "home" / "artifacts"), shard_size=1000)
elapsed = time.perf_counter() - t
print(json.dumps({"rows": n, "shards": len(plan.keys), "seconds": round(elapsed, 2),
                  "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
                  "rss_before_mb": round(base / 1024, 1)}))
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="10000,100000")
    args = parser.parse_args()
    rows = []
    for n in [int(s) for s in args.sizes.split(",")]:
        with tempfile.TemporaryDirectory() as tmp:
            out = subprocess.run([sys.executable, "-c", CHILD, str(n), tmp], capture_output=True, text=True, check=True)
            rows.append(json.loads(out.stdout.strip().splitlines()[-1]))
            print(json.dumps(rows[-1]))
    if len(rows) >= 2:
        a, b = rows[0], rows[-1]
        print(f"x{b['rows'] / a['rows']:.0f} rows: time x{b['seconds'] / max(a['seconds'], 1e-9):.1f}, "
              f"peak RSS x{b['peak_rss_mb'] / a['peak_rss_mb']:.2f} "
              f"(growth above the import baseline x{(b['peak_rss_mb'] - b['rss_before_mb']) / max(a['peak_rss_mb'] - a['rss_before_mb'], 1e-9):.1f})")


if __name__ == "__main__":
    main()
