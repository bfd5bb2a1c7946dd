"""BackgroundTask (off the GUI thread, progress, cancel, errors) and the isolated() decorator."""

import threading
import time

import pytest

from phy_plugins.core.phy_safety import FAILURES, isolated
from phy_plugins.core.tasks import BackgroundTask


@pytest.fixture
def gui(qtbot, tmp_path):
    """A real (empty) phy GUI window, for its status bar."""
    from phy.gui import GUI

    g = GUI(name="PhyPluginsTaskTestGUI", config_dir=tmp_path)
    yield g
    g.close()


def test_result_progress_and_thread(qtbot, gui):
    main = threading.get_ident()
    seen = {}

    def work(n, progress):
        seen["thread"] = threading.get_ident()
        for i in range(n):
            progress.update(i + 1, n, "step")
        return n * 2

    progress_calls, results = [], []
    task = BackgroundTask(work, 3, on_result=results.append, gui=gui, name="demo task",
                          on_progress=lambda d, t, s: progress_calls.append((d, t, threading.get_ident())))
    assert task.wait(10)
    assert results == [6] and task.result == 6
    assert seen["thread"] != main
    assert [c[:2] for c in progress_calls] == [(1, 3), (2, 3), (3, 3)]
    assert all(c[2] == main for c in progress_calls)  # callbacks on the GUI thread
    assert gui.status_message == "demo task: step 100%"


def test_errors_are_reported_not_swallowed(qtbot, caplog, gui):
    errors = []

    def boom(progress):
        raise ZeroDivisionError("bad input 42")

    task = BackgroundTask(boom, on_error=lambda e, tb: errors.append((e, tb)), gui=gui, name="fit")
    task.wait(10)
    assert isinstance(errors[0][0], ZeroDivisionError) and "bad input 42" in errors[0][1]
    assert "fit failed: bad input 42" in gui.status_message
    assert "ZeroDivisionError" in caplog.text


def test_cancel(qtbot):
    started = threading.Event()

    def slow(progress):
        started.set()
        for _ in range(500):
            progress.check()
            time.sleep(0.01)
        return "finished"

    results, errors = [], []
    task = BackgroundTask(slow, on_result=results.append, on_error=lambda e, tb: errors.append(e))
    started.wait(5)
    task.cancel()
    assert task.wait(10)
    assert results == [] and type(errors[0]).__name__ == "TaskCancelled"


def test_isolated_logs_and_shows_instead_of_raising(caplog, gui):

    @isolated
    def on_gui_ready(sender, gui_):
        raise KeyError("missing column")

    assert on_gui_ready(object(), gui) is None
    assert "on_gui_ready failed: KeyError" in gui.status_message
    assert "missing column" in caplog.text
    assert FAILURES[-1][0].endswith("on_gui_ready")

    @isolated
    def fine(x):
        return x + 1

    assert fine(1) == 2


@pytest.mark.parametrize("n", [1, 3])
def test_many_tasks_in_parallel(qtbot, n):
    tasks = [BackgroundTask(lambda i, progress: i * i, i) for i in range(n)]
    assert all(t.wait(10) for t in tasks)
    assert [t.result for t in tasks] == [i * i for i in range(n)]
