"""nbgrader course directories, driven through nbgrader's API: the kernel's run by nbgrader's autograde,
its gradebook and its feedback pages.

`NbgraderCourse` works on a folder it is given (an instructor's course, a job's scratch course) and
never deletes it; `temporary_course()` is a throwaway course, removed when its `with` block ends.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import json
import os
import re
import shutil
import sys
import tempfile
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import ClassVar

from .._errors import LeaklabError
from .._i18n import notebook_language
from .._repo import artefacts_dir
from . import handoff, sandbox
from .kernel import DIED, GivesUpOnASilentKernel, KernelRun, capped, drawn, sandboxed_kernels, scored
from .results import Reason, TestResult


def _recording_execute(kernel_dir: Path | None) -> type:
    """nbgrader's Execute preprocessor, noting a kernel's death as data (nbgrader reports it only in its
    log's text), its kernels sandboxed in `kernel_dir` if given. Made on first use: nbgrader is imported
    only by the processes that grade."""
    from nbclient.exceptions import DeadKernelError
    from nbgrader.preprocessors import Execute

    class RecordingExecute(GivesUpOnASilentKernel, Execute):
        deaths: ClassVar[list[str]] = []

        def __init__(self, *args: object, **kwargs: object) -> None:
            if kernel_dir is not None:  # nbgrader passes its own manager class: ours must win
                kwargs["kernel_manager_class"] = sandboxed_kernels(kernel_dir)
            super().__init__(*args, **kwargs)

        def preprocess(self, nb, resources=None, km=None):  # type: ignore[no-untyped-def]
            try:
                return super().preprocess(nb, resources, km)
            except DeadKernelError as exc:
                RecordingExecute.deaths.append(str(exc))
                raise

    return RecordingExecute


def _kept_outputs() -> type:
    """`kernel.drawn`, then `kernel.capped`, as a preprocessor run just after nbgrader executes a notebook:
    the figures the kernel showed as data drawn, then every output cut to size."""
    from nbconvert.preprocessors import Preprocessor
    from traitlets import Bool

    class KeptOutputs(Preprocessor):
        enabled = Bool(True)  # nbconvert's preprocessors are off unless enabled

        def preprocess(self, nb, resources):  # type: ignore[no-untyped-def]
            capped(drawn(nb))
            return nb, resources

    return KeptOutputs


@functools.cache
def feedback_exporter() -> type:
    """nbconvert's HTMLExporter for feedback pages, its Jinja templates compiled once per process and kept
    (`Compiled`): every page otherwise compiles the same dozen templates again, a fifth of what a class job
    spends on its own. The class grader's warm-up fills it, so its forked jobs start with them compiled.
    Jinja compares each template's source with what it compiled before reusing it."""
    import jinja2
    from nbconvert.exporters import HTMLExporter

    class Compiled(jinja2.BytecodeCache):
        kept: ClassVar[dict[str, bytes]] = {}

        def load_bytecode(self, bucket: jinja2.bccache.Bucket) -> None:
            if bucket.key in self.kept:
                bucket.bytecode_from_string(self.kept[bucket.key])

        def dump_bytecode(self, bucket: jinja2.bccache.Bucket) -> None:
            self.kept[bucket.key] = bucket.bytecode_to_string()

    class FeedbackExporter(HTMLExporter):
        def _create_environment(self) -> jinja2.Environment:
            environment = super()._create_environment()
            environment.bytecode_cache = Compiled()
            return environment

    return FeedbackExporter


class NbgraderCourse:
    """An nbgrader course directory configured by the checkout's grader/nbgrader_config.py (and the
    course's own nbgrader_config.py, if it has one)."""

    def __init__(
        self, checkout: Path, root: Path, *, cell_timeout_s: float | None = None, kernel_dir: Path | None = None
    ) -> None:
        """`kernel_dir`: where a sandboxed kernel's own files go (outside `root`, which the kernel must not
        see); by default a folder beside `root`. Kernels are sandboxed when `sandbox.active()`."""
        from nbgrader.apps import NbGraderAPI
        from nbgrader.converters import Autograde
        from nbgrader.preprocessors import Execute
        from sqlalchemy.exc import SAWarning
        from traitlets.config import Config, PyFileConfigLoader

        # nbgrader 0.9 on SQLAlchemy 2 warns about its own session use on every grade: noise, not news.
        warnings.filterwarnings("ignore", category=SAWarning)
        _put_interpreter_on_path()
        self.root = root
        self.config_file = checkout / "grader" / "nbgrader_config.py"
        config = Config()
        own = root / "nbgrader_config.py"
        for file in (self.config_file, own) if own.exists() else (self.config_file,):
            config.merge(PyFileConfigLoader(file.name, path=str(file.parent)).load_config())
        config.CourseDirectory.root = str(root)
        if cell_timeout_s is not None:
            config.Execute.timeout = int(cell_timeout_s)
        self.kernel_dir = kernel_dir or root.with_name(root.name + "-kernel")
        self._execute = _recording_execute(self.kernel_dir if sandbox.active() else None)
        configured = config.Autograde.get("autograde_preprocessors")  # the course's own list, if it set one
        steps = configured or Autograde.class_traits()["autograde_preprocessors"].default()
        executing = [[self._execute, _kept_outputs()] if s is Execute else [s] for s in steps]
        config.Autograde.autograde_preprocessors = [step for group in executing for step in group]
        if "exporter_class" not in config.GenerateFeedback:  # unless the course chose its own
            config.GenerateFeedback.exporter_class = feedback_exporter()
        self.api = NbGraderAPI(config=config)
        self._exporter = dict(config.HTMLExporter)  # the feedback page's template as configured
        self.db_url = f"sqlite:///{root / 'gradebook.db'}"

    def hook_tests(self, action: Callable[[], None], source: dict) -> None:
        """Run `action` just before the first test cell (or the cell after the last answer) of the next
        notebooks this course autogrades, copies of the lesson `source`."""
        self.api.config.Execute.on_cell_execute = handoff.before_first_test(action, handoff.last_answer(source))

    def generate(self, slug: str, source: Path) -> Path:
        """Generate the student version of a lesson; returns the released notebook."""
        folder = self.root / "source" / slug
        folder.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(source, folder / f"{slug}.ipynb")
        result = self.api.generate_assignment(slug)
        if not result.get("success"):
            raise LeaklabError(f"nbgrader could not generate {slug}: {_last_error(result)}")
        return self.root / "release" / slug / f"{slug}.ipynb"

    def generate_cached(self, slug: str, source: Path) -> None:
        """`generate` into this course's empty gradebook, reusing an earlier run's result when the
        lesson and the nbgrader configuration are unchanged (it costs nbgrader about two seconds)."""
        from nbgrader import __version__ as nbgrader_version

        key = hashlib.sha256(source.read_bytes() + self.config_file.read_bytes() + nbgrader_version.encode())
        cached = artefacts_dir("grading") / f"generated-{slug}-{key.hexdigest()[:16]}"
        if not (cached / "gradebook.db").exists():
            self.generate(slug, source)
            staging = Path(tempfile.mkdtemp(prefix="staging-", dir=cached.parent))
            shutil.copyfile(self.root / "gradebook.db", staging / "gradebook.db")
            shutil.copytree(self.root / "source", staging / "source")
            try:
                staging.rename(cached)  # atomic: a concurrent grader sees all of it or none
            except OSError:
                shutil.rmtree(staging, ignore_errors=True)  # another grader cached it first
            return
        shutil.copyfile(cached / "gradebook.db", self.root / "gradebook.db")
        shutil.copytree(cached / "source", self.root / "source", dirs_exist_ok=True)

    def generate_for_kernel(self, slug: str, source: Path) -> None:
        """`generate_cached` from the lesson as the kernel runs it (`handoff.kernel_version`): its hidden
        tests never reach the kernel, nor the autograded notebook and feedback page made from its run."""
        version = handoff.kernel_version(json.loads(source.read_text(encoding="utf-8")))
        folder = Path(tempfile.mkdtemp(prefix="kernel-version-", dir=artefacts_dir("grading")))
        try:
            (folder / source.name).write_text(json.dumps(version, indent=1), encoding="utf-8")
            self.generate_cached(slug, folder / source.name)
        finally:
            shutil.rmtree(folder, ignore_errors=True)

    def autograde(self, slug: str, student: str, submission: Path) -> KernelRun:
        """Autograde one submission: its scores by grade id (from the gradebook), with each failed test's
        message; or why nbgrader could not grade it."""
        from nbgrader.api import Gradebook

        folder = self.root / "submitted" / student / slug
        folder.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(submission, folder / f"{slug}.ipynb")
        self._execute.deaths.clear()
        result = self.api.autograde(slug, student)
        if self._execute.deaths:
            return KernelRun({}, (Reason.KERNEL_DIED, DIED))
        if not result.get("success"):
            return KernelRun({}, (Reason.NOT_GRADED_BY_NBGRADER, f"nbgrader could not grade it: {_last_error(result)}"))
        graded = self.root / "autograded" / student / slug / f"{slug}.ipynb"
        told = scored(json.loads(graded.read_text(encoding="utf-8")))  # each failed test's message and reason
        with Gradebook(self.db_url) as gradebook:
            tests = {}
            for grade in gradebook.find_submission_notebook(slug, slug, student).grades:
                said = told.get(grade.name) or TestResult(0.0, 0.0)
                tests[grade.name] = TestResult(float(grade.score), float(grade.max_score), said.message, said.reason)
        return KernelRun(tests, notebook=graded)

    def feedback(self, slug: str, student: str, destination: Path) -> None:
        """Write nbgrader's feedback HTML for a graded submission (hidden tests cleared by the config), its
        labels in the language of the submission's lesson where the grader has that template."""
        self._feedback_template(self.root / "autograded" / student / slug / f"{slug}.ipynb")
        result = self.api.generate_feedback(slug, student)
        if not result.get("success"):
            raise LeaklabError(f"nbgrader could not write feedback: {_last_error(result)}")
        destination.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(self.root / "feedback" / student / slug / f"{slug}.html", destination)

    def _feedback_template(self, autograded: Path) -> None:
        """nbgrader's `feedback` template, or its translation, grader/i18n/<lang>/feedback/: nbgrader names the
        template itself (`feedback`), so the language's folder goes first among the folders searched."""
        try:
            language = notebook_language(json.loads(autograded.read_text(encoding="utf-8")))
        except (OSError, ValueError):
            language = "en"
        translated = self.config_file.parent / "i18n" / language
        exporter = self.api.config.HTMLExporter
        if language != "en" and (translated / "feedback" / "index.html.j2").is_file():
            exporter.extra_template_basedirs = [str(translated)]
        elif "extra_template_basedirs" in self._exporter:  # as configured
            exporter.extra_template_basedirs = self._exporter["extra_template_basedirs"]
        else:  # nbgrader's own default (it sets it where nothing is configured)
            exporter.pop("extra_template_basedirs", None)


@contextlib.contextmanager
def temporary_course(checkout: Path, *, cell_timeout_s: float | None = None) -> Iterator[NbgraderCourse]:
    """A throwaway course, configured as the checkout grades, deleted when the block ends."""
    root = Path(tempfile.mkdtemp(prefix="course-", dir=artefacts_dir("grading")))
    course = NbgraderCourse(checkout, root, cell_timeout_s=cell_timeout_s)
    try:
        yield course
    finally:
        shutil.rmtree(root, ignore_errors=True)
        shutil.rmtree(course.kernel_dir, ignore_errors=True)


def _last_error(result: dict) -> str:
    """For a person: the last exception line of nbgrader's log other than its own summary."""
    log = result.get("log", "") + "\n" + result.get("error", "")
    lines = [line.strip() for line in log.splitlines() if re.search(r"\w+(Error|Exception): ", line)]
    lines = [line for line in lines if "NbGraderException" not in line]
    return lines[-1] if lines else (log.strip().splitlines() or ["no detail from nbgrader"])[-1]


def _put_interpreter_on_path() -> None:
    """nbgrader runs `alembic` by name: find it beside this interpreter even in a venv never activated."""
    bin_dir = str(Path(sys.executable).parent)
    if bin_dir not in os.environ.get("PATH", "").split(os.pathsep):
        os.environ["PATH"] = bin_dir + os.pathsep + os.environ.get("PATH", "")
