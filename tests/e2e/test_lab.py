"""What a learner sees in JupyterLab, checked in headless Chromium: lesson 01 from the list to a passing fix."""

from __future__ import annotations

import json
import re
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from e2e_support import CHROMIUM_ARGS, ROOT, Lab

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

LESSON = "01_forgotten_cancel"
NOTEBOOK = f"{LESSON}.ipynb"
# Generous limits keyed on what the page shows, never fixed sleeps: the CI machine is a loaded 2-core VM.
OPEN_TIMEOUT_MS = 90_000  # lab page, notebook and kernel start
RUN_TIMEOUT_MS = 180_000  # "Run All" of the whole lesson (it takes seconds when the machine is quiet)
VALIDATE_TIMEOUT_MS = 240_000  # nbgrader's Validate runs the whole notebook again, on the server

# The notebook panel in front: JupyterLab hides the others with lm-mod-hidden.
PANEL = ".jp-NotebookPanel:not(.lm-mod-hidden)"
CELLS = f"{PANEL} .jp-Notebook .jp-Cell"

# How Run All went: "done" once nothing runs or waits to run, the kernel is idle and cell `target` shows an
# execution count above `before` (so that an earlier run's prompts cannot pass for this one's); "stalled" when
# nothing runs either but `target` has not run; else null (still running).
RUN_OUTCOME_JS = """([panel, target, before]) => {
    const root = document.querySelector(panel);
    if (!root || !root.querySelector('.jp-Notebook-ExecutionIndicator[data-status="idle"]')) return null;
    const prompts = [...root.querySelectorAll('.jp-Notebook .jp-Cell')].map(
        cell => cell.querySelector('.jp-InputArea-prompt')?.textContent ?? '');
    if (prompts.some(prompt => prompt.includes('*'))) return null;
    const count = /\\[(\\d+)\\]/.exec(prompts[target] ?? '');
    return count !== null && Number(count[1]) > before ? 'done' : 'stalled';
}"""
# A stalled look lasts an instant between a click and the first queued cell; this long it means stopped.
STALL_GRACE_MS = 15_000

# What the page shows while running, for a failure message: kernel status and each cell's prompt.
RUN_STATE_JS = """(panel) => {
    const root = document.querySelector(panel);
    const status = root?.querySelector('.jp-Notebook-ExecutionIndicator')?.getAttribute('data-status');
    const prompts = [...(root?.querySelectorAll('.jp-Notebook .jp-Cell') ?? [])].map(
        (cell, i) => i + (cell.querySelector('.jp-InputArea-prompt')?.textContent ?? '?'));
    return {status, prompts: prompts.join(' ')};
}"""

# The execution counts shown in the prompts, highest first (0 when nothing has run).
HIGHEST_COUNT_JS = """(panel) => Math.max(0, ...[...document.querySelectorAll(panel + ' .jp-InputArea-prompt')]
    .map(prompt => Number((/\\[(\\d+)\\]/.exec(prompt.textContent) ?? [0, 0])[1])))"""

# Cells that show a traceback. JupyterLab renders an error output like stderr, so it is told apart by its text.
ERROR_CELLS_JS = r"""(cells) => [...document.querySelectorAll(cells)].flatMap((cell, i) =>
    [...cell.querySelectorAll('.jp-OutputArea-output[data-mime-type="application/vnd.jupyter.stderr"]')]
        .some(out => /Traceback \(most recent call last\)|^\w*(Error|Exception|Interrupt)\b/m.test(out.textContent))
        ? [i] : [])"""


def _cells(path: Path) -> list[dict]:
    """The cells of a notebook file, read (never written) to find the cells the test looks at."""
    return json.loads(path.read_text())["cells"]


def _saved_error_cells(path: Path) -> list[int]:
    """Indexes of the cells with an error output in the saved notebook (Validate saves before it runs)."""
    cells = _cells(path)
    return [i for i, cell in enumerate(cells) if any(o["output_type"] == "error" for o in cell.get("outputs", []))]


def _grade_id(cell: dict) -> str:
    """The cell's nbgrader id ("" for a cell nbgrader does not know)."""
    return cell["metadata"].get("nbgrader", {}).get("grade_id", "")


def _source(cell: dict) -> str:
    """The cell's source as one string (nbformat stores it as a list of lines or a string)."""
    return "".join(cell["source"]) if isinstance(cell["source"], list) else cell["source"]


class Layout:
    """Where lesson 01's cells are, from exercises/ itself (exercises/<language>/ for a translation), so
    that the test follows the lesson's edits."""

    def __init__(self, language: str = "") -> None:
        cells = _cells(ROOT / "exercises" / language / NOTEBOOK)
        self.count = len(cells)
        self.answer = next(i for i, cell in enumerate(cells) if _grade_id(cell) == f"{LESSON}_fix")
        self.first_test = next(
            i for i, cell in enumerate(cells) if cell["metadata"].get("nbgrader", {}).get("grade", False)
        )
        plots = [i for i, cell in enumerate(cells) if cell["cell_type"] == "code" and "plot_runs(" in _source(cell)]
        self.leak_plot = plots[0]  # section 3, Observe: the leak
        self.fixed_plot = next(i for i in plots if i > self.answer)  # section 6, Verify: the fix beside the leak
        self.last_code = max(i for i, cell in enumerate(cells) if cell["cell_type"] == "code")
        solution = [c for c in _cells(ROOT / "solutions" / language / NOTEBOOK) if _grade_id(c) == f"{LESSON}_fix"]
        self.reference_fix = _source(solution[0])


class Learner:
    """A person at the lab: clicks, types and looks; screenshots of what they saw land in `shots`."""

    def __init__(self, page, shots: Path) -> None:  # page: playwright.sync_api.Page
        self.page = page
        self.shots = shots
        self.timings: list[tuple[str, float]] = []
        self.notes: list[str] = []  # what went unexpectedly but was recovered from, for the report

    @contextmanager
    def step(self, name: str) -> Iterator[None]:
        """One step of the walk-through: timed, and a screenshot of the screen if it fails."""
        start = time.monotonic()
        try:
            yield
        except BaseException:
            self.page.screenshot(path=self.shots / f"FAILED-{name}.png")
            raise
        finally:
            self.timings.append((name, time.monotonic() - start))

    def shot(self, name: str, locator=None) -> None:
        """Keep a picture of the whole window, or of one element (a cell) scrolled into view."""
        self.dismiss_notifications()
        target = self.page if locator is None else locator
        if locator is not None:
            locator.scroll_into_view_if_needed()
        target.screenshot(path=self.shots / f"{name}.png")

    def cell(self, index: int):
        """The notebook's cell number `index` (markdown cells count), as the page shows it."""
        return self.page.locator(CELLS).nth(index)

    def open_lesson(self, lab: Lab, layout: Layout, title: str) -> None:
        """Double-click lesson 01 in the file browser; return once all its cells show, the first with
        `title`, and its kernel is idle."""
        from playwright.sync_api import expect

        self.page.locator(".jp-DirListing-item", has_text=NOTEBOOK).dblclick()
        self.page.wait_for_function(
            "([sel, n]) => document.querySelectorAll(sel).length === n", arg=[CELLS, layout.count]
        )
        self.page.locator(f'{PANEL} .jp-Notebook-ExecutionIndicator[data-status="idle"]').wait_for()
        lab.wait_for_kernel()
        expect(self.cell(0)).to_contain_text(title)
        self.dismiss_notifications()

    def dismiss_notifications(self) -> None:
        """Close toasts (e.g. JupyterLab's news question) so that they do not cover the outputs."""
        from playwright.sync_api import Error as PlaywrightError

        for close in self.page.locator(".jp-Notification-Toast-Close").all():
            try:
                close.click(timeout=5_000)
            except PlaywrightError:
                pass  # gone by itself in the meantime

    def run_all(self, *, until: int, menu: str = "Run", item: str = "Run All Cells") -> None:
        """Run > Run All Cells from the menu bar (`menu` > `item` in another language); return once cell
        `until` has run and nothing else runs.

        Under heavy load JupyterLab sometimes replaces the notebook's kernel just after opening it, and a Run All
        clicked then runs nothing (or one cell): a learner clicks again, and so does this, once, saying so.
        """
        from playwright.sync_api import TimeoutError as PlaywrightTimeout

        for attempt in (1, 2):
            before = self.page.evaluate(HIGHEST_COUNT_JS, PANEL)
            self.page.locator("#jp-MainMenu .lm-MenuBar-itemLabel", has_text=re.compile(f"^{menu}$")).click()
            self.page.locator(".lm-Menu-itemLabel", has_text=re.compile(f"^{item}$")).click()
            args = [PANEL, until, before]
            try:
                outcome = self.page.wait_for_function(RUN_OUTCOME_JS, arg=args, timeout=RUN_TIMEOUT_MS).json_value()
                if outcome != "done":
                    done = f"() => ({RUN_OUTCOME_JS})({json.dumps(args)}) === 'done'"
                    self.page.wait_for_function(done, timeout=STALL_GRACE_MS)
                return
            except PlaywrightTimeout:
                state = self.page.evaluate(RUN_STATE_JS, PANEL)
                errors = self.error_cells()
                self.notes.append(f"Run All (try {attempt}) stopped before cell {until}: {state}; errors in {errors}")
        raise AssertionError("\n".join(self.notes))

    def error_cells(self) -> list[int]:
        """Indexes of the cells that show a traceback."""
        return self.page.evaluate(ERROR_CELLS_JS, CELLS)

    def expect_plot(self, index: int, name: str) -> None:
        """The cell's output shows a loaded, non-empty image (matplotlib's PNG), and a screenshot of it."""
        image = self.cell(index).locator(".jp-OutputArea-output img").first
        image.wait_for(state="attached", timeout=RUN_TIMEOUT_MS)
        size = image.evaluate("img => img.decode().then(() => [img.naturalWidth, img.naturalHeight])")
        assert size[0] > 100 and size[1] > 100, f"cell {index}: the plot image is {size[0]}x{size[1]} pixels"
        self.shot(name, self.cell(index))

    def validate(self, *, verdict: str, shot: str) -> str:
        """Press nbgrader's Validate button (it saves first) and return the text of its verdict dialog."""
        self.page.locator(f"{PANEL} .jp-Toolbar .validate-button").click()
        dialog = self.page.locator(".jp-Dialog").filter(has=self.page.locator(f"#validation-message.{verdict}"))
        other = self.page.locator(".jp-Dialog #validation-message")
        other.wait_for(timeout=VALIDATE_TIMEOUT_MS)
        text = other.inner_text()
        assert dialog.count() == 1, f"Validate said something else than {verdict!r}:\n{text}"
        self.shot(shot)
        dialog.locator("button.jp-Dialog-button").last.click()
        dialog.wait_for(state="detached")
        return text

    def type_into_cell(self, index: int, text: str) -> None:
        """Replace a cell's code the way a person does: click into it, select all, paste."""
        editor = self.cell(index).locator(".cm-content")
        editor.scroll_into_view_if_needed()
        editor.click()
        self.page.locator(f"{CELLS}.jp-mod-active .cm-editor.cm-focused").wait_for()
        self.page.keyboard.press("ControlOrMeta+a")
        self.page.keyboard.insert_text(text)
        self.page.keyboard.press("Escape")  # back to command mode, as after editing


@contextmanager
def at_the_lab(chromium: str, screenshots: Path) -> Iterator[Learner]:
    """A learner at a page of headless Chromium, the limits set for a loaded machine; closed afterwards."""
    from playwright.sync_api import expect, sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 900})
            page.set_default_timeout(OPEN_TIMEOUT_MS)
            expect.set_options(timeout=OPEN_TIMEOUT_MS)
            yield Learner(page, screenshots)
        finally:
            browser.close()


def test_learner_runs_validates_and_fixes_lesson_01(lab: Lab, chromium: str, screenshots: Path) -> None:
    """Lesson 01 in the lab, as a learner meets it: list, open, Run All, plots, Validate, fix, Validate.

    "Run All executes without an error output" is read as the lesson is built: in the unfinished exercise
    every cell before the first graded test cell runs without an error output (setup, demos, the answer
    cell, which only defines the function, and Verify), the leak plot is drawn, and the first test cell is
    where Run All stops, with the failing test's error. Once the answer cell holds the reference fix, Run
    All runs every cell, none shows an error, and Verify draws the fixed plot. The fix is typed into the
    answer cell's editor (select all, insert text), never written behind JupyterLab's back; Validate saves
    the notebook before it runs it, so the saved file then shows what was typed and which outputs are errors.
    """
    from playwright.sync_api import expect

    layout = Layout()
    with at_the_lab(chromium, screenshots) as learner:
        page = learner.page
        with learner.step("exercises-list"):
            page.goto(f"{lab.url}/lab?token={lab.token}")
            listed = page.locator(".jp-DirListing-content .jp-DirListing-itemText")
            expected = sorted(p.name for p in (ROOT / "exercises").glob("*.ipynb"))
            expect(listed).to_have_text(expected)  # the file browser sorts by name
            learner.shot("01-exercises-list")

        with learner.step("open"):
            learner.open_lesson(lab, layout, "The forgotten cancellation")
            learner.shot("02-notebook-open")

        with learner.step("run-all-unfinished"):
            learner.run_all(until=layout.first_test)
            errors = learner.error_cells()
            assert errors and errors[0] == layout.first_test, (
                f"error outputs in cells {errors}; expected the first at the first test cell {layout.first_test}"
            )
            learner.expect_plot(layout.leak_plot, "03-leak-plot")
            learner.shot("04-first-failing-test", learner.cell(layout.first_test))

        with learner.step("validate-unfinished"):
            verdict = learner.validate(verdict="validation-failed", shot="05-validate-unfinished")
            assert "failed" in verdict.lower()
            assert _saved_error_cells(lab.workspace / NOTEBOOK)[0] == layout.first_test

        with learner.step("fill-in-fix"):
            learner.type_into_cell(layout.answer, layout.reference_fix)
            learner.shot("06-answer-filled", learner.cell(layout.answer))

        with learner.step("run-all-fixed"):
            learner.run_all(until=layout.last_code)
            assert learner.error_cells() == []
            learner.expect_plot(layout.fixed_plot, "07-fixed-plot")

        with learner.step("validate-fixed"):
            verdict = learner.validate(verdict="validation-success", shot="08-validate-fixed")
            assert "passes all the tests" in verdict
            assert _saved_error_cells(lab.workspace / NOTEBOOK) == []
            saved = _cells(lab.workspace / NOTEBOOK)[layout.answer]
            assert _source(saved) == layout.reference_fix, "the answer typed in the browser is not what was saved"
    report = "".join(f"{name:<20} {seconds:6.1f} s\n" for name, seconds in learner.timings)
    report += "".join(f"note: {note}\n" for note in learner.notes)
    (screenshots / "timings.txt").write_text(report)
    print(report)


# Text that shows a Chinese glyph was drawn as an empty box: matplotlib warns in the cell's output.
TOFU = "missing from font"


def test_a_learner_runs_lesson_01_in_chinese_and_sees_chinese_text_and_plots(
    chinese_lab: Lab, chromium: str, screenshots: Path
) -> None:
    """The Chinese lesson 01 as `make lab LEAKLAB_LANG=zh_CN` shows it: JupyterLab's menus in Chinese, the
    lesson's text in Chinese, Run All up to the first test cell as in English, and the leak's plot drawn with
    its Chinese title and legend (no glyph missing from the fonts: matplotlib would say so in the cell)."""
    from playwright.sync_api import expect

    layout = Layout("zh_CN")
    with at_the_lab(chromium, screenshots) as learner:
        page = learner.page
        with learner.step("zh-open"):
            page.goto(f"{chinese_lab.url}/lab?token={chinese_lab.token}")
            expect(page.locator("#jp-MainMenu .lm-MenuBar-itemLabel", has_text=re.compile("^运行$"))).to_be_visible()
            learner.open_lesson(chinese_lab, layout, "被遗忘的取消")
            learner.shot("zh-01-notebook-open")

        with learner.step("zh-run-all"):
            learner.run_all(until=layout.first_test, menu="运行", item="运行所有单元格")
            errors = learner.error_cells()
            assert errors and errors[0] == layout.first_test, f"error outputs in cells {errors}"
            learner.expect_plot(layout.leak_plot, "zh-02-leak-plot")
            outputs = page.locator(f"{PANEL} .jp-OutputArea-output").all_inner_texts()
            assert not [text for text in outputs if TOFU in text], "a Chinese glyph was drawn as a box"
            expect(learner.cell(layout.leak_plot - 1)).to_contain_text("观察")
