#!/usr/bin/env python3
"""taskhook benchmark: every comparison side by side, alternating runs, medians.

Usage: python3 bench/run.py [--sizes 200,2000] [--push-sizes 200,2000,10000]
                            [--branches 50,1000] [--validate 10000] [--hostile-tasks 200]
                            [--branching 2000]
                            [--checkout 200] [--runs 7] [--push-runs 15]
                            [--only plan,push,branches,hooks,validate,hostile,branching,checkout,startup]
                            [--baseline-bin OLD_TASKHOOK] [--bin TASKHOOK]
Builds the binaries a server installs (`scripts/build-server`, into target/server), or
takes `--bin`, a `taskhook` with its `taskhook-hook` beside it; generates synthetic task
repositories in a temp dir, serves them with git daemon on 127.0.0.1, and prints one table per
comparison. Nothing is left running.
"""
import argparse, os, random, shutil, socket, statistics, subprocess, sys, tempfile, time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BIN = os.path.join(ROOT, "target", "server", "taskhook")
# Rounds of pushes made and not counted before the push comparison (see bench_push).
WARMUP = 10
# Tasks in the repository of the push comparison by branches (a package's tests are a few).
BRANCH_TASKS = 20
ENV = dict(os.environ, GIT_AUTHOR_NAME="b", GIT_AUTHOR_EMAIL="b@x", GIT_COMMITTER_NAME="b",
           GIT_COMMITTER_EMAIL="b@x", GIT_CONFIG_NOSYSTEM="1")

FORMULA = """name: task{i}
desc: synthetic task {i}
maintainer: bench
namespace: dist
input:
  args: [koji_build]
environment:
  rpm: [rpmlint]
actions:
  - name: download
    koji:
      action: download
      koji_build: ${{koji_build}}
      arch: [all]
  - name: run
    python:
      file: run.py
      callable: run
      workdir: ${{workdir}}
    export: out
  - name: report
    resultsdb:
      results: ${{out}}
"""


def run(cmd, cwd=None, **kw):
    return subprocess.run(cmd, cwd=cwd, env=ENV, check=True, capture_output=True, **kw)


def timed(cmd, cwd=None):
    t = time.perf_counter()
    p = subprocess.run(cmd, cwd=cwd, env=ENV, capture_output=True)
    dt = time.perf_counter() - t
    if p.returncode != 0:
        sys.exit(f"failed: {' '.join(cmd)}\n{p.stderr.decode()}")
    return dt, p


def from_disk(*binaries):
    """Drops each binary (and the `taskhook-hook` beside it) from the page cache, so that every
    build compared is read back from the disk, as a server's installed binary is after a boot
    or a cache drop. A file written moments before (a fresh build or copy) sits in the page
    cache in larger pieces, and a process mapping it takes fewer page faults: 25 fewer and
    0.25-0.3 ms less per hook in one comparison of two copies of one build (docs/BENCHMARKS.md,
    twentieth round), enough to decide a comparison."""
    for b in binaries:
        for path in (b, os.path.join(os.path.dirname(b), "taskhook-hook")):
            try:
                fd = os.open(path, os.O_RDONLY)
            except OSError:
                continue
            try:
                os.fsync(fd)  # only written-back pages can be dropped
                if hasattr(os, "posix_fadvise"):
                    os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
            except OSError:
                pass  # a binary that cannot be dropped is measured as it is
            finally:
                os.close(fd)


def comparison_args(doc, rounds, default, spread=False):
    """The command line of a binary-against-binary comparison (bench/replay.py,
    bench/traced.py): `--tasks`, `--<rounds>`, `--spread` where asked for, then the binaries,
    returned as absolute paths."""
    ap = argparse.ArgumentParser(description=doc.splitlines()[0])
    ap.add_argument("--tasks", type=int, default=2000)
    ap.add_argument(f"--{rounds}", type=int, default=default)
    if spread:
        ap.add_argument("--spread", action="store_true",
                        help="each push changes another task, last changed before the repository "
                             "was repacked (as most pushes to a server do), instead of the same one")
    ap.add_argument("binaries", nargs="+")
    a = ap.parse_args()
    binaries = [os.path.abspath(b) for b in a.binaries]
    from_disk(*binaries)
    return a, binaries


def make_repo(base, name, tasks, filler_kb=50, hooks=True):
    """A bare repo with `tasks` task directories (formula + filler_kb of other files each)."""
    work = os.path.join(base, name + ".work")
    bare = os.path.join(base, name + ".git")
    os.makedirs(work)
    run(["git", "init", "-q", "-b", "master"], work)
    # Thousands of loose objects: git's automatic gc would start repacking the client's
    # repository in the background now and then, in the middle of a timed push.
    run(["git", "config", "gc.auto", "0"], work)
    rnd = os.urandom
    for i in range(tasks):
        d = os.path.join(work, f"tests/task{i:05d}")
        os.makedirs(d)
        with open(os.path.join(d, "runtask.yml"), "w") as f:
            f.write(FORMULA.format(i=i))
        if filler_kb:
            with open(os.path.join(d, "data.bin"), "wb") as f:
                f.write(rnd(filler_kb * 1024))
    run(["git", "add", "-A"], work)
    run(["git", "commit", "-q", "-m", "tasks"], work)
    run(["git", "clone", "-q", "--bare", work, bare])
    run(["git", "repack", "-adq"], bare)  # a server's objects are packed, not loose hardlinks
    if hooks:
        run([BIN, "install", bare])
        run([BIN, "manifest", "rebuild", bare])
    settle()
    return work, bare


def settle():
    """Writes back what the set-up changed (and earlier runs removed) before anything is timed.
    make_repo's repack removes thousands of loose objects, and on an ext4 without a journal a new
    file avoids the inodes freed recently: a second after the set-up, a file in the
    repository's object directory took 0.42 ms to make, right after a sync 0.07, for git and
    hooks alike (docs/BENCHMARKS.md, twenty-second round). What is left is the timed pushes' own
    removals, as a server has them."""
    os.sync()


class Daemon:
    def __init__(self, base):
        s = socket.socket(); s.bind(("127.0.0.1", 0)); self.port = s.getsockname()[1]; s.close()
        # git-daemon itself: `git daemon` starts it as a child that killing `git` would orphan.
        daemon = os.path.join(run(["git", "--exec-path"]).stdout.decode().strip(), "git-daemon")
        self.p = subprocess.Popen([daemon, "--reuseaddr", "--listen=127.0.0.1", f"--port={self.port}",
                                   f"--base-path={base}", "--export-all", "--enable=upload-archive", base],
                                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        for _ in range(250):
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.1).close(); return
            except OSError:
                time.sleep(0.02)
        raise SystemExit("git daemon did not start")

    def stop(self):
        self.p.kill(); self.p.wait()


def disk_note(path):
    """What the machine line says about the file system holding `path`. On ext4 without a
    journal, a new file skips every inode of its block group freed recently (for tens of
    seconds), reading each one's deletion time, so every file git or a hook makes costs
    more while anything nearby is being removed (docs/BENCHMARKS.md, twenty-first round)."""
    try:
        found = subprocess.run(["findmnt", "-n", "-o", "SOURCE,FSTYPE", "-T", path],
                               capture_output=True).stdout.decode().splitlines()
    except OSError:
        return ""
    found = found[0].split() if found else []
    if len(found) != 2:
        return ""
    source, fstype = found
    if fstype != "ext4":
        return f"; temp dir on {fstype}"
    # Each ext4 journal in use has a directory /proc/fs/jbd2/<device>-<inode>.
    dev = os.path.basename(os.path.realpath(source))
    try:
        journalled = any(e.startswith(dev + "-") for e in os.listdir("/proc/fs/jbd2"))
    except OSError:
        return "; temp dir on ext4"
    if journalled:
        return "; temp dir on ext4"
    return ("; temp dir on ext4 without a journal (each file made scans the inodes freed there "
            "recently: the set-up syncs before timing)")


def med(xs):
    return statistics.median(xs)


def middle_half(xs):
    """The first and third quartiles of `xs`: where the middle half of the rounds fell."""
    if len(xs) < 2:
        return xs[0], xs[0]
    q = statistics.quantiles(xs, n=4)
    return q[0], q[2]


def table(title, header, rows):
    print(f"\n### {title}\n")
    print("| " + " | ".join(header) + " |")
    print("|" + "---|" * len(header))
    for r in rows:
        print("| " + " | ".join(str(c) for c in r) + " |")


def bench_plan(base, sizes, runs):
    rows = []
    d = Daemon(base)
    try:
        for n in sizes:
            make_repo(base, f"plan{n}", n)
            url = f"git://127.0.0.1:{d.port}/plan{n}.git"
            clone_t, plan_t, arch_t, fast_t = [], [], [], []
            clone_bytes = plan_bytes = 0
            for r in range(runs):
                dest = os.path.join(base, f"clone{n}-{r}")
                # Shallow clone + reading every formula: what a cloning trigger does per event.
                t = time.perf_counter()
                p = subprocess.run(["git", "clone", "-q", "--depth", "1", "--progress", url, dest], env=ENV,
                                   capture_output=True)
                for root, _, files in os.walk(dest):
                    if "runtask.yml" in files:
                        open(os.path.join(root, "runtask.yml")).read()
                clone_t.append(time.perf_counter() - t)
                clone_bytes = sum(os.path.getsize(os.path.join(dp, f)) for dp, _, fs in os.walk(os.path.join(dest, ".git", "objects")) for f in fs)
                shutil.rmtree(dest)
                dt, p = timed([BIN, "plan", "--remote", url, "--item-type", "koji_build", "--item", "foo-1-1.fc40",
                               "--branch", "master"])
                plan_t.append(dt)
                dt, p = timed(["git", "archive", f"--remote={url}", "--format=tar.gz", "refs/meta/tasks",
                               "branches/master.json"])
                arch_t.append(dt)
                plan_bytes = len(p.stdout)
                # What plan asks for: the server's fastest gzip level (like for like).
                dt, p = timed(["git", "archive", f"--remote={url}", "--format=tar.gz", "-1", "refs/meta/tasks",
                               "branches/master.json"])
                fast_t.append(dt)
                plan_bytes = len(p.stdout)
            rows.append([n, f"{med(clone_t)*1000:.1f}", f"{clone_bytes/1e6:.2f} MB", f"{med(plan_t)*1000:.1f}",
                         f"{plan_bytes} B", f"{med(arch_t)*1000:.1f}", f"{med(fast_t)*1000:.1f}",
                         f"{med(clone_t)/med(plan_t):.0f}x", f"{clone_bytes/max(plan_bytes,1):.0f}x",
                         f"{med(plan_t)/med(arch_t):.2f}", f"{med(plan_t)/med(fast_t):.2f}"])
    finally:
        d.stop()
    table("1. plan vs shallow clone + reading formulas, over git daemon on loopback (ms, medians)",
          ["tasks", "clone+read ms", "clone bytes (objects)", "plan ms", "plan bytes (archive -1)", "bare archive ms",
           "bare archive -1 ms", "clone/plan time", "clone/plan bytes", "plan/archive", "plan/archive -1"], rows)


NOOP_HOOK = "#!/bin/sh\nexit 0\n"


def shared_repo(base, name, n, variants, baseline, branches=1):
    """The one repository and work tree every variant of a push comparison pushes to, with
    `branches` branches (master and `b1`, `b2`... at its commit, their refs packed, as a server's
    are), its manifest built by this build's hooks; and `swap(variant)`, which puts that
    variant's hooks (hook_set) in place."""
    work, bare = make_repo(base, name, n, filler_kb=1, hooks=False)
    run(["git", "remote", "add", "origin", bare], work)
    if branches > 1:
        head = run(["git", "rev-parse", "HEAD"], work).stdout.decode().strip()
        refs = "".join(f"create refs/heads/b{i} {head}\n" for i in range(1, branches))
        run(["git", "update-ref", "--stdin"], bare, input=refs.encode())
        run(["git", "pack-refs", "--all"], bare)
    # Each variant's hooks in a directory of their own, made once; a swap renames directories.
    for v in variants:
        write_hooks(os.path.join(bare, f"hooks.{v}"), hook_set(base, name, v, baseline))
    os.rename(os.path.join(bare, "hooks"), os.path.join(bare, "hooks.samples"))
    os.rename(os.path.join(bare, "hooks.taskhook"), os.path.join(bare, "hooks"))
    current = ["taskhook"]
    run([BIN, "manifest", "rebuild", bare])

    def swap(v):
        """Renames `v`'s directory to `hooks`, and the one there back to its own name. Nothing
        is removed or made: on ext4 without a journal each file removed makes every file made
        after it cost more for a while, git's and the hooks' alike (see `settle`), and a server
        does not remove its hooks between pushes."""
        if v != current[0]:
            os.rename(os.path.join(bare, "hooks"), os.path.join(bare, f"hooks.{current[0]}"))
            os.rename(os.path.join(bare, f"hooks.{v}"), os.path.join(bare, "hooks"))
            current[0] = v
    return work, swap


def commit_change(work, label, task=0):
    """Commits a one-line change to one formula (task 0's unless told): the push every
    comparison times."""
    with open(os.path.join(work, f"tests/task{task:05d}/runtask.yml"), "a") as f:
        f.write(f"# change {label}\n")
    run(["git", "commit", "-q", "-am", f"c{label}"], work)


def hook_set(base, name, variant, baseline):
    """The hook files of one variant of the push comparison, as {name: (bytes, mode)}: none,
    two no-op shell hooks, or the shims `taskhook install` writes for this build or for
    `baseline`."""
    if variant == "none":
        return {}
    if variant == "noop":
        return {h: (NOOP_HOOK.encode(), 0o755) for h in ("pre-receive", "post-receive")}
    scratch = os.path.join(base, f"hookset-{name}-{variant}.git")
    run(["git", "init", "-q", "--bare", scratch])
    run([baseline if variant == "baseline" else BIN, "install", scratch])
    hooks = {}
    for hook in os.listdir(os.path.join(scratch, "hooks")):
        path = os.path.join(scratch, "hooks", hook)
        with open(path, "rb") as f:
            data = f.read()
        if b"taskhook-shim" in data:
            hooks[hook] = (data, os.stat(path).st_mode & 0o777)
    return hooks


def write_hooks(folder, hooks):
    """Makes the directory `folder` holding `hooks` ({name: (bytes, mode)})."""
    os.makedirs(folder)
    for name, (data, mode) in hooks.items():
        path = os.path.join(folder, name)
        with open(path, "wb") as f:
            f.write(data)
        os.chmod(path, mode)


def spread(hooked, bare):
    """Each round's push with hooks over that round's push without: the middle half of those
    ratios, which says how far one run's medians can be trusted."""
    low, high = middle_half([t / z for t, z in zip(hooked, bare)])
    return f"{low:.2f}x-{high:.2f}x"


def median_interval(xs, seed, draws=2000):
    """A 95% interval for the median of `xs` (a bootstrap: the median of `draws` resamples of
    `xs`, each as many values drawn with replacement, their 2.5th and 97.5th percentiles),
    seeded so that a run prints the same interval for the same figures."""
    rnd = random.Random(seed)
    meds = sorted(med(rnd.choices(xs, k=len(xs))) for _ in range(draws))
    return meds[int(draws * 0.025)], meds[int(draws * 0.975) - 1]


def bench_push(base, sizes, runs, baseline=None, branches=None):
    """A one-file push to a repacked n-task repository: no hooks, two no-op shell hooks (the
    floor of running any two hooks), taskhook's hooks, and optionally an older taskhook binary's
    (--baseline-bin). With `branches` (a list of branch counts), the repository has BRANCH_TASKS
    tasks and each of those numbers of branches instead, all listed in its manifest, and the
    push goes to one of them (master): the hooks' cost as the branches grow. All variants push
    to one repository, its hooks swapped before each push: separate repositories made one after
    another measured differently with the same hooks (one binary in two columns, 40.0 against
    45.8 ms at 2,000 tasks), so a repository's own speed is not allowed to differ between
    variants. Rounds interleave the variants in a shuffled order,
    after WARMUP rounds not counted; medians."""
    variants = ("none", "noop", "taskhook") + (("baseline",) if baseline else ())
    rows = []
    for size in branches or sizes:
        n, b = (BRANCH_TASKS, size) if branches else (size, 1)
        work, swap = shared_repo(base, f"push{n}x{b}", n, variants, baseline, b)
        results = {v: [] for v in variants}
        order = random.Random(size)
        for r in range(-WARMUP, runs):
            for v in order.sample(variants, len(variants)):  # interleaved, in a shuffled order
                swap(v)
                commit_change(work, f"{r} {v}")
                dt, _ = timed(["git", "push", "-q", "origin", "master"], work)
                if r >= 0:
                    results[v].append(dt)
        none, noop, th = (med(results[v]) for v in ("none", "noop", "taskhook"))
        # The machine's speed drifts over minutes; the pushes of one round run within a
        # fraction of a second, so their differences drift less than the medians do.
        diffs = [t - z for t, z in zip(results["taskhook"], results["none"])]
        paired = med(diffs)
        # How far that median can be trusted within this run (runs minutes apart can move by
        # more: docs/BENCHMARKS.md, twenty-second round).
        low, high = median_interval(diffs, size)
        paired_noop = med([t - z for t, z in zip(results["noop"], results["none"])])
        row = [size, f"{none*1000:.1f}", f"{noop*1000:.1f} ({noop/none:.2f}x)",
               f"{th*1000:.1f}", f"{th/none:.2f}x", f"{(th-none)*1000:+.1f} ms",
               f"{paired_noop*1000:+.1f} / {paired*1000:+.1f} ms ({1 + paired/none:.2f}x)",
               f"{1 + low/none:.2f}x-{1 + high/none:.2f}x",
               spread(results["taskhook"], results["none"])]
        if baseline:
            old = med(results["baseline"])
            paired_old = med([t - z for t, z in zip(results["baseline"], results["none"])])
            row.append(f"{old*1000:.1f} ({old/none:.2f}x; per round {1 + paired_old/none:.2f}x;"
                       f" {spread(results['baseline'], results['none'])})")
        rows.append(row)
    title = (f"2b. git push of a one-file change to one branch of a {BRANCH_TASKS}-task repository "
             "whose manifest lists every branch" if branches else
             "2. git push of a one-file change to one repository")
    table(f"{title}: no hooks, two no-op hooks, taskhook's hooks (ms, medians)",
          ["branches" if branches else "tasks", "no hooks", "no-op hooks (floor)", "taskhook hooks", "taskhook / no hooks", "taskhook adds",
           "per-round difference, no-op / taskhook (median)",
           "taskhook per round, 95% interval of that median", "taskhook / no hooks, middle half of rounds"]
          + ([f"baseline ({baseline})"] if baseline else []),
          rows)


def hook_times(trace):
    """The time git waited for each hook (process start to exit), from a GIT_TRACE2_PERF file."""
    import re
    names, times = {}, {}
    for line in open(trace):
        cols = [c.strip() for c in line.split("|")]
        if len(cols) < 9:
            continue
        child = re.search(r"\[(ch\d+)\]", cols[-1])
        if not child:
            continue
        key = (cols[1], child.group(1))
        hook = re.search(r"class:hook hook:(\S+)", cols[-1])
        if cols[3] == "child_start" and hook:
            names[key] = hook.group(1)
        elif cols[3] == "child_exit" and key in names:
            times[names[key]] = float(cols[6])
    return times


def bench_hooks(base, sizes, runs, baseline=None):
    """Each hook as git runs it during a one-file push (from git's own trace: fork, exec, the
    hook, exit): two no-op shell hooks, taskhook's hooks, and optionally an older taskhook
    binary's (--baseline-bin, installed by that binary). As in bench_push, every variant pushes
    to one repository, its hooks swapped before each push, after WARMUP rounds not counted; the
    pushes interleave, in an order shuffled each round (seeded), since on a shared VM the push
    after another runs in different conditions; medians, and each variant's whole push."""
    variants = ["noop", "taskhook"] + (["baseline"] if baseline else [])
    rows = []
    for n in sizes:
        work, swap = shared_repo(base, f"hooks{n}", n, variants, baseline)
        results = {v: {"pre-receive": [], "post-receive": [], "push": []} for v in variants}
        trace = os.path.join(base, "trace2.txt")
        order = random.Random(n)
        for r in range(-WARMUP, runs):
            for v in order.sample(variants, len(variants)):
                swap(v)
                commit_change(work, f"{r} {v}")
                if os.path.exists(trace):
                    os.remove(trace)
                started = time.perf_counter()
                subprocess.run(["git", "push", "-q", "origin", "master"], cwd=work, check=True,
                               capture_output=True, env=dict(ENV, GIT_TRACE2_PERF=trace))
                if r < 0:
                    continue
                results[v]["push"].append(time.perf_counter() - started)
                for hook, t in hook_times(trace).items():
                    results[v][hook].append(t)
        row = [n]
        for v in variants:
            pre, post = (med(results[v][h]) * 1000 for h in ("pre-receive", "post-receive"))
            push = med(results[v]["push"]) * 1000
            row.append(f"{pre:.2f} + {post:.2f} = {pre + post:.2f} (push {push:.1f})")
        rows.append(row)
    table("7. Each hook as git runs it (GIT_TRACE2_PERF: start to exit), pre-receive + post-receive, and the whole push (ms, medians)",
          ["tasks"] + [{"noop": "no-op shell hooks", "taskhook": "taskhook",
                        "baseline": f"baseline ({baseline})"}[v] for v in variants], rows)


def bench_startup(base, runs=51):
    """The hook binary's start: time to `main` (a process that only prints its version, against
    /bin/true) and, from TASKHOOK_TRACE, the time from `main` to each hook step."""
    def t(cmd):
        xs = []
        for _ in range(runs):
            s = time.perf_counter(); subprocess.run(cmd, env=ENV, capture_output=True); xs.append(time.perf_counter() - s)
        return med(xs) * 1000
    # What the shims run: the hooks-only binary beside BIN, as `taskhook install` picks it.
    hook_bin = os.path.join(os.path.dirname(BIN), "taskhook-hook")
    true_ms, sh_ms, th_ms = t(["/bin/true"]), t(["sh", "-c", ":"]), t([BIN, "--version"])
    hh_ms = t([hook_bin, "--version"]) if os.access(hook_bin, os.X_OK) else float("nan")
    table("5. Process start (ms, medians)",
          ["/bin/true", "sh -c :", "taskhook --version", "taskhook-hook --version"],
          [[f"{true_ms:.2f}", f"{sh_ms:.2f}", f"{th_ms:.2f}", f"{hh_ms:.2f}"]])
    work, bare = make_repo(base, "startup", 2000, filler_kb=0, hooks=True)
    run(["git", "remote", "add", "origin", bare], work)
    steps = {}
    for r in range(15):
        commit_change(work, r)
        p = subprocess.run(["git", "push", "origin", "master"], cwd=work, capture_output=True,
                           env=dict(ENV, TASKHOOK_TRACE="1"))
        hook = ""
        for line in p.stderr.decode().splitlines():
            if "trace:" not in line:
                continue
            step, ms = line.split("trace: ", 1)[1].rsplit(" at ", 1)
            if ": input read" in step:
                hook, step = step.split(": ", 1)
            steps.setdefault((hook, step), []).append(float(ms.split()[0]))
    table("6. Inside the hooks at 2,000 tasks: ms from `main` to the end of each step (TASKHOOK_TRACE=1, medians of 15)",
          ["hook", "step", "ms"], [[h, s, f"{med(v):.2f}"] for (h, s), v in steps.items()])


def bench_validate(base, n, runs):
    work, bare = make_repo(base, f"val{n}", n, filler_kb=0, hooks=False)
    blobs = run(["git", "ls-tree", "-r", "HEAD"], bare).stdout.decode().splitlines()
    ids = "".join(l.split()[2] + "\n" for l in blobs if l.endswith("runtask.yml")).encode()
    one, allc, ct = [], [], []
    for _ in range(runs):
        # One core: validation runs on as many threads as the process may use.
        dt, _ = timed(["taskset", "-c", "0", BIN, "manifest", "build", "--rev", "master", bare]); one.append(dt)
        dt, _ = timed([BIN, "manifest", "build", "--rev", "master", bare]); allc.append(dt)
        t = time.perf_counter()
        subprocess.run(["git", "cat-file", "--batch"], cwd=bare, input=ids, capture_output=True, check=True)
        ct.append(time.perf_counter() - t)
    table(f"3. full validation of a {n}-task commit (`manifest build`)",
          ["cores", "seconds", "formulas/s", "git cat-file --batch s", "ratio to cat-file"],
          [["1", f"{med(one):.3f}", f"{n/med(one):.0f}", f"{med(ct):.3f}", f"{med(one)/med(ct):.1f}x"],
           [str(os.cpu_count()), f"{med(allc):.3f}", f"{n/med(allc):.0f}", f"{med(ct):.3f}", f"{med(allc)/med(ct):.1f}x"]])





HEAD_OF_FORMULA = "name: big\ndesc: d\nmaintainer: m\ninput:\n  args: [koji_build]\nactions:\n"


def hostile_formulas(limit=64 * 1024):
    """Formulas just under the default size limit, each in a shape that costs a YAML reader
    most per byte (one mapping of thousands of keys, thousands of quoted values, aliases that
    multiply a mapping to the node limit...), and one ordinary formula of the same size."""
    def fill(head, item, tail=""):
        out, i = head, 0
        while len(out) + len(item.format(i=i)) + len(tail) < limit - 64:
            out += item.format(i=i)
            i += 1
        return out + tail
    h = HEAD_OF_FORMULA
    run = "  - name: run\n    shell:\n"
    base = "  - name: run\n    shell: [echo]\n"
    return [
        ("ordinary: long shell lines", fill(h + run, "      - echo step {i} of a long job that runs a while\n")),
        ("one mapping of thousands of keys", fill(h + base + "env:\n", "  k{i}: 1\n")),
        ("keys Python compares by value", fill(h + base + "env:\n", "  {i}.5: 1\n")),
        ("timestamps as keys", fill(h + base + "env:\n", "  2001-01-01 00:00:00.{i:06}: 1\n")),
        ("thousands of quoted values", fill(h + "  - name: run\n    shell: [", "'a',", "'a']\n")),
        ("thousands of flow mappings", fill(h + "  - name: run\n    shell: [", "{{a: b}},", "x]\n")),
        ("thousands of unknown item types",
            fill("name: big\ndesc: d\nmaintainer: m\ninput:\n  args: [", "koji_bulid{i}, ",
                 "koji_build]\nactions:\n" + base)),
        ("undefined variables among thousands of arguments",
            fill("name: big\ndesc: d\nmaintainer: m\ninput:\n  args: ["
                 + "".join(f"koji_bulid{i}, " for i in range(2500))
                 + "koji_build]\nactions:\n  - name: run\n    shell: ['", "${{koji_tag}}", "']\n")),
        ("aliases to the node limit", h + base + "a: &a {" + ", ".join(f"k{i}: v" for i in range(95)) + "}\n"
            + "b: [" + ", ".join(["*a"] * 99) + "]\n"),
        ("comments", fill(h + base, "# comment {i} that is long enough to matter a little\n")),
    ]


def bench_hostile(base, runs, tasks):
    """`taskhook check` of one formula, per shape (hostile_formulas), against a formula of one
    line: a pusher's worst formula costs the hook this much more than a good one. Then a push of
    `tasks` new tasks of the costliest shape, and of one with thousands of mistakes."""
    d = os.path.join(base, "hostile")
    os.makedirs(d, exist_ok=True)
    small = os.path.join(d, "small.yml")
    with open(small, "w") as f:
        f.write(HEAD_OF_FORMULA + "  - name: run\n    shell: [echo]\n")
    shapes = []
    for i, (name, text) in enumerate(hostile_formulas()):
        path = os.path.join(d, f"f{i}.yml")
        with open(path, "w") as f:
            f.write(text)
        shapes.append((name, path, len(text.encode())))

    def check(path):
        t = time.perf_counter()
        p = subprocess.run([BIN, "check", path], env=ENV, capture_output=True)
        if p.returncode not in (0, 1):
            sys.exit(f"failed: {BIN} check {path}\n{p.stderr.decode()}")
        return time.perf_counter() - t
    times = {path: [] for _, path, _ in shapes}
    times[small] = []
    for _ in range(runs):
        for path in [small] + [p for _, p, _ in shapes]:
            times[path].append(check(path))
    floor = med(times[small])
    rows = [["a formula of one action", f"{os.path.getsize(small)}", f"{floor * 1000:.1f}", "", ""]]
    for name, path, size in shapes:
        t = med(times[path])
        rows.append([name, f"{size}", f"{t * 1000:.1f}", f"{(t - floor) * 1000:.1f}",
                     f"{size / max(t - floor, 1e-6) / 1e6:.1f}"])
    table("formulas at the size limit (`taskhook check FILE`, medians)",
          ["shape", "bytes", "ms", "ms beyond the one-line formula", "MB/s beyond it"], rows)
    if not tasks:
        return
    # A push of `tasks` new tasks of one such formula each, to a repository with the hooks.
    text = dict(hostile_formulas())["thousands of quoted values"]
    unknown = HEAD_OF_FORMULA + "  - name: run\n    shell: [echo]\nenvironment:\n"
    unknown += "".join(f"  k{i}: 1\n" for i in range(5900))
    rows = []
    for name, formula in [("thousands of quoted values (valid)", text),
                          ("thousands of unknown keys (invalid)", unknown)]:
        work = os.path.join(d, f"push-{len(rows)}.work")
        bare = os.path.join(d, f"push-{len(rows)}.git")
        run(["git", "init", "-q", "--bare", bare])
        run([BIN, "install", bare])
        run(["git", "init", "-q", "-b", "master", work])
        for i in range(tasks):
            os.makedirs(os.path.join(work, f"t{i}"))
            with open(os.path.join(work, f"t{i}", "runtask.yml"), "w") as f:
                f.write(formula)
        run(["git", "add", "-A"], work)
        run(["git", "commit", "-q", "-m", "tasks"], work)
        settle()
        t = time.perf_counter()
        p = subprocess.run(["git", "push", bare, "master"], cwd=work, env=ENV, capture_output=True)
        dt = time.perf_counter() - t
        lines = p.stderr.decode(errors="replace").splitlines()
        rows.append([name, str(tasks), f"{dt:.2f}", "accepted" if p.returncode == 0 else "rejected",
                     str(len(lines))])
    table(f"a push of {tasks} such formulas (one run)",
          ["formula", "tasks", "push s", "verdict", "lines the pusher sees"], rows)


def dir_bytes(path):
    return sum(os.path.getsize(os.path.join(dp, f)) for dp, _, fs in os.walk(path) for f in fs)


def bench_checkout(base, n, runs):
    """One task of an n-task repository (50 KB per task) for a runner: taskhook checkout vs the
    shallow clone a runner does today, over git daemon and smart HTTP (protocol v2)."""
    import json
    make_repo(base, f"co{n}", n)
    bare = os.path.join(base, f"co{n}.git")
    run(["git", "config", "uploadpack.allowFilter", "true"], bare)
    d = Daemon(base)
    backend = os.path.join(run(["git", "--exec-path"]).stdout.decode().strip(), "git-http-backend")
    http = subprocess.Popen([sys.executable, os.path.join(ROOT, "tests", "http_backend.py"), base, backend],
                            stdout=subprocess.PIPE)
    port = int(http.stdout.readline())
    rows = []
    try:
        for name, url in [("git daemon", f"git://127.0.0.1:{d.port}/co{n}.git"),
                          ("smart HTTP", f"http://127.0.0.1:{port}/co{n}.git")]:
            job = run([BIN, "plan", "--remote", url, "--item-type", "koji_build", "--item", "x-1-1.fc40",
                       "--branch", "master", "--cache-dir", os.path.join(base, "plancache")]).stdout.decode().splitlines()[0]
            jobfile = os.path.join(base, "job.json")
            open(jobfile, "w").write(job)
            clone_t, co_t = [], []
            clone_b = co_b = 0
            method = ""
            for r in range(runs):
                dest = os.path.join(base, f"cl{r}")
                t = time.perf_counter()
                run(["git", "clone", "-q", "--depth", "1", "--no-tags", url, dest])
                clone_t.append(time.perf_counter() - t)
                clone_b = dir_bytes(os.path.join(dest, ".git", "objects"))
                shutil.rmtree(dest)
                cache = os.path.join(base, f"cache{r}")  # cold: a runner's first task of this repo
                dest = os.path.join(base, f"co{r}")
                t = time.perf_counter()
                p = subprocess.run([BIN, "checkout", "--job", jobfile, "--dest", dest, "--cache-dir", cache,
                                    "--format", "json"], env=ENV, capture_output=True)
                if p.returncode != 0:
                    sys.exit(f"checkout failed over {name}:\n{p.stderr.decode()}")
                out = p.stdout
                co_t.append(time.perf_counter() - t)
                method = json.loads(out)["method"]
                if method == "archive":
                    co_b = len(run(["git", "archive", f"--remote={url}", "refs/heads/master",
                                    json.loads(job)["task_path"]]).stdout)
                else:
                    co_b = dir_bytes(os.path.join(cache))
                shutil.rmtree(dest); shutil.rmtree(cache, ignore_errors=True)
            rows.append([name, method, f"{med(clone_t)*1000:.1f}", f"{clone_b/1e6:.2f} MB",
                         f"{med(co_t)*1000:.1f}", f"{co_b/1e3:.1f} KB", f"{clone_b/max(co_b,1):.0f}x",
                         f"{med(clone_t)/med(co_t):.1f}x"])
    finally:
        d.stop(); http.kill(); http.wait()
    table(f"5. a runner getting one task of a {n}-task repository (50 KB per task), medians",
          ["transport", "checkout method", "shallow clone ms", "clone bytes", "checkout ms",
           "checkout bytes", "fewer bytes", "faster"], rows)


def bench_branching(base, n, runs):
    work, bare = make_repo(base, f"br{n}", n, filler_kb=1, hooks=True)
    run(["git", "remote", "add", "origin", bare], work)
    same, fresh = [], []
    for r in range(runs):
        dt, _ = timed(["git", "push", "-q", "origin", f"master:refs/heads/same{r}"], work); same.append(dt)
        run(["git", "commit", "-q", "--allow-empty", "-m", f"e{r}"], work)
        dt, _ = timed(["git", "push", "-q", "origin", f"HEAD:refs/heads/fresh{r}"], work); fresh.append(dt)
    table(f"4. creating a branch on a {n}-task repo (ms, medians)",
          ["at a commit with a manifest", "at a new commit", "ratio"],
          [[f"{med(same)*1000:.1f}", f"{med(fresh)*1000:.1f}", f"{med(fresh)/med(same):.2f}x"]])


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", default="200,2000")
    ap.add_argument("--push-sizes", default="200,2000,10000")
    ap.add_argument("--branches", default="50,1000",
                    help=f"branch counts of the push comparison by branches ({BRANCH_TASKS} tasks)")
    ap.add_argument("--validate", type=int, default=10000)
    ap.add_argument("--hostile-tasks", type=int, default=200,
                    help="tasks in the push of formulas at the size limit (0: skip the push)")
    ap.add_argument("--branching", type=int, default=2000)
    ap.add_argument("--checkout", type=int, default=200, help="tasks in the checkout benchmark (0: skip)")
    ap.add_argument("--only", default="",
                    help="comma-separated: plan,push,branches,hooks,validate,hostile,branching,checkout,startup")
    ap.add_argument("--runs", type=int, default=7)
    ap.add_argument("--push-runs", type=int, default=15, help="pushes are noisier: more runs")
    ap.add_argument("--baseline-bin", default=None,
                    help="push, hooks: also measure this taskhook binary's hooks (e.g. an older build); "
                         "it must write the same manifest schema version, or the push comparison, "
                         "which swaps both binaries' hooks in one repository, times full checks")
    ap.add_argument("--bin", default=None,
                    help="measure this taskhook binary (and the taskhook-hook beside it) instead of "
                         "building target/server; to compare builds that keep state between "
                         "pushes, which --baseline-bin's shared repository would mix, run each alone")
    a = ap.parse_args()
    global BIN
    if a.bin:
        BIN = os.path.abspath(a.bin)
    else:
        subprocess.run([os.path.join(ROOT, "scripts", "build-server"), "--quiet"], cwd=ROOT,
                       check=True)
    from_disk(BIN, *([os.path.abspath(a.baseline_bin)] if a.baseline_bin else []))
    base = tempfile.mkdtemp(prefix="taskhook-bench-")
    try:
        print(f"machine: {os.cpu_count()} cores; git {run(['git', '--version']).stdout.decode().split()[-1]}; runs={a.runs}"
              f"{disk_note(base)}")
        only = set(filter(None, a.only.split(",")))
        want = lambda name: not only or name in only
        if want("plan"):
            bench_plan(base, [int(x) for x in a.sizes.split(",") if x], a.runs)
        if want("push"):
            bench_push(base, [int(x) for x in a.push_sizes.split(",") if x], a.push_runs, a.baseline_bin)
        if want("branches") and a.branches:
            bench_push(base, [], a.push_runs, a.baseline_bin,
                       branches=[int(x) for x in a.branches.split(",") if x])
        if want("hooks"):
            bench_hooks(base, [int(x) for x in a.push_sizes.split(",") if x], a.push_runs, a.baseline_bin)
        if a.validate and want("validate"):
            bench_validate(base, a.validate, a.runs)
        if want("hostile"):
            bench_hostile(base, a.runs, a.hostile_tasks)
        if a.branching and want("branching"):
            bench_branching(base, a.branching, a.runs)
        if a.checkout and want("checkout"):
            bench_checkout(base, a.checkout, a.runs)
        if want("startup"):
            bench_startup(base)
    finally:
        shutil.rmtree(base, ignore_errors=True)


if __name__ == "__main__":
    main()
