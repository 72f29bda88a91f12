"""`python -m forklog` runs the command-line tool with the binary's contract."""

import json
import subprocess
import sys

import forklog


def cli(*args, env=None):
    return subprocess.run([sys.executable, "-m", "forklog", *args], capture_output=True, text=True, env=env)


def test_help_and_version():
    out = cli("--help")
    assert out.returncode == 0 and "fork" in out.stdout
    assert cli("--version").returncode == 0


def test_errors_are_one_line_and_exit_2(tmp_path):
    out = cli("--store", str(tmp_path / "none"), "runs")
    assert out.returncode == 2
    assert out.stderr.startswith("error: ") and out.stderr.count("\n") == 1
    out = cli("no-such-command")
    assert out.returncode == 2 and out.stderr.startswith("error: ")
    assert cli().returncode == 2


def test_reads_what_python_wrote(tmp_path):
    store = forklog.Store(tmp_path)
    with store.init("base", config={"lr": 0.1}) as run:
        for i in range(10):
            run.log({"loss": float(i)})
    out = cli("--store", str(tmp_path), "history", "base")
    assert out.returncode == 0, out.stderr
    lines = [json.loads(x) for x in out.stdout.splitlines()]
    assert [x["loss"] for x in lines] == [float(i) for i in range(10)]
    assert cli("--store", str(tmp_path), "fork", "f", "base?_step=4").returncode == 0
    assert [r["_step"] for r in store.history("f")] == [0, 1, 2, 3, 4]
    out = cli("--store", str(tmp_path), "verify")
    assert out.returncode == 0, out.stderr
    out = cli("--store", str(tmp_path), "runs", "--json")
    assert [json.loads(x)["id"] for x in out.stdout.splitlines()] == ["base", "f"]
