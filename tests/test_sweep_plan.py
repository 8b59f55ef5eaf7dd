"""scaleadvise/sweep/plan.py: run folders, skip/resume/fresh decisions, the sweep's identity."""

import json
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from scaleadvise.errors import UserError
from scaleadvise.sweep.grid import parse_grid
from scaleadvise.sweep.plan import (Identity, PlannedRun, Run, check_identity, check_script_args, decide, make_plan,
                                    parse_run_name, read_manifest, run_command)


def test_folder_names_follow_the_contract():
    assert Run(64, 4, 2.0 ** -10, 1).name == "w64_d4_lr0.000976562_s1"
    assert Run(64, None, 1e-3, 0).name == "w64_lr0.001_s0"  # depth not swept: the script's own


@given(w=st.integers(1, 10 ** 6), d=st.one_of(st.none(), st.integers(1, 1000)),
       lr=st.floats(1e-12, 1e3), s=st.integers(0, 10 ** 6))
def test_names_parse_back(w, d, lr, s):
    back = parse_run_name(Run(w, d, lr, s).name)
    assert (back.width, back.depth, back.seed) == (w, d, s)
    assert f"{back.lr:.6g}" == f"{lr:.6g}"


@pytest.mark.parametrize("name", ["sweeps.csv", "w64_lr_s0", "w64_lrabc_s0", "x64_lr0.1_s0", "w64_lr0.1_s0_extra"])
def test_other_names_are_not_runs(name):
    assert parse_run_name(name) is None


def _write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


@pytest.mark.parametrize("files, action", [
    ({}, "fresh"),
    ({"run.log": "x"}, "fresh"),  # a failed start: nothing to resume from
    ({"checkpoint.pt": "x"}, "resume"),
    ({"checkpoint.pt": "x", "result.json": '{"status": "stopped"}'}, "resume"),
    ({"result.json": '{"status": "stopped"}'}, "fresh"),
    ({"result.json": '{"status": "done"}'}, "skip"),
    ({"result.json": '{"status": "diverged"}', "checkpoint.pt": "x"}, "skip"),
    ({"result.json": '{"status": "done"', "checkpoint.pt": "x"}, "resume"),  # unreadable: not finished
    ({"result.json": '["done"]'}, "fresh"),
    ({"result.json": '{"status": "failed"}'}, "fresh"),
])
def test_decisions_from_the_run_folder(tmp_path, files, action):
    for name, text in files.items():
        _write(tmp_path / "run" / name, text)
    (tmp_path / "run").mkdir(exist_ok=True)
    assert decide(tmp_path / "run") == action


def test_make_plan(tmp_path):
    grid = parse_grid("32,64", "1e-3,2e-3", "0")
    _write(tmp_path / "w32_lr0.001_s0" / "result.json", '{"status": "done"}')
    _write(tmp_path / "w64_lr0.002_s0" / "checkpoint.pt", "x")
    plan = make_plan(grid, tmp_path)
    assert [(p.run.name, p.action) for p in plan] == [
        ("w32_lr0.001_s0", "skip"), ("w32_lr0.002_s0", "fresh"), ("w64_lr0.001_s0", "fresh"),
        ("w64_lr0.002_s0", "resume")]
    assert plan[0].run_dir == tmp_path / "w32_lr0.001_s0"


IDENT = Identity("ab" * 32, 300, ("--data", "x.bin"), False)


def _manifest(out: Path, ident: Identity = IDENT) -> None:
    _write(out / "sweep.json", json.dumps(ident.to_dict(Path("/x/train.py"))))


def test_identity_round_trips_and_allows_another_grid(tmp_path):
    assert check_identity(tmp_path, IDENT) is False  # empty folder: a new sweep
    _manifest(tmp_path)
    assert read_manifest(tmp_path) == IDENT
    assert check_identity(tmp_path, IDENT) is True


@pytest.mark.parametrize("other, match", [
    (Identity("cd" * 32, 300, ("--data", "x.bin"), False), "the script's content differs"),
    (Identity("ab" * 32, 500, ("--data", "x.bin"), False), "--steps 300 there, 500 here"),
    (Identity("ab" * 32, None, ("--data", "x.bin"), False), "--steps 300 there, (script default) here"),
    (Identity("ab" * 32, 300, ("--data", "y.bin"), False), "script args"),
    (Identity("ab" * 32, 300, ("--data", "x.bin"), True), "depth is not swept there"),
])
def test_runs_that_would_mix_are_refused(tmp_path, other, match):
    _manifest(tmp_path)
    with pytest.raises(UserError, match="holds runs of another sweep") as e:
        check_identity(tmp_path, other)
    assert match in str(e.value) and "\n" not in str(e.value)


def test_a_folder_that_is_not_a_sweep_is_refused(tmp_path):
    (tmp_path / "notes.txt").write_text("mine")
    with pytest.raises(UserError, match="not empty and not a sweep folder"):
        check_identity(tmp_path, IDENT)


@pytest.mark.parametrize("text", ["", "{", "[]", '{"steps": 1}', '{"script_sha256": "x", "steps": "many", '
                                  '"script_args": [], "depth_axis": false}'])
def test_a_broken_manifest_is_one_line(tmp_path, text):
    (tmp_path / "sweep.json").write_text(text)
    with pytest.raises(UserError, match="cannot read sweep.json"):
        check_identity(tmp_path, IDENT)


@pytest.mark.parametrize("args, depth_axis, bad", [
    (["--data", "x.bin", "--batch-size", "8"], False, None),
    (["--depth", "4"], False, None),  # depth not swept: the user may fix it
    (["--device", "cuda", "--lr-warmup", "10"], False, None),
    (["--depth", "4"], True, "--depths"),
    (["--width", "64"], False, "--widths"),
    (["--lr=0.1"], False, "--lrs"),
    (["--step", "100"], False, "--steps"),  # argparse would take the prefix for --steps
    (["--seed", "1"], False, "--seeds"),
    (["--out", "x"], False, "--out"),
    (["--threads", "4"], False, "--threads-per-run"),
    (["--resume"], False, "a rerun resumes"),
])
def test_script_args_cannot_set_what_the_sweep_sets(args, depth_axis, bad):
    if bad is None:
        check_script_args(args, depth_axis)
        return
    with pytest.raises(UserError, match="script args") as e:
        check_script_args(args, depth_axis)
    assert bad in str(e.value)


def test_run_command():
    run = Run(64, 4, 2.0 ** -10, 1)
    p = PlannedRun(run, "resume", Path("/s/w64_d4_lr0.000976562_s1"))
    cmd = run_command(Path("/x/train.py"), p, 300, 2, "cpu", ["--data", "t.bin"])
    assert cmd == ["/x/train.py", "--out", "/s/w64_d4_lr0.000976562_s1", "--width", "64", "--depth", "4",
                   "--lr", "0.0009765625", "--seed", "1", "--steps", "300", "--resume", "--threads", "2",
                   "--device", "cpu", "--data", "t.bin"]
    fresh = run_command(Path("/x/train.py"), PlannedRun(Run(64, None, 0.1, 0), "fresh", Path("/s/r")), None, 1,
                        None, [])
    assert fresh == ["/x/train.py", "--out", "/s/r", "--width", "64", "--lr", "0.1", "--seed", "0", "--threads", "1"]
    assert float(cmd[cmd.index("--lr") + 1]) == run.lr  # the exact LR, not the folder's 6 digits
