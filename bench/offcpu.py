#!/usr/bin/env python3
"""Where a push's processes wait: on a CPU, for a CPU, or blocked, and blocked on what.

    python3 bench/offcpu.py [--tasks 2000] [--rounds 21] [--bin TASKHOOK]

Needs `perf` and the right to record scheduler events (root, or kernel.perf_event_paranoid
at -1). Makes one packed repository of `--tasks` tasks, as bench/run.py's push comparison
does, and pushes a one-line change to one formula `--rounds` times per variant (no hooks, two
no-op shell hooks, taskhook's hooks as `taskhook install` writes them), in turn, each push
under `perf sched record -g`. `perf sched timehist` then says, for every time a task left a
CPU, how long it had waited before (blocked, or runnable without a CPU) and where in the
kernel it stopped: the time a task spent blocked is put down to where it stopped before it.
Prints per variant the medians per push of each process group's time on a CPU, runnable
without one, and blocked, by cause (a directory's or an inode's block read from the disk, a
freed block's discard, the process's own threads, a pipe, a child...).

bench/run.py times the pushes; this says what the time that is not the hooks' own work is.
The causes are the machine's: on the 2-core VM of docs/BENCHMARKS.md, files not touched for
a minute leave the page cache (DAMON's page-out), and ext4 is mounted with `discard`.
"""
import argparse, collections, os, re, shutil, statistics, subprocess, tempfile

import run as bench

LINE = re.compile(r"^\s*([\d.]+)\s+\[(\d+)\]\s+(.*?)\[(-?\d+)(?:/(\d+))?\]\s+"
                  r"([\d.]+)\s+([\d.]+)\s+([\d.]+)\s*(.*)$")
# Kernel threads and the tools that take part in every variant alike.
NOT_THE_PUSH = re.compile(r"^(<idle>|kworker|ksoftirqd|migration|rcu|kdamond|jbd2|perf|:-1$)")
GROUPS = ("pre-receive", "post-receive")
GIT = "git and the rest of the push"
# The causes that are the file system's, shown for git's processes too.
DISK = ("discard", "disk", "journal")


def cause(stack):
    """Why a task left the CPU, from the kernel stack it left at (innermost first)."""
    if not stack:
        return "preempted or yielded"
    checks = [
        ("blkdev_issue_discard", "a freed block's discard (synchronous)"),
        ("__ext4_find_entry", "a directory block read from the disk"),
        ("ext4_get_inode_loc", "an inode block read from the disk"),
        ("io_schedule", "other disk reads and writes"),
        ("jbd2", "the file system's journal"),
        ("futex", "its own threads"),
        ("pipe_read", "reading a pipe"),
        ("pipe_write", "writing a pipe"),
        ("wait4", "waiting for a child"),
        ("do_wait", "waiting for a child"),
        ("poll", "poll"),
        ("do_exit", "exiting"),
        ("exit_to_user_mode", "preempted or yielded"),
        ("cond_resched", "preempted or yielded"),
    ]
    for needle, name in checks:
        if needle in stack:
            return name
    return "other: " + stack.split(" <- ")[0]


def timehist(data):
    """(process name, pid, tid, waited, sched delay, ran, stack) per switch, from a recording."""
    out = subprocess.run(["perf", "sched", "timehist", "-i", data, "-g", "--max-stack", "24"],
                         capture_output=True, text=True, check=True).stdout
    rows = []
    for line in out.splitlines():
        m = LINE.match(line)
        if not m:
            continue
        name, tid, pid = m.group(3).strip(), int(m.group(4)), m.group(5)
        rows.append((name, int(pid) if pid else tid, tid, float(m.group(6)),
                     float(m.group(7)), float(m.group(8)), m.group(9).strip()))
    return rows


def one_push(work, data):
    """Pushes under `perf sched record`; per process group, ms on a CPU, runnable, and blocked
    by cause."""
    p = subprocess.run(["perf", "sched", "record", "-g", "-o", data, "--",
                        "git", "push", "-q", "origin", "master"],
                       cwd=work, env=bench.ENV, stdout=subprocess.DEVNULL,
                       stderr=subprocess.PIPE, text=True)
    if p.returncode != 0:
        raise SystemExit("perf sched record, or the push under it, failed (recording scheduler "
                         "events needs root or kernel.perf_event_paranoid=-1):\n" + p.stderr[-2000:])
    rows = timehist(data)
    hooks = {pid: name for name, pid, tid, *_ in rows if name in GROUPS and pid == tid}
    totals = collections.defaultdict(float)
    last_stack = {}
    for name, pid, tid, waited, delay, ran, stack in rows:
        group = hooks.get(pid)
        if group is None:
            if NOT_THE_PUSH.match(name):
                continue
            group = GIT
        if tid in last_stack:
            totals[(group, "blocked: " + cause(last_stack[tid]))] += waited
        totals[(group, "runnable, without a CPU")] += delay
        totals[(group, "on a CPU")] += ran
        last_stack[tid] = stack
    return totals


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tasks", type=int, default=2000)
    ap.add_argument("--rounds", type=int, default=21)
    ap.add_argument("--bin", default=bench.BIN)
    a = ap.parse_args()
    if not shutil.which("perf"):
        raise SystemExit("offcpu.py needs perf (linux-perf)")
    bench.BIN = os.path.abspath(a.bin)
    bench.from_disk(bench.BIN)
    base = tempfile.mkdtemp(prefix="taskhook-offcpu-")
    try:
        variants = ["none", "noop", "taskhook"]
        work, swap = bench.shared_repo(base, "offcpu", a.tasks, variants, None)
        data = os.path.join(base, "sched.data")
        per = {v: collections.defaultdict(list) for v in variants}
        keys = {v: [] for v in variants}
        for r in range(-3, a.rounds):
            for v in variants:
                swap(v)
                bench.commit_change(work, f"{r} {v}")
                totals = one_push(work, data)
                if r < 0:
                    continue
                for k in keys[v]:
                    per[v][k].append(totals.get(k, 0.0))
                for k, ms in totals.items():
                    if k not in per[v]:
                        keys[v].append(k)
                        # Earlier rounds without this cause had none of it.
                        per[v][k] = [0.0] * r + [ms]
        print(f"{a.tasks} tasks, {a.rounds} pushes per variant under `perf sched record`: ms per "
              "push, median (mean); of git's processes only the time on a CPU or waiting for "
              "one and the waits on the file system (the rest is git waiting for its children)\n")
        print("| variant | process | time | ms |")
        print("|---|---|---|---|")
        for v in variants:
            for group, what in sorted(keys[v], key=lambda k: (k[0] != GIT, k[0], k[1])):
                xs = per[v][(group, what)]
                # git waits for its children and pipes, which are the rest of the push.
                waiting = what.startswith("blocked: ") and not any(d in what for d in DISK)
                if statistics.mean(xs) < 0.01 or (group == GIT and waiting):
                    continue
                print(f"| {v} | {group} | {what} | {statistics.median(xs):.2f} "
                      f"({statistics.mean(xs):.2f}) |")
    finally:
        shutil.rmtree(base, ignore_errors=True)


if __name__ == "__main__":
    main()
