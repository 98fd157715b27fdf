"""docs/benchmarks.md is written by `make bench`; its introduction must say what the benchmark measures
now (it is built from bench.py's goals, so a changed goal or row shows here until the page is rewritten)."""

from __future__ import annotations

import sys


def test_the_benchmarks_page_introduction_is_the_one_bench_writes(root):
    sys.path.insert(0, str(root / "tests" / "benchmarks"))
    try:
        import bench
    finally:
        sys.path.remove(str(root / "tests" / "benchmarks"))
    start, end = bench.markers("intro")
    page = (root / "docs" / "benchmarks.md").read_text(encoding="utf-8")
    assert page.split(start, 1)[1].split(end, 1)[0].strip() == bench.page_intro().strip()
