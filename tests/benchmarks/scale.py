"""The size the benchmarks run at: `make bench` (100,000 customers) or `make bench SCALE=1m`.

`SCALE=1m` (environment `BENCH_SCALE=1m`) multiplies every default size by ten and runs only the
benchmarks marked `at_scale` (the ones issue 18 names: recompute full and incremental, import, the
customer list and search, duplicates, the 360 page and the dashboards). A size given in a
benchmark's own environment variable (e.g. `IMPORT_BENCH_ROWS`) wins over the scale.
"""

import os

SCALES = {"100k": 1, "1m": 10}


def scale_name() -> str:
    name = os.environ.get("BENCH_SCALE", "100k").strip().lower() or "100k"
    if name not in SCALES:
        raise ValueError(f"BENCH_SCALE must be one of {', '.join(SCALES)}, not {name!r}")
    return name


def factor() -> int:
    return SCALES[scale_name()]


def size(variable: str, default: int) -> int:
    """The size from `variable` in the environment, else `default` times the scale's factor."""
    value = os.environ.get(variable, "").strip()
    return int(value) if value else default * factor()
