#!/usr/bin/env python3
"""Real pushes, binary against binary, each hook's steps as `TASKHOOK_TRACE=1` reports them.

    python3 bench/traced.py [--tasks 2000] [--rounds 15] [--spread] TASKHOOK [TASKHOOK...]

bench/replay.py runs the hooks without git; this keeps git: it makes a packed repository of
`--tasks` tasks, then for each round and each binary (a `taskhook`; its shims call the
`taskhook-hook` beside it when there is one) installs that binary's hooks, commits a one-line
change to one formula and pushes it over the local transport with `TASKHOOK_TRACE=1` (with
`--spread`, each push changes another task, last changed before the repository was repacked,
as most pushes to a real server do; by default the same task each time). Prints,
per binary, the median time of each step after `main` (pre-receive's verdict, post-receive's
branch file...) and their sum per hook. All binaries must write one manifest schema version.
"""
import collections, re, shutil, statistics, subprocess, tempfile

import run as bench

STEP = re.compile(r"remote: taskhook: trace: (.*) at ([\d.]+) ms")


def main():
    a, binaries = bench.comparison_args(__doc__, "rounds", 15, spread=True)
    if a.spread and a.rounds * len(binaries) >= a.tasks:
        raise SystemExit("--spread changes each task once: ask for fewer rounds or more tasks")
    base = tempfile.mkdtemp(prefix="taskhook-traced-")
    try:
        bench.BIN = binaries[0]
        work, bare = bench.make_repo(base, "traced", a.tasks, filler_kb=1, hooks=True)
        bench.run(["git", "remote", "add", "origin", bare], work)
        if a.spread:
            bench.run(["git", "repack", "-adq"], bare)
            bench.settle()
        env = dict(bench.ENV, TASKHOOK_TRACE="1")
        # (binary, hook, step) -> durations; the order steps were first seen in, for printing.
        steps = collections.defaultdict(list)
        order = []
        for r in range(a.rounds):
            for b in binaries:
                bench.run([b, "install", bare])
                i = binaries.index(b)
                task = 1 + r * len(binaries) + i if a.spread else 0
                bench.commit_change(work, f"{r}-{i}", task)
                p = subprocess.run(["git", "push", "-q", "origin", "master"], cwd=work, env=env,
                                   capture_output=True)
                if p.returncode != 0:
                    raise SystemExit(f"{b}: the push failed\n{p.stderr.decode()}")
                hook, last = None, 0.0
                for line in p.stderr.decode().splitlines():
                    m = STEP.search(line)
                    if not m:
                        continue
                    name, at = m.group(1), float(m.group(2))
                    if name.endswith(": input read"):
                        hook, last = name.split(":")[0], 0.0
                    key = (hook, name)
                    if key not in order:
                        order.append(key)
                    steps[(b, hook, name)].append(at - last)
                    last = at
        print(f"{a.tasks} tasks, {a.rounds} rounds of real pushes, each binary's hooks in turn "
              "(ms after main, medians of each step)\n")
        print("| hook | step | " + " | ".join(binaries) + " |")
        print("|---|---|" + "---|" * len(binaries))
        for hook, name in order:
            cells = []
            for b in binaries:
                xs = steps.get((b, hook, name))
                cells.append(f"{statistics.median(xs):.3f}" if xs else "-")
            print(f"| {hook} | {name} | " + " | ".join(cells) + " |")
        for hook in ("pre-receive", "post-receive"):
            sums = []
            for b in binaries:
                total = sum(statistics.median(xs) for (bb, h, _), xs in steps.items()
                            if bb == b and h == hook)
                sums.append(f"{total:.2f}")
            print(f"| {hook} | sum of the medians | " + " | ".join(sums) + " |")
    finally:
        shutil.rmtree(base, ignore_errors=True)


if __name__ == "__main__":
    main()
