"""`leaklab run`: each scenario's leak, headless, in a process of its own (what it leaks must not leak here)."""

from __future__ import annotations

import re
import signal
import subprocess
import sys
import urllib.request

import pytest

from leaklab._run import runnable_scenarios

LEAK = [sys.executable, "-m", "leaklab._cli", "run"]


def test_every_lesson_with_a_running_leak_can_be_run():
    expected = {"forgotten_cancel", "skipped_stop", "hung_call", "lifeless_pool", "mystery_service", "leak_monitor"}
    assert expected | {"week_in_production"} <= set(runnable_scenarios())  # 07's leak is lesson 02's


@pytest.mark.parametrize(
    ("scenario", "left", "counted"),
    [
        ("forgotten_cancel", 40, "tasks"),  # one request in two gives up: 20 stranded children per round
        ("01_forgotten_cancel", 40, "tasks"),  # a lesson's slug works too
        ("skipped_stop", 8, "threads"),  # four restarts per round, each leaves its worker retrying
        ("hung_call", 20, "tasks"),  # one call in three is never answered: 10 per round
        ("lifeless_pool", 16, "threads"),  # two batches of four workers per round
    ],
)
def test_the_leak_grows_round_by_round_and_is_reported_at_the_end(scenario, left, counted, tmp_path):
    plot = tmp_path / "leak.png"
    done = subprocess.run(
        [*LEAK, scenario, "--rounds", "2", "--pause", "0", "--plot", str(plot)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    rounds = re.findall(rf"^round +(\d)/2 .* {counted} +(\d+) ", done.stdout, re.M)
    assert [(n, int(c)) for n, c in rounds] == [("1", left // 2), ("2", left)]
    assert f"left alive: total {left} " in done.stdout and f"left alive: {left} tasks and threads" in done.stderr
    assert "memory still held at the end, by the line that allocated it" in done.stdout
    assert plot.read_bytes().startswith(b"\x89PNG")


def test_the_dump_is_served_while_it_runs():
    with subprocess.Popen(
        [*LEAK, "lifeless_pool", "--rounds", "2", "--pause", "0", "--dump-port", "0", "--hold", "60"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        # A suite started in the background (`make test &`, nohup) runs with Ctrl-C ignored, which the
        # command would inherit and never turn into KeyboardInterrupt: give it Ctrl-C back, as a terminal would.
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    ) as running:
        try:
            url = ""
            for line in running.stdout:  # type: ignore[union-attr]
                if line.startswith("serving the task dump"):
                    url = line.rsplit(" ", 1)[1].strip()
                    break
            assert url.startswith("http://127.0.0.1:") and url.endswith("/debug/tasks?debug=1")
            with urllib.request.urlopen(url, timeout=10) as response:
                dump = response.read().decode()
            worker = r"#\t_leaky_worker  leaklab/scenarios/lifeless_pool.py:\d+"
            assert re.search(rf"^16 @ thread\n(#.*\n)*{worker}", dump, re.M)
        finally:
            running.send_signal(signal.SIGINT)
            running.wait(120)  # a bound, not a pause: it exits in a second; far more than two burners slow it
    assert running.returncode == 130


def test_an_unknown_scenario_lists_the_known_ones():
    done = subprocess.run([*LEAK, "nope"], capture_output=True, text=True, timeout=60)
    assert done.returncode == 2
    assert "no scenario named 'nope'; scenarios: " in done.stderr and "lifeless_pool" in done.stderr


@pytest.mark.parametrize("scenario", sorted(set(runnable_scenarios()) - {"forgotten_cancel", "hung_call"}))
def test_every_runnable_scenario_leaves_something_alive(scenario):
    done = subprocess.run(
        [*LEAK, scenario, "--rounds", "2", "--pause", "0"], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    left = int(re.search(r"left alive: (\d+) tasks and threads", done.stderr).group(1))
    assert left > 0 and len(re.findall(r"^round +\d/2 ", done.stdout, re.M)) == 2
