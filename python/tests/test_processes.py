"""Across processes: RunBusy while another process writes a run; a writer killed with SIGKILL keeps
every acknowledged step and leaves a store that verifies clean."""

import multiprocessing as mp
import os
import signal
import subprocess
import sys
import textwrap

import pytest

import forklog


def _hold(path, ready, release):
    import forklog as fl

    run = fl.Store(path).init("held")
    run.log({"x": 1.0})
    ready.set()
    release.wait(30)
    run.finish()


def test_run_busy_from_another_process(tmp_path):
    ctx = mp.get_context("spawn")
    ready, release = ctx.Event(), ctx.Event()
    p = ctx.Process(target=_hold, args=(str(tmp_path), ready, release))
    p.start()
    try:
        assert ready.wait(60)
        store = forklog.Store(tmp_path)
        with pytest.raises(forklog.RunBusy) as e:
            store.init("held", resume="must")
        assert e.value.run == "held"
        with pytest.raises(forklog.RunBusy):
            store.delete("held")
        with pytest.raises(forklog.RunBusy):
            store.init("held", resume_from="held?_step=0")
        assert store.info("held").state == "running"
    finally:
        release.set()
        p.join(60)
    assert p.exitcode == 0
    store = forklog.Store(tmp_path)
    with store.init("held", resume="must") as run:
        assert run.step == 1


WRITER = textwrap.dedent(
    """
    import sys, forklog
    store = forklog.Store(sys.argv[1], sync=sys.argv[2] if sys.argv[2] == "always" else int(sys.argv[2]))
    run = store.init("victim")
    i = 0
    while True:
        run.log({"x": float(i), "i": i})
        if sys.argv[2] != "always" and i % 50 == 49:
            run.sync()
        if sys.argv[2] == "always" or i % 50 == 49:
            print(i, flush=True)   # acknowledged: durable
        i += 1
    """
)


@pytest.mark.parametrize("sync", ["always", "1000"])
def test_sigkill_keeps_acked_steps(tmp_path, sync):
    proc = subprocess.Popen([sys.executable, "-c", WRITER, str(tmp_path), sync], stdout=subprocess.PIPE, text=True)
    acked = -1
    try:
        for line in proc.stdout:
            acked = int(line)
            if acked >= 300:
                break
    finally:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
    assert acked >= 300
    store = forklog.Store(tmp_path)
    assert store.verify().clean
    rows = list(store.history("victim"))
    assert len(rows) >= acked + 1
    assert [r["i"] for r in rows] == list(range(len(rows)))
    assert store.info("victim").state == "crashed"
    with store.init("victim", resume="must") as run:
        assert run.step == len(rows)
        run.log({"x": -1.0})
    assert store.verify().clean
    assert store.info("victim").state == "finished"


def test_open_runs_are_finished_at_exit(tmp_path):
    code = textwrap.dedent(
        """
        import sys, forklog
        store = forklog.Store(sys.argv[1])
        run = store.init("open")
        for i in range(10):
            run.log({"x": float(i)})
        if sys.argv[2] == "raise":
            raise SystemExit(3)
        """
    )
    for mode in ("ok", "raise"):
        subprocess.run([sys.executable, "-c", code, str(tmp_path / mode), mode], check=False)
        store = forklog.Store(tmp_path / mode)
        assert [r["x"] for r in store.history("open")] == [float(i) for i in range(10)]
        assert store.info("open").state == "finished"
