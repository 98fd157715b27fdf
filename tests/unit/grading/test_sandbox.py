"""The sandbox every grading process that runs a learner's code runs in (`grading.sandbox`): what it can
see, reach and leave behind, asked of the sandboxed process itself."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from leaklab.grading import sandbox
from leaklab.grading.isolation import run_isolated

pytestmark = pytest.mark.skipif(bool(sandbox.unavailable()), reason=f"no sandbox here: {sandbox.unavailable()}")


def in_sandbox(code: str, *, writable: list[Path] = (), timeout: float = 60) -> dict:
    """Run `code` (which prints one JSON object last) in a sandbox; returns that object."""
    argv = sandbox.wrap([sys.executable, "-c", textwrap.dedent(code)], writable=list(writable))
    done = subprocess.run(argv, capture_output=True, text=True, timeout=timeout)
    assert done.returncode == 0, done.stderr[-2000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_it_runs_as_an_unprivileged_user_that_sees_only_its_own_processes():
    seen = in_sandbox("""
        import json, os
        print(json.dumps({"uid": os.getuid(), "pids": sorted(int(p) for p in os.listdir("/proc") if p.isdigit())}))
    """)
    assert seen["uid"] == sandbox.UID
    assert max(seen["pids"]) < 10  # bwrap's init, the process itself: not the host's thousands


def test_it_sees_the_runtime_but_not_the_checkouts_lessons_solutions_or_the_tests(root):
    seen = in_sandbox(f"""
        import json, os, leaklab
        root = {str(root)!r}
        print(json.dumps({{"top": sorted(os.listdir(root)), "leaklab": leaklab.__file__,
                          "shadow": os.path.exists("/etc/shadow")}}))
    """)
    assert "notebooks" not in seen["top"] and "solutions" not in seen["top"] and "tests" not in seen["top"]
    assert seen["leaklab"].startswith(str(root / "src" / "leaklab"))
    assert not seen["shadow"]


def test_it_has_no_network_out_or_in():
    with socket.socket() as server:  # a listener of the host's, on its loopback
        server.bind(("127.0.0.1", 0))
        server.listen()
        port = server.getsockname()[1]
        seen = in_sandbox(f"""
            import json, socket
            try:
                socket.create_connection(("127.0.0.1", {port}), timeout=2)
                out = "connected"
            except OSError as exc:
                out = type(exc).__name__
            listener = socket.socket()
            listener.bind(("0.0.0.0", 0))
            listener.listen()
            print(json.dumps({{"out": out, "in_port": listener.getsockname()[1]}}))
        """)
    assert seen["out"] == "ConnectionRefusedError"
    with pytest.raises(OSError), socket.create_connection(("127.0.0.1", seen["in_port"]), timeout=2):
        pass  # its listener was in a network of its own, gone with it


def test_its_tmp_is_private_and_capped_and_only_named_folders_are_writable(tmp_path):
    (tmp_path / "mine").mkdir()
    host_file = Path("/tmp") / f"leaklab-host-{os.getpid()}"
    host_file.write_text("the host's")
    seen = in_sandbox(
        f"""
        import json, os
        open({str(tmp_path / "mine" / "note")!r}, "w").write("kept")
        try:
            open("/work-elsewhere", "w")
            other = "written"
        except OSError as exc:
            other = type(exc).__name__
        stats = os.statvfs("/tmp")
        print(json.dumps({{"tmp": os.listdir("/tmp"), "size": stats.f_blocks * stats.f_frsize, "other": other}}))
        """,
        writable=[tmp_path / "mine"],
    )
    host_file.unlink()
    assert host_file.name not in seen["tmp"] and seen["size"] <= 256 * 2**20
    assert seen["other"] in ("PermissionError", "OSError", "FileNotFoundError")
    assert (tmp_path / "mine" / "note").read_text() == "kept"


def test_nothing_it_started_outlives_it(tmp_path):
    """A double-forked child in a session of its own, as an escaping submission makes: gone with the sandbox."""
    (tmp_path / "out").mkdir()
    argv = sandbox.wrap(
        [
            sys.executable,
            "-c",
            textwrap.dedent(f"""
            import os, time
            if os.fork() == 0:
                os.setsid()
                if os.fork() == 0:
                    while True:
                        open({str(tmp_path / "out" / "alive")!r}, "w").write(str(time.time()))
                        time.sleep(0.05)
                os._exit(0)
            time.sleep(0.3)
        """),
        ],
        writable=[tmp_path / "out"],
    )
    subprocess.run(argv, timeout=60, check=True)
    stamp = (tmp_path / "out" / "alive").stat().st_mtime
    time.sleep(0.5)
    assert (tmp_path / "out" / "alive").stat().st_mtime == stamp  # nobody writes it any more


def test_isolated_runs_grade_alike_in_the_sandbox(monkeypatch):
    """The lesson's measurements do not change inside it: a fix passes and the leak is caught."""
    from answers import LEAKY, TASK_GROUP

    monkeypatch.setattr(sandbox, "_active", True)
    fixed = run_isolated(TASK_GROUP + "\n# sandboxed\n", scenario="forgotten_cancel", function="handle_request")
    fixed.require("completed_with_result", "gave_up_as_specified", "query_ran_once", "gave_up_promptly")
    fixed.require_no_leftovers()
    leaky = run_isolated(LEAKY + "\n# sandboxed\n", scenario="forgotten_cancel", function="handle_request")
    assert leaky.error is None and leaky.leftover_tasks == 20


def test_a_sandboxed_kernel_runs_cells_is_interrupted_and_sees_no_checkout(root, tmp_path):
    import nbformat
    from nbclient import NotebookClient

    from leaklab.grading.kernel import sandboxed_kernels

    cells = [
        f"import os\nprint(os.getuid(), sorted(os.listdir({str(root)!r})))",
        "while True:\n    pass",
        "print('after the interrupt')",
        "open('small.txt', 'w').write('in memory')\nprint(open('small.txt').read())",
        "open('big.bin', 'wb').write(bytes(300 << 20))",  # over the private folder's 256 MiB
    ]
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(c) for c in cells])
    client = NotebookClient(
        nb,
        kernel_name="python3",
        timeout=5,
        interrupt_on_timeout=True,
        allow_errors=True,
        shutdown_kernel="immediate",
        kernel_manager_class=sandboxed_kernels(tmp_path / "kernel"),
    )
    executed = client.execute()
    outputs = [[o.get("text") or o.get("ename") for o in cell.outputs] for cell in executed.cells]
    assert outputs[0] == [f"{sandbox.UID} ['.venv', 'src']\n"] or outputs[0] == [f"{sandbox.UID} ['src']\n"]
    assert outputs[1] == ["KeyboardInterrupt"]
    assert outputs[2] == ["after the interrupt\n"]
    assert outputs[3] == ["in memory\n"] and outputs[4] == ["OSError"]  # No space left on device
    written = {p.name for p in (tmp_path / "kernel").rglob("*")}
    assert not {"small.txt", "big.bin", "ipython", "runs"} & written  # nothing of it on the grader's disk


# As an unprivileged user the grader makes its sandbox with a user namespace of its own, not with root's
# powers: the same containment must hold. The user is made by the test and removed with it.
_AS_GRADER = """
import json, os, socket, subprocess, sys
from leaklab.grading import sandbox
from leaklab.grading.isolation import run_isolated
assert not sandbox.unavailable(), sandbox.unavailable()
code = '''
import json, os, socket
try:
    socket.create_connection(("127.0.0.1", 22), timeout=2)
    net = "connected"
except OSError as exc:
    net = type(exc).__name__
print(json.dumps({"uid": os.getuid(), "pids": [p for p in os.listdir("/proc") if p.isdigit()],
                  "top": os.listdir(ROOT), "net": net}))
'''.replace("ROOT", repr(sys.argv[1]))
seen = json.loads(subprocess.run(sandbox.wrap([sys.executable, "-c", code], writable=[]), capture_output=True,
                                 text=True, check=True).stdout)
# A tight per-user process limit, as a shared machine has: 300 tasks above what this user runs. A thread
# bomb in one sandbox must stop at its own limit (200 here), leaving the user room for the honest runs.
import resource
from pathlib import Path
mine = sum(len(os.listdir(p / "task")) for p in Path("/proc").glob("[0-9]*") if p.stat().st_uid == os.getuid())
resource.setrlimit(resource.RLIMIT_NPROC, (mine + 300, mine + 300))
bomb_code = '''
import threading, time
hold, started = threading.Event(), 0
try:
    while True:
        threading.Thread(target=hold.wait, daemon=True).start()
        started += 1
except RuntimeError:
    print(started, flush=True)
time.sleep(60)
'''
bomb = subprocess.Popen(sandbox.wrap([sys.executable, "-c", bomb_code], writable=[], tasks=200),
                        stdout=subprocess.PIPE, text=True)
bombed = int(bomb.stdout.readline())  # it holds its threads while the honest runs go on
sandbox.activate()
leaky = run_isolated(sys.argv[2], scenario="forgotten_cancel", function="handle_request")
threaded = run_isolated(sys.argv[3], scenario="forgotten_cancel", function="handle_request")
bomb.kill()
import nbformat
from nbclient import NotebookClient
from leaklab.grading.kernel import sandboxed_kernels
nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("import os; print(os.getuid())")])
ran = NotebookClient(nb, kernel_name="python3", timeout=60, shutdown_kernel="immediate",
                     kernel_manager_class=sandboxed_kernels(Path(os.environ["HOME"]) / "kernel")).execute()
print(json.dumps({**seen, "leftover_tasks": leaky.leftover_tasks, "error": leaky.error, "bombed": bombed,
                  "threaded": [threaded.error, threaded.leftover_threads, threaded.outcome.get("query_ran_once")],
                  "kernel": ran.cells[0].outputs[0].get("text")}))
"""


def test_as_an_unprivileged_user_the_sandbox_holds_the_same(root):
    import pwd

    from answers import LEAKY, TASK_GROUP_WITH_THREAD
    from users import as_user, scratch_folder, temporary_user

    with scratch_folder("leaklab-sandbox-") as home, temporary_user("llsbx", [root / "src", home / "kernel"]) as user:
        home.chmod(0o777)
        done = subprocess.run(
            as_user(user, home, sys.executable, "-c", _AS_GRADER, str(root), LEAKY, TASK_GROUP_WITH_THREAD),
            capture_output=True,
            text=True,
            timeout=120,
            cwd=home,
        )
    assert done.returncode == 0, done.stderr[-2000:]
    seen = json.loads(done.stdout.strip().splitlines()[-1])
    assert seen["uid"] == sandbox.UID and len(seen["pids"]) <= 3 and seen["net"] == "ConnectionRefusedError"
    assert "notebooks" not in seen["top"] and "solutions" not in seen["top"]
    assert seen["error"] is None and seen["leftover_tasks"] == 20  # the lesson's leak, measured as usual
    assert 150 < seen["bombed"] < 200  # the bomb's sandbox held to its own limit
    assert seen["threaded"] == [None, 0, [42, 42]]  # an honest run with threads beside it (+ the warm-up's 2)
    assert seen["kernel"] == f"{sandbox.UID}\n"  # a sandboxed kernel, reached through /proc/PID/root
    assert user not in {entry.pw_name for entry in pwd.getpwall()}  # gone again
