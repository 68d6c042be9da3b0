//! `taskhook checkout` on real git: a task fetched by archive (git daemon, file://), by a
//! filtered fetch of the pinned commit, and by the branch fallback (smart HTTP serving protocol
//! v0); tampered jobs refused with nothing written.

mod util;

use std::path::{Path, PathBuf};

use util::*;

/// A served repository with tasks `a` (three files, one executable) and `b`, on master.
fn served() -> (Server, Daemon) {
    let s = Server::new();
    s.commit_file("a/runtask.yml", GOOD);
    s.commit_file("a/data/input.txt", "some data\n");
    write(&s.work().join("a/run.sh"), "#!/bin/sh\necho run\n");
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(
        s.work().join("a/run.sh"),
        std::fs::Permissions::from_mode(0o755),
    )
    .expect("chmod");
    s.commit_file("a/run.sh", "#!/bin/sh\necho run\n");
    s.commit_file("b/runtask.yml", &GOOD.replace("rpmlint", "other"));
    s.commit_file("tests/c/runtask.yml", &GOOD.replace("rpmlint", "nested"));
    let out = s.push("master");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    git(&s.bare(), &["config", "uploadpack.allowFilter", "true"]);
    let d = Daemon::serve(s.dir.path());
    (s, d)
}

/// The job for task `a` that `plan` gives for a koji build on master.
fn job_for(s: &Server, remote: &str) -> serde_json::Value {
    job_for_task(s, remote, "a")
}

fn checkout(
    dir: &Path,
    job: &serde_json::Value,
    dest: &Path,
    extra: &[&str],
) -> std::process::Output {
    let file = dir.join(format!("job-{}.json", std::process::id()));
    std::fs::write(&file, job.to_string()).expect("job file");
    let dest_s = dest.display().to_string();
    let cache = dir.join("cache").display().to_string();
    let file_s = file.display().to_string();
    let mut args = vec![
        "checkout",
        "--job",
        &file_s,
        "--dest",
        &dest_s,
        "--cache-dir",
        &cache,
        "--format",
        "json",
    ];
    args.extend(extra);
    taskhook(&args, dir)
}

fn method(out: &std::process::Output) -> String {
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    v["method"].as_str().unwrap_or("").to_string()
}

fn assert_task_a(dest: &Path) {
    assert_eq!(
        std::fs::read_to_string(dest.join("runtask.yml")).expect("formula"),
        GOOD
    );
    assert_eq!(
        std::fs::read_to_string(dest.join("data/input.txt")).expect("data"),
        "some data\n"
    );
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(dest.join("run.sh"))
        .expect("run.sh")
        .permissions()
        .mode();
    assert!(mode & 0o100 != 0, "the executable bit survives");
    assert!(!dest.join("b").exists() && !dest.join("a").exists());
}

#[test]
fn archive_where_served_then_the_pinned_commit_after_the_branch_moved() {
    let (s, d) = served();
    let dir = s.dir.path();
    let job = job_for(&s, &d.url("srv.git"));
    let dest = dir.join("out1");
    assert_eq!(method(&checkout(dir, &job, &dest, &[])), "archive");
    assert_task_a(&dest);
    // file:// and plain paths serve archives too.
    let job_file = job_for(&s, &format!("file://{}", s.bare().display()));
    assert_eq!(
        method(&checkout(dir, &job_file, &dir.join("out2"), &[])),
        "archive"
    );
    // The branch moves on: the old job is fetched by commit (protocol v2), blobs filtered.
    s.commit_file("a/runtask.yml", &GOOD.replace("desc:", "desc: changed"));
    assert!(s.push("master").status.success());
    let dest = dir.join("out3");
    let out = checkout(dir, &job, &dest, &[]);
    assert_eq!(method(&out), "commit-fetch");
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("is now at"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_task_a(&dest);
}

/// A repository's `.gitattributes` changes what `git archive` serves (`export-ignore` leaves
/// files out; `export-subst`, `ident` and `eol` rewrite them): such an archive is not the pinned
/// task, and the pinned commit is fetched instead.
#[test]
fn an_archive_that_gitattributes_changed_is_not_used() {
    let (s, d) = served();
    s.commit_file(".gitattributes", "a/data/** export-ignore\n");
    assert!(s.push("master").status.success());
    let dir = s.dir.path();
    let job = job_for(&s, &d.url("srv.git"));
    let out = checkout(dir, &job, &dir.join("out1"), &[]);
    assert_eq!(method(&out), "commit-fetch");
    assert_task_a(&dir.join("out1"));
    // Rewritten in the archive: line ends.
    s.commit_file(".gitattributes", "a/runtask.yml text eol=crlf\n");
    assert!(s.push("master").status.success());
    let job = job_for(&s, &d.url("srv.git"));
    let dest = dir.join("out2");
    let out = checkout(dir, &job, &dest, &[]);
    assert_eq!(method(&out), "commit-fetch");
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("the archive is not the pinned task"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_task_a(&dest);
}

#[test]
fn smart_http_falls_back_to_the_branch_and_says_so() {
    let (s, _d) = served();
    let dir = s.dir.path();
    let http = HttpBackend::serve(dir, "python3");
    let url = http.url("srv.git");
    let job = job_for(&s, &url);
    // A fetch killed at its timeout earlier left git's lock in the cache: taken for stale.
    let cache =
        taskhook::trigger::fetch::cache_repo(&dir.join("cache"), &url, 1000).expect("cache");
    let lock = cache.join("shallow.lock");
    std::fs::write(&lock, "").expect("lock");
    make_an_hour_old(&lock);
    let dest = dir.join("out");
    let out = checkout(dir, &job, &dest, &[]);
    assert!(!lock.exists());
    let m = method(&out);
    // This harness's HTTP server speaks protocol v0, which serves no commit by id.
    assert_eq!(
        m,
        "branch-fetch",
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("does not serve commit") || err.contains("serves no file by id"),
        "{err}"
    );
    assert_task_a(&dest);
    // A second task of the same event reuses the cache.
    let mut job_b = job.clone();
    let other = job_for_task(&s, &url, "b");
    job_b["task_path"] = other["task_path"].clone();
    job_b["formula"] = other["formula"].clone();
    job_b["tree"] = other["tree"].clone();
    job_b["formula_sha256"] = other["formula_sha256"].clone();
    assert_eq!(
        method(&checkout(dir, &job_b, &dir.join("outb"), &[])),
        "commit-fetch"
    );
    // A damaged cache (its packs cut short) is replaced by a new one, and the task fetched.
    let packs = cache.join("objects/pack");
    for e in std::fs::read_dir(&packs).expect("packs").flatten() {
        std::fs::write(e.path(), "").expect("truncate");
    }
    let out = checkout(dir, &job_b, &dir.join("outc"), &[]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    assert!(
        err.contains("fetching again into a new cache repository"),
        "{err}"
    );
    assert!(dir.join("outc/runtask.yml").is_file());
    // After the branch moved, a v0 server cannot give the pinned commit: refused.
    s.commit_file("a/runtask.yml", &GOOD.replace("desc:", "desc: changed"));
    assert!(s.push("master").status.success());
    let dest = dir.join("late");
    let out = checkout(dir, &job, &dest, &[]);
    if out.status.success() {
        // The cache still holds the pinned commit from the first checkout: that is fine too.
        assert_task_a(&dest);
    } else {
        assert_eq!(out.status.code(), Some(1));
        assert!(!dest.exists());
    }
}

/// The job for `task` that `plan` gives for a koji build on master.
fn job_for_task(s: &Server, remote: &str, task: &str) -> serde_json::Value {
    let out = taskhook(
        &[
            "plan",
            "--remote",
            remote,
            "--item-type",
            "koji_build",
            "--item",
            "rpmlint-1-1.fc40",
            "--branch",
            "master",
        ],
        s.dir.path(),
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).expect("job"))
        .find(|j| j["task_path"] == task)
        .unwrap_or_else(|| panic!("a job for task {task}"))
}

#[test]
fn tampered_jobs_are_refused_with_nothing_written() {
    let (s, d) = served();
    let dir = s.dir.path();
    let job = job_for(&s, &d.url("srv.git"));
    let b = job_for_task(&s, &d.url("srv.git"), "b");
    let cases: Vec<(&str, serde_json::Value, &str)> = vec![
        (
            "wrong tree",
            with(&job, "tree", b["tree"].clone()),
            "but the job pins tree",
        ),
        (
            "wrong digest",
            with(&job, "formula_sha256", b["formula_sha256"].clone()),
            "but the job pins",
        ),
        (
            "a commit without the path",
            with(
                &with(&job, "task_path", "nope".into()),
                "formula",
                "nope/runtask.yml".into(),
            ),
            "nope",
        ),
        (
            "a path outside",
            with(
                &with(&job, "task_path", "../etc".into()),
                "formula",
                "../etc/runtask.yml".into(),
            ),
            "not a plain relative path",
        ),
        (
            "a command as URL",
            with(&job, "git_repo", "ext::sh -c touch% /tmp/pwned".into()),
            "remote helper",
        ),
        (
            "not a commit id",
            with(&job, "git_commit", "HEAD".into()),
            "not a commit id",
        ),
    ];
    for (what, bad, message) in cases {
        let dest = dir.join("never");
        let out = checkout(dir, &bad, &dest, &[]);
        assert_eq!(
            out.status.code(),
            Some(1),
            "{what}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(message), "{what}: {err}");
        assert!(!dest.exists(), "{what}: something was written");
        let leftovers: Vec<PathBuf> = std::fs::read_dir(dir)
            .expect("dir")
            .map(|e| e.expect("entry").path())
            .filter(|p| {
                p.file_name()
                    .is_some_and(|n| n.to_string_lossy().starts_with(".taskhook-checkout"))
            })
            .collect();
        assert!(leftovers.is_empty(), "{what}: {leftovers:?}");
    }
}

fn with(job: &serde_json::Value, key: &str, value: serde_json::Value) -> serde_json::Value {
    let mut j = job.clone();
    j[key] = value;
    j
}

#[test]
fn exec_runs_in_the_task_with_the_job() {
    let (s, d) = served();
    let dir = s.dir.path();
    let job = job_for(&s, &d.url("srv.git"));
    let dest = dir.join("run");
    let out = checkout(
        dir,
        &job,
        &dest,
        &["--exec", "test -f runtask.yml && echo \"$TASKHOOK_ITEM $TASKHOOK_ITEM_TYPE $TASKHOOK_ARCH\" > ran && cat > job.json"],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        std::fs::read_to_string(dest.join("ran")).expect("ran"),
        "rpmlint-1-1.fc40 koji_build noarch\n"
    );
    let stdin: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dest.join("job.json")).expect("job"))
            .expect("json");
    assert_eq!(stdin["id"], job["id"]);
    let out = checkout(dir, &job, &dir.join("fails"), &["--exec", "exit 3"]);
    assert_eq!(out.status.code(), Some(1));
}

/// The runner's cache keeps `--cache-max-repos` repositories: past that, the least recently
/// fetched go (a runner checks out from many repositories and never runs `plan`, which prunes
/// the same way). The server here serves no archives, so each checkout fetches.
#[test]
fn the_cache_keeps_at_most_cache_max_repos() {
    let (s, _d) = served();
    let dir = s.dir.path();
    let daemon = Daemon::serve_without_archive(dir);
    for copy in ["one.git", "two.git"] {
        git(dir, &["clone", "-q", "--mirror", "srv.git", copy]);
        git(
            &dir.join(copy),
            &["config", "uploadpack.allowFilter", "true"],
        );
    }
    let job = job_for(&s, &daemon.url("srv.git"));
    let repos = || -> Vec<String> {
        let mut names: Vec<String> = std::fs::read_dir(dir.join("cache"))
            .expect("cache")
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|n| n.len() == 16)
            .collect();
        names.sort();
        names
    };
    for (i, repo) in ["srv.git", "one.git", "two.git"].iter().enumerate() {
        std::thread::sleep(std::time::Duration::from_millis(20));
        let job = with(&job, "git_repo", daemon.url(repo).into());
        let dest = dir.join(format!("out{i}"));
        let out = checkout(dir, &job, &dest, &["--cache-max-repos", "2"]);
        assert_eq!(method(&out), "commit-fetch");
        assert_task_a(&dest);
        assert_eq!(repos().len(), (i + 1).min(2), "{:?}", repos());
    }
    let first =
        taskhook::trigger::fetch::cache::path_of(&dir.join("cache"), &daemon.url("srv.git"));
    assert!(
        !first.exists(),
        "srv.git, the least recently fetched, is the one removed"
    );
}
