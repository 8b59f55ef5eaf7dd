"""A stand-in training script that keeps the one-run contract (BRIEF.md) in a few
milliseconds per step, for the tests of `scaleadvise sweep` (tests/test_sweep*.py).

    python sweep_fake_train.py --out DIR [--width W] [--depth D] [--lr LR] [--seed S] [--steps N]
                               [--resume] [--threads T] [--device D]
    behaviour switches: --step-seconds S (slow), --diverge-above LR (exit 1), --refuse (exit 2),
                        --crash-width W (exit 3), --no-result (exit 0, no result.json)

Its final loss is 2 + 0.05 (log2 lr + 8)^2 + 16/width: every width's optimum is lr = 2^-8
(the LR transfers), and wider is better. It writes DIR/metrics.csv (one row per step,
never duplicated by a resume), DIR/checkpoint.pt (JSON, atomically, every step),
DIR/result.json (atomically, at the end), and appends one line per process start to
DIR/starts.log so tests can count starts and resumes. SIGTERM/SIGINT: checkpoint,
result "stopped", one line, exit 143/130.
"""

import argparse
import json
import math
import os
import signal
import sys
import time


class _Parser(argparse.ArgumentParser):
    def error(self, message):  # the contract: one line, exit 2
        sys.stderr.write(f"fake_train: error: {message}\n")
        sys.exit(2)


def write_json(path, doc):
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        json.dump(doc, f)
    os.replace(tmp, path)


def main():
    p = _Parser()
    for flag, kind, default in (("--out", str, "run"), ("--width", int, 64), ("--depth", int, 2),
                                ("--lr", float, 2.0 ** -8), ("--seed", int, 0), ("--steps", int, 20),
                                ("--threads", int, 1), ("--device", str, "cpu"), ("--step-seconds", float, 0.0),
                                ("--diverge-above", float, math.inf), ("--crash-width", int, -1)):
        p.add_argument(flag, type=kind, default=default)
    for flag in ("--resume", "--refuse", "--no-result"):
        p.add_argument(flag, action="store_true")
    a = p.parse_args()
    if a.refuse:
        sys.stderr.write("fake_train: error: --refuse: this script refuses every input\n")
        return 2
    ckpt, result_path = os.path.join(a.out, "checkpoint.pt"), os.path.join(a.out, "result.json")
    if a.resume and not os.path.exists(ckpt):
        sys.stderr.write(f"fake_train: error: --resume: no checkpoint in {a.out}\n")
        return 2
    os.makedirs(a.out, exist_ok=True)
    start = json.load(open(ckpt))["step"] if a.resume else 0
    with open(os.path.join(a.out, "starts.log"), "a") as f:
        f.write(f"{'resume' if a.resume else 'fresh'} {start}\n")
    metrics = os.path.join(a.out, "metrics.csv")
    rows = open(metrics).read().splitlines()[: start + 1] if a.resume else ["step,loss"]
    with open(metrics, "w") as f:  # truncate to the checkpoint: a resume never duplicates a row
        f.write("".join(r + "\n" for r in rows))

    stop = []
    signal.signal(signal.SIGTERM, lambda s, _: stop.append(s))
    signal.signal(signal.SIGINT, lambda s, _: stop.append(s))
    final = 2 + 0.05 * (math.log2(a.lr) + 8) ** 2 + 16 / a.width
    t0, loss, status = time.time(), final, "done"
    step = start
    while step < a.steps:
        if stop:
            write_json(ckpt, {"step": step})
            write_json(result_path, result(a, "stopped", step, loss, t0))
            sys.stderr.write(f"fake_train: stopped at step {step}; checkpoint saved\n")
            return 128 + stop[0]
        if a.width == a.crash_width:
            raise RuntimeError(f"width {a.width} crashes")
        time.sleep(a.step_seconds)
        step += 1
        loss = math.nan if a.lr > a.diverge_above else final + 1.0 / step
        with open(metrics, "a") as f:
            f.write(f"{step},{loss}\n")
        write_json(ckpt, {"step": step})
        if math.isnan(loss):
            status = "diverged"
            break
    if a.no_result:
        return 0
    write_json(result_path, result(a, status, step, loss, t0))
    return 1 if status == "diverged" else 0


def result(a, status, step, loss, t0):
    return {"status": status, "step": step, "steps": a.steps, "width": a.width, "depth": a.depth, "lr": a.lr,
            "seed": a.seed, "train_loss": loss, "eval_loss": loss if status == "done" else None,
            "parameterization": "mup", "optimizer": "adam", "seconds": time.time() - t0}


if __name__ == "__main__":
    sys.exit(main())
