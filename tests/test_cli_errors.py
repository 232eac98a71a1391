"""The CLI's one error path (issue 9, "one error path for every command", "empty inputs", "noise").

Each test pins one case of issue 9 that the newcomer's path met: it asserts the exit code, that no traceback
is printed, and that the message names the thing that was wrong. Most call ``medix_r1.cli.main`` in-process
(fast); a few run the real console entry point in a subprocess where only a real process shows the behaviour
(the traceback the interpreter would print, Ctrl-C, a script's --help).
"""

from __future__ import annotations

import json
import logging
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from medix_r1 import cli
from medix_r1.cli import main
from medix_r1.errors import EXIT_INTERRUPTED, EXIT_SERVICE, EXIT_USAGE, InputError, ServiceError

REPO = Path(__file__).resolve().parents[1]


def _no_traceback(text: str) -> None:
    assert "Traceback" not in text, text


def _errors(capsys) -> str:
    captured = capsys.readouterr()
    _no_traceback(captured.out + captured.err)
    return captured.err


def _subprocess_env(**extra) -> dict:
    env = {**os.environ, "PYTHONPATH": str(REPO / "src") + os.pathsep + os.environ.get("PYTHONPATH", ""),
           "HF_HUB_OFFLINE": "1"}
    env.update(extra)
    return env


# --------------------------------------------------------------------------------------------- empty inputs
# issue 9: "`data validate` of an empty file ('OK: 0 good rows in 0 files')" exited 0
@pytest.mark.parametrize("content", ["", "\n\n  \n"], ids=["empty", "blank-lines"])
@pytest.mark.parametrize("action", ["validate", "stats", "show"])
def test_empty_file_is_an_input_error(tmp_path, capsys, content, action):
    path = tmp_path / "train.jsonl"
    path.write_text(content)
    extra = ["--out", str(tmp_path / "thumbs")] if action == "show" else []
    assert main(["data", action, str(path), *extra]) == EXIT_USAGE
    err = _errors(capsys)
    assert str(path) in err and "no rows found" in err and "fix:" in err


def test_split_with_no_rows_names_the_split(tmp_path, capsys):
    (tmp_path / "train.jsonl").write_text(json.dumps({"id": "a", "question": "q", "answer": "x"}) + "\n")
    assert main(["data", "validate", str(tmp_path), "--split", "test"]) == EXIT_USAGE
    err = _errors(capsys)
    assert "split 'test'" in err and "--split" in err


def test_split_on_a_single_file_is_refused(tmp_path, capsys):
    path = tmp_path / "one.jsonl"
    path.write_text(json.dumps({"id": "a", "question": "q", "answer": "x"}) + "\n")
    assert main(["data", "validate", str(path), "--split", "test"]) == EXIT_USAGE
    err = _errors(capsys)
    assert str(path) in err and "--split test" in err and "drop --split" in err


def test_empty_folder_is_an_input_error(tmp_path, capsys):
    assert main(["data", "validate", str(tmp_path)]) == EXIT_USAGE
    assert str(tmp_path) in _errors(capsys)


def test_show_with_only_bad_rows_says_so(tmp_path, capsys):
    path = tmp_path / "d.jsonl"
    path.write_text('{"id": "a", "question": "q"}\n')
    assert main(["data", "show", str(path), "--out", str(tmp_path / "t")]) == EXIT_USAGE
    err = _errors(capsys)
    assert "all 1 row(s) are bad" in err and "data validate" in err


# --------------------------------------------------------------------------------------------- wrong files
# issue 9: `score --input x.parquet` died with UnicodeDecodeError; the JSONL reader is shared with data
def test_binary_file_given_as_jsonl_names_file_and_line(tmp_path, capsys):
    path = tmp_path / "rows.jsonl"
    path.write_bytes(b'{"id": "a", "question": "q", "answer": "x"}\n' + bytes(range(128, 256)) + b"\n")
    assert main(["data", "validate", str(path)]) == EXIT_USAGE
    err = _errors(capsys)
    assert f"{path}:2" in err and "not UTF-8 text" in err


def test_file_that_is_not_parquet_is_named(tmp_path, capsys):
    path = tmp_path / "rows.parquet"
    path.write_text('{"id": "a"}\n')
    assert main(["data", "stats", str(path)]) == EXIT_USAGE
    err = _errors(capsys)
    assert str(path) in err and "cannot be read as Parquet" in err


def test_missing_file_is_named(tmp_path, capsys):
    missing = tmp_path / "nope" / "train.jsonl"
    assert main(["data", "validate", str(missing)]) == EXIT_USAGE
    err = _errors(capsys)
    assert str(missing) in err and "no such file" in err


# issue 9: "a template-name typo" gave a traceback
def test_template_typo_suggests_the_name(capsys):
    assert main(["data", "show", "--template", "medix-3shto"]) == EXIT_USAGE
    err = _errors(capsys)
    assert "'medix-3shto'" in err and "Did you mean 'medix-3shot'" in err


# issue 9: "an output folder that cannot be written" gave a traceback. The tests run as root, for whom
# permissions do not apply, so the folder is made unwritable by putting a file where a folder must be.
def test_output_folder_that_cannot_be_created_is_named(tmp_path, capsys):
    blocker = tmp_path / "taken"
    blocker.write_text("a file, not a folder")
    assert main(["data", "show", "--n", "1", "--out", str(blocker / "thumbs")]) == EXIT_USAGE
    captured = capsys.readouterr()
    _no_traceback(captured.err)
    assert str(blocker) in captured.err and "fix:" in captured.err
    assert captured.out == ""  # found before any prompt was rendered


# --------------------------------------------------------------------------------------------- run_command
def _run(func, *, verbose=0):
    import argparse

    return cli.run_command(func, argparse.Namespace(), verbose=verbose)


def test_library_errors_map_to_their_exit_codes(capsys):
    def input_error(_args):
        raise InputError("column 'problem' is missing", where="d.parquet", fix="rename the column")

    def service_error(_args):
        raise ServiceError("the judge at http://127.0.0.1:9/v1 refused the connection")

    assert _run(input_error) == EXIT_USAGE
    assert _errors(capsys) == "error: d.parquet: column 'problem' is missing\n  fix: rename the column\n"
    assert _run(service_error) == EXIT_SERVICE
    assert "127.0.0.1:9" in _errors(capsys)


def test_every_library_error_class_is_a_medix_error_with_its_builtin_base():
    """The classes other modules define keep their builtin base (``except ValueError`` still works) and
    carry the exit code of their kind."""
    from medix_r1.data.loaders import DataError
    from medix_r1.errors import BudgetExceeded, MedixError, UsageError
    from medix_r1.eval.rundir import ErrorBudgetExceeded, RunMismatch
    from medix_r1.eval.sources import DataUnavailable
    from medix_r1.eval.taskspec import TaskConfigError
    from medix_r1.judge.base import BackendError, JudgeErrorBudgetExceeded
    from medix_r1.models.loading import PolicyNotFoundError
    from medix_r1.registry import UnknownNameError
    from medix_r1.train.recipe import RecipeError

    expected = {RecipeError: (UsageError, ValueError), TaskConfigError: (UsageError, ValueError),
                UnknownNameError: (UsageError, KeyError), DataError: (InputError, ValueError),
                DataUnavailable: (InputError, RuntimeError), PolicyNotFoundError: (InputError, FileNotFoundError),
                BackendError: (ServiceError, RuntimeError), JudgeErrorBudgetExceeded: (BudgetExceeded,),
                ErrorBudgetExceeded: (BudgetExceeded,), RunMismatch: (UsageError,)}
    for cls, bases in expected.items():
        assert issubclass(cls, MedixError) and all(issubclass(cls, b) for b in bases), cls
    assert ErrorBudgetExceeded("x").exit_code == JudgeErrorBudgetExceeded("x").exit_code == EXIT_SERVICE
    assert PolicyNotFoundError("x").exit_code == EXIT_USAGE  # issue 9: a missing eval model exited 3


def test_errors_survive_pickling_across_processes():
    import pickle

    from medix_r1.data.schema import SampleError
    from medix_r1.eval.taskspec import TaskConfigError

    for err in (SampleError("answer", "missing"), TaskConfigError("t.yaml", "source", "unknown key"),
                InputError("bad", where="f.jsonl:3", fix="fix it")):
        back = pickle.loads(pickle.dumps(err))
        assert type(back) is type(err) and str(back) == str(err)


def test_os_error_is_one_message_and_exit_2(capsys):
    def unwritable(_args):
        raise PermissionError(13, "Permission denied", "/runs/out")

    assert _run(unwritable) == EXIT_USAGE
    err = _errors(capsys)
    assert err.startswith("error: /runs/out: Permission denied") and "folder you can write to" in err


def test_unexpected_error_is_one_line_without_v_and_a_traceback_with_it(capsys, caplog):
    def bug(_args):
        raise TypeError("unsupported operand type(s) for %: 'int' and 'str'")

    assert _run(bug) == 1
    err = _errors(capsys)
    assert "unexpected TypeError" in err and "rerun with -v" in err
    with caplog.at_level(logging.ERROR, logger="medix_r1"):
        assert _run(bug, verbose=1) == 1
    assert any(r.exc_info and r.exc_info[0] is TypeError for r in caplog.records)


def test_keyboard_interrupt_exits_130_and_says_work_is_kept(capsys):
    def interrupted(_args):
        raise KeyboardInterrupt

    assert _run(interrupted) == EXIT_INTERRUPTED
    assert "finished work is kept; rerun the same command to continue" in _errors(capsys)


# --------------------------------------------------------------------------------------------- verbosity
# issue 9: "-v works only before the subcommand, and -vv adds nothing"; "INFO is the default"
@pytest.mark.parametrize("argv, level", [
    (["data", "stats"], logging.WARNING),
    (["-v", "data", "stats"], logging.INFO),
    (["data", "stats", "-v"], logging.INFO),
    (["data", "stats", "-vv"], logging.DEBUG),
    (["-v", "data", "stats", "-v"], logging.DEBUG),
])
def test_verbosity_before_or_after_the_subcommand(monkeypatch, capsys, argv, level):
    import medix_r1.commands.data as data_cmd

    seen = []
    monkeypatch.setattr(data_cmd, "cmd_stats", lambda args: seen.append(
        (logging.getLogger("medix_r1.data").getEffectiveLevel(), args.verbose)) or 0)
    before = logging.getLogger("medix_r1").level
    assert main(argv) == 0
    assert seen == [(level, argv.count("-v") + 2 * argv.count("-vv"))]  # commands see the total count too
    assert logging.getLogger("medix_r1").level == before  # in-process callers get their level back


# --------------------------------------------------------------------------------------------- hub probe
# issue 9: "offline hub lookups retry for about 27 s with 10 warning lines" (the plain CLI did not set
# HF_HUB_OFFLINE). The probe is tried against 127.0.0.1 only: a closed port, and a listening one.
def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_unreachable_hub_sets_offline_once_and_quickly(monkeypatch, caplog):
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.setenv("HF_ENDPOINT", f"http://127.0.0.1:{_closed_port()}")
    start = time.monotonic()
    with caplog.at_level(logging.WARNING, logger="medix_r1"):
        assert cli.ensure_hub_reachable_or_offline() is True
    assert time.monotonic() - start < cli.HUB_PROBE_TIMEOUT_S + 0.5
    assert os.environ["HF_HUB_OFFLINE"] == "1"
    warnings = [r for r in caplog.records if "cannot be reached" in r.getMessage()]
    assert len(warnings) == 1 and "127.0.0.1" in warnings[0].getMessage()
    # once set, the probe is not repeated and nothing more is said
    caplog.clear()
    assert cli.ensure_hub_reachable_or_offline() is True
    assert not caplog.records


def test_reachable_hub_stays_online(monkeypatch):
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen()
        monkeypatch.setenv("HF_ENDPOINT", f"http://127.0.0.1:{server.getsockname()[1]}")
        assert cli.ensure_hub_reachable_or_offline() is False
    assert "HF_HUB_OFFLINE" not in os.environ


def test_user_setting_wins_without_a_probe(monkeypatch):
    monkeypatch.setattr(cli, "hub_reachable", lambda *a, **k: pytest.fail("probed although HF_HUB_OFFLINE is set"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "0")
    assert cli.ensure_hub_reachable_or_offline() is False
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    assert cli.ensure_hub_reachable_or_offline() is True


# --------------------------------------------------------------------------------------------- real processes
def test_error_in_a_real_process_has_no_traceback_and_exit_2(tmp_path):
    empty = tmp_path / "empty.jsonl"
    empty.write_text("")
    proc = subprocess.run([sys.executable, "-m", "medix_r1.cli", "data", "validate", str(empty)],
                          check=False, capture_output=True, text=True, env=_subprocess_env(), timeout=120)
    assert proc.returncode == EXIT_USAGE
    _no_traceback(proc.stdout + proc.stderr)
    assert proc.stderr.startswith(f"error: {empty}: no rows found")


# issue 9: Ctrl-C gave 104-116 lines of traceback. The data file is a FIFO nobody writes to, so the command
# is reliably blocked reading it when SIGINT arrives.
def test_ctrl_c_in_a_real_process_exits_130_without_traceback(tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    os.mkfifo(data / "train.jsonl")
    proc = subprocess.Popen([sys.executable, "-m", "medix_r1.cli", "data", "validate", str(data)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=_subprocess_env())
    try:
        time.sleep(3)  # imports, then blocked in open()
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == EXIT_INTERRUPTED
    _no_traceback(out + err)
    assert "finished work is kept" in err


# issue 9: "`python -m medix_r1.testing.demo_completions --help` writes a file named `--help`"
def test_demo_completions_help_writes_nothing(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "medix_r1.testing.demo_completions", "--help"], cwd=tmp_path,
                          check=False, capture_output=True, text=True, env=_subprocess_env(), timeout=120)
    assert proc.returncode == 0 and "usage:" in proc.stdout
    assert list(tmp_path.iterdir()) == []


def test_demo_completions_writes_the_named_file(tmp_path):
    from medix_r1.testing.demo_completions import main as demo_main

    out = tmp_path / "c.jsonl"
    assert demo_main([str(out), "--limit", "5"]) == 0
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert len(rows) == 5 and {r["kind"] for r in rows} == {"right", "wrong", "malformed", "no-reasoning",
                                                            "injection"}


def test_ctrl_c_in_train_says_to_resume(capsys):
    import argparse

    def interrupted(_args):
        raise KeyboardInterrupt

    assert cli.run_command(interrupted, argparse.Namespace(command="train")) == EXIT_INTERRUPTED
    err = _errors(capsys)
    assert "finished work is kept" in err and "--resume" in err


def test_behind_a_proxy_the_proxy_is_probed(monkeypatch):
    """huggingface_hub reaches the hub through HTTPS_PROXY: a direct connection failing says nothing then."""
    for var in ("https_proxy", "all_proxy", "ALL_PROXY"):
        monkeypatch.delenv(var, raising=False)
    with socket.socket() as proxy:
        proxy.bind(("127.0.0.1", 0))
        proxy.listen()
        monkeypatch.setenv("HTTPS_PROXY", f"http://127.0.0.1:{proxy.getsockname()[1]}")
        # a hub host that cannot be resolved: only the proxy makes it reachable
        assert cli.hub_reachable("https://hub.invalid") is True
    monkeypatch.setenv("HTTPS_PROXY", f"http://127.0.0.1:{_closed_port()}")
    assert cli.hub_reachable("https://hub.invalid") is False


def test_every_command_help_renders(capsys):
    """`--help` of every (sub)command formats: a stray % in a help text or a bad metavar breaks only there."""
    import argparse

    def walk(parser, name):
        yield name, parser
        for action in parser._actions:
            if isinstance(action, argparse._SubParsersAction):
                for sub, subparser in action.choices.items():
                    yield from walk(subparser, f"{name} {sub}")

    names = []
    for name, parser in walk(cli.build_parser(), "medix-r1"):
        text = parser.format_help()
        assert text.startswith("usage: ") and "-v, --verbose" in text, name
        names.append(name)
    assert {"medix-r1 data validate", "medix-r1 train", "medix-r1 eval run"} <= set(names)
