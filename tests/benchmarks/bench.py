"""`make bench`: the project's speed figures against its goals, in one Markdown table.

    python tests/benchmarks/bench.py [--runs 3] [--lessons 01_forgotten_cancel ...] [--students 2]
                                     [--skip notebooks,class,memray,sandbox,install] [--quick] [--no-write]

Figures are printed, never asserted: a loaded machine must not fail a build. Commands that are compared
are timed side by side in one run, interleaved run by run (their order rotating from one run to the
next), so that the machine's drift hits both alike. Progress goes to stderr, one line per step; the
table goes to stdout, under a line naming the machine. A full run also rewrites its own section of
docs/benchmarks.md (the page's tables are never pasted by hand); a partial one (`--quick`, `--skip`,
`--lessons`) or `--no-write` only prints.

The parts (`--skip` takes their names):
- notebooks: each lesson's solution executed (kernel start included; its translations too), `leaklab
  grade --json` on it, and nbgrader's own `nbgrader autograde` command line on the same notebook in a
  course made by `leaklab course`; the goal compares what each adds above the execution.
- class: a small class (`--students` x the lessons) graded by `leaklab autograde` (its default slots:
  one job per core, more while cores sit idle; `--jobs N` fixes them) and by sequential
  `nbgrader autograde`, and by `leaklab autograde --cluster` on a local Dask cluster of 2 single-threaded
  workers; `make bench-class` runs the issue's full class.
- memray: a scenario's leaky traffic, as `leaklab run` drives it, with and without memray tracking.
- install: a `git clone` of this checkout's HEAD and the Makefile's install step in it.
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import datetime
import json
import os
import platform
import shlex
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
sys.path.insert(0, str(ROOT / "tests"))
from local_cluster import local_cluster  # noqa: E402 - the tests' helper, shared

DASK_WORKERS = 2  # the class through `--cluster`: this many single-threaded workers on this machine
TRAFFIC = Path(__file__).with_name("_traffic.py")
PARTS = ("notebooks", "class", "memray", "sandbox", "install")

NOTEBOOK_GOAL_S = 6.0
TRANSLATED_GOAL = 0.10  # a translated lesson's execution above its English one's, as a share of it
GRADE_SHARE_GOAL = 1 / 3  # leaklab grade's time above execution, as a share of nbgrader's CLI's
SPEED_UP_GOAL = 1.8  # `make bench`'s small class
CLASS_SPEED_UP_GOAL = 3.5  # `make bench-class`'s full class (issue 16): the jobs mostly wait, so more than the cores
CLASS_OVERHEAD_GOAL_S = 1.5
MEMRAY_GOAL = 1.2
INSTALL_GOAL_S = 90.0
SANDBOX_GOAL_S = 0.3  # what the sandbox adds to one grading job
RUNS_PER_JOB = 4  # isolated runs a lesson's tests make: the visible options and the hidden ones, two each at most
DASH = "\N{EN DASH}"  # ranges as docs/benchmarks.md writes them
PAGE = ROOT / "docs" / "benchmarks.md"


class BenchError(Exception):
    """A step of the benchmark failed: its message says which and why."""


@dataclass
class Row:
    """One line of the table."""

    what: str
    measured: str
    goal: str = ""
    verdict: str = ""


class Progress:
    """One line per step on stderr, with the time since the start, so that a long run is not silent."""

    def __init__(self) -> None:
        self.started = time.monotonic()

    def __call__(self, message: str) -> None:
        minutes, seconds = divmod(int(time.monotonic() - self.started), 60)
        print(f"[{minutes:02d}:{seconds:02d}] {message}", file=sys.stderr, flush=True)


@contextlib.contextmanager
def cpu_burners(count: int = 2) -> Iterator[None]:
    """`count` busy loops for the length of the block, ended with it, also when the benchmark is killed
    with SIGTERM (which otherwise ends Python without running its `finally` blocks)."""
    previous = signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    burners = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(count)]
    try:
        yield
    finally:
        for burner in burners:
            burner.kill()
            burner.wait()
        signal.signal(signal.SIGTERM, previous)


def lessons() -> list[str]:
    """Every lesson's slug, in course order."""
    return sorted(p.stem for p in (ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))


def plural(count: int, noun: str) -> str:
    return f"{count} {noun}{'' if count == 1 else 's'}"


def verdict(met: bool) -> str:
    return "met" if met else "MISSED"


def spread(times: Sequence[float]) -> str:
    """`4.4 s (4.2-4.8)`, with an en dash: the median, and the range when there was more than one run."""
    median = statistics.median(times)
    if len(times) == 1:
        return f"{median:.1f} s"
    return f"{median:.1f} s ({min(times):.1f}{DASH}{max(times):.1f})"


def rotated(items: Sequence, run: int) -> list:
    """The compared commands in the order for this run: each goes first in turn."""
    shift = run % len(items)
    return [*items[shift:], *items[:shift]]


def run_command(
    command: Sequence[str | Path],
    *,
    cwd: Path,
    env: dict[str, str] | None = None,
    preexec_fn: Callable[[], object] | None = None,
) -> str:
    """Run a command to completion; its stdout, or BenchError with the end of what it printed."""
    parts = [str(part) for part in command]
    done = subprocess.run(parts, cwd=cwd, env=env, capture_output=True, text=True, preexec_fn=preexec_fn)
    if done.returncode != 0:
        tail = (done.stderr.strip() or done.stdout.strip())[-2000:]
        raise BenchError(f"`{' '.join(str(p) for p in command)}` failed (exit {done.returncode}) in {cwd}:\n{tail}")
    return done.stdout


def timed(command: Sequence[str | Path], *, cwd: Path, env: dict[str, str] | None = None) -> float:
    """Wall seconds of a command run to completion (BenchError if it fails)."""
    start = time.perf_counter()
    run_command(command, cwd=cwd, env=env)
    return time.perf_counter() - start


CPUACCT = Path("/sys/fs/cgroup/cpuacct")  # cgroup v1's CPU accounting: every process of a group, counted


def cpu_accounting() -> bool:
    """Whether `timed_cpu` can count CPU here: a writable cgroup v1 cpuacct hierarchy. (Under cgroup v2 the
    class grader moves each job into a memory cgroup of its own at the root, out of any group made here.)"""
    return (CPUACCT / "cpuacct.usage").exists() and os.access(CPUACCT, os.W_OK)


def timed_cpu(command: Sequence[str | Path], *, cwd: Path) -> tuple[float, float | None]:
    """Wall seconds of a command, and the CPU seconds of every process it started, however they ended
    (sandboxed kernels and orphans included, which no rusage of the command counts): it runs in a cpuacct
    cgroup of its own. CPU is None where the machine has no such cgroup."""
    if not cpu_accounting():
        return timed(command, cwd=cwd), None
    group = Path(tempfile.mkdtemp(prefix="bench-cpu-", dir=CPUACCT))
    try:
        joined = lambda: (group / "cgroup.procs").write_text(str(os.getpid()))  # noqa: E731 - in the child
        start = time.perf_counter()
        run_command(command, cwd=cwd, preexec_fn=joined)
        return time.perf_counter() - start, int((group / "cpuacct.usage").read_text()) / 1e9
    finally:
        for _ in range(50):  # a process the command left behind keeps the group until it ends
            with contextlib.suppress(OSError):
                group.rmdir()
                break
            time.sleep(0.1)


def translations() -> list[str]:
    """The languages the lessons' worked solutions are built in besides English (solutions/<language>/)."""
    return sorted(p.name for p in (ROOT / "solutions").iterdir() if p.is_dir() and any(p.glob("*.ipynb")))


def execute_seconds(slug: str, language: str = "") -> float:
    """One execution of a lesson's solution (in `language`), kernel start included (nbclient already
    imported)."""
    import nbformat
    from nbclient import NotebookClient

    from leaklab.grading.kernel import encrypted_kernels

    nb = nbformat.read(ROOT / "solutions" / language / f"{slug}.ipynb", as_version=4)
    with tempfile.TemporaryDirectory(prefix="bench-execute-") as folder:
        start = time.perf_counter()
        # Shut down at once, as grader/nbgrader_config.py has it: both graders pay no more than this.
        client = NotebookClient(
            nb,
            timeout=120,
            kernel_name="python3",
            shutdown_kernel="immediate",
            resources={"metadata": {"path": folder}},
            kernel_manager_class=encrypted_kernels(),  # as the graders start theirs: no plain-TCP warning
        )
        client.execute()
        return time.perf_counter() - start


def make_course(folder: Path, slugs: Sequence[str], students: Sequence[str]) -> None:
    """An nbgrader course made by `leaklab course`, each student having handed in every solution."""
    run_command([BIN / "leaklab", "course", folder, "--course", ROOT], cwd=ROOT)
    for student in students:
        for slug in slugs:
            target = folder / "submitted" / student / slug
            target.mkdir(parents=True)
            shutil.copyfile(ROOT / "solutions" / f"{slug}.ipynb", target / f"{slug}.ipynb")


def nbgrader_marks(course: Path, slugs: Sequence[str]) -> tuple[int, int]:
    """Submissions with full marks in a course's gradebook, and submissions graded, over `slugs`."""
    import warnings

    from nbgrader.api import Gradebook
    from sqlalchemy.exc import SAWarning

    warnings.filterwarnings("ignore", category=SAWarning)  # nbgrader 0.9's session use, on SQLAlchemy 2
    full = total = 0
    with Gradebook(f"sqlite:///{course / 'gradebook.db'}") as gradebook:
        for slug in slugs:
            for submission in gradebook.assignment_submissions(slug):
                total += 1
                full += submission.max_score > 0 and submission.score >= submission.max_score
    return full, total


def leaklab_marks(course: Path) -> tuple[int, int]:
    """Full marks and rows in the grades.csv that `leaklab autograde` writes."""
    with (course / "leaklab" / "grades.csv").open(newline="") as table:
        rows = list(csv.DictReader(table))
    return sum(float(r["score"]) >= float(r["max_score"]) > 0 for r in rows), len(rows)


# --- notebooks: execution, `leaklab grade` and nbgrader's command line, per lesson --------------------


def warm_grading_cache(slugs: Sequence[str]) -> None:
    """Generate each lesson's assignment into `leaklab grade`'s cache, untimed: nbgrader's side has
    its assignments generated by `leaklab course` before any timing, too."""
    from leaklab.grading.nbgrader_course import temporary_course

    for slug in slugs:
        with temporary_course(ROOT) as course:
            course.generate_cached(slug, ROOT / "notebooks" / f"{slug}.ipynb")


def leaklab_grade_seconds(slug: str) -> tuple[float, str]:
    """`leaklab grade --json` on the solution, as a command: seconds, and its score as `9/9`."""
    notebook = ROOT / "solutions" / f"{slug}.ipynb"
    start = time.perf_counter()
    output = run_command([BIN / "leaklab", "grade", "--json", notebook], cwd=ROOT)
    seconds = time.perf_counter() - start
    (result,) = json.loads(output)["results"]
    if result["error"]:
        raise BenchError(f"leaklab grade could not grade {notebook}: {result['error']}")
    return seconds, f"{result['score']:g}/{result['max_score']:g}"


def bench_notebooks(slugs: Sequence[str], runs: int, say: Progress) -> tuple[list[Row], dict[str, list[float]]]:
    """Per lesson: the execution row and the grading row; and the execution times, for the class part."""
    rows: list[Row] = []
    executions: dict[str, list[float]] = {}
    with tempfile.TemporaryDirectory(prefix="bench-nbgrader-") as scratch:
        course, student = Path(scratch) / "course", "bench"
        say(f"notebooks: a course for {plural(len(slugs), 'lesson')} and leaklab grade's cache (untimed)")
        make_course(course, slugs, [student])
        warm_grading_cache(slugs)
        # The first start of each command pays for cold caches (files, bytecode): not a figure of either.
        run_command([BIN / "nbgrader", "--version"], cwd=course)
        run_command([BIN / "leaklab", "--help"], cwd=ROOT)
        for slug in slugs:
            languages = [lang for lang in translations() if (ROOT / "solutions" / lang / f"{slug}.ipynb").exists()]
            times: dict[str, list[float]] = {"execute": [], "leaklab": [], "nbgrader": []}
            times |= {language: [] for language in languages}
            scores: list[str] = []

            def run_leaklab(slug: str = slug, scores: list[str] = scores) -> float:
                seconds, score = leaklab_grade_seconds(slug)
                scores.append(score)
                return seconds

            steps: dict[str, Callable[[], float]] = {
                "execute": lambda slug=slug: execute_seconds(slug),
                "leaklab": run_leaklab,
                "nbgrader": lambda slug=slug: timed(
                    [BIN / "nbgrader", "autograde", slug, "--student", student, "--force"], cwd=course
                ),
            }
            steps |= {language: lambda slug=slug, lang=language: execute_seconds(slug, lang) for language in languages}
            for run in range(runs):
                for name in rotated(list(steps), run):
                    times[name].append(steps[name]())
                say(
                    f"{slug} run {run + 1}/{runs}: execute {times['execute'][-1]:.1f} s, "
                    f"leaklab grade {times['leaklab'][-1]:.1f} s, nbgrader autograde {times['nbgrader'][-1]:.1f} s"
                    + "".join(f", {language} executed {times[language][-1]:.1f} s" for language in languages)
                )
            executions[slug] = times["execute"]
            full, graded = nbgrader_marks(course, [slug])
            rows += [execution_row(slug, times["execute"]), grading_row(slug, times, scores, full == graded)]
            rows += [translated_row(slug, language, times[language], times["execute"]) for language in languages]
    return rows, executions


def translated_row(slug: str, language: str, times: list[float], english: list[float]) -> Row:
    above = statistics.median(times) / statistics.median(english) - 1
    return Row(
        f"`{slug}` in {language} executed",
        f"{spread(times)}, {above:+.0%} on the English",
        f"<= +{TRANSLATED_GOAL:.0%}",
        verdict(above <= TRANSLATED_GOAL),
    )


def execution_row(slug: str, times: list[float]) -> Row:
    met = statistics.median(times) <= NOTEBOOK_GOAL_S
    return Row(f"`{slug}` executed, kernel start included", spread(times), f"<= {NOTEBOOK_GOAL_S:g} s", verdict(met))


def grading_row(slug: str, times: dict[str, list[float]], scores: list[str], nbgrader_full: bool) -> Row:
    execution = statistics.median(times["execute"])
    ours = statistics.median(times["leaklab"]) - execution
    theirs = statistics.median(times["nbgrader"]) - execution
    share = ours / theirs if theirs > 0 else float("inf")
    measured = (
        f"{spread(times['leaklab'])} vs {spread(times['nbgrader'])}: "
        f"{ours:+.1f} s vs {theirs:+.1f} s above execution = {share:.2f}"
    )
    wrong = [f"leaklab grade gave {s}" for s in sorted(set(scores)) if s.split("/")[0] != s.split("/")[1]]
    wrong += [] if nbgrader_full else ["nbgrader gave less than full marks"]
    if wrong:
        measured += f" ({'; '.join(wrong)}!)"
    return Row(
        f"`{slug}`: `leaklab grade --json` vs `nbgrader autograde` CLI",
        measured,
        "<= 1/3 of nbgrader's time above execution",
        verdict(share <= GRADE_SHARE_GOAL and not wrong),
    )


# --- class: `leaklab autograde` against sequential `nbgrader autograde` --------------------------------


def bench_class(
    slugs: Sequence[str],
    *,
    students: int,
    runs: int,
    jobs: int | None,
    executions: dict[str, list[float]],
    say: Progress,
    execution_runs: int | None = None,
    speed_up_goal: float = SPEED_UP_GOAL,
) -> list[Row]:
    """A class of `students` handing in every solution, graded both ways in copies of one course.

    `executions` holds the notebooks part's execution times; a lesson missing there is executed
    `execution_runs` times (default: `runs`) for the figure above execution.
    """
    names = [f"student{number:03d}" for number in range(students)]
    notebooks = students * len(slugs)
    slots = ["--jobs", str(jobs)] if jobs is not None else []
    ours_name = " ".join(["leaklab autograde", *slots])
    cores = jobs or os.cpu_count() or 1  # the figure above execution is per core (or per fixed job)
    for slug in slugs:  # the class's notebooks' own execution, if the notebooks part did not measure it
        if slug not in executions:
            executions[slug] = []
            for run in range(execution_runs or runs):
                executions[slug].append(execute_seconds(slug))
                say(f"class: {slug} executed in {executions[slug][-1]:.1f} s (run {run + 1}/{execution_runs or runs})")
    execution = statistics.mean(statistics.median(executions[slug]) for slug in slugs)
    with tempfile.TemporaryDirectory(prefix="bench-class-") as scratch, contextlib.ExitStack() as stack:
        ours, theirs, dask = Path(scratch) / "ours", Path(scratch) / "theirs", Path(scratch) / "dask"
        say(
            f"class: three copies of a course, {plural(students, 'student')} x {plural(len(slugs), 'lesson')} (untimed)"
        )
        for course in (ours, theirs, dask):
            make_course(course, slugs, names)
        say(f"class: a local Dask cluster, a scheduler and {DASK_WORKERS} workers of one thread (untimed)")
        (Path(scratch) / "cluster").mkdir()
        cluster = stack.enter_context(local_cluster(Path(scratch) / "cluster", DASK_WORKERS))

        def sequential() -> tuple[float, float | None]:
            spent = [timed_cpu([BIN / "nbgrader", "autograde", slug, "--force"], cwd=theirs) for slug in slugs]
            cpu = [c for _, c in spent]
            return sum(w for w, _ in spent), (None if None in cpu else sum(c for c in cpu if c is not None))

        def batch() -> tuple[float, float | None]:
            command = [BIN / "leaklab", "autograde", ours, *slots, "--course", ROOT, "--force"]
            return timed_cpu(command, cwd=ROOT)

        def on_dask() -> float:
            command = [BIN / "leaklab", "autograde", dask, "--cluster", cluster.address, "--course", ROOT, "--force"]
            return timed(command, cwd=ROOT)

        steps = {"nbgrader": sequential, "leaklab": batch, "dask": lambda: (on_dask(), None)}
        times: dict[str, list[float]] = {"nbgrader": [], "leaklab": [], "dask": []}
        cpu: dict[str, list[float]] = {"nbgrader": [], "leaklab": []}  # CPU seconds, where the machine counts them
        for run in range(runs):
            for name in rotated(list(steps), run):
                wall, spent = steps[name]()
                times[name].append(wall)
                if spent is not None:
                    cpu[name].append(spent)
            say(
                f"class run {run + 1}/{runs}: sequential nbgrader autograde {times['nbgrader'][-1]:.0f} s, "
                f"{ours_name} {times['leaklab'][-1]:.0f} s, on the Dask cluster {times['dask'][-1]:.0f} s "
                f"({plural(notebooks, 'notebook')})"
            )
        our_full, our_total = leaklab_marks(ours)
        dask_full, dask_total = leaklab_marks(dask)
        their_full, their_total = nbgrader_marks(theirs, slugs)
    sequential_s, batch_s = statistics.median(times["nbgrader"]), statistics.median(times["leaklab"])
    dask_s = statistics.median(times["dask"])
    speed_up = sequential_s / batch_s
    per_core = batch_s * cores / notebooks - execution
    size = f"{plural(students, 'student')} x {plural(len(slugs), 'lesson')} = {plural(notebooks, 'notebook')}"
    return [
        Row(
            f"class ({size}): sequential `nbgrader autograde`, one assignment after another",
            f"{spread(times['nbgrader'])}, {sequential_s / notebooks:.1f} s a notebook",
        ),
        Row(
            f"class: `{ours_name}`, the same notebooks",
            f"{spread(times['leaklab'])}, {batch_s / notebooks:.1f} s a notebook",
        ),
        Row(
            "class: speed-up of `leaklab autograde` over sequential nbgrader",
            f"{speed_up:.2f}x",
            f">= {speed_up_goal:g}x",
            verdict(speed_up >= speed_up_goal),
        ),
        Row(
            "class: time per notebook and core above the notebook's own execution",
            f"{per_core:+.1f} s ({batch_s * cores / notebooks:.1f} s against {execution:.1f} s of execution)",
            f"<= {CLASS_OVERHEAD_GOAL_S:g} s",
            verdict(per_core <= CLASS_OVERHEAD_GOAL_S),
        ),
        *cpu_rows(cpu, sequential_s, batch_s, notebooks, os.cpu_count() or 1),
        Row(
            "class: full marks, `leaklab autograde` / nbgrader",
            f"{our_full} of {our_total} / {their_full} of {their_total}",
            "all",
            verdict(our_full == our_total == their_full == their_total == notebooks),
        ),
        Row(
            f"class: `leaklab autograde --cluster`, a local Dask cluster of {DASK_WORKERS} single-threaded workers",
            f"{spread(times['dask'])}, {dask_s / notebooks:.1f} s a notebook, {dask_full} of {dask_total} full marks",
            "all full marks",
            verdict(dask_full == dask_total == notebooks),
        ),
        Row(
            f"class: the Dask cluster against `{ours_name}` on this machine",
            f"{(dask_s - batch_s) / notebooks:+.2f} s a notebook ({dask_s / batch_s:.2f}x its time)",
        ),
    ]


def cpu_rows(cpu: dict[str, list[float]], sequential_s: float, batch_s: float, notebooks: int, cores: int) -> list[Row]:
    """What the class cost in CPU, and what that allows: the jobs mostly wait, so the class grader's wall time
    is bounded by its CPU spread over the cores, and its speed-up by that bound."""
    if not cpu["leaklab"] or not cpu["nbgrader"]:
        return [Row("class: CPU per notebook", "not measured: no writable cgroup v1 cpuacct on this machine")]
    ours, theirs = statistics.median(cpu["leaklab"]) / notebooks, statistics.median(cpu["nbgrader"]) / notebooks
    busy = ours * notebooks / (batch_s * cores)
    return [
        Row(
            "class: CPU per notebook (every process of the run), `leaklab autograde` / nbgrader",
            f"{ours:.2f} s / {theirs:.2f} s; `leaklab autograde` kept {busy:.0%} of {plural(cores, 'core')} busy",
        ),
        Row(
            "class: the speed-up if every core were busy all the time (nbgrader's time over our CPU per core)",
            f"{sequential_s / (ours * notebooks / cores):.2f}x",
        ),
    ]


# --- memray: a scenario's traffic with and without tracking -------------------------------------------


def bench_memray(scenario: str, rounds: int, runs: int, say: Progress) -> list[Row]:
    """The traffic of `leaklab run SCENARIO --rounds N`, each run in a fresh process (it leaks)."""
    times: dict[str, list[dict[str, float]]] = {"off": [], "memray": [], "recorder": []}
    with tempfile.TemporaryDirectory(prefix="bench-memray-") as captures:
        for run in range(runs):
            for mode in rotated(list(times), run):
                output = run_command([sys.executable, TRAFFIC, scenario, str(rounds), mode, captures], cwd=ROOT)
                times[mode].append(json.loads(output))
            say(
                f"memray run {run + 1}/{runs}: {scenario} x {rounds} rounds: "
                + ", ".join(f"{mode} {times[mode][-1]['wall']:.2f} s" for mode in times)
            )

    def median(mode: str, clock: str) -> float:
        return statistics.median(t[clock] for t in times[mode])

    def ratio(mode: str) -> tuple[float, str]:
        wall = median(mode, "wall") / median("off", "wall")
        cpu = median(mode, "cpu") / median("off", "cpu")
        walls = [t["wall"] for t in times[mode]]
        return wall, (
            f"{wall:.2f}x: {spread(walls)} against {spread([t['wall'] for t in times['off']])} (CPU time {cpu:.2f}x)"
        )

    from leaklab import Recorder

    sampling_ms = Recorder("bench").interval_ms
    workload = f"`leaklab run {scenario} --rounds {rounds}`'s traffic"
    memray_ratio, memray_text = ratio("memray")
    _, recorder_text = ratio("recorder")
    return [
        Row(
            f"memray tracking (as `Recorder` sets it up) on {workload}: with / without",
            memray_text,
            f"<= {MEMRAY_GOAL:g}x",
            verdict(memray_ratio <= MEMRAY_GOAL),
        ),
        Row(f"the whole `leaklab.Recorder` (memray and its {sampling_ms:g} ms sampler) on the same", recorder_text),
    ]


# --- install: a fresh clone and the Makefile's install step -------------------------------------------


def bench_sandbox(runs: int, say: Progress) -> list[Row]:
    """What the sandbox adds to a grading job: one kernel started and run in it, and its isolated runs,
    each a process started in it; timed against the same without a sandbox, interleaved run by run."""
    import nbformat
    from nbclient import NotebookClient

    from leaklab.grading import sandbox
    from leaklab.grading.kernel import encrypted_kernels, sandboxed_kernels

    if sandbox.unavailable():
        raise BenchError(f"sandbox: none can be made here: {sandbox.unavailable()}")
    plain_process = [sys.executable, "-c", "import leaklab.grading.child"]
    times: dict[str, list[float]] = {"process": [], "process in sandbox": [], "kernel": [], "kernel in sandbox": []}
    for run in range(max(runs, 5)):
        say(f"sandbox: run {run + 1}")
        with tempfile.TemporaryDirectory(prefix="bench-sandbox-") as scratch:
            for name in rotated(list(times), run):
                start = time.perf_counter()
                if name.startswith("process"):
                    command = sandbox.wrap(plain_process, writable=[]) if "sandbox" in name else plain_process
                    run_command(command, cwd=Path(scratch))
                else:
                    managers = sandboxed_kernels(Path(scratch) / "k") if "sandbox" in name else encrypted_kernels()
                    options = {"kernel_manager_class": managers}  # each as a grader starts its kernels
                    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("import leaklab")])
                    NotebookClient(nb, kernel_name="python3", shutdown_kernel="immediate", **options).execute()
                times[name].append(time.perf_counter() - start)
    median = {name: statistics.median(values) for name, values in times.items()}
    process_cost = median["process in sandbox"] - median["process"]
    kernel_cost = median["kernel in sandbox"] - median["kernel"]
    job_cost = kernel_cost + RUNS_PER_JOB * process_cost
    return [
        Row("an isolated run's process started in the sandbox, above one without", f"{process_cost * 1000:+.0f} ms"),
        Row("a kernel started and run in the sandbox, above one without", f"{kernel_cost * 1000:+.0f} ms"),
        Row(
            f"the sandbox's cost per grading job (a kernel and {RUNS_PER_JOB} isolated runs)",
            f"{job_cost:+.2f} s",
            f"<= {SANDBOX_GOAL_S:g} s",
            verdict(job_cost <= SANDBOX_GOAL_S),
        ),
    ]


def bench_install(say: Progress) -> list[Row]:
    """`git clone` of this checkout's HEAD, then `make .venv/.installed` in it, as a new user would: with
    download caches of its own, empty, so that every package is fetched as on a new machine."""
    # The clone's make must not inherit this run's make (its flags, its PATH with our venv first).
    inherited = {"MAKEFLAGS", "MFLAGS", "MAKELEVEL", "MAKEOVERRIDES", "VIRTUAL_ENV"}
    env = {key: value for key, value in os.environ.items() if key not in inherited}
    env["PATH"] = os.pathsep.join(p for p in env.get("PATH", "").split(os.pathsep) if Path(p) != BIN)
    with tempfile.TemporaryDirectory(prefix="bench-install-") as scratch:
        env.update(UV_CACHE_DIR=str(Path(scratch) / "uv-cache"), PIP_NO_CACHE_DIR="1")
        clone = Path(scratch) / "leaklab"
        say("install: git clone of this checkout's HEAD")
        clone_s = timed(["git", "clone", "--quiet", ROOT, clone], cwd=Path(scratch), env=env)
        say(f"install: cloned in {clone_s:.1f} s; make .venv/.installed (under a minute)")
        # The interpreter this checkout's venv was made from: the same Python as the figures above.
        python = getattr(sys, "_base_executable", sys.executable)
        start = time.perf_counter()
        made = run_command(["make", "--no-print-directory", ".venv/.installed", f"PYTHON={python}"], cwd=clone, env=env)
        install_s = time.perf_counter() - start
        run_command([clone / ".venv" / "bin" / "leaklab", "--help"], cwd=clone, env=env)  # it installed something
        say(f"install: make .venv/.installed took {install_s:.1f} s")
    total = clone_s + install_s
    installer = "pip, as uv could not" if "pip installs them instead" in made else "uv"
    label = f"fresh set-up: `git clone`, then `make .venv/.installed` (download caches empty; installed by {installer})"
    return [
        Row(
            label,
            f"{total:.0f} s (clone {clone_s:.1f} s, install {install_s:.0f} s)",
            f"<= {INSTALL_GOAL_S:g} s",
            verdict(total <= INSTALL_GOAL_S),
        )
    ]


# --- the table -------------------------------------------------------------------------------------


def machine_line(runs: int, load_at_start: float) -> str:
    """Cores, CPU model, memory, Python, date and load: what the figures depend on."""
    model = "unknown CPU"
    with open("/proc/cpuinfo") as cpuinfo:
        for line in cpuinfo:
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    return (
        f"machine: {os.cpu_count()} cores, {model}, {memory:.0f} GiB, {platform.system()} {platform.machine()}, "
        f"Python {platform.python_version()}; {datetime.date.today().isoformat()}; "
        f"{plural(runs, 'run')} of each, interleaved: median (min{DASH}max); "
        f"load average {load_at_start:.2f} at the start, {os.getloadavg()[0]:.2f} at the end"
    )


def table(rows: Sequence[Row]) -> str:
    lines = ["| figure | measured | goal | |", "|---|---|---|---|"]
    lines += [f"| {r.what} | {r.measured} | {r.goal} | {r.verdict} |" for r in rows]
    return "\n".join(lines)


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    from leaklab._run import runnable_scenarios

    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--runs", type=int, help="runs of each timed command (default 3; --quick: 1)")
    parser.add_argument(
        "--lessons", nargs="+", metavar="LESSON", help="lesson slugs (default: all; --quick: the first)"
    )
    parser.add_argument("--students", type=int, help="students in the class part (default 2)")
    parser.add_argument("--jobs", type=int, help="leaklab autograde's --jobs in the class part (default: its own)")
    parser.add_argument(
        "--scenario",
        default="week_in_production",
        help="the memray part's traffic (week_in_production: the capstone's)",
    )
    parser.add_argument("--rounds", type=int, help="rounds of that traffic (default 14, about 2.5 s; --quick: 1)")
    parser.add_argument("--skip", default="", metavar="PART,...", help=f"parts to leave out: {', '.join(PARTS)}")
    parser.add_argument("--quick", action="store_true", help="everything once, at the smallest size: checks the script")
    parser.add_argument("--no-write", action="store_true", help=f"print only; leave {PAGE.relative_to(ROOT)} alone")
    args = parser.parse_args(argv)
    # Only a full run may replace the page's figures: a partial one would pass for them.
    args.partial = [
        flag for flag, given in [("--quick", args.quick), ("--skip", args.skip), ("--lessons", args.lessons)] if given
    ]
    args.runs = args.runs or (1 if args.quick else 3)
    args.lessons = args.lessons or (lessons()[:1] if args.quick else lessons())
    args.students = args.students or 2
    args.rounds = args.rounds or (1 if args.quick else 14)
    args.skip = {part.strip() for part in args.skip.split(",") if part.strip()}
    unknown = sorted(set(args.lessons) - set(lessons()))
    if unknown:
        parser.error(f"no lesson {', '.join(unknown)}; lessons: {', '.join(lessons())}")
    args.scenario = args.scenario.split("_", 1)[1] if args.scenario[:2].isdigit() else args.scenario  # 08_x works
    if "memray" not in args.skip and args.scenario not in runnable_scenarios():
        parser.error(f"no scenario {args.scenario!r} with leaky traffic; scenarios: {', '.join(runnable_scenarios())}")
    if args.skip - set(PARTS):
        parser.error(f"--skip takes {', '.join(PARTS)}, not {', '.join(sorted(args.skip - set(PARTS)))}")
    if min(args.runs, args.students, args.jobs or 1, args.rounds) < 1:
        parser.error("--runs, --students, --jobs and --rounds must be at least 1")
    return args


def check_environment() -> None:
    """The Jupyter and IPython folders must be the project's, as the Makefile exports them."""
    if Path(os.environ.get("JUPYTER_CONFIG_DIR", "")) != ROOT / "grader" / "jupyter":
        raise BenchError(
            "run it with `make bench` (or export the Makefile's JUPYTER_*, IPYTHONDIR, MPLCONFIGDIR and "
            "LEAKLAB_ARTEFACTS variables first): the notebooks need the project's Jupyter configuration"
        )


# --- docs/benchmarks.md: one section per benchmark, between markers, rewritten by a full run ----------

PAGE_SECTIONS = ("intro", "bench", "bench-class")  # their order on a page written from nothing


def page_intro() -> str:
    """The page's fixed introduction: what each row measures and its goal, from this module's constants."""
    return f"""# Benchmarks

The course's speed figures against their goals. The sections below are written by `make bench` and
`make bench-class` (`tests/benchmarks/`), each rewriting only its own part of this page; never edit it by
hand. Figures are printed, never asserted, so a loaded machine cannot fail a build. Each figure is the
median of the runs (`--runs N`, 3 by default), with their range; commands that are compared run in the
same benchmark, interleaved run by run, each run starting with a different one of them, so that the
machine's drift hits all of them alike.

What the rows measure, and their goals:

- **A lesson executed**: its solution run by nbclient in a fresh kernel, from kernel start to kernel
  shutdown (at once, as the grader does it). Goal: at most {NOTEBOOK_GOAL_S:g} s. Each translation of
  it (`solutions/<language>/`), run in the same way and interleaved with it: at most
  {TRANSLATED_GOAL:.0%} slower than the English.
- **`leaklab grade --json` against nbgrader's command line** on the same solution: nbgrader's side is
  `nbgrader autograde <lesson> --student <s> --force` in a course made by `leaklab course`, the solution
  handed in. Goal: the time `leaklab grade` takes above the notebook's own execution is at most
  {Fraction(GRADE_SHARE_GOAL).limit_denominator(100)} of the time nbgrader's command takes above it.
- **A class**: every lesson's solution handed in by each student (`--students`: 2 in `make bench`, 40 in
  `make bench-class`), graded in two copies of one course: by `leaklab autograde` (its default slots, or
  `--jobs N`) in one, by
  sequential `nbgrader autograde`, one assignment after another, in the other. Goals: a speed-up of at
  least {SPEED_UP_GOAL:g}x in `make bench`, {CLASS_SPEED_UP_GOAL:g}x in `make bench-class`, at most
  {CLASS_OVERHEAD_GOAL_S:g} s per notebook and core above the notebooks' own execution, and full marks
  for every solution from both graders. Where the machine counts CPU per cgroup (cgroup v1's cpuacct),
  the rows also give the CPU each grader spent per notebook, every process of its run counted (sandboxed
  kernels included), how busy `leaklab autograde` kept the cores, and the speed-up it would reach with
  every core busy all the time: how far the class is from the CPU's limit. A third copy is graded with
  `leaklab autograde --cluster` on a Dask cluster on this machine (a scheduler and {DASK_WORKERS} workers of one
  thread, each a process of its own): its time, its marks, and how much slower than the local pool it is
  (the price of the cluster: each job sent and returned as bytes, and a fresh process per job on the
  worker, about 1.2 s of CPU to start and import nbgrader).
- **memray's overhead**: the traffic of `leaklab run week_in_production --rounds 14` (about 2.5 s), each
  run in a fresh process because it leaks on purpose, timed without tracking, with memray's `Tracker`
  started as `Recorder` starts it, and inside a whole `Recorder`. Goal: at most {MEMRAY_GOAL:g}x in wall time.
  The CPU time beside it shows what the tracking costs: the lessons' traffic mostly waits (sleeps compress
  the article's time), so the wall clock barely moves.
- **The sandbox**: a process that imports leaklab's isolated-run child, and a kernel that runs one cell,
  each started with and without the bubblewrap sandbox the graders use, interleaved; the job's cost is
  one kernel and {RUNS_PER_JOB} isolated runs. Goal: at most {SANDBOX_GOAL_S:g} s per grading job.
- **A fresh set-up**: a `git clone` of the checkout's HEAD, then `make .venv/.installed` in it (the step
  `make lab` and `make test` run first), with empty download caches of its own, as on a new machine; the
  row says whether uv or pip (where uv cannot run) installed the packages. Goal: at most {INSTALL_GOAL_S:g} s.
- **Under load** (`make bench-class`): each solution graded `--repeat` times (20) while two CPU burners
  keep both cores busy. Goal: full marks every time.

`make bench` (about 15-20 minutes on a 2-core machine) takes `BENCH_ARGS="..."`: `--runs N`,
`--lessons LESSON ...`, `--students N`, `--jobs N`, `--scenario NAME --rounds N`,
`--skip notebooks,class,memray,sandbox,install`, and `--quick` (everything once at the smallest size, about two
minutes: a check of the script, not figures to quote). `make bench-class` (about an hour) takes
`CLASS_ARGS="..."`: `--students N`, `--lessons LESSON ...`, `--repeat N`, `--jobs N`, `--runs N`. A run
that leaves something out (`--quick`, `--skip`, `--lessons`, or for `make bench-class` fewer than 40
students or 20 repeats) only prints its table, as does any run given `--no-write`."""


def markers(section: str) -> tuple[str, str]:
    return f"<!-- bench:{section} -->", f"<!-- /bench:{section} -->"


def with_section(text: str, section: str, body: str) -> str:
    """`text` with the part between `section`'s markers replaced by `body` (appended if it has none)."""
    start, end = markers(section)
    block = f"{start}\n{body.strip()}\n{end}"
    if start in text and end in text.split(start, 1)[1]:
        before, rest = text.split(start, 1)
        return before + block + rest.split(end, 1)[1]
    return f"{text.rstrip()}\n\n{block}\n" if text.strip() else f"{block}\n"


def write_section(section: str, body: str, *, page: Path = PAGE) -> None:
    """Rewrite one benchmark's section of the page, and its introduction; every other part stays."""
    text = page.read_text(encoding="utf-8") if page.exists() else ""
    for name in PAGE_SECTIONS:  # a page written from nothing gets every section, in order
        if markers(name)[0] not in text:
            text = with_section(text, name, f"(`make {name}` has not written this section yet.)")
    text = with_section(with_section(text, "intro", page_intro()), section, body)
    page.parent.mkdir(parents=True, exist_ok=True)
    draft = page.with_name(f".{page.name}.{os.getpid()}")
    draft.write_text(text, encoding="utf-8")
    draft.replace(page)  # a reader never sees half a page


def section_body(title: str, command: str, machine: str, rows: Sequence[Row]) -> str:
    """A section: its heading, when and how it was run, the machine line and the table."""
    written = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%MZ")
    return f"## {title}\n\nLast written by `{command}` on {written}.\n\n{machine}\n\n{table(rows)}"


def command_line(target: str, variable: str, argv: Sequence[str], script: str) -> str:
    """The command that was run, as the reader would run it again: `make bench BENCH_ARGS="..."`."""
    if "MAKELEVEL" in os.environ:
        return f"make {target}" + (f' {variable}="{shlex.join(argv)}"' if argv else "")
    return shlex.join(["python", f"tests/benchmarks/{script}", *argv])


@dataclass
class PageSection:
    """Where a full run's table goes: its section of docs/benchmarks.md, its heading and its command."""

    name: str
    title: str
    command: str
    page: Path = PAGE


def report(
    name: str, runs: int, measure: Callable[[Progress], list[Row]], *, section: PageSection | None = None
) -> int:
    """Run `measure`, print the machine line and the table, and write them into `section` if given; a step
    that fails is one line on stderr."""
    say, load = Progress(), os.getloadavg()[0]
    try:
        check_environment()
        rows = measure(say)
    except BenchError as exc:
        print(f"{name}: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"{name}: interrupted", file=sys.stderr)
        return 130
    say(f"done in {(time.monotonic() - say.started) / 60:.1f} min")
    machine = machine_line(runs, load)
    print(machine)
    print()
    print(table(rows))
    if section is not None:
        try:
            write_section(section.name, section_body(section.title, section.command, machine, rows), page=section.page)
        except OSError as exc:
            print(f"{name}: could not write {section.page}: {exc}", file=sys.stderr)
            return 1
        say(f"wrote the {section.name} section of {section.page}")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    args = parse_args(argv)
    section = None
    if args.partial or args.no_write:
        why = f"a partial run ({', '.join(args.partial)})" if args.partial else "--no-write"
        print(f"bench: {why}: the table is printed only, {PAGE.relative_to(ROOT)} is left alone", file=sys.stderr)
    else:
        section = PageSection(
            "bench", "`make bench`: the speed goals", command_line("bench", "BENCH_ARGS", argv, "bench.py")
        )

    def measure(say: Progress) -> list[Row]:
        rows: list[Row] = []
        executions: dict[str, list[float]] = {}
        if "notebooks" not in args.skip:
            part, executions = bench_notebooks(args.lessons, args.runs, say)
            rows += part
        if "class" not in args.skip:
            rows += bench_class(
                args.lessons, students=args.students, runs=args.runs, jobs=args.jobs, executions=executions, say=say
            )
        if "memray" not in args.skip:
            rows += bench_memray(args.scenario, args.rounds, args.runs, say)
        if "sandbox" not in args.skip:
            rows += bench_sandbox(args.runs, say)
        if "install" not in args.skip:
            rows += bench_install(say)
        return rows

    return report("bench", args.runs, measure, section=section)


if __name__ == "__main__":
    sys.exit(main())
