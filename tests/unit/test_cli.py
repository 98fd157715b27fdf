"""The `leaklab` command (`_cli`): each subcommand's exit codes and what it prints, with the function that
grades, builds, runs or sets up faked, so that no kernel starts and nbgrader never runs."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from leaklab._cli import COMMANDS, main
from leaklab._errors import LeaklabError
from leaklab._repo import lessons
from leaklab._run import runnable_scenarios
from leaklab.grading.classroom.discovery import Submission
from leaklab.grading.classroom.records import TABLE, Outcome
from leaklab.grading.classroom.scheduler import ClassRun
from leaklab.grading.results import Reason, TestResult
from leaklab.grading.settings import Limits
from leaklab.grading.single import NotebookGrade

# The function each command imports when it runs (so faking the module's attribute reaches it).
HEAVY = {
    "grade": "leaklab.grading.single.grade",
    "build": "leaklab._build.build",
    "run": "leaklab._run.run_scenario",
    "course": "leaklab._course.init_course",
    "autograde": "leaklab.grading.classroom.scheduler.grade_class",
}
# A command line that gets each command as far as that function.
REACHES = {
    "grade": ["grade", "work/01_forgotten_cancel.ipynb"],
    "build": ["build"],
    "run": ["run", "forgotten_cancel"],
    "course": ["course", "my-course"],
    "autograde": ["autograde", "my-course"],
}


class Fake:
    """Stands in for a command's heavy function: records each call, then raises or returns what it was given."""

    def __init__(self, result: object = None) -> None:
        self.result = result
        self.raises: BaseException | None = None
        self.says: list[str] = []  # progress lines to report through the `progress` it is given
        self.calls: list[tuple[tuple, dict]] = []

    def __call__(self, *args, **kwargs):
        self.calls.append((args, kwargs))
        for line in self.says:
            kwargs["progress"](line)
        if self.raises is not None:
            raise self.raises
        return self.result


class AsyncFake(Fake):
    """A `Fake` for a coroutine function (`run_scenario`, which the command hands to `asyncio.run`)."""

    async def __call__(self, *args, **kwargs):
        return super().__call__(*args, **kwargs)


@pytest.fixture
def fakes(monkeypatch) -> dict[str, Fake]:
    """Every command's heavy function faked, by command name: by default each succeeds with nothing to say."""
    made = {
        "grade": Fake([]),
        "build": Fake([]),
        "run": AsyncFake(0),
        "course": Fake(["01_forgotten_cancel"]),
        "autograde": Fake(ClassRun({}, [])),
    }
    for command, target in HEAVY.items():
        monkeypatch.setattr(target, made[command])
    return made


def _flat(text: str) -> str:
    """Text with every run of whitespace made one space: argparse wraps help to the terminal's width."""
    return " ".join(text.split())


# grade


def test_grade_prints_each_notebooks_score_and_tests_and_exits_0(fakes, capsys):
    fakes["grade"].says = ["[1/1] grading work/01.ipynb (01_forgotten_cancel)"]
    fakes["grade"].result = [
        NotebookGrade(
            "work/01.ipynb",
            "01_forgotten_cancel",
            score=1.0,
            max_score=3.0,
            tests={
                "fc_cancels": TestResult(1.0, 1.0),
                "fc_no_leak": TestResult(0.0, 2.0, "AssertionError: 20 tasks left\nafter 2 rounds"),
            },
        )
    ]

    assert main(["grade", "work/01.ipynb"]) == 0

    out, err = capsys.readouterr()
    assert out.splitlines() == [
        "work/01.ipynb (01_forgotten_cancel): 1 / 3",
        "  ok   fc_cancels  1 / 1",
        "  FAIL fc_no_leak  0 / 2",
        "         AssertionError: 20 tasks left",
        "         after 2 rounds",
    ]
    assert err == "[1/1] grading work/01.ipynb (01_forgotten_cancel)\n"  # progress on stderr, results on stdout


def test_grade_shows_why_a_notebook_was_not_graded_normally_and_still_exits_0(fakes, capsys):
    fakes["grade"].result = [
        NotebookGrade(
            "a.ipynb",
            "04_lifeless_pool",
            max_score=2.0,
            tests={"lp_joins": TestResult(0.0, 2.0, "timed out", reason=Reason.TIMEOUT)},
            reason=Reason.TIMEOUT,
            detail="the answer ran past 25 s",
        )
    ]

    assert main(["grade", "a.ipynb"]) == 0

    assert capsys.readouterr().out.splitlines()[:2] == [
        "a.ipynb (04_lifeless_pool): 0 / 2",
        "  not graded normally: timeout: the answer ran past 25 s",
    ]


def test_grade_exits_1_when_any_notebook_could_not_be_graded_and_still_prints_the_others(fakes, capsys):
    fakes["grade"].result = [
        NotebookGrade("a.ipynb", "01_forgotten_cancel", score=1.0, max_score=1.0, tests={"t": TestResult(1.0, 1.0)}),
        NotebookGrade("b.ipynb", error="b.ipynb is not a notebook"),
    ]

    assert main(["grade", "a.ipynb", "b.ipynb"]) == 1

    assert capsys.readouterr().out.splitlines() == [
        "a.ipynb (01_forgotten_cancel): 1 / 1",
        "  ok   t  1 / 1",
        "b.ipynb: not graded: b.ipynb is not a notebook",
    ]


def test_grade_shows_at_most_12_lines_of_a_failed_tests_message(fakes, capsys):
    message = "\n".join(f"line {n}" for n in range(1, 21))
    fakes["grade"].result = [NotebookGrade("a.ipynb", "x", max_score=1.0, tests={"t": TestResult(0.0, 1.0, message)})]

    assert main(["grade", "a.ipynb"]) == 0

    shown = capsys.readouterr().out.splitlines()[2:]
    assert shown == [f"         line {n}" for n in range(1, 13)]


def test_grade_json_prints_one_object_with_each_notebooks_scores_and_messages(fakes, capsys):
    fakes["grade"].result = [
        NotebookGrade(
            "a.ipynb",
            "02_skipped_stop",
            score=1.0,
            max_score=3.0,
            tests={"ss_stops": TestResult(1.0, 1.0), "ss_no_leak": TestResult(0.0, 2.0, "why", Reason.TIMEOUT)},
            reason=Reason.TIMEOUT,
            detail="d",
        ),
        NotebookGrade("b.ipynb", error="not a notebook"),
    ]

    assert main(["grade", "--json", "a.ipynb", "b.ipynb"]) == 1

    assert json.loads(capsys.readouterr().out) == {
        "results": [
            {
                "notebook": "a.ipynb",
                "assignment": "02_skipped_stop",
                "score": 1.0,
                "max_score": 3.0,
                "tests": {
                    "ss_stops": {"score": 1.0, "max_score": 1.0, "message": ""},
                    "ss_no_leak": {"score": 0.0, "max_score": 2.0, "message": "why"},
                },
                "reason": "timeout",
                "detail": "d",
                "error": None,
            },
            {
                "notebook": "b.ipynb",
                "assignment": None,
                "score": 0.0,
                "max_score": 0.0,
                "tests": {},
                "reason": None,
                "detail": "",
                "error": "not a notebook",
            },
        ]
    }


def test_grade_passes_the_notebooks_the_feedback_folder_and_the_checkout(fakes, root, tmp_path):
    assert main(["grade", "a.ipynb", "b.ipynb", "--feedback", str(tmp_path), "--course", str(root)]) == 0

    [(args, kwargs)] = fakes["grade"].calls
    assert args == ([Path("a.ipynb"), Path("b.ipynb")],)
    assert kwargs["checkout"] == root and kwargs["feedback"] == tmp_path


# build


def test_build_with_nothing_drifted_exits_0_and_prints_nothing(fakes, capsys):
    assert main(["build", "--check", "01_forgotten_cancel", "03_hung_call"]) == 0

    assert capsys.readouterr() == ("", "")
    [(_, kwargs)] = fakes["build"].calls
    assert kwargs["only"] == ["01_forgotten_cancel", "03_hung_call"] and kwargs["check"] is True


def test_build_check_exits_1_listing_each_drift_and_how_to_regenerate(fakes, capsys):
    fakes["build"].result = ["exercises/01_forgotten_cancel.ipynb: differs from its source", "02.ipynb: missing"]

    assert main(["build", "--check"]) == 1

    out, err = capsys.readouterr()
    assert out == ""
    assert err.splitlines() == [
        "drift: exercises/01_forgotten_cancel.ipynb: differs from its source",
        "drift: 02.ipynb: missing",
        "run `make notebooks` to regenerate exercises/ and solutions/ from notebooks/",
    ]


def test_build_of_an_unknown_lesson_exits_2_naming_the_lessons(root, capsys):
    assert main(["build", "--check", "99_nope", "--course", str(root)]) == 2

    known = ", ".join(lessons(root))
    assert capsys.readouterr().err == f"leaklab build: no lesson named 99_nope in notebooks/; lessons: {known}\n"


# run


@pytest.mark.parametrize(("left", "said"), [(0, "nothing left alive"), (3, "left alive: 3 tasks and threads")])
def test_run_exits_0_and_says_what_was_left_alive(fakes, capsys, left, said):
    fakes["run"].result = left

    assert main(["run", "forgotten_cancel"]) == 0

    assert capsys.readouterr().err == said + "\n"


def test_run_passes_its_options_to_the_scenario(fakes, tmp_path):
    plot, flamegraph = tmp_path / "leak.png", tmp_path / "held.html"
    argv = ["run", "01_forgotten_cancel", "--rounds", "3", "--pause", "0", "--dump-port", "0", "--hold", "1.5"]

    assert main([*argv, "--plot", str(plot), "--flamegraph", str(flamegraph)]) == 0

    assert fakes["run"].calls == [
        (
            ("01_forgotten_cancel",),
            {"rounds": 3, "pause_s": 0.0, "dump_port": 0, "hold_s": 1.5, "plot": plot, "flamegraph": flamegraph},
        )
    ]


@pytest.mark.parametrize("rounds", ["0", "-1"])
def test_run_with_fewer_than_one_round_exits_2_without_running(fakes, capsys, rounds):
    assert main(["run", "forgotten_cancel", "--rounds", rounds]) == 2

    assert capsys.readouterr().err == "leaklab run: --rounds must be at least 1\n"
    assert fakes["run"].calls == []


def test_run_of_an_unknown_scenario_exits_2_listing_the_scenarios(capsys):
    assert main(["run", "nope"]) == 2

    known = ", ".join(runnable_scenarios())
    assert capsys.readouterr().err == f"leaklab run: no scenario named 'nope'; scenarios: {known}\n"


# course


def test_course_exits_0_saying_where_it_is_and_what_to_release_first(fakes, capsys, tmp_path):
    fakes["course"].says = ["01_forgotten_cancel: source and release"]
    fakes["course"].result = ["01_forgotten_cancel", "02_skipped_stop"]
    folder = tmp_path / "course"

    assert main(["course", str(folder)]) == 0

    out, err = capsys.readouterr()
    assert out == ""
    assert err.splitlines() == [
        "01_forgotten_cancel: source and release",
        f"course ready in {folder.resolve()}: 01_forgotten_cancel, 02_skipped_stop",
        f"next: cd {folder} && nbgrader release_assignment 01_forgotten_cancel",
    ]


def test_course_passes_the_folder_exchange_roster_and_checkout(fakes, root, tmp_path):
    folder, exchange, roster = tmp_path / "course", tmp_path / "exchange", tmp_path / "roster.csv"

    assert main(["course", str(folder), "--exchange", str(exchange), "--roster", str(roster)]) == 0

    [(args, kwargs)] = fakes["course"].calls
    assert args == (root, folder) and kwargs["exchange"] == exchange and kwargs["roster"] == roster


def test_course_passes_the_language_to_release_in(fakes, root, tmp_path):
    assert main(["course", str(tmp_path / "course"), "--lang", "zh_CN"]) == 0

    [(_args, kwargs)] = fakes["course"].calls
    assert kwargs["language"] == "zh_CN"


def test_course_in_a_language_the_lessons_lack_exits_2_naming_those_they_have(root, tmp_path, capsys):
    assert main(["course", str(tmp_path / "course"), "--lang", "xx", "--course", str(root)]) == 2

    said = capsys.readouterr().err
    assert "--lang xx" in said and "zh_CN" in said
    assert not (tmp_path / "course").exists()


def test_course_on_a_file_exits_2_saying_it_is_not_a_folder(tmp_path, capsys):
    file = tmp_path / "course"
    file.write_text("not a folder")

    assert main(["course", str(file)]) == 2

    assert capsys.readouterr().err == f"leaklab course: {file.resolve()} exists and is not a folder\n"


def test_course_in_the_checkout_itself_exits_2(root, capsys):
    assert main(["course", str(root)]) == 2

    assert "is the leaklab checkout itself: give the course a folder of its own" in capsys.readouterr().err


def test_course_with_a_roster_it_cannot_read_exits_2_and_writes_nothing(tmp_path, capsys):
    roster = tmp_path / "missing.csv"

    assert main(["course", str(tmp_path / "course"), "--roster", str(roster)]) == 2

    assert capsys.readouterr().err.startswith(f"leaklab course: cannot read the roster {roster}: ")
    assert not (tmp_path / "course").exists()


# autograde


def _outcome(student: str, reason: Reason | None = None) -> Outcome:
    return Outcome(student, "04_lifeless_pool", "abc", score=1.0, max_score=2.0, reason=reason)


def test_autograde_exits_0_when_every_submission_was_graded_normally(fakes, capsys, tmp_path):
    graded = [_outcome("ann"), _outcome("bob")]
    fakes["autograde"].result = ClassRun({(o.student, o.assignment): o for o in graded}, graded)
    folder = tmp_path / "course"

    assert main(["autograde", str(folder)]) == 0

    assert capsys.readouterr() == ("", f"2 submissions graded, 0 with a reason; table: {folder / TABLE}\n")


def test_autograde_exits_1_counting_those_with_a_reason_and_naming_each_reason_once(fakes, capsys, tmp_path):
    graded = [
        _outcome("ann"),
        _outcome("bob", Reason.TIMEOUT),
        _outcome("cat", Reason.MEMORY_LIMIT),
        _outcome("dan", Reason.TIMEOUT),
    ]
    fakes["autograde"].result = ClassRun({(o.student, o.assignment): o for o in graded}, graded)
    folder = tmp_path / "course"

    assert main(["autograde", str(folder)]) == 1

    assert capsys.readouterr().err.splitlines() == [
        f"4 submissions graded, 3 with a reason; table: {folder / TABLE}",
        "3 of 4 could not be graded normally (memory limit, timeout): see grades.csv",
    ]


def test_autograde_exits_0_when_only_earlier_runs_graded_something_with_a_reason(fakes, capsys, tmp_path):
    earlier = _outcome("ann", Reason.TIMEOUT)
    fakes["autograde"].result = ClassRun({("ann", earlier.assignment): earlier}, [])

    assert main(["autograde", str(tmp_path)]) == 0

    assert "could not be graded normally" not in capsys.readouterr().err


@pytest.mark.parametrize("jobs", ["0", "-3"])
def test_autograde_with_fewer_than_one_job_exits_2_without_grading(fakes, capsys, tmp_path, jobs):
    assert main(["autograde", str(tmp_path), "--jobs", jobs]) == 2

    assert capsys.readouterr().err == "leaklab autograde: --jobs must be at least 1\n"
    assert fakes["autograde"].calls == []


def test_autograde_by_default_grades_everything_with_the_settings_limits(fakes, root, tmp_path):
    assert main(["autograde", str(tmp_path)]) == 0

    expected = {"checkout": root, "assignments": [], "jobs": None, "force": False, "limits": Limits()}
    assert fakes["autograde"].calls == [((tmp_path,), {**expected, "unsafe_no_sandbox": False, "cluster": None})]


def test_autograde_on_a_cluster_passes_its_address_and_leaves_the_jobs_to_the_workers(fakes, tmp_path, capsys):
    assert main(["autograde", str(tmp_path), "--cluster", "tcp://10.0.0.5:8786"]) == 0
    [(_, kwargs)] = fakes["autograde"].calls
    assert kwargs["cluster"] == "tcp://10.0.0.5:8786" and kwargs["jobs"] is None

    assert main(["autograde", str(tmp_path), "--cluster", "tcp://10.0.0.5:8786", "--jobs", "4"]) == 2
    assert "--jobs is for this machine" in capsys.readouterr().err and len(fakes["autograde"].calls) == 1


def test_autograde_exits_1_when_the_cluster_left_submissions_for_the_next_run(fakes, capsys, tmp_path):
    graded = [_outcome("ann")]
    left = [Submission("bob", "04_lifeless_pool", tmp_path / "x.ipynb")]
    fakes["autograde"].result = ClassRun({("ann", graded[0].assignment): graded[0]}, graded, left)

    assert main(["autograde", str(tmp_path)]) == 1

    assert capsys.readouterr().err.splitlines()[-1] == (
        "1 submission could not be graded on the cluster this time: run the command again"
    )


def test_autograde_refuses_a_machine_without_a_sandbox_unless_told(monkeypatch, root, tmp_path, capsys):
    """Not the fake: the real class grader, on a course with one submission, where bwrap cannot run."""
    from leaklab.grading import sandbox

    for folder in ("source", "submitted/ann"):
        (tmp_path / folder / "01_forgotten_cancel").mkdir(parents=True)
    monkeypatch.setattr(sandbox, "unavailable", lambda: "no bwrap (a test)")
    assert main(["autograde", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "cannot sandbox the submissions on this machine: no bwrap (a test)" in err
    assert "--unsafe-no-sandbox" in err and not (tmp_path / "leaklab").exists()  # nothing graded, nothing written


def test_autograde_passes_its_options_as_limits_and_a_selection(fakes, tmp_path):
    options = ["--jobs", "3", "--force", "--timeout", "120", "--cell-timeout", "30", "--run-timeout", "15"]

    assert main(["autograde", str(tmp_path), "01_forgotten_cancel", *options, "--memory", "0.5", "--tasks", "200"]) == 0

    [(_, kwargs)] = fakes["autograde"].calls
    assert kwargs["assignments"] == ["01_forgotten_cancel"] and kwargs["jobs"] == 3 and kwargs["force"] is True
    assert kwargs["limits"] == Limits(seconds=120, cell_seconds=30, run_seconds=15, memory_bytes=2**29, tasks=200)


# What every command shares: errors the user can fix, Ctrl-C, the command line, the help


@pytest.mark.parametrize("command", list(COMMANDS))
def test_a_leaklab_error_prints_its_message_without_a_traceback_and_exits_2(fakes, capsys, command):
    fakes[command].raises = LeaklabError("something you can fix: do this")

    assert main(REACHES[command]) == 2

    assert capsys.readouterr() == ("", f"leaklab {command}: something you can fix: do this\n")


def test_a_leaklab_error_exits_with_its_own_code(fakes, capsys):
    fakes["build"].raises = LeaklabError("nbgrader is not installed", exit_code=3)

    assert main(["build"]) == 3

    assert capsys.readouterr().err == "leaklab build: nbgrader is not installed\n"


@pytest.mark.parametrize("command", list(COMMANDS))
def test_ctrl_c_exits_130_saying_interrupted(fakes, capsys, command):
    fakes[command].raises = KeyboardInterrupt()

    assert main(REACHES[command]) == 130

    assert capsys.readouterr() == ("", f"leaklab {command}: interrupted\n")


@pytest.mark.parametrize(
    ("argv", "said"),
    [
        ([], "the following arguments are required: COMMAND"),
        (["nope"], "invalid choice: 'nope'"),
        (["grade"], "the following arguments are required: NOTEBOOK"),
        (["grade", "a.ipynb", "--bogus"], "unrecognized arguments: --bogus"),
        (["run"], "the following arguments are required: SCENARIO"),
        (["run", "forgotten_cancel", "--rounds", "many"], "argument --rounds: invalid int value: 'many'"),
        (["course"], "the following arguments are required: FOLDER"),
        (["autograde"], "the following arguments are required: FOLDER"),
        (["autograde", "my-course", "--memory", "lots"], "argument --memory: invalid float value: 'lots'"),
    ],
)
def test_a_bad_command_line_exits_2_with_the_usage_and_runs_nothing(fakes, capsys, argv, said):
    with pytest.raises(SystemExit) as stopped:
        main(argv)

    assert stopped.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith("usage: leaklab") and said in err
    assert not any(fake.calls for fake in fakes.values())


def test_help_lists_every_command_with_the_first_line_of_its_docstring(capsys):
    with pytest.raises(SystemExit) as stopped:
        main(["--help"])

    assert stopped.value.code == 0
    shown = _flat(capsys.readouterr().out)
    for name, command in COMMANDS.items():
        assert f"{name} {_flat((command.__doc__ or '').strip().splitlines()[0])}" in shown


@pytest.mark.parametrize("command", list(COMMANDS))
def test_each_commands_help_is_its_docstring(capsys, command):
    with pytest.raises(SystemExit) as stopped:
        main([command, "--help"])

    assert stopped.value.code == 0
    assert _flat(COMMANDS[command].__doc__ or "") in _flat(capsys.readouterr().out)


def test_autograde_help_shows_the_default_limits_from_the_settings(capsys):
    limits = Limits()

    with pytest.raises(SystemExit):
        main(["autograde", "--help"])

    shown = _flat(capsys.readouterr().out)
    assert f"per submission ({limits.seconds:g} s)" in shown
    assert f"per cell ({limits.cell_seconds:g} s)" in shown
    assert f"per isolated run ({limits.run_seconds:g} s)" in shown
    assert f"per process ({limits.memory_bytes / 2**30:g} GiB)" in shown
    assert f"processes and threads per submission, all its processes together ({limits.tasks})" in shown


@pytest.mark.parametrize(
    "option", ["--timeout", "--cell-timeout", "--run-timeout", "--memory", "--job-memory", "--tasks"]
)
def test_autograde_refuses_a_limit_of_zero(option, tmp_path, capsys):
    assert main(["autograde", str(tmp_path), option, "0"]) == 2
    assert f"{option} must be above 0" in capsys.readouterr().err


def test_course_refuses_a_checkout_without_lessons(tmp_path, capsys):
    (tmp_path / "checkout" / "notebooks").mkdir(parents=True)
    (tmp_path / "checkout" / "grader").mkdir()
    (tmp_path / "checkout" / "grader" / "nbgrader_config.py").write_text("")
    assert main(["course", str(tmp_path / "course"), "--course", str(tmp_path / "checkout")]) == 2
    assert "no lessons in" in capsys.readouterr().err
