"""No verify cell shows success for a missing or wrong answer: each lesson's verify verdict, run in a
kernel after the lesson's cells above the answer, says ✗ for the exercise's stub and for every wrong
answer of the lessons' test answers, and ✓ for the right ones."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from catalog import CATALOG
from jupyter_client.manager import KernelManager

ROOT = Path(__file__).resolve().parents[2]
LESSONS = sorted(CATALOG)
# Wrong answers only the hidden tests catch, which is why they exist: evasions aimed at the grader's
# measurement that behave like a right answer in the visible run (a deadline enforced only when it is
# short: only the hidden bursts have a long one), and mistakes in rules only hidden snippets exercise.
CAUGHT_BY_HIDDEN_TESTS_ONLY = {
    "01_forgotten_cancel": {"SHORT_DEADLINES_ONLY"},
    "02_skipped_stop": {"GIVES_UP_AFTER_FIFTY_TRIES"},  # the visible burst's outage lasts 40 failed calls
    "07_static_checks": {
        "CHEAT_IMPORT",
        "READS_THE_KEY",
        "ONLY_IS_SET",
        "SET_ORDER",
        "KNOWN_SLEEPS",
        "STOPS_AT_NESTED_TRY",
        "FUNCTIONS_ONLY",
        "SMART_BREAK",
        "STOP_OBJECTS_ONLY",
        "IS_FALSE_IS_A_WORKER_LOOP",
    },
}


class Kernel:
    """One kernel per lesson: the cells above the answer once, then each answer and the verify verdict."""

    def __init__(self, folder: Path) -> None:
        self.manager = KernelManager(transport_encryption="auto")
        self.manager.start_kernel(cwd=str(folder))
        self.client = self.manager.client()
        self.client.start_channels()
        self.client.wait_for_ready(timeout=120)

    def run(self, source: str, *, timeout: float = 300) -> str:
        """Execute a cell; its printed text, or the error it raised. A kernel that stops answering (an
        answer that rebinds `builtins.len` breaks ipykernel itself) raises TimeoutError."""
        printed: list[str] = []

        def keep(message: dict) -> None:
            content = message["content"]
            if message["msg_type"] == "stream":
                printed.append(content["text"])
            elif message["msg_type"] == "error":
                printed.append(f"ERROR {content['ename']}: {content['evalue']}")
            elif message["msg_type"] in ("execute_result", "display_data"):
                printed.append(content["data"].get("text/plain", ""))

        self.client.execute_interactive(source, timeout=timeout, output_hook=keep)
        return "".join(printed)

    @classmethod
    def above_the_answer(cls, folder: Path, cells: list[str]) -> Kernel:
        """A kernel that has run the lesson's code cells above its answer cell."""
        kernel = cls(folder)
        for source in cells:
            kernel.run(source)
        return kernel

    def close(self) -> None:
        self.client.stop_channels()
        self.manager.shutdown_kernel(now=True)


def lesson_cells(slug: str, folder: str) -> list[dict]:
    nb = json.loads((ROOT / folder / f"{slug}.ipynb").read_text(encoding="utf-8"))
    return [{**cell, "text": "".join(cell["source"])} for cell in nb["cells"]]


@pytest.mark.parametrize("slug", LESSONS)
def test_the_verify_verdict_never_passes_a_missing_or_wrong_answer(slug, tmp_path):
    cells = lesson_cells(slug, "exercises")
    answer_at = next(
        i for i, c in enumerate(cells) if c["metadata"].get("nbgrader", {}).get("grade_id") == f"{slug}_fix"
    )
    verify = next(c["text"] for c in cells if c["cell_type"] == "code" and ".verdict(" in c["text"])
    answers = [("the exercise as released", cells[answer_at]["text"], False)]
    for module, part, right, wrong in CATALOG[slug]:
        if part != "fix":
            continue
        answers += [(name, getattr(module, name), True) for name in right.split()]
        exempt = CAUGHT_BY_HIDDEN_TESTS_ONLY.get(slug, set())
        answers += [(name, getattr(module, name), False) for name in wrong.split() if name not in exempt]
    above = [cell["text"] for cell in cells[:answer_at] if cell["cell_type"] == "code"]
    kernel = Kernel.above_the_answer(tmp_path, above)
    wrong_way = []
    try:
        for name, source, right in answers:
            try:
                kernel.run(source, timeout=60)
                said = kernel.run(verify).strip()
            # A broken kernel shows no verdict at all, never a ✓: one that stops answering, or whose messages
            # can no longer be read (an answer that rebinds what ipykernel signs them with), as the grader's
            # own kernel run treats it.
            except (TimeoutError, ValueError, RuntimeError, KeyError):
                said = "(the kernel stopped answering)"
                kernel.close()
                kernel = Kernel.above_the_answer(tmp_path, above)
            if not said.startswith("✓" if right else "✗") and (right or not said.startswith("(the kernel")):
                wrong_way.append(f"{name} ({'right' if right else 'wrong'}): {said.splitlines()[:1]}")
    finally:
        kernel.close()
    assert not wrong_way, "\n".join(wrong_way)
