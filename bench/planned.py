#!/usr/bin/env python3
"""`taskhook plan`, binary against binary, each step as `TASKHOOK_TRACE=1` reports it.

    python3 bench/planned.py [--tasks 2000] [--rounds 31] TASKHOOK [TASKHOOK...]

Makes a packed repository of `--tasks` tasks with its manifest (every task runs on
`koji_build`), serves it with `git daemon --enable=upload-archive` on 127.0.0.1, then for each
round runs the bare `git archive --remote` of the branch file (at git's default compression
level and at level 1, which `plan` asks for) and each binary's `plan` for one koji build, in turn, capturing their output as `bench/run.py` does.
Prints the median wall time of each, and of each of `plan`'s steps (ms after the previous
step; "after the last step" is the process's exit, as the caller sees it). All binaries must
read the manifest schema the first one writes; their jobs must be the same bytes.
"""
import collections, shutil, statistics, subprocess, tempfile, re, time

import run as bench

STEP = re.compile(r"taskhook: trace: (.*) at ([\d.]+) ms")


def main():
    a, binaries = bench.comparison_args(__doc__, "rounds", 31)
    base = tempfile.mkdtemp(prefix="taskhook-planned-")
    daemon = None
    try:
        bench.BIN = binaries[0]
        bench.make_repo(base, "planned", a.tasks)
        daemon = bench.Daemon(base)
        url = f"git://127.0.0.1:{daemon.port}/planned.git"
        archives = {
            "archive": ["git", "archive", f"--remote={url}", "--format=tar.gz", "refs/meta/tasks",
                        "branches/master.json"],
            "archive -1": ["git", "archive", f"--remote={url}", "--format=tar.gz", "-1",
                           "refs/meta/tasks", "branches/master.json"],
        }
        env = dict(bench.ENV, TASKHOOK_TRACE="1")
        times = collections.defaultdict(list)
        order = ["wall"]
        expected = None  # the first plan's jobs: every other must print the same bytes
        for _ in range(a.rounds):
            for name, cmd in archives.items():
                dt, _ = bench.timed(cmd)
                times[(name, "wall")].append(dt * 1000)
            for b in binaries:
                cmd = [b, "plan", "--remote", url, "--item-type", "koji_build", "--item", "foo-1-1.fc40",
                       "--branch", "master"]
                t = time.perf_counter()
                p = subprocess.run(cmd, env=env, capture_output=True)
                wall = (time.perf_counter() - t) * 1000
                if p.returncode != 0:
                    raise SystemExit(f"{b}: plan failed\n{p.stderr.decode()}")
                expected = p.stdout if expected is None else expected
                if p.stdout != expected:
                    raise SystemExit(f"{b}: other jobs than {binaries[0]}")
                times[(b, "wall")].append(wall)
                last = 0.0
                for m in STEP.finditer(p.stderr.decode()):
                    name, at = m.group(1), float(m.group(2))
                    if name not in order:
                        order.append(name)
                    times[(b, name)].append(at - last)
                    last = at
                if "after the last step" not in order:
                    order.append("after the last step")
                times[(b, "after the last step")].append(wall - last)
        n_jobs = expected.count(b"\n")
        print(f"{a.tasks} tasks, {n_jobs} jobs, {a.rounds} interleaved rounds over git daemon on loopback "
              f"(ms, medians); bare `git archive --remote`: "
              f"{statistics.median(times[('archive', 'wall')]):.1f} ms, at level 1 (as plan asks): "
              f"{statistics.median(times[('archive -1', 'wall')]):.1f} ms\n")
        print("| step | " + " | ".join(binaries) + " |")
        print("|---|" + "---|" * len(binaries))
        for name in order:
            cells = []
            for b in binaries:
                xs = times.get((b, name))
                cells.append(f"{statistics.median(xs):.2f}" if xs else "-")
            print(f"| {name} | " + " | ".join(cells) + " |")
        for name in archives:
            arch = statistics.median(times[(name, "wall")])
            print(f"| plan / bare {name} | " + " | ".join(
                f"{statistics.median(times[(b, 'wall')]) / arch:.2f}" for b in binaries) + " |")
    finally:
        if daemon:
            daemon.stop()
        shutil.rmtree(base, ignore_errors=True)


if __name__ == "__main__":
    main()
