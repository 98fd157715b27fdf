"""The kernel's run of a submission: the notebook executed as nbgrader's autograde executes it (its test
and locked cells restored from the source, outputs cleared, errors allowed, `settings.KERNEL_RUN`'s
limits), and its test cells scored: full points for a cell that ran without an error, none otherwise.

`run_notebook` does it with nbclient (nbgrader's own machinery costs seconds a call); `nbgrader_course`
does it with nbgrader's autograde, when its gradebook and feedback pages are wanted.
"""

from __future__ import annotations

import copy
import functools
import json
import os
import queue
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from .._repo import ARTEFACTS_ENV
from . import cells, handoff, sandbox, settings
from .results import Reason, TestResult

# Errors a kernel writes into a cell without a message of their own, and the reason each one is.
_CELL_ERRORS = {"CellTimeoutError": "the cell ran past the per-cell timeout (does the answer block the event loop?)"}
_CELL_REASONS = {"CellTimeoutError": Reason.TIMEOUT}
_BUSY = "the kernel never ran this cell: it was still busy with an earlier one that ran past its timeout"
DIED = "the kernel died while running it (an answer that ends the process, or runs out of memory)"
# An answer that rebinds what ipykernel itself uses (builtins, the session's signing) can garble the
# kernel's messages: nbclient then raises while reading them, for that submission only.
BROKE = "the kernel's messages could no longer be read (an answer that breaks the kernel itself)"


@dataclass
class KernelRun:
    """What the kernel's run gave: a result per test cell, or why it could not run the notebook."""

    tests: dict[str, TestResult]
    failure: tuple[Reason, str] | None = None
    notebook: Path | None = None  # the autograded notebook, where nbgrader wrote one


def restored(source: dict, submitted: dict) -> dict:
    """The submission with its test and locked cells put back from the source, outputs cleared."""
    authored = {cells.grade_id(c): c for c in source["cells"] if cells.is_restored(c)}
    nb = copy.deepcopy(submitted)
    for cell in nb["cells"]:
        original = authored.get(cells.grade_id(cell))
        if original is not None:
            cell.update(cell_type=original["cell_type"], source=original["source"], metadata=original["metadata"])
        cell["source"] = cells.text(cell)  # as on disk it may be a list; the executor wants a string
        if cell["cell_type"] == "code":
            cell.update(outputs=[], execution_count=None)
        else:
            cell.pop("outputs", None)
            cell.pop("execution_count", None)
    return nb


def scored(executed: dict, failed: dict[int, str] | None = None) -> dict[str, TestResult]:
    """The test cells of an executed notebook: an error output (or a failed reply, by cell index, with the
    error's name the reply gave) loses the cell's points, with the error's `Name: message` (the kernel
    prints no code)."""
    failed = failed or {}
    results, timed_out = {}, False  # timed_out: a cell before this one ran past its timeout
    raised = ""  # the last answer cell above that raised, and what: why a test may miss a name it binds
    for index, cell in enumerate(executed["cells"]):
        errors = [o for o in cell.get("outputs", []) if o.get("output_type") == "error"]
        if cell.get("cell_type") == "code" and cells.is_answer(cell) and errors:
            error = f"{errors[0].get('ename')}: {errors[0].get('evalue')}".rstrip(": ")
            raised = f"the answer cell {cells.grade_id(cell)} raised {error}"
        if cell.get("cell_type") == "code" and cells.is_test(cell):
            if not errors and index in failed:  # a failed reply with no error output
                if timed_out:  # the kernel never got to the cell
                    errors = [{"ename": "CellTimeoutError", "evalue": _BUSY}]
                elif failed[index] == "CellTimeoutError":  # nbclient's own reply
                    errors = [{"ename": "CellTimeoutError", "evalue": ""}]
            points = cells.points(cell)
            if errors or index in failed:
                name = errors[0].get("ename") if errors else "Error"
                value = errors[0].get("evalue") if errors else ""
                message = f"{name}: {value or _CELL_ERRORS.get(name, 'the cell failed without an error message')}"
                if name == "NameError" and raised:
                    message += f" ({raised})"
                results[cells.grade_id(cell)] = TestResult(0.0, points, message, _CELL_REASONS.get(name))
            else:
                results[cells.grade_id(cell)] = TestResult(points, points)
        timed_out = (
            timed_out
            or any(e.get("ename") == "CellTimeoutError" for e in errors)
            or failed.get(index) == "CellTimeoutError"
        )
    return results


def capped(nb: dict) -> dict:
    """The notebook with its outputs cut to `settings`' sizes, each cut said where it was made: what a
    submission prints or draws cannot fill the course's autograded/ and feedback/ folders. An error
    output is shortened, never removed: it is what fails a test cell."""
    left = settings.NOTEBOOK_OUTPUT_BYTES
    for cell in nb.get("cells", []):
        if cell.get("cell_type") != "code":
            continue
        outputs, text_left = [], settings.CELL_TEXT_BYTES
        for output in cell.get("outputs", []):
            kind = output.get("output_type")
            if kind == "stream":
                output["text"] = _cut(cells.text({"source": output.get("text", "")}), min(text_left, left))
                text_left -= len(output["text"].encode())
            elif kind == "error" and _size(output) > settings.CELL_TEXT_BYTES:
                output["evalue"] = _cut(str(output.get("evalue", "")), 4096)
                output["traceback"] = [_cut("\n".join(output.get("traceback", [])), 4096)]
            elif kind != "error" and _size(output) > min(settings.OUTPUT_ITEM_BYTES, left):
                note = f"[leaklab: an output of {_size(output) >> 10} KiB left out]\n"
                output = type(output)({"output_type": "stream", "name": "stdout", "text": note})  # a NotebookNode too
            left -= _size(output)
            outputs.append(output)
        cell["outputs"] = outputs
    return nb


def drawn(nb: dict) -> dict:
    """The notebook with the figures its kernel showed as data (`_plotting.PlotData`) drawn, as PNGs the
    lab would have shown (up to `settings.DRAWN_FIGURES`); data that is not a figure's, or one too many,
    is said in a line where the figure would be. The kernel ran the submission: its data is read with care."""
    left = settings.DRAWN_FIGURES
    for cell in nb.get("cells", []):
        for output in cell.get("outputs", []) if cell.get("cell_type") == "code" else []:
            data = output.get("data")
            if not isinstance(data, dict) or handoff.PLOT_MIME not in data:
                continue
            spec, left = data.pop(handoff.PLOT_MIME), left - 1
            if left < 0:
                data["text/plain"] = f"[leaklab: a figure not drawn: over {settings.DRAWN_FIGURES} in one notebook]"
                continue
            try:
                data["image/png"] = _drawn_png(spec)
            except Exception as exc:  # a figure that cannot be drawn costs that figure, never the grade
                data["text/plain"] = (
                    f"[leaklab: a figure that could not be drawn: {type(exc).__name__}: {exc}"[:300] + "]"
                )
    return nb


def ready_to_draw() -> None:
    """What `drawn`'s first figure costs (matplotlib, its fonts), paid now: the class grader's jobs fork
    from a process that has paid it."""
    from .._plotting import warm_up

    warm_up()


def _drawn_png(spec: object) -> str:
    import base64

    from .._plotting import draw

    if len(json.dumps(spec)) > settings.OUTPUT_ITEM_BYTES:
        raise ValueError(f"its data is over {settings.OUTPUT_ITEM_BYTES >> 20} MiB")
    return base64.b64encode(draw(spec)).decode("ascii")


def _cut(text: str, limit: int) -> str:
    data = text.encode()
    if len(data) <= limit:
        return text
    kept = data[: max(0, limit)].decode(errors="ignore")
    return f"{kept}\n[leaklab: output cut at {max(0, limit) >> 10} KiB of {len(data) >> 10} KiB]\n"


def _size(output: dict) -> int:
    return len(json.dumps(output))


class GivesUpOnASilentKernel:
    """For an nbclient `NotebookClient` (nbgrader's `Execute` is one): after a cell's timeout and its
    interrupt, a kernel that does not answer a request for its info within `settings.SILENT_KERNEL_S` gets
    only `settings.SILENT_CELL_S` for each later cell. Those cells fail as they would have, one full
    timeout each, without holding the grade up for minutes."""

    async def _async_handle_timeout(self, timeout: int, cell: object = None) -> dict | None:  # noqa: ASYNC109 (nbclient's signature)
        reply = await super()._async_handle_timeout(timeout, cell)  # type: ignore[misc]
        if self.timeout != settings.SILENT_CELL_S and not await self._answers():  # type: ignore[attr-defined]
            self.timeout = settings.SILENT_CELL_S
        return reply

    async def _answers(self) -> bool:
        from jupyter_core.utils import ensure_async

        asked = self.kc.kernel_info()  # type: ignore[attr-defined]
        deadline = time.monotonic() + settings.SILENT_KERNEL_S
        while (left := deadline - time.monotonic()) > 0:
            try:
                message = await ensure_async(self.kc.shell_channel.get_msg(timeout=left))  # type: ignore[attr-defined]
            except queue.Empty:
                return False
            if message.get("parent_header", {}).get("msg_id") == asked:
                return True
        return False


def run_notebook(source: dict, submitted: dict, folder: Path, *, before_tests: Callable[[], None]) -> KernelRun:
    """Execute the submission in a fresh kernel with nbclient, `before_tests` run just before its first
    test cell; a kernel that dies, or whose messages can no longer be read, is a `KERNEL_DIED` failure."""
    import nbformat
    from nbclient import NotebookClient
    from nbclient.exceptions import DeadKernelError

    class Client(GivesUpOnASilentKernel, NotebookClient):
        pass

    failed: dict[int, str] = {}  # the cells whose reply said error, with the error's name
    client = Client(
        nbformat.from_dict(restored(handoff.kernel_version(source), submitted)),
        kernel_name="python3",
        allow_errors=True,
        interrupt_on_timeout=True,
        error_on_timeout={"ename": "CellTimeoutError", "evalue": "", "traceback": ["CellTimeoutError"]},
        on_cell_executed=lambda cell, cell_index, execute_reply: (
            failed.update({cell_index: str(reply.get("ename", ""))})
            if (reply := (execute_reply or {}).get("content", {})).get("status") == "error"
            else None
        ),
        on_cell_execute=handoff.before_first_test(before_tests, handoff.last_answer(source)),
        resources={"metadata": {"path": str(folder)}},
        **settings.KERNEL_RUN,
        kernel_manager_class=sandboxed_kernels(folder / "kernel") if sandbox.active() else encrypted_kernels(),
    )
    try:
        executed = client.execute()
    except DeadKernelError:
        return KernelRun({}, (Reason.KERNEL_DIED, DIED))
    except (ValueError, RuntimeError, KeyError) as exc:  # what jupyter_client raises on a message it cannot read
        return KernelRun({}, (Reason.KERNEL_DIED, f"{BROKE} ({type(exc).__name__}: {_cut(str(exc), 200)})"))
    return KernelRun(scored(capped(executed), failed))


def encrypted_kernels() -> type:
    """jupyter_client's kernel manager, its loopback TCP encrypted with CurveZMQ keys made per kernel (as
    grader/nbgrader_config.py sets for nbgrader's kernels): no plain-text warning in the grader's output."""
    from jupyter_client.manager import AsyncKernelManager

    class EncryptedKernelManager(AsyncKernelManager):
        def __init__(self, **kwargs: object) -> None:
            super().__init__(**kwargs)
            self.transport_encryption = "auto"

    return EncryptedKernelManager


def sandboxed_kernels(workdir: Path) -> type:
    """A jupyter_client kernel manager whose kernels run in `sandbox`. Nothing of the grader's disk is
    writable to them: their working folder and home (at `workdir`'s path) are a capped folder in the
    sandbox's memory, gone with it; the connection file (`workdir` holds it, created here) and the
    grader's hand-off file are readable. Their sockets are Unix sockets in the sandbox's own /tmp (it has
    no network to reach the grader's TCP ports), which the grader reaches through the sandbox's root,
    `/proc/PID/root`. An interrupt is a message on the control channel (a signal to the sandbox's
    process group would end the sandbox)."""
    from jupyter_client.manager import AsyncKernelManager

    workdir.mkdir(parents=True, exist_ok=True)
    fonts = _copy_font_cache(workdir)

    class SandboxedKernelManager(AsyncKernelManager):
        def __init__(self, **kwargs: object) -> None:
            super().__init__(**kwargs)
            self.transport, self.ip = "ipc", "/tmp/kernel"  # as the kernel sees it, until it runs
            self.transport_encryption = "disabled"  # a Unix socket only the grader reaches: nothing to encrypt
            self.connection_file = str(workdir / "kernel.json")
            self._told: tuple[int, int] | None = None

        async def _async_interrupt_kernel(self) -> None:
            if self.kernel_spec is not None:
                self.kernel_spec.interrupt_mode = "message"
            await super()._async_interrupt_kernel()

        interrupt_kernel = _async_interrupt_kernel

        def format_kernel_cmd(self, extra_arguments: list[str] | None = None) -> list[str]:
            command = super().format_kernel_cmd(extra_arguments)
            home = {"HOME": workdir, "IPYTHONDIR": workdir / "ipython", "MPLCONFIGDIR": workdir / "matplotlib"}
            home[ARTEFACTS_ENV] = workdir / "runs"  # the lessons' memray captures and plots
            # Inside its own PID namespace the kernel's parent is the sandbox's pid 1, which ipykernel takes
            # for an orphaned kernel unless told that is its parent; the sandbox ends with its parent instead
            # (--die-with-parent).
            home["JPY_PARENT_PID"] = 1
            handed = os.environ.get(handoff.ENV)
            readable = [Path(handed).parent] if handed else []
            placed = {workdir / "kernel.json": Path(self.connection_file)}
            placed |= {workdir / "matplotlib" / font.name: font for font in fonts}
            self._told = os.pipe()
            return sandbox.wrap(
                command,
                writable=[],
                readable=readable,
                workdir=workdir,
                env=home,
                private_workdir=True,
                placed=placed,
                info_fd=self._told[1],
            )

        async def _async_launch_kernel(self, kernel_cmd: list[str], **kw: object) -> None:
            told, tell = self._told or os.pipe()
            try:
                await super()._async_launch_kernel(kernel_cmd, pass_fds=(tell,), **kw)
            finally:
                os.close(tell)
            try:
                info = _read_json(told)  # written as soon as the sandbox exists: a few milliseconds
            finally:
                os.close(told)
            self.ip = f"/proc/{info['child-pid']}/root/tmp/kernel"  # the grader's way in

    return SandboxedKernelManager


def _read_json(fd: int) -> dict:
    """The first JSON object written to `fd` (the sandbox may hold the pipe open after writing it)."""
    said = b""
    while chunk := os.read(fd, 4096):
        said += chunk
        try:
            return json.loads(said)
        except ValueError:
            continue
    raise RuntimeError(f"the kernel's sandbox did not start: {said[-200:]!r}")


@functools.cache
def font_cache() -> Path:
    """Where this grader's matplotlib keeps its font list (matplotlib's own rule: MPLCONFIGDIR, else the
    XDG cache), the list built there first if it is missing. Asked once per process and remembered: the
    class grader asks before its jobs set HOME to their scratch folders, where no font list is."""
    cache_home = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    folder = Path(os.environ.get("MPLCONFIGDIR") or cache_home / "matplotlib")
    if not any(folder.glob("fontlist-*.json")):  # a new machine: scanned once here, not in every kernel
        build = "import matplotlib.font_manager"
        subprocess.run(
            [sys.executable, "-c", build], env={**os.environ, "MPLCONFIGDIR": str(folder)}, capture_output=True
        )
    return folder


def _copy_font_cache(folder: Path) -> list[Path]:
    """matplotlib's font list (`font_cache`), copied to `folder`: without it every sandboxed kernel would
    scan the fonts again (about a second)."""
    copies = []
    for cache in font_cache().glob("fontlist-*.json"):
        shutil.copyfile(cache, folder / cache.name)
        copies.append(folder / cache.name)
    return copies
