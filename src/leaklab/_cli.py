"""The `leaklab` command: one small class per subcommand, help text from its docstring."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from ._errors import LeaklabError
from ._stacks import counted


def _say(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


class GradeCommand:
    """Grade learners' notebooks against the lessons' visible and hidden tests.

    Each test runs in a fresh kernel, as nbgrader's autograde runs it, and in the grader's own run
    outside that kernel; it scores only if both pass it. Every notebook on the command line is graded,
    even when another one cannot be; the exit code is non-zero if any of them could not be graded.
    """

    def prepare_parser(self, parser: argparse.ArgumentParser) -> None:
        parser.add_argument("notebooks", nargs="+", type=Path, metavar="NOTEBOOK", help="submitted .ipynb files")
        parser.add_argument("--json", action="store_true", help="print one JSON object instead of a table")
        parser.add_argument(
            "--feedback",
            type=Path,
            metavar="DIR",
            help="write nbgrader's feedback HTML per notebook into DIR (slower: nbgrader grades them)",
        )
        parser.add_argument("--course", type=Path, help="the leaklab checkout (default: found from here)")

    def run(self, args: argparse.Namespace) -> int:
        from ._repo import find_checkout
        from .grading.single import grade

        checkout = find_checkout(args.course)
        results = grade(args.notebooks, checkout=checkout, feedback=args.feedback, progress=_say)
        if args.json:
            print(json.dumps({"results": [r.to_json() for r in results]}, indent=2))
        else:
            for result in results:
                print(self._table(result))
        return 1 if any(r.error for r in results) else 0

    @staticmethod
    def _table(result) -> str:
        if result.error:
            return f"{result.notebook}: not graded: {result.error}"
        lines = [f"{result.notebook} ({result.assignment}): {result.score:g} / {result.max_score:g}"]
        if result.reason:
            lines.append(f"  not graded normally: {result.reason.value}: {result.detail}")
        for name, test in result.tests.items():
            mark = "ok  " if test.score >= test.max_score else "FAIL"
            lines.append(f"  {mark} {name}  {test.score:g} / {test.max_score:g}")
            if test.message and test.score < test.max_score:
                lines.extend(f"         {line}" for line in test.message.splitlines()[:12])
        return "\n".join(lines)


class BuildCommand:
    """Generate exercises/ and solutions/ from the lessons in notebooks/ (or check that they match)."""

    def prepare_parser(self, parser: argparse.ArgumentParser) -> None:
        parser.add_argument("lessons", nargs="*", metavar="LESSON", help="lesson slugs (default: every lesson)")
        parser.add_argument("--check", action="store_true", help="only report copies that drifted from the source")
        parser.add_argument("--course", type=Path, help="the leaklab checkout (default: found from here)")

    def run(self, args: argparse.Namespace) -> int:
        from ._build import build
        from ._repo import find_checkout

        drifts = build(find_checkout(args.course), only=args.lessons, check=args.check, progress=_say)
        for drift in drifts:
            _say(f"drift: {drift}")
        if drifts:
            _say("run `make notebooks` to regenerate exercises/ and solutions/ from notebooks/")
        return 1 if drifts else 0


class RunCommand:
    """Run a scenario's leak headless, printing tasks, threads and memory as it grows (for a shared screen).

    With --dump-port the live task dump is served on loopback while it runs, like Go's pprof on :6060;
    at the end the grouped stacks of what was left alive and the lines holding memory are printed.
    """

    def prepare_parser(self, parser: argparse.ArgumentParser) -> None:
        parser.add_argument("scenario", metavar="SCENARIO", help="e.g. forgotten_cancel or 01_forgotten_cancel")
        parser.add_argument("--rounds", type=int, default=10, help="rounds of leaky traffic (default 10)")
        parser.add_argument("--pause", type=float, default=0.1, metavar="S", help="seconds between rounds (0.1)")
        parser.add_argument("--dump-port", type=int, metavar="PORT", help="serve the task dump on 127.0.0.1:PORT")
        parser.add_argument("--hold", type=float, default=0.0, metavar="S", help="keep serving the dump S s at the end")
        parser.add_argument("--plot", type=Path, metavar="FILE", help="write the tasks/threads/memory plot (PNG)")
        parser.add_argument(
            "--flamegraph", type=Path, metavar="FILE", help="write memray's flame graph of what is held (HTML)"
        )

    def run(self, args: argparse.Namespace) -> int:
        import asyncio

        from ._run import run_scenario

        if args.rounds < 1:
            raise LeaklabError("--rounds must be at least 1")
        left = asyncio.run(
            run_scenario(
                args.scenario,
                rounds=args.rounds,
                pause_s=args.pause,
                dump_port=args.dump_port,
                hold_s=args.hold,
                plot=args.plot,
                flamegraph=args.flamegraph,
            )
        )
        _say(f"left alive: {left} tasks and threads" if left else "nothing left alive")
        return 0


class CourseCommand:
    """Set up (or refresh) an nbgrader course directory from the lessons, for your own class.

    Each lesson becomes an assignment named by its slug, generated and ready for
    `nbgrader release_assignment`; nbgrader's commands and the formgrader work on the folder.
    Refreshing copies the current lessons in again; submissions and grades are left alone.
    """

    def prepare_parser(self, parser: argparse.ArgumentParser) -> None:
        parser.add_argument("folder", type=Path, metavar="FOLDER", help="the course directory (created if missing)")
        parser.add_argument("--exchange", type=Path, help="nbgrader's exchange folder (default: FOLDER/exchange)")
        parser.add_argument("--roster", type=Path, metavar="CSV", help="students to add: a CSV with an `id` column")
        parser.add_argument(
            "--lang", metavar="LANG", help="release the lessons in this translation (zh_CN; default: English)"
        )
        parser.add_argument("--course", type=Path, help="the leaklab checkout (default: found from here)")

    def run(self, args: argparse.Namespace) -> int:
        from ._course import init_course
        from ._repo import find_checkout

        repo = find_checkout(args.course)
        assignments = init_course(
            repo, args.folder, exchange=args.exchange, roster=args.roster, language=args.lang, progress=_say
        )
        _say(f"course ready in {args.folder.resolve()}: {', '.join(assignments)}")
        _say(f"next: cd {args.folder} && nbgrader release_assignment {assignments[0]}")
        return 0


class AutogradeCommand:
    """Grade every submitted notebook of an nbgrader course, in parallel, into its gradebook.

    Reads FOLDER/submitted/<student>/<assignment>/ (what `nbgrader collect` writes) and writes the
    gradebook, autograded/ and feedback/ as `nbgrader autograde` and `generate_feedback` would, plus
    FOLDER/leaklab/grades.csv. Run it again after an interruption: it grades only what is missing.
    Exits with 1 if any submission graded by this run could not be graded normally (its reason is in
    grades.csv).
    """

    def prepare_parser(self, parser: argparse.ArgumentParser) -> None:
        from .grading.settings import Limits

        default = Limits()
        parser.add_argument("folder", type=Path, metavar="FOLDER", help="the nbgrader course directory")
        parser.add_argument("assignments", nargs="*", metavar="ASSIGNMENT", help="only these (default: all)")
        parser.add_argument(
            "--jobs",
            type=int,
            help="submissions graded at once (default: one per core, up to three per core while cores sit idle)",
        )
        parser.add_argument(
            "--cluster",
            metavar="ADDRESS",
            help="grade on the workers of a Dask cluster: its scheduler's address (tcp://host:8786) or scheduler file",
        )
        parser.add_argument("--force", action="store_true", help="grade again what was already graded")
        limits = [  # option, default, metavar, unit, what it limits
            ("--timeout", default.seconds, "S", "s", "per submission"),
            ("--cell-timeout", default.cell_seconds, "S", "s", "per cell"),
            ("--run-timeout", default.run_seconds, "S", "s", "per isolated run"),
            ("--memory", default.memory_bytes / 2**30, "GIB", "GiB", "per process"),
            (
                "--job-memory",
                default.job_memory_bytes / 2**30,
                "GIB",
                "GiB",
                "per submission, all its processes together, where a memory cgroup counts it",
            ),
        ]
        for option, value, metavar, unit, what in limits:
            parser.add_argument(option, type=float, default=value, metavar=metavar, help=f"{what} ({value:g} {unit})")
        parser.add_argument(
            "--tasks",
            type=int,
            default=default.tasks,
            metavar="N",
            help=f"processes and threads per submission, all its processes together ({default.tasks})",
        )
        parser.add_argument(
            "--unsafe-no-sandbox",
            action="store_true",
            help="grade even where no sandbox can be made (the submissions' code then runs as you)",
        )
        parser.add_argument("--course", type=Path, help="the leaklab checkout (default: found from here)")

    def run(self, args: argparse.Namespace) -> int:
        from ._repo import find_checkout
        from .grading.classroom.records import TABLE
        from .grading.classroom.scheduler import grade_class
        from .grading.settings import Limits

        if args.jobs is not None and args.jobs < 1:
            raise LeaklabError("--jobs must be at least 1")
        if args.jobs is not None and args.cluster:
            raise LeaklabError("--jobs is for this machine; on a cluster, each worker's threads say how many it grades")
        for option in ("timeout", "cell_timeout", "run_timeout", "memory", "job_memory", "tasks"):
            if getattr(args, option) <= 0:
                raise LeaklabError(f"--{option.replace('_', '-')} must be above 0")
        limits = Limits(
            seconds=args.timeout,
            cell_seconds=args.cell_timeout,
            run_seconds=args.run_timeout,
            memory_bytes=int(args.memory * 2**30),
            job_memory_bytes=int(args.job_memory * 2**30),
            tasks=args.tasks,
        )
        checkout = find_checkout(args.course)
        run = grade_class(
            args.folder,
            checkout=checkout,
            assignments=args.assignments,
            jobs=args.jobs,
            force=args.force,
            limits=limits,
            unsafe_no_sandbox=args.unsafe_no_sandbox,
            cluster=args.cluster,
        )
        odd = [o for o in run.graded if o.reason]
        graded = f"{counted(len(run.graded), 'submission')} graded"
        _say(f"{graded}, {len(odd)} with a reason; table: {args.folder / TABLE}")
        if odd:
            reasons = sorted({o.reason.value for o in odd if o.reason})
            _say(f"{len(odd)} of {len(run.graded)} could not be graded normally ({', '.join(reasons)}): see grades.csv")
        if run.left:
            left = counted(len(run.left), "submission")
            _say(f"{left} could not be graded on the cluster this time: run the command again")
        return 1 if odd or run.left else 0


COMMANDS = {
    "grade": GradeCommand,
    "build": BuildCommand,
    "run": RunCommand,
    "course": CourseCommand,
    "autograde": AutogradeCommand,
}


def main(argv: list[str] | None = None) -> int:
    """Parse the command line and run one subcommand; a user's mistake prints a message, not a traceback."""
    parser = argparse.ArgumentParser(prog="leaklab", description="A hands-on course on concurrency leaks.")
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    commands = {}
    for name, command_class in COMMANDS.items():
        doc = (command_class.__doc__ or "").strip()
        sub = subparsers.add_parser(name, help=doc.splitlines()[0], description=doc)
        commands[name] = command_class()
        commands[name].prepare_parser(sub)
    args = parser.parse_args(argv)
    try:
        return commands[args.command].run(args)
    except LeaklabError as exc:
        _say(f"leaklab {args.command}: {exc}")
        return exc.exit_code
    except KeyboardInterrupt:
        _say(f"leaklab {args.command}: interrupted")
        return 130


if __name__ == "__main__":
    sys.exit(main())
