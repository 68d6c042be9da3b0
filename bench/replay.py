#!/usr/bin/env python3
"""Replays one push's hooks directly, binary against binary: wall time, CPU time and page faults.

    python3 bench/replay.py [--tasks 2000] [--runs 61] BINARY [BINARY...]

A real push's hook times move by a millisecond from one push to the next on a shared VM (git,
the client and the VM's scheduler all take part), which hides differences of a few tenths. This
takes git out: it makes a packed repository of `--tasks` tasks with the first binary's hooks,
pushes one changed formula, then runs `hook pre-receive` and `hook post-receive` of each binary
on that push's ref update, directly, `--runs` times in turn (the manifest ref set back to its
parent before each round, and the loose objects the round wrote removed after it, so every
post-receive writes the same manifest commit and its objects anew, as a real push writes new
ones; before the eleventh round of docs/BENCHMARKS.md they stayed, and a binary that skips
writing an object it finds stored was timed without writing the branch file). Prints the
medians. Pre-receive runs without git's quarantine here (the pushed objects are already in the
repository). All binaries must write one manifest schema version: each must
carry over the manifest the first one wrote, which is checked before timing. A
`taskhook-hook` is replayed like any other; when it comes first, the `taskhook` beside it
installs the repository's hooks.
"""
import os, shutil, statistics, subprocess, tempfile

import run as bench


def spawn(binary, hook, line, env):
    r, w = os.pipe()
    os.write(w, line)
    os.close(w)
    null = os.open(os.devnull, os.O_WRONLY)
    pid = os.posix_spawn(binary, [binary, "hook", hook], env,
                         file_actions=[(os.POSIX_SPAWN_DUP2, r, 0), (os.POSIX_SPAWN_DUP2, null, 2)])
    started = bench.time.perf_counter()
    _, status, usage = os.wait4(pid, 0)
    wall = bench.time.perf_counter() - started
    os.close(r)
    os.close(null)
    if status != 0:
        raise SystemExit(f"{binary} hook {hook} failed ({status})")
    return wall * 1000, (usage.ru_utime + usage.ru_stime) * 1000, usage.ru_minflt


def forget_written(bare, git, meta_parent):
    """Removes the loose objects post-receive just wrote (the manifest commit and what it
    added), so that the next replay writes them anew, as every real push does: a writer that
    finds an object already stored skips writing it, which a replay of one push would otherwise
    measure every round after the first."""
    written = git("rev-list", "--objects", f"{meta_parent}..refs/meta/tasks").split("\n")
    git("update-ref", "refs/meta/tasks", meta_parent)
    for entry in written:
        oid = entry.split(" ")[0]
        if oid:
            path = os.path.join(bare, "objects", oid[:2], oid[2:])
            if os.path.exists(path):
                os.remove(path)


def main():
    a, binaries = bench.comparison_args(__doc__, "runs", 61)
    base = tempfile.mkdtemp(prefix="taskhook-replay-")
    try:
        # The repository's hooks are installed by the first binary; a `taskhook-hook` cannot
        # install, so its `taskhook` (beside it) does.
        first = binaries[0]
        if os.path.basename(first).startswith("taskhook-hook"):
            first = os.path.join(os.path.dirname(first), "taskhook")
            if not os.access(first, os.X_OK):
                raise SystemExit(f"{binaries[0]} cannot install hooks and has no taskhook beside "
                                 "it: name a taskhook binary first")
        bench.BIN = first
        work, bare = bench.make_repo(base, "replay", a.tasks, filler_kb=1, hooks=True)
        git = lambda *args: bench.run(["git", "-C", bare, *args]).stdout.decode().strip()
        bench.run(["git", "remote", "add", "origin", bare], work)
        with open(os.path.join(work, "tests/task00000/runtask.yml"), "a") as f:
            f.write("# changed\n")
        bench.run(["git", "commit", "-q", "-am", "change"], work)
        bench.run(["git", "push", "-q", "origin", "master"], work)
        new, old = git("rev-parse", "master"), git("rev-parse", "master^")
        line = f"{old} {new} refs/heads/master\n".encode()
        meta_parent = git("rev-parse", "refs/meta/tasks^")
        env = dict(bench.ENV, GIT_DIR=bare)
        # Each binary must carry the first one's manifest over (one task checked), or it is timed
        # doing a full check: binaries of another manifest schema version cannot share a replay.
        for b in binaries:
            git("update-ref", "refs/meta/tasks", meta_parent)
            p = subprocess.run([b, "hook", "pre-receive"], input=line, env=env, capture_output=True)
            if p.returncode != 0 or b"(1 checked," not in p.stderr:
                raise SystemExit(f"{b} does not reuse the manifest the first binary wrote (another "
                                 f"schema version?); replay it on its own:\n{p.stderr.decode()}")
        results = {(b, h): [] for b in binaries for h in ("pre-receive", "post-receive")}
        for _ in range(a.runs):
            for b in binaries:
                git("update-ref", "refs/meta/tasks", meta_parent)
                for hook in ("pre-receive", "post-receive"):
                    results[(b, hook)].append(spawn(b, hook, line, env))
                forget_written(bare, git, meta_parent)
        print(f"{a.tasks} tasks, {a.runs} interleaved replays of one push (medians)\n")
        print("| binary | hook | wall ms | CPU ms | minor page faults |\n|---|---|---|---|---|")
        for (b, hook), xs in results.items():
            med = lambda i: statistics.median(x[i] for x in xs)
            print(f"| {b} | {hook} | {med(0):.2f} | {med(1):.2f} | {med(2):.0f} |")
    finally:
        shutil.rmtree(base, ignore_errors=True)


if __name__ == "__main__":
    main()
