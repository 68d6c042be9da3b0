//! The trigger side against repositories served by a loopback git daemon; manifests are made by
//! pushing through the installed hooks.

mod util;

use std::path::{Path, PathBuf};

use util::*;

fn formula(on: &str, scheduling: &str) -> String {
    format!(
        "name: check-{on}\ndesc: d\nmaintainer: m\ninput:\n  args: [{on}]\nactions:\n  - name: x\n    dummy: {{result: PASSED}}\n{scheduling}"
    )
}

/// A server named `<name>.git` holding tasks for every kind of event, pushed to master and f22.
fn served(name: &str) -> (Server, Daemon) {
    let s = Server::new();
    s.commit_file("build/runtask.yml", &formula("koji_build", ""));
    s.commit_file("tag/runtask.yml", &formula("koji_tag", ""));
    s.commit_file("distgit/runtask.yml", &formula("dist_git_commit", ""));
    s.commit_file("compose/runtask.yml", &formula("compose", ""));
    s.commit_file("module/runtask.yml", &formula("module_build", ""));
    s.commit_file("gitcommit/runtask.yml", &formula("git_commit", ""));
    s.commit_file(
        "fanout/runtask.yml",
        &formula(
            "koji_build",
            "scheduling:\n  arches: [x86_64, aarch64]\n  branches: [\"f*\"]\n",
        ),
    );
    s.commit_file(
        "dormant/runtask.yml",
        &formula("koji_build", "scheduling:\n  run: false\n"),
    );
    for b in ["master", "f22", "epel7", "f18"] {
        let out = s.push(&format!("HEAD:{b}"));
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    std::fs::rename(s.bare(), s.dir.path().join(format!("{name}.git"))).expect("rename");
    let daemon = Daemon::serve(s.dir.path());
    (s, daemon)
}

fn plan(dir: &Path, args: &[&str]) -> (i32, Vec<serde_json::Value>, String) {
    plan_in_env(dir, args, &[])
}

/// [`plan`] with `env` added to its environment.
fn plan_in_env(
    dir: &Path,
    args: &[&str],
    env: &[(&str, &str)],
) -> (i32, Vec<serde_json::Value>, String) {
    let mut cmd = taskhook_cmd();
    cmd.arg("plan")
        .args(args)
        .current_dir(dir)
        .env("NO_COLOR", "1");
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = cmd.output().expect("taskhook plan");
    let jobs = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect();
    (
        out.status.code().unwrap_or(-1),
        jobs,
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn tasks(jobs: &[serde_json::Value]) -> Vec<String> {
    let mut t: Vec<String> = jobs
        .iter()
        .map(|j| {
            format!(
                "{}/{}",
                j["task_path"].as_str().unwrap_or(""),
                j["arch"].as_str().unwrap_or("")
            )
        })
        .collect();
    t.sort();
    t
}

fn msg(name: &str) -> String {
    corpus().join("messages").join(name).display().to_string()
}

#[test]
fn every_corpus_message() {
    let (s, d) = served("ansible");
    let dir = s.dir.path();
    let remote = d.url("{name}.git");
    let head = |b: &str| git(&dir.join("ansible.git"), &["rev-parse", b]);
    // koji build COMPLETE, fedmsg and fedora-messaging envelopes: release 1.el7 → epel7.
    for m in [
        "fedmsg__buildsys__TestKojiBuildStateChangeComplete.json",
        "fedora-messaging__koji_build_complete.json",
    ] {
        let (code, jobs, err) = plan(dir, &["--remote", &remote, "--event", &msg(m), "--explain"]);
        assert_eq!(code, 0, "{err}");
        assert_eq!(tasks(&jobs), vec!["build/noarch"], "{m}: {err}");
        let j = &jobs[0];
        assert_eq!(j["item"], "ansible-1.8.3-1.el7");
        assert_eq!(j["item_type"], "koji_build");
        assert_eq!(j["git_branch"], "epel7");
        assert_eq!(j["git_commit"], head("epel7").as_str());
        assert_eq!(j["git_repo"], d.url("ansible.git").as_str());
        assert_eq!(j["formula"], "build/runtask.yml");
        assert_eq!(j["formula_sha256"].as_str().map(str::len), Some(64));
    }
    // A failed build and a module build that is not ready: no jobs, and --explain says why.
    let (code, jobs, err) = plan(
        dir,
        &[
            "--remote",
            &remote,
            "--event",
            &msg("fedmsg__buildsys__TestKojiBuildStateChangeFail.json"),
            "--explain",
        ],
    );
    assert_eq!((code, jobs.len()), (0, 0));
    assert!(
        err.contains("koji build state is FAILED (3), not COMPLETE (1)"),
        "{err}"
    );
    let (code, jobs, err) = plan(
        dir,
        &[
            "--remote",
            &remote,
            "--event",
            &msg("fedmsg__mbs__TestModuleBuildStateChange.json"),
            "--explain",
        ],
    );
    assert_eq!((code, jobs.len()), (0, 0));
    assert!(
        err.contains("module build state is `wait`, not `ready`"),
        "{err}"
    );
}

#[test]
fn tag_distgit_compose_and_pagure_events() {
    let (s, d) = served("stage");
    let dir = s.dir.path();
    let (code, jobs, err) = plan(
        dir,
        &[
            "--remote",
            &d.url("{name}.git"),
            "--event",
            &msg("fedmsg__buildsys__TestKojiBuildTag.json"),
        ],
    );
    assert_eq!(code, 0, "{err}");
    assert_eq!(tasks(&jobs), vec!["tag/noarch"]);
    assert_eq!(jobs[0]["item"], "f18-updates-testing-pending");
    assert_eq!(jobs[0]["git_branch"], "f18");
    std::fs::rename(dir.join("stage.git"), dir.join("valgrind.git")).expect("rename");
    let (code, jobs, err) = plan(
        dir,
        &[
            "--remote",
            &d.url("{name}.git"),
            "--event",
            &msg("fedmsg__scm__TestSCMWithNamespace.json"),
            "--explain",
        ],
    );
    assert_eq!(code, 0, "{err}");
    assert_eq!(tasks(&jobs), vec!["distgit/noarch"]);
    assert_eq!(
        jobs[0]["item"],
        "rpms/valgrind#7a98f80d9b61ce167e4ef8129c81ed9284ecf4e1"
    );
    assert!(err.contains("is stale, or the event is older"), "{err}");
    let (code, jobs, _) = plan(
        dir,
        &[
            "--remote",
            &d.url("valgrind.git"),
            "--event",
            &msg("fedmsg__compose2__TestPungiKojiComplete.json"),
            "--rawhide-branch",
            "master",
        ],
    );
    assert_eq!(code, 0);
    assert_eq!(tasks(&jobs), vec!["compose/noarch"]);
    assert_eq!(
        jobs[0]["git_branch"], "master",
        "rawhide compose → configured rawhide branch"
    );
    std::fs::rename(dir.join("valgrind.git"), dir.join("pagure.git")).expect("rename");
    let (code, jobs, _) = plan(
        dir,
        &[
            "--remote",
            &d.url("{name}.git"),
            "--event",
            &msg("fedmsg__pagure__TestGitCommit.json"),
        ],
    );
    assert_eq!(code, 0);
    assert_eq!(tasks(&jobs), vec!["gitcommit/noarch"]);
}

/// A copy of the repository `from` at `to` (its parent made if missing), as `cp -a` makes it.
fn copy_repo(from: &Path, to: &Path) {
    std::fs::create_dir_all(to.parent().expect("parent")).expect("mkdir");
    let cp = std::process::Command::new("cp")
        .arg("-a")
        .arg(from)
        .arg(to)
        .status()
        .expect("cp");
    assert!(cp.success(), "cp -a {} {}", from.display(), to.display());
}

/// `taskhook plan` for a koji build of `item` on `branch`, plus `extra` arguments.
fn plan_build(
    dir: &Path,
    remote: &str,
    item: &str,
    branch: &str,
    extra: &[&str],
) -> (i32, Vec<serde_json::Value>, String) {
    plan_build_in_env(dir, remote, item, branch, extra, &[])
}

/// [`plan_build`] with `env` added to its environment.
fn plan_build_in_env(
    dir: &Path,
    remote: &str,
    item: &str,
    branch: &str,
    extra: &[&str],
    env: &[(&str, &str)],
) -> (i32, Vec<serde_json::Value>, String) {
    let mut args = vec![
        "--remote",
        remote,
        "--item-type",
        "koji_build",
        "--item",
        item,
        "--branch",
        branch,
    ];
    args.extend(extra);
    plan_in_env(dir, &args, env)
}

#[test]
fn arches_fan_out_branch_filters_and_fallback() {
    let (s, d) = served("foo");
    let dir = s.dir.path();
    let remote = d.url("foo.git");
    let (code, jobs, err) = plan_build(dir, &remote, "foo-1-1.fc22", "f22", &["--explain"]);
    assert_eq!(code, 0);
    assert_eq!(
        tasks(&jobs),
        vec!["build/noarch", "fanout/aarch64", "fanout/x86_64"]
    );
    assert!(
        err.contains("dormant (check-koji_build): skipped: `scheduling.run` is false"),
        "{err}"
    );
    // master does not match the fanout task's branch filter.
    let (_, jobs, err) = plan_build(dir, &remote, "x", "master", &["--explain"]);
    assert_eq!(tasks(&jobs), vec!["build/noarch"]);
    assert!(err.contains("branch `master` matches none of f*"), "{err}");
    // f40 has no manifest: nothing without a fallback, master's tasks with one.
    let (code, jobs, err) = plan_build(dir, &remote, "x", "f40", &["--explain"]);
    assert_eq!((code, jobs.len()), (0, 0));
    assert!(err.contains("no manifest for branch `f40`"), "{err}");
    let (_, jobs, _) = plan_build(
        dir,
        &remote,
        "x",
        "f40",
        &["--fallback-branch", "master", "--format", "json"],
    );
    assert_eq!(
        tasks(&jobs),
        vec!["build/noarch", "fanout/aarch64", "fanout/x86_64"],
        "filter applies to the event's branch f40"
    );
    assert!(jobs.iter().all(|j| j["git_branch"] == "master"));
    let mut args = vec![
        "plan",
        "--remote",
        &remote,
        "--item-type",
        "koji_build",
        "--item",
        "foo-1-1.fc22",
    ];
    args.extend(["--branch", "f22", "--format", "runtask"]);
    let text = String::from_utf8_lossy(&taskhook(&args, dir).stdout).into_owned();
    assert!(
        text.contains("runtask -i foo-1-1.fc22 -t koji_build -a x86_64 fanout/runtask.yml\n"),
        "{text}"
    );
}

#[test]
fn bad_inputs_fail_clearly() {
    let (s, d) = served("foo");
    let dir = s.dir.path();
    let remote = d.url("foo.git");
    write(&dir.join("bad.json"), "{not json");
    let (code, _, err) = plan(dir, &["--remote", &remote, "--event", "bad.json"]);
    assert_eq!(code, 1);
    assert!(err.contains("the event is not JSON"), "{err}");
    write(
        &dir.join("odd.json"),
        r#"{"topic": "org.fedoraproject.prod.fas.user.create", "msg": {}}"#,
    );
    let (code, jobs, err) = plan(
        dir,
        &["--remote", &remote, "--event", "odd.json", "--explain"],
    );
    assert_eq!((code, jobs.len()), (0, 0));
    assert!(
        err.contains("is not an event taskhook schedules on"),
        "{err}"
    );
    write(&dir.join("nobody.json"), r#"{"topic": "x"}"#);
    assert_eq!(
        plan(dir, &["--remote", &remote, "--event", "nobody.json"]).0,
        1
    );
    // Unreachable remote: a port nobody listens on.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("a")
        .port();
    let unreachable = format!("git://127.0.0.1:{port}/foo.git");
    let (code, _, err) = plan_build(
        dir,
        &unreachable,
        "x",
        "f22",
        &["--timeout", "5", "--explain"],
    );
    assert_eq!(code, 1);
    assert!(err.contains("cannot connect: Connection refused"), "{err}");
    // --explain says what was being planned, before why it could not be.
    assert!(
        err.starts_with("taskhook: event: koji_build x on branch f22 (the command line)\n"),
        "{err}"
    );
    // A repository without taskhook's manifest ref.
    git(dir, &["init", "-q", "--bare", "plain.git"]);
    let (code, _, err) = plan_build(dir, &d.url("plain.git"), "x", "f22", &[]);
    assert_eq!(code, 1);
    assert!(err.contains("the remote has no refs/meta/tasks"), "{err}");
    // A tampered manifest: written behind the hook's back.
    let bare = dir.join("foo.git");
    let blob = git_stdin(
        &bare,
        &["hash-object", "-w", "--stdin"],
        r#"{"schema": 1, "branch": "f22", "commit": "nope", "tasks": []}"#,
    );
    let tree = git_stdin(
        &bare,
        &["mktree"],
        &format!("100644 blob {}\tf22.json\n", blob.trim()),
    );
    let root = git_stdin(
        &bare,
        &["mktree"],
        &format!("040000 tree {}\tbranches\n", tree.trim()),
    );
    let commit = git(&bare, &["commit-tree", root.trim(), "-m", "tampered"]);
    git(&bare, &["update-ref", "refs/meta/tasks", &commit]);
    let (code, _, err) = plan_build(dir, &remote, "x", "f22", &[]);
    assert_eq!(code, 1);
    assert!(
        err.contains("the manifest is not valid JSON of the expected shape"),
        "{err}"
    );
}

use std::process::Command;

fn git_stdin(cwd: &Path, args: &[&str], input: &str) -> String {
    String::from_utf8(run_with_stdin("git", args, cwd, input.as_bytes()).stdout).expect("utf8")
}

/// Smart HTTP does not serve upload-archive; http(s) remotes use a depth-1 fetch of the manifest
/// ref instead. `git http-backend` behind a tiny loopback CGI server (python3) serves it.
#[test]
fn http_remote_uses_a_depth_one_fetch() {
    let Some((s, _d, _http, url)) = served_over_http("foo") else {
        return;
    };
    let dir = s.dir.path();
    let cache = dir.join("cache");
    let cache_arg = cache.to_str().expect("utf8");
    let (code, jobs, err) = plan_build(dir, &url, "x", "f22", &["--cache-dir", cache_arg]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(
        tasks(&jobs),
        vec!["build/noarch", "fanout/aarch64", "fanout/x86_64"]
    );
    assert!(cache.read_dir().expect("cache").next().is_some());
}

/// Over http(s), what each fetch of a new manifest version brings is kept as a pack, never as
/// loose objects: the cache, whose files the disk bound looks at on every fetch, keeps few
/// files however many versions it has fetched.
#[test]
fn http_fetches_keep_the_cache_in_packs() {
    let Some((s, _d, _http, url)) = served_over_http("foo") else {
        return;
    };
    let dir = s.dir.path();
    let cache = dir.join("cache");
    let remote = http_remote(&url, &cache, taskhook::manifest::MAX_MANIFEST_BYTES);
    for version in 0..4 {
        if version > 0 {
            s.commit_file(
                "build/runtask.yml",
                &format!("{}# version {version}\n", formula("koji_build", "")),
            );
            // `served` moved the server repository to foo.git, away from `origin`.
            let bare = dir.join("foo.git");
            let out = git_output(
                &s.work(),
                &["push", bare.to_str().expect("utf-8"), "HEAD:f22"],
            );
            assert!(
                out.status.success(),
                "{}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        let bytes = taskhook::trigger::fetch::fetch_file(&remote, "branches/f22.json")
            .expect("fetch")
            .expect("the branch file");
        let head = git(&dir.join("foo.git"), &["rev-parse", "f22"]);
        let fetched = taskhook::manifest::parse_branch(&bytes, 1 << 20).expect("a manifest");
        assert_eq!(fetched.commit, head.trim(), "version {version}");
    }
    let repo = cache
        .read_dir()
        .expect("cache")
        .flatten()
        .map(|e| e.path())
        .find(|p| p.join("HEAD").is_file())
        .expect("a cache repository");
    let loose: Vec<_> = std::fs::read_dir(repo.join("objects"))
        .expect("objects")
        .flatten()
        .filter(|e| e.file_name().len() == 2)
        .flat_map(|e| std::fs::read_dir(e.path()).expect("fan-out").flatten())
        .map(|e| e.path())
        .collect();
    assert!(loose.is_empty(), "loose objects in the cache: {loose:?}");
    let packs = std::fs::read_dir(repo.join("objects/pack"))
        .expect("packs")
        .flatten()
        .filter(|e| e.path().extension().is_some_and(|x| x == "pack"))
        .count();
    assert!(packs >= 4, "{packs} packs for four fetches");
}

/// `served(name)`'s repositories behind `git http-backend` (a loopback CGI server in python3),
/// and the URL of `<name>.git` there; `None`, said on stderr, where python3 is missing.
fn served_over_http(name: &str) -> Option<(Server, Daemon, HttpBackend, String)> {
    let Ok(py) = which("python3") else {
        eprintln!("python3 not available: skipping the smart-HTTP test");
        return None;
    };
    let (s, daemon) = served(name);
    let http = HttpBackend::serve(s.dir.path(), &py);
    let url = http.url(&format!("{name}.git"));
    Some((s, daemon, http, url))
}

/// The remote `fetch_file` reads the manifest ref of `url` from, into the cache `cache` (made
/// here), with at most `max_bytes` per file.
fn http_remote<'a>(
    url: &'a str,
    cache: &'a Path,
    max_bytes: usize,
) -> taskhook::trigger::fetch::Remote<'a> {
    std::fs::create_dir_all(cache).expect("cache");
    taskhook::trigger::fetch::Remote {
        url,
        manifest_ref: "refs/meta/tasks",
        timeout: std::time::Duration::from_secs(30),
        max_bytes,
        cache_dir: cache,
        cache_max_repos: taskhook::trigger::fetch::cache::DEFAULT_MAX_REPOS,
    }
}

fn which(cmd: &str) -> Result<String, ()> {
    let out = Command::new("sh")
        .arg("-c")
        .arg(format!("command -v {cmd}"))
        .output()
        .map_err(|_| ())?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
    } else {
        Err(())
    }
}

/// Remotes that are not git:// (a path, file://) go through `git archive --remote`.
#[test]
fn local_paths_and_file_urls_use_git_archive() {
    let (s, _d) = served("foo");
    let dir = s.dir.path();
    let path = dir.join("foo.git").display().to_string();
    let (code, jobs, err) = plan_build(dir, &path, "x", "f22", &[]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(
        tasks(&jobs),
        vec!["build/noarch", "fanout/aarch64", "fanout/x86_64"]
    );
    let (code, jobs, _) = plan_build(dir, &format!("file://{path}"), "x", "f22", &[]);
    assert_eq!((code, jobs.len()), (0, 3));
    let missing = dir.join("nope.git").display().to_string();
    let (code, _, err) = plan_build(dir, &missing, "x", "f22", &[]);
    assert_eq!(code, 1);
    assert!(
        err.contains("does not appear to be a git repository"),
        "{err}"
    );
}

/// Every message of today's bus (`messages/modern`) planned against task repositories served by
/// git daemon at `<namespace>/<name>.git`: the jobs the SPEC's mapping table says.
#[test]
fn every_modern_corpus_message() {
    let s = Server::new();
    for t in [
        "koji_build",
        "koji_tag",
        "dist_git_commit",
        "git_commit",
        "bodhi_update",
        "pull_request",
        "compose",
        "module_build",
    ] {
        s.commit_file(&format!("{t}/runtask.yml"), &formula(t, ""));
    }
    for b in ["rawhide", "f31", "f29", "f36", "main", "epel8"] {
        let out = s.push(&format!("HEAD:{b}"));
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let root = s.dir.path().join("srv");
    for repo in [
        "rpms/chromium",
        "rpms/http-parser",
        "rpms/python-twisted",
        "dummyns/dummyrepo",
        "rpms/packit",
        "rpms/optee_os",
        "rpms/libselinux",
        "rpms/libsepol",
        "rpms/golang-github-Masterminds-semver",
        "infra/docs",
        "modules/testmodule",
        "tasks",
    ] {
        let to = root.join(format!("{repo}.git"));
        copy_repo(&s.bare(), &to);
    }
    let d = Daemon::serve(&root);
    let per_package = d.url("{namespace}/{name}.git");
    let generic = d.url("tasks.git");
    let modern = |f: &str| {
        corpus()
            .join("messages/modern")
            .join(f)
            .display()
            .to_string()
    };
    // (message, remote, expected (task, item, repo, branch) per job)
    type Expected<'a> = (&'a str, &'a str, &'a [(&'a str, &'a str, &'a str, &'a str)]);
    let expect: &[Expected] = &[
        (
            "koji__build_state_change_complete_chromium.json",
            &per_package,
            &[(
                "koji_build",
                "chromium-80.0.3987.132-1.fc33",
                "rpms/chromium",
                "rawhide",
            )],
        ),
        (
            "koji__tag_http-parser_f31-updates-pending.json",
            &per_package,
            &[("koji_tag", "f31-updates-pending", "rpms/http-parser", "f31")],
        ),
        (
            "koji__untag_python-twisted_epel8-signing-pending.json",
            &per_package,
            &[],
        ),
        (
            "distgit__git_receive_schema-fixture.json",
            &per_package,
            &[(
                "dist_git_commit",
                "dummyns/dummyrepo#3aa6642b0990d1f6a0e0ce7373c8ad37d2f980ce",
                "dummyns/dummyrepo",
                "main",
            )],
        ),
        (
            "pagure__git_receive_rpms-packit_TRIMMED.json",
            &per_package,
            &[(
                "dist_git_commit",
                "rpms/packit#ad0c308af91da45cf40b253cd82f07f63ea9cbbf",
                "rpms/packit",
                "f36",
            )],
        ),
        (
            "pagure__pull_request_new_rpms-optee_os.json",
            &per_package,
            &[(
                "pull_request",
                "rpms/optee_os#PR-2",
                "rpms/optee_os",
                "rawhide",
            )],
        ),
        (
            "forgejo__push_forge-infra-docs.json",
            &per_package,
            &[(
                "git_commit",
                "infra/docs#139828ad0b8fd3c5d172ccc0fc695a6d7a98f4c5",
                "infra/docs",
                "main",
            )],
        ),
        (
            "bodhi__update_status_testing_build_complete_schema-v3.json",
            &per_package,
            &[
                (
                    "bodhi_update",
                    "FEDORA-2019-d64d0caab3",
                    "rpms/libselinux",
                    "f29",
                ),
                (
                    "bodhi_update",
                    "FEDORA-2019-d64d0caab3",
                    "rpms/libsepol",
                    "f29",
                ),
            ],
        ),
        (
            "bodhi__update_request_testing_golang-semver.json",
            &per_package,
            &[(
                "bodhi_update",
                "FEDORA-2019-f1ca3c00e5",
                "rpms/golang-github-Masterminds-semver",
                "f29",
            )],
        ),
        (
            "pungi__compose_status_change_finished_incomplete_rawhide.json",
            &generic,
            &[("compose", "Fedora-Rawhide-20180426.n.0", "tasks", "rawhide")],
        ),
        // A compose names no package: with a per-package remote it is "no jobs", not an error.
        (
            "pungi__compose_status_change_finished_incomplete_rawhide.json",
            &per_package,
            &[],
        ),
        // Not ready yet (state `wait`).
        (
            "mbs__module_state_change_testmodule-stg.json",
            &per_package,
            &[],
        ),
    ];
    for (file, remote, want) in expect {
        let (code, jobs, err) = plan(
            s.dir.path(),
            &["--remote", remote, "--event", &modern(file), "--explain"],
        );
        assert_eq!(code, 0, "{file}: {err}");
        let got: Vec<(String, String, String, String)> = jobs
            .iter()
            .map(|j| {
                let repo = j["git_repo"].as_str().unwrap_or("");
                let repo = repo
                    .strip_prefix(&d.url(""))
                    .unwrap_or(repo)
                    .trim_end_matches(".git");
                (
                    j["task_path"].as_str().unwrap_or("").to_string(),
                    j["item"].as_str().unwrap_or("").to_string(),
                    repo.to_string(),
                    j["git_branch"].as_str().unwrap_or("").to_string(),
                )
            })
            .collect();
        let want: Vec<(String, String, String, String)> = want
            .iter()
            .map(|(a, b, c, e)| (a.to_string(), b.to_string(), c.to_string(), e.to_string()))
            .collect();
        assert_eq!(got, want, "{file}: {err}");
        for j in &jobs {
            assert_eq!(j["id"].as_str().map(str::len), Some(36), "{j}");
            assert_eq!(j["tree"].as_str().map(str::len), Some(40), "{j}");
        }
    }
}

/// A depth-1 fetch over http(s) stops at a bound on what the cache may grow by (four times the
/// manifest limit, plus 1 MiB): a server whose manifest ref carries more than manifests is
/// refused, whether git is stopped mid-transfer or finished before the disk was looked at.
#[test]
fn an_http_manifest_ref_carrying_too_much_is_refused() {
    let Some((s, _d, _http, url)) = served_over_http("foo") else {
        return;
    };
    let dir = s.dir.path();
    let bare = dir.join("foo.git");
    // 3 MiB that no compression shrinks, added to the manifest ref's tree.
    let mut state = 0x2545_f491_4f6c_dd1d_u64;
    let junk: Vec<u8> = (0..3 << 20)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            (state >> 24) as u8
        })
        .collect();
    edit_ref_tree(
        &bare,
        "refs/meta/tasks",
        &[("junk.bin", Some(junk.as_slice()))],
        dir,
    );
    let cache = dir.join("cache");
    let remote = http_remote(&url, &cache, 64 * 1024);
    let result = taskhook::trigger::fetch::fetch_file(&remote, "branches/f22.json");
    assert!(
        matches!(
            result,
            Err(taskhook::trigger::fetch::FetchError::TooLarge(_))
        ),
        "{result:?}"
    );
    // git, stopped at the bound, may have left its locks in the cache; once older than the
    // timeout they are taken for stale.
    for e in std::fs::read_dir(&cache).expect("cache").flatten() {
        let lock = e.path().join("shallow.lock");
        if lock.exists() {
            make_an_hour_old(&lock);
        }
    }
    // With the limit the manifests need, the same ref is fine.
    let remote = taskhook::trigger::fetch::Remote {
        max_bytes: taskhook::manifest::MAX_MANIFEST_BYTES,
        ..remote
    };
    let bytes = taskhook::trigger::fetch::fetch_file(&remote, "branches/f22.json")
        .expect("fetch")
        .expect("the branch file");
    assert!(taskhook::manifest::parse_branch(&bytes, 1 << 20).is_ok());
}

/// A bodhi update names several packages. One whose repository serves no manifest (taskhook is
/// not installed there, or there is no such repository) is left out with a warning, and the
/// others are planned: before, the first such package ended the plan of the whole message (and
/// `listen` acked it with no jobs). With no package served, the message fails as one would.
#[test]
fn a_package_without_a_manifest_leaves_the_others_of_an_update_planned() {
    let s = Server::new();
    s.commit_file("update/runtask.yml", &formula("bodhi_update", ""));
    let out = s.push("HEAD:f29");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let root = s.dir.path().join("srv");
    copy_repo(&s.bare(), &root.join("rpms/libsepol.git"));
    let daemon = Daemon::serve(&root);
    let http = which("python3")
        .ok()
        .map(|py| HttpBackend::serve(&root, &py));
    let mut remotes = vec![
        daemon.url("{namespace}/{name}.git"),
        format!("{}/{{namespace}}/{{name}}.git", root.display()),
    ];
    remotes.extend(http.as_ref().map(|h| h.url("{namespace}/{name}.git")));
    let update = corpus()
        .join("messages/modern/bodhi__update_status_testing_build_complete_schema-v3.json")
        .display()
        .to_string();
    let cache = s.dir.path().join("cache");
    let cache_s = cache.display().to_string();
    let bare_without_manifest = root.join("rpms/libselinux.git");
    for without in ["no repository", "no manifest"] {
        if without == "no manifest" {
            git(&root, &["init", "--quiet", "--bare", "rpms/libselinux.git"]);
        }
        for remote in &remotes {
            let (code, jobs, err) = plan(
                s.dir.path(),
                &[
                    "--remote",
                    remote,
                    "--event",
                    &update,
                    "--cache-dir",
                    &cache_s,
                ],
            );
            assert_eq!(code, 0, "{without}, {remote}: {err}");
            let repos: Vec<&str> = jobs.iter().filter_map(|j| j["git_repo"].as_str()).collect();
            assert_eq!(repos.len(), 1, "{without}, {remote}: {jobs:?}");
            assert!(
                repos[0].contains("libsepol"),
                "{without}, {remote}: {repos:?}"
            );
            let said = if without == "no manifest" {
                "has no refs/meta/tasks"
            } else {
                "no repository is served there"
            };
            assert!(
                err.contains("warning: libselinux left out of the plan") && err.contains(said),
                "{without}, {remote}: {err}"
            );
            // One package alone, not served: the plan fails, saying why.
            let (code, jobs, err) = plan_build(
                s.dir.path(),
                remote,
                "libselinux-2.9-1.fc29",
                "f29",
                &["--cache-dir", &cache_s],
            );
            assert_eq!((code, jobs.len()), (1, 0), "{without}, {remote}: {err}");
            assert!(err.contains(said), "{without}, {remote}: {err}");
        }
    }
    std::fs::remove_dir_all(&bare_without_manifest).expect("rm");
    std::fs::remove_dir_all(root.join("rpms/libsepol.git")).expect("rm");
    for remote in &remotes {
        let (code, _, err) = plan(
            s.dir.path(),
            &[
                "--remote",
                remote,
                "--event",
                &update,
                "--cache-dir",
                &cache_s,
            ],
        );
        assert_eq!(code, 1, "{remote}: {err}");
        assert!(
            err.contains("no repository is served there"),
            "{remote}: {err}"
        );
    }
}

/// The http(s) fetch cache: a repository that is missing or serves no manifest leaves nothing
/// in it; a cache repository has no hooks from a template; `GIT_DIR` in the environment (a git
/// running taskhook) does not send the fetch elsewhere; a damaged cache repository is replaced;
/// and past `--cache-max-repos` the least recently fetched repositories go.
#[test]
fn the_http_cache_keeps_only_what_it_can_use_and_mends_itself() {
    let Some((s, _d, http, _url)) = served_over_http("foo") else {
        return;
    };
    let dir = s.dir.path();
    for other in ["bar", "baz"] {
        copy_repo(&dir.join("foo.git"), &dir.join(format!("{other}.git")));
    }
    git(dir, &["init", "--quiet", "--bare", "bare.git"]);
    let cache = dir.join("cache");
    let cache_s = cache.display().to_string();
    let remote = http.url("{name}.git");
    let entries = || -> Vec<std::path::PathBuf> {
        let mut e: Vec<_> = std::fs::read_dir(&cache)
            .map(|d| d.flatten().map(|e| e.path()).collect())
            .unwrap_or_default();
        e.sort();
        e
    };
    let plan_for = |name: &str, extra: &[&str], env: Option<(&str, &str)>| {
        let item = format!("{name}-1.0-1.fc22");
        let mut args = vec!["--cache-dir", cache_s.as_str()];
        args.extend(extra);
        let env: Vec<(&str, &str)> = env.into_iter().collect();
        let (code, jobs, err) = plan_build_in_env(dir, &remote, &item, "f22", &args, &env);
        (Some(code), jobs.len(), err)
    };
    for name in ["missing", "bare"] {
        let (code, _, err) = plan_for(name, &[], None);
        assert_eq!(code, Some(1), "{name}: {err}");
        assert!(entries().is_empty(), "{name}: {:?}", entries());
    }
    // GIT_DIR as a hook or `git rebase --exec` would leave it: untouched.
    let victim = dir.join("victim.git");
    git(dir, &["init", "--quiet", "--bare", "victim.git"]);
    let victim_s = victim.display().to_string();
    let (code, out, err) = plan_for("foo", &[], Some(("GIT_DIR", &victim_s)));
    assert_eq!(code, Some(0), "{err}");
    assert!(out > 0, "{err}");
    assert_eq!(git(&victim, &["for-each-ref"]), "");
    let repo = match entries().as_slice() {
        [one] => one.clone(),
        other => panic!("{other:?}"),
    };
    assert!(!repo.join("hooks").exists() && !repo.join("description").exists());
    // Each kind of damage, then a plan that works and one cache repository.
    type Harm<'a> = &'a dyn Fn(&Path);
    let damage: [(&str, Harm); 4] = [
        ("packs cut short", &|r: &Path| {
            for e in std::fs::read_dir(r.join("objects/pack"))
                .expect("packs")
                .flatten()
            {
                std::fs::write(e.path(), "").expect("truncate");
            }
        }),
        ("config garbled", &|r: &Path| {
            std::fs::write(r.join("config"), "garbage[").expect("config")
        }),
        ("objects removed", &|r: &Path| {
            std::fs::remove_dir_all(r.join("objects")).expect("rm")
        }),
        ("HEAD removed", &|r: &Path| {
            std::fs::remove_file(r.join("HEAD")).expect("rm")
        }),
    ];
    for (what, harm) in damage {
        harm(&repo);
        let (code, out, err) = plan_for("foo", &[], None);
        assert_eq!(code, Some(0), "{what}: {err}");
        assert!(out > 0, "{what}: {err}");
        assert_eq!(entries(), std::slice::from_ref(&repo), "{what}");
    }
    // At most two repositories: the third fetched takes the place of the least recent.
    std::thread::sleep(std::time::Duration::from_millis(20));
    let (code, _, err) = plan_for("bar", &["--cache-max-repos", "2"], None);
    assert_eq!(code, Some(0), "{err}");
    assert_eq!(entries().len(), 2);
    std::thread::sleep(std::time::Duration::from_millis(20));
    let (code, _, err) = plan_for("baz", &["--cache-max-repos", "2"], None);
    assert_eq!(code, Some(0), "{err}");
    let left = entries();
    assert_eq!(left.len(), 2, "{left:?}");
    assert!(
        !left.contains(&repo),
        "foo, the least recently fetched, is the one removed: {left:?}"
    );
}

/// Plans run at once against one http(s) remote (a listener's workers, a burst of events), on
/// an empty cache and then on the repository made: each gets its jobs, one cache repository
/// is left and nothing else, and it is not replaced.
#[test]
fn concurrent_plans_share_one_cache_repository() {
    use std::os::unix::fs::MetadataExt as _;
    let Some((s, _d, _http, url)) = served_over_http("foo") else {
        return;
    };
    let dir = s.dir.path();
    let cache = dir.join("cache");
    let cache_s = cache.display().to_string();
    let burst = || -> Vec<(i32, Vec<serde_json::Value>, String)> {
        std::thread::scope(|scope| {
            let runs: Vec<_> = (0..8)
                .map(|_| {
                    let (url, cache_s) = (&url, &cache_s);
                    scope.spawn(move || {
                        plan_build(dir, url, "foo-1.0-1.fc22", "f22", &["--cache-dir", cache_s])
                    })
                })
                .collect();
            runs.into_iter().map(|r| r.join().expect("plan")).collect()
        })
    };
    let repos = || -> Vec<(String, u64)> {
        std::fs::read_dir(&cache)
            .expect("cache")
            .flatten()
            .map(|e| {
                let ino = e.metadata().expect("metadata").ino();
                (e.file_name().to_string_lossy().into_owned(), ino)
            })
            .collect()
    };
    // An empty cache first (every plan makes a repository; one stays), then the one made:
    // fetches into it wait for each other rather than fail on git's locks, and it is not
    // replaced (a fetch that failed on a lock would take it for damaged).
    let mut made = Vec::new();
    for round in 0..2 {
        let outs = burst();
        let first = &outs[0].1;
        for (code, jobs, err) in &outs {
            assert_eq!(*code, 0, "round {round}: {err}");
            assert!(!jobs.is_empty() && jobs == first);
        }
        let now = repos();
        assert_eq!(now.len(), 1, "{now:?}");
        if round == 0 {
            made = now;
        } else {
            assert_eq!(now, made);
        }
    }
}

/// A cache repository grown past twice what one fetch may add (four times the manifest limit,
/// and 1 MiB) is started again: each fetch is bounded, and so is what fetches leave.
#[test]
fn an_oversized_cache_repository_is_started_again() {
    let Some((s, _d, _http, url)) = served_over_http("foo") else {
        return;
    };
    let cache = s.dir.path().join("cache");
    let remote = http_remote(&url, &cache, 64 * 1024);
    let fetch = || {
        taskhook::trigger::fetch::fetch_file(&remote, "branches/f22.json")
            .expect("fetch")
            .expect("the branch file")
    };
    let first = fetch();
    let repo = taskhook::trigger::fetch::cache::path_of(&cache, &url);
    // Within the bound (2.5 MiB here), what is there stays.
    let kept = repo.join("objects/kept");
    std::fs::write(&kept, vec![0u8; 2 << 20]).expect("write");
    assert_eq!(fetch(), first);
    assert!(kept.exists());
    let padding = repo.join("objects/padding");
    std::fs::write(&padding, vec![0u8; 1 << 20]).expect("write");
    assert_eq!(fetch(), first);
    assert!(taskhook::trigger::fetch::cache::exists(&repo));
    assert!(!kept.exists() && !padding.exists());
}

/// An "ssh" that runs the remote's command on this machine (after `refuse`, shell lines that may
/// answer some commands themselves), logging each command line: the script, the log and a
/// `{name}` remote template over it.
fn stand_in_ssh(dir: &Path, refuse: &str) -> (String, PathBuf, String) {
    let log = dir.join("ssh.log");
    let script = dir.join("stand-in-ssh");
    executable(
        &script,
        &format!(
            "#!/bin/sh\nfor last; do :; done\nprintf '%s\\n' \"$*\" >> '{}'\n{refuse}exec sh -c \"$last\"\n",
            log.display()
        ),
    );
    let remote = format!("ssh://pkgs.example.invalid{}/{{name}}.git", dir.display());
    (script.display().to_string(), log, remote)
}

/// ssh remotes: an ssh command the environment (`GIT_SSH_COMMAND`) or git's config
/// (`core.sshCommand`) gives, with an identity for the remote, say, is the one git uses;
/// taskhook's own (`ssh -o BatchMode=yes`) only stands in when there is none. Here the "ssh"
/// runs the remote's command on this machine.
#[test]
fn an_ssh_command_from_the_environment_or_the_config_is_used() {
    let (s, _d) = served("foo");
    let dir = s.dir.path();
    let (fake_ssh, log, remote) = stand_in_ssh(dir, "");
    let config = dir.join("global-gitconfig");
    std::fs::write(&config, format!("[core]\n\tsshCommand = {fake_ssh}\n")).expect("config");
    let config = config.display().to_string();
    for env in [
        ("GIT_SSH_COMMAND", fake_ssh.as_str()),
        ("GIT_CONFIG_GLOBAL", config.as_str()),
    ] {
        let _ = std::fs::remove_file(&log);
        let (code, jobs, err) =
            plan_build_in_env(dir, &remote, "foo-1.0-1.fc22", "f22", &[], &[env]);
        assert!(code == 0, "{env:?}: {err}");
        assert!(!jobs.is_empty(), "{env:?}: {err}");
        let said = std::fs::read_to_string(&log).expect("the ssh command ran");
        assert!(
            said.contains("pkgs.example.invalid") && said.contains("git-upload-archive"),
            "{said}"
        );
    }
}

/// The forges' ssh services answer for a repository they do not have in their own words, on
/// stderr, before git's "Could not read from remote repository": each is a repository not
/// served (no jobs, not retried by the listener), and the reason plan gives is the forge's line.
#[test]
fn a_forges_ssh_answer_for_a_missing_repository_is_quoted() {
    let (s, _d) = served("foo");
    let dir = s.dir.path();
    for said in [
        "Forgejo: Cannot find repository: rpms/nope",
        "GitLab: The project you were looking for could not be found or you don't have \
         permission to view it.",
        "FATAL: R any rpms/nope trigger DENIED by fallthru",
    ] {
        let (fake_ssh, _log, remote) = stand_in_ssh(
            dir,
            &format!(
                "printf '%s\\n(or you mis-spelled the reponame)\\n' \"{said}\" >&2; exit 128\n"
            ),
        );
        let (code, jobs, err) = plan_build_in_env(
            dir,
            &remote,
            "nope-1.0-1.fc22",
            "f22",
            &["--cache-dir", &dir.join("cache").display().to_string()],
            &[("GIT_SSH_COMMAND", &fake_ssh)],
        );
        assert_eq!(code, 1, "{err}");
        assert!(jobs.is_empty(), "{err}");
        assert!(
            err.contains(&format!("no repository is served there: {said}")),
            "{err}"
        );
    }
}

/// Servers that serve fetches but no archives: git daemon as it runs by default (no
/// upload-archive, refused as a repository it does not export would be), and an ssh server that
/// allows only fetches and pushes, as Pagure's does. plan fetches the manifest ref at depth 1
/// there, and a repository the daemon does not have is still told apart; the runner's
/// checkout fetches the pinned commit.
#[test]
fn a_server_that_serves_no_archives_is_fetched_from() {
    let (s, _d) = served("foo");
    let dir = s.dir.path();
    let daemon = Daemon::serve_without_archive(dir);
    let cache = dir.join("cache").display().to_string();
    let cache_arg = ["--cache-dir", cache.as_str()];
    let (code, jobs, err) = plan_build(
        dir,
        &daemon.url("{name}.git"),
        "foo-1.0-1.fc22",
        "f22",
        &["--cache-dir", cache.as_str(), "--explain"],
    );
    assert_eq!(code, 0, "{err}");
    assert!(!jobs.is_empty(), "{err}");
    assert!(
        err.contains("git daemon serves no archive of it: fetched at depth 1"),
        "{err}"
    );
    let (code, _, err) = plan_build(
        dir,
        &daemon.url("{name}.git"),
        "nope-1.0-1.fc22",
        "f22",
        &cache_arg,
    );
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("no repository is served there"), "{err}");
    let job = dir.join("job.json");
    std::fs::write(&job, jobs[0].to_string()).expect("job");
    let out = taskhook(
        &[
            "checkout",
            "--job",
            "job.json",
            "--dest",
            "task",
            "--cache-dir",
            &cache,
        ],
        dir,
    );
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{said}");
    assert!(said.contains("by commit-fetch"), "{said}");

    let (fake_ssh, log, remote) = stand_in_ssh(
        dir,
        "case \"$last\" in git-upload-archive*) echo 'Invalid call, invalid operation' >&2; exit 1;; esac\n",
    );
    let (code, jobs, err) = plan_build_in_env(
        dir,
        &remote,
        "foo-1.0-1.fc22",
        "f22",
        &cache_arg,
        &[("GIT_SSH_COMMAND", &fake_ssh)],
    );
    assert_eq!(code, 0, "{err}");
    assert!(!jobs.is_empty(), "{err}");
    let said = std::fs::read_to_string(&log).expect("ssh ran");
    assert!(
        said.contains("git-upload-archive") && said.contains("git-upload-pack"),
        "{said}"
    );
}

/// No hook runs in a cache repository, even in one an older taskhook made with `git init` under
/// an `init.templateDir` that holds hooks (a fetch runs `reference-transaction`).
#[test]
fn hooks_never_run_in_a_cache_repository() {
    let Some((s, _d, _http, url)) = served_over_http("foo") else {
        return;
    };
    let dir = s.dir.path();
    let ran = dir.join("hook-ran");
    let template = dir.join("template");
    executable(
        &template.join("hooks/reference-transaction"),
        &format!(
            "#!/bin/sh\ncat > /dev/null\necho \"$*\" >> '{}'\n",
            ran.display()
        ),
    );
    let cache = dir.join("cache");
    let repo = taskhook::trigger::fetch::cache::path_of(&cache, &url);
    std::fs::create_dir_all(&repo).expect("mkdir");
    git(
        &repo,
        &[
            "init",
            "--quiet",
            "--bare",
            &format!("--template={}", template.display()),
        ],
    );
    assert!(repo.join("hooks/reference-transaction").is_file());
    // `git init` itself ran it, for HEAD.
    let _ = std::fs::remove_file(&ran);
    let cache_s = cache.display().to_string();
    let (code, jobs, err) = plan_build(
        dir,
        &url,
        "foo-1.0-1.fc22",
        "f22",
        &["--cache-dir", &cache_s],
    );
    assert_eq!(code, 0, "{err}");
    assert!(!jobs.is_empty(), "{err}");
    assert!(
        !ran.exists(),
        "a hook ran in the cache repository: {}",
        std::fs::read_to_string(&ran).unwrap_or_default()
    );
}
