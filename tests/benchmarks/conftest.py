"""Shared helpers for the benchmarks in this folder (run with `make bench`, not the ordinary test run).

Every benchmark records its figures with `record_benchmark(name, **figures)`, which appends
`{"name": name, **figures, "at": <ISO time, UTC>}` to `bench-results.json` at the repository root.
Benchmarks may run in parallel processes (xdist) or one after another, so the list is read and
rewritten under an exclusive file lock and replaced atomically (write a temporary file, then rename).
"""

import fcntl
import hashlib
import json
import os
import tempfile
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

REPO_ROOT = Path(__file__).resolve().parent.parent.parent
BENCH_RESULTS = REPO_ROOT / "bench-results.json"


def _read_results(path: Path) -> list[dict[str, Any]]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (FileNotFoundError, json.JSONDecodeError):
        return []
    return data if isinstance(data, list) else []


def append_benchmark_result(name: str, path: Path = BENCH_RESULTS, **figures: Any) -> dict[str, Any]:
    """Append one result to the JSON list at `path` atomically and return the stored entry."""
    entry = {"name": name, **figures, "at": datetime.now(UTC).isoformat(timespec="seconds")}
    # The lock file lives in the temp folder so the repository root only ever holds the JSON itself.
    lock_path = (
        Path(tempfile.gettempdir())
        / f"bench-results-{hashlib.sha1(str(path).encode()).hexdigest()[:12]}.lock"
    )
    with open(lock_path, "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            results = _read_results(path)
            results.append(entry)
            fd, tmp_name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
            try:
                with os.fdopen(fd, "w", encoding="utf-8") as tmp:
                    json.dump(results, tmp, indent=2, ensure_ascii=False, default=str)
                    tmp.write("\n")
                os.replace(tmp_name, path)
            except BaseException:
                Path(tmp_name).unlink(missing_ok=True)
                raise
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)
    return entry


def record_benchmark(name: str, **figures: Any) -> dict[str, Any]:
    """Record a benchmark's figures in bench-results.json (see the module docstring)."""
    return append_benchmark_result(name, **figures)


@pytest.fixture(scope="session", name="record_benchmark")
def record_benchmark_fixture() -> Callable[..., dict[str, Any]]:
    """The `record_benchmark(name, **figures)` helper as a fixture."""
    return record_benchmark
