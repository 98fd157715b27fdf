"""The hidden bursts' drawn traffic: the same for the same answer in every process, different from answer
to answer, plain data the child can be handed, and covering every case its scenario names."""

from __future__ import annotations

import json
import subprocess
import sys
from collections import Counter

import pytest

from leaklab._errors import LeaklabError
from leaklab.grading import isolation
from leaklab.scenarios import DrawsTraffic, _traffic, load, names

DRAWING = [name for name in names() if isinstance(load(name), DrawsTraffic)]


def test_the_first_four_lessons_draw_their_hidden_traffic():
    assert {"forgotten_cancel", "skipped_stop", "hung_call", "lifeless_pool"} <= set(DRAWING)


@pytest.mark.parametrize("name", DRAWING)
def test_a_seed_gives_the_same_plain_traffic_whoever_asks_and_seeds_differ(name, tmp_path, monkeypatch):
    """Drawn in a fresh interpreter: in this one, pytest's modules would change what Hypothesis draws."""
    first = _traffic.drawn(name, 20261205, {})
    monkeypatch.chdir(tmp_path)
    code = f"import json, leaklab.scenarios._traffic as t; print(json.dumps(t.drawn({name!r}, 20261205, {{}})))"
    there = json.loads(subprocess.run([sys.executable, "-c", code], capture_output=True, check=True).stdout)
    assert first == there and json.loads(json.dumps(first)) == first
    assert len({json.dumps(_traffic.drawn(name, seed, {}), sort_keys=True) for seed in range(3)}) == 3
    assert list(tmp_path.iterdir()) == []  # nothing of Hypothesis's left where it was asked from


def test_a_broken_draw_says_so():
    with pytest.raises(LeaklabError, match="drawing the traffic of lifeless_pool failed: TypeError"):
        _traffic.drawn("lifeless_pool", 1, {"no_such_option": 1})


def test_every_way_a_request_or_call_ends_is_in_each_drawn_burst(tmp_path, monkeypatch):
    monkeypatch.setenv("HYPOTHESIS_STORAGE_DIRECTORY", str(tmp_path))  # drawn here, in pytest's process
    for seed in range(5):
        requests = Counter(row[0] for row in load("forgotten_cancel").traffic(seed, requests=90)["rows"])  # type: ignore[attr-defined]
        assert min(requests[kind] for kind in ("complete", "cancel", "deadline")) >= 15
        calls = Counter(row[0] for row in load("hung_call").traffic(seed, calls=45)["rows"])  # type: ignore[attr-defined]
        assert min(calls[kind] for kind in ("answer", "deadline", "cancelled", "cancelled answer", "reset")) >= 5
        pool = load("lifeless_pool").traffic(seed, jobs=50, batches=8)  # type: ignore[attr-defined]
        assert pool["jobs"] >= 600 and pool["backlog"] >= 150 * pool["workers"]
        assert min(n for _, n in pool["sizes"]) == 0


def test_the_grader_draws_per_answer_and_hands_the_child_only_plain_options():
    job = {"scenario": "lifeless_pool", "source": "class Pool: ...", "function": "Pool", "options": {}}
    assert isolation._with_drawn_traffic(job) is job  # no traffic asked for: the planned burst
    drawn = {**job, "options": {"traffic": "generated", "jobs": 50, "batches": 8}}
    first, again = isolation._with_drawn_traffic(drawn), isolation._with_drawn_traffic(dict(drawn))
    other = isolation._with_drawn_traffic({**drawn, "source": "class Pool:\n    pass"})
    assert first == again and first["options"] != other["options"]
    assert "traffic" not in first["options"] and json.loads(json.dumps(first)) == first
