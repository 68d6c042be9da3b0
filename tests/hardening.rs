//! Hostile pushes, refs and values, on real git: each class of the adversarial review, with a
//! regression test.

mod util;

use util::*;

fn stderr(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// Writes raw tree bytes as a tree object in the work repository (git's own tools refuse to).
fn raw_tree(s: &Server, entries: &[(&str, &str, &str)]) -> String {
    let mut bytes = Vec::new();
    for (mode, name, hex) in entries {
        bytes.extend_from_slice(format!("{mode} {name}\0").as_bytes());
        for i in 0..20 {
            bytes.push(u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).expect("hex"));
        }
    }
    let out = run_with_stdin(
        "git",
        &["hash-object", "-w", "-t", "tree", "--literally", "--stdin"],
        &s.work(),
        &bytes,
    );
    assert!(out.status.success(), "{}", stderr(&out));
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

fn blob(s: &Server, text: &str) -> String {
    let out = run_with_stdin(
        "git",
        &["hash-object", "-w", "--stdin"],
        &s.work(),
        text.as_bytes(),
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

fn push_tree(s: &Server, tree: &str, branch: &str) -> std::process::Output {
    let commit = git(&s.work(), &["commit-tree", tree, "-m", "crafted"]);
    git_output(
        &s.work(),
        &["push", "origin", &format!("{commit}:refs/heads/{branch}")],
    )
}

#[test]
fn a_tree_with_two_formulas_of_one_name_is_rejected() {
    let s = Server::new();
    let good = blob(&s, GOOD);
    let evil = blob(&s, &GOOD.replace("rpmlint", "evil"));
    let task = raw_tree(
        &s,
        &[
            ("100644", "runtask.yml", &good),
            ("100644", "runtask.yml", &evil),
        ],
    );
    let root = raw_tree(&s, &[("40000", "t", &task)]);
    let out = push_tree(&s, &root, "master");
    assert!(!out.status.success(), "accepted: {}", stderr(&out));
    assert!(
        stderr(&out).contains("directory `t` lists `runtask.yml` twice"),
        "{}",
        stderr(&out)
    );
    // A name git refuses.
    let root = raw_tree(&s, &[("40000", ".git", &task)]);
    let out = push_tree(&s, &root, "other");
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("error[bad-tree-entry]"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn refs_in_the_way_of_the_manifest_ref() {
    let s = Server::new();
    s.commit_file("t/runtask.yml", GOOD);
    let out = git_output(
        &s.work(),
        &["push", "origin", "HEAD:refs/meta/tasks/x", "HEAD:master"],
    );
    assert!(!out.status.success());
    assert!(
        stderr(&out)
            .contains("refs/meta/tasks/x is written by the server's post-receive hook only"),
        "{}",
        stderr(&out)
    );
    // A ref put there before taskhook was installed: the hook says what to delete.
    let t = Server::uninstalled();
    t.commit_file("t/runtask.yml", GOOD);
    assert!(t.push("master").status.success());
    git(
        &t.bare(),
        &["update-ref", "refs/meta/tasks/old", "refs/heads/master"],
    );
    assert!(taskhook(&["install", "srv.git"], t.dir.path())
        .status
        .success());
    t.commit_file("t/more.txt", "x");
    let out = t.push("master");
    assert!(out.status.success());
    assert!(
        stderr(&out)
            .contains("the server admin can delete them: git update-ref -d refs/meta/tasks/old"),
        "{}",
        stderr(&out)
    );
    git(&t.bare(), &["update-ref", "-d", "refs/meta/tasks/old"]);
    t.commit_file("t/more.txt", "y");
    assert!(t.push("master").status.success());
    assert!(t.meta().is_some());
}

/// A replace ref makes git serve another object's content under a validated object's id: to
/// `git archive --remote` (the runner's checkout, the trigger's manifest fetch) among others.
/// Pushing one is refused; deleting one (an admin made it on the server) is not.
#[test]
fn replace_refs_are_not_accepted_from_pushers() {
    let s = Server::new();
    s.commit_file("t/runtask.yml", GOOD);
    assert!(s.push("master").status.success());
    let meta = s.meta();
    let good = git(&s.work(), &["rev-parse", "HEAD:t/runtask.yml"]);
    let evil = blob(&s, &GOOD.replace("rpmlint", "evil"));
    git(&s.work(), &["replace", &good, &evil]);
    let replace = format!("refs/replace/{good}");
    let out = s.push(&replace);
    assert!(!out.status.success(), "accepted: {}", stderr(&out));
    assert!(
        stderr(&out).contains(&format!("{replace}: replace refs are not accepted")),
        "{}",
        stderr(&out)
    );
    // Nor beside a branch, nor under the update hook's per-ref verdicts.
    s.commit_file("t/more.txt", "x");
    let out = git_output(&s.work(), &["push", "origin", "master", &replace]);
    assert!(!out.status.success(), "accepted: {}", stderr(&out));
    git(&s.bare(), &["config", "taskhook.verdictHook", "update"]);
    let out = s.push(&replace);
    assert!(!out.status.success(), "accepted: {}", stderr(&out));
    assert_eq!(meta, s.meta());
    assert!(git(&s.bare(), &["for-each-ref", "refs/replace/"]).is_empty());
    let served = git_output(
        &s.dir.path().join("work"),
        &[
            "archive",
            "--remote=../srv.git",
            "refs/heads/master",
            "t/runtask.yml",
        ],
    );
    assert!(served.status.success(), "{}", stderr(&served));
    assert!(!String::from_utf8_lossy(&served.stdout).contains("evil"));

    // One the admin made on the server can be deleted by a push.
    let evil_there = run_with_stdin(
        "git",
        &["hash-object", "-w", "--stdin"],
        &s.bare(),
        GOOD.replace("rpmlint", "evil").as_bytes(),
    );
    assert!(evil_there.status.success());
    git(&s.bare(), &["update-ref", &replace, &evil]);
    // doctor points it out.
    let (code, text) = doctor_says(s.dir.path());
    assert_eq!(code, Some(1), "{text}");
    assert!(
        text.contains(&format!("1 replace ref ({replace})"))
            && text.contains(&format!("git update-ref -d {replace}")),
        "{text}"
    );
    let out = s.push(&format!(":{replace}"));
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(git(&s.bare(), &["for-each-ref", "refs/replace/"]).is_empty());
    let (code, text) = doctor_says(s.dir.path());
    assert_eq!(code, Some(0), "{text}");
}

#[test]
fn colliding_branch_names_keep_the_manifest_tree_valid() {
    let s = Server::new();
    s.commit_file("t/runtask.yml", GOOD);
    for b in ["a", "a.json/x", "a%2Ejson/y"] {
        let out = s.push(&format!("HEAD:refs/heads/{b}"));
        assert!(out.status.success(), "{b}: {}", stderr(&out));
    }
    let fsck = git_output(&s.bare(), &["fsck", "--full", "--strict"]);
    assert!(fsck.status.success(), "{}", stderr(&fsck));
    let index: serde_json::Value = serde_json::from_str(&s.show("index.json")).expect("index");
    let files: Vec<&str> = ["a", "a.json/x", "a%2Ejson/y"]
        .iter()
        .map(|b| index["branches"][b]["manifest"].as_str().expect("entry"))
        .collect();
    assert_eq!(
        files,
        vec![
            "branches/a.json",
            "branches/a%2Ejson/x.json",
            "branches/a%252Ejson/y.json"
        ]
    );
    // plan finds them where the writer put them.
    let d = Daemon::serve(s.dir.path());
    let out = taskhook(
        &[
            "plan",
            "--remote",
            &d.url("srv.git"),
            "--item-type",
            "koji_build",
            "--item",
            "x-1-1",
            "--branch",
            "a.json/x",
        ],
        s.dir.path(),
    );
    assert!(
        out.status.success() && !out.stdout.is_empty(),
        "{}",
        stderr(&out)
    );
}

#[test]
fn a_non_utf8_tag_does_not_reject_a_good_push() {
    let s = Server::new();
    s.commit_file("t/runtask.yml", GOOD);
    // git's own refname checks refuse most bytes on the client; write the tag on the server side
    // and feed the hook the raw line, as a server would.
    let head = git(&s.work(), &["rev-parse", "HEAD"]);
    assert!(s.push("master").status.success());
    let zero = "0".repeat(40);
    let mut input = format!("{zero} {head} ").into_bytes();
    input.extend_from_slice(b"refs/tags/v\xff1\n");
    input.extend_from_slice(format!("{head} {head} refs/heads/master\n").as_bytes());
    let out = taskhook_cmd()
        .args(["hook", "pre-receive"])
        .current_dir(s.bare())
        .env("GIT_DIR", ".")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .and_then(|mut c| {
            use std::io::Write as _;
            c.stdin.take().expect("stdin").write_all(&input)?;
            c.wait_with_output()
        })
        .expect("hook");
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
}

#[test]
fn a_newline_in_a_directory_name_forges_no_remote_lines() {
    let s = Server::new();
    let bad = blob(&s, "name: [unclosed\n");
    let task = raw_tree(&s, &[("100644", "runtask.yml", &bad)]);
    let root = raw_tree(&s, &[("40000", "x\nremote: taskhook: all good", &task)]);
    let out = push_tree(&s, &root, "master");
    let err = stderr(&out);
    assert!(!out.status.success());
    assert!(
        !err.lines()
            .any(|l| l.trim_start() == "remote: taskhook: all good"),
        "{err}"
    );
    assert!(err.contains("x\\nremote: taskhook: all good"), "{err}");
}

#[test]
fn values_that_would_be_options_or_overflow() {
    let job = taskhook::trigger::plan::Job {
        id: "i".into(),
        taskname: "t".into(),
        item: "-rf".into(),
        item_type: "koji_build".into(),
        arch: "noarch".into(),
        git_repo: "r".into(),
        git_branch: "b".into(),
        git_commit: "c".into(),
        task_path: "t".into(),
        formula: "t/runtask.yml".into(),
        formula_sha256: "d".into(),
        tree: "e".into(),
    };
    assert_eq!(
        job.runtask_line(),
        "runtask --item=-rf -t koji_build -a noarch t/runtask.yml"
    );
    let s = Server::new();
    git(
        &s.bare(),
        &["config", "taskhook.timeBudget", "18446744073709551615"],
    );
    s.commit_file("t/runtask.yml", GOOD);
    let out = s.push("master");
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("taskhook.timeBudget"),
        "{}",
        stderr(&out)
    );
    assert!(!stderr(&out).contains("panicked"), "{}", stderr(&out));
}

#[test]
fn a_tree_that_repeats_one_subtree_is_bounded() {
    let s = Server::new();
    let leaf = blob(&s, "x");
    // 60 names for one subtree, four levels deep: 60^4 paths, a few tree objects.
    let mut level = raw_tree(&s, &[("100644", "f", &leaf)]);
    for _ in 0..4 {
        let names: Vec<String> = (0..60).map(|i| format!("d{i:02}")).collect();
        let entries: Vec<(&str, &str, &str)> = names
            .iter()
            .map(|n| ("40000", n.as_str(), level.as_str()))
            .collect();
        level = raw_tree(&s, &entries);
    }
    let start = std::time::Instant::now();
    let out = push_tree(&s, &level, "master");
    assert!(
        start.elapsed() < std::time::Duration::from_secs(30),
        "took {:?}",
        start.elapsed()
    );
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("error[too-many-entries]"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn a_dripping_server_cannot_stretch_a_request_and_ext_remotes_are_refused() {
    use std::io::Write as _;
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let server = {
        let stop = stop.clone();
        std::thread::spawn(move || {
            listener.set_nonblocking(true).expect("nonblocking");
            let start = std::time::Instant::now();
            while !stop.load(std::sync::atomic::Ordering::Relaxed)
                && start.elapsed() < std::time::Duration::from_secs(20)
            {
                if let Ok((mut c, _)) = listener.accept() {
                    // A valid packet length, then one byte of payload every 100 ms.
                    let _ = c.write_all(b"0100");
                    while !stop.load(std::sync::atomic::Ordering::Relaxed)
                        && start.elapsed() < std::time::Duration::from_secs(20)
                    {
                        if c.write_all(b"x").is_err() {
                            break;
                        }
                        std::thread::sleep(std::time::Duration::from_millis(100));
                    }
                }
                std::thread::sleep(std::time::Duration::from_millis(10));
            }
        })
    };
    let dir = tempfile::tempdir().expect("tmp");
    let start = std::time::Instant::now();
    let out = taskhook(
        &[
            "plan",
            "--remote",
            &format!("git://127.0.0.1:{port}/x.git"),
            "--item-type",
            "koji_build",
            "--item",
            "a-1-1",
            "--branch",
            "b",
            "--timeout",
            "2",
        ],
        dir.path(),
    );
    let took = start.elapsed();
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let _ = server.join();
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(took < std::time::Duration::from_secs(6), "took {took:?}");
    // ext:: runs a command; fd:: uses a descriptor: taskhook refuses both itself.
    for remote in ["ext::sh -c touch% /tmp/x", "fd::3"] {
        let out = taskhook(
            &[
                "plan",
                "--remote",
                remote,
                "--item-type",
                "koji_build",
                "--item",
                "a-1-1",
                "--branch",
                "b",
            ],
            dir.path(),
        );
        assert_eq!(out.status.code(), Some(1));
        assert!(stderr(&out).contains("remote helper"), "{}", stderr(&out));
    }
}

#[test]
fn a_stale_packed_refs_lock_does_not_block_manifest_writes() {
    let s = Server::new();
    s.commit_file("t/runtask.yml", GOOD);
    assert!(s.push("master").status.success());
    git(&s.bare(), &["pack-refs", "--all"]);
    let lock = s.bare().join("packed-refs.lock");
    std::fs::write(&lock, "left by a killed process").expect("lock");
    make_an_hour_old(&lock);
    s.commit_file("t/more.txt", "x");
    let out = s.push("master");
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(!stderr(&out).contains("not updated"), "{}", stderr(&out));
    s.assert_manifest_is_exact("master");
}

/// A timeout kills git's own process group and nothing else: a process in another session (here
/// a `sleep`, in production everything else the service user runs) survives.
#[test]
fn a_timeout_kills_only_gits_process_group() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("addr").port();
    // Accepts and never answers: git's HTTP request hangs until taskhook's timeout.
    let server = std::thread::spawn(move || {
        let mut held = Vec::new();
        listener.set_nonblocking(true).expect("nonblocking");
        let start = std::time::Instant::now();
        while start.elapsed() < std::time::Duration::from_secs(4) {
            if let Ok((c, _)) = listener.accept() {
                held.push(c);
            }
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
    });
    let mut bystander = std::process::Command::new("setsid")
        .args(["sleep", "60"])
        .spawn()
        .expect("setsid sleep");
    let dir = tempfile::tempdir().expect("tmp");
    let cache = dir.path().join("cache");
    let out = taskhook(
        &[
            "plan",
            "--remote",
            &format!("http://127.0.0.1:{port}/x.git"),
            "--item-type",
            "koji_build",
            "--item",
            "a-1-1",
            "--branch",
            "b",
            "--timeout",
            "1",
            "--cache-dir",
            &cache.to_string_lossy(),
        ],
        dir.path(),
    );
    let alive = matches!(bystander.try_wait(), Ok(None));
    let _ = bystander.kill();
    let _ = bystander.wait();
    let _ = server.join();
    assert!(
        stderr(&out).contains("timed out") || stderr(&out).contains("timeout"),
        "{}",
        stderr(&out)
    );
    assert!(alive, "a process outside git's group was killed");
}

/// Each branch with tasks costs the server a branch file (2.2 MB at 10,000 tasks) for a ref
/// that costs the pusher a hundred bytes: `taskhook.maxBranches` bounds how many the manifest
/// lists. Branches without tasks (most dist-git repositories have none) are not counted.
#[test]
fn branches_with_tasks_are_limited() {
    let s = Server::new();
    git(&s.bare(), &["config", "taskhook.maxBranches", "2"]);
    s.commit_file("t/runtask.yml", GOOD);
    assert!(s.push("master").status.success());
    assert!(s.push("master:f1").status.success());
    let over = "more than taskhook.maxBranches (2) allows: f2;";
    let out = s.push("master:f2");
    assert!(!out.status.success(), "accepted: {}", stderr(&out));
    assert!(stderr(&out).contains(over), "{}", stderr(&out));
    // The server's capacity, not a verdict on formulas: `warn` refuses it too.
    git(&s.bare(), &["config", "taskhook.policy", "warn"]);
    let out = s.push("master:f2");
    assert!(!out.status.success(), "accepted: {}", stderr(&out));
    assert!(stderr(&out).contains(over), "{}", stderr(&out));
    // Branches without tasks.
    let readme = blob(&s, "no tasks here\n");
    let tree = raw_tree(&s, &[("100644", "README", &readme)]);
    for b in ["e1", "e2", "e3"] {
        let out = push_tree(&s, &tree, b);
        assert!(out.status.success(), "{}", stderr(&out));
    }
    // Deleting a branch with tasks makes room, in the same push too.
    let out = git_output(&s.work(), &["push", "origin", ":f1", "master:f2"]);
    assert!(out.status.success(), "{}", stderr(&out));
    // The update hook judges each ref alone, so two new branches in one push pass it, each
    // keeping to the limit; post-receive keeps it for the push, and says which it left out.
    assert!(
        taskhook(&["install", "--update-hook", "srv.git"], s.dir.path())
            .status
            .success()
    );
    git(&s.bare(), &["config", "taskhook.maxBranches", "3"]);
    let out = git_output(&s.work(), &["push", "origin", "master:f3", "master:f4"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("f4 is not in the schedule manifest: it lists 3 branches with tasks")
            && stderr(&out).contains("schedule manifest updated for f3 ("),
        "{}",
        stderr(&out)
    );
    assert!(
        git(&s.bare(), &["log", "-1", "--format=%B", "refs/meta/tasks"])
            .contains("left out for taskhook.maxBranches: f4")
    );
    let index: serde_json::Value = serde_json::from_str(&s.show("index.json")).expect("json");
    let listed: Vec<&str> = index["branches"]
        .as_object()
        .expect("branches")
        .keys()
        .map(String::as_str)
        .collect();
    assert_eq!(listed, ["e1", "e2", "e3", "f2", "f3", "master"]);
    // A branch listed without tasks that gains some past the limit is no longer listed: its
    // empty manifest would say it has nothing to run. e2 and e3 gain tasks in one push, with
    // room for one: git gives no order to count on, so either may be the one left out.
    git(&s.bare(), &["config", "taskhook.maxBranches", "4"]);
    let out = git_output(&s.work(), &["push", "origin", "+master:e2", "+master:e3"]);
    let err = stderr(&out);
    assert!(out.status.success(), "{err}");
    let (kept, left) = if err.contains("e3 is not in the schedule manifest") {
        ("e2", "e3")
    } else {
        ("e3", "e2")
    };
    assert!(
        err.contains(&format!("{left} is not in the schedule manifest"))
            && err.contains(&format!("schedule manifest updated for {kept} (")),
        "{err}"
    );
    let index: serde_json::Value = serde_json::from_str(&s.show("index.json")).expect("json");
    let branches = index["branches"].as_object().expect("branches");
    assert!(
        branches.contains_key(kept) && !branches.contains_key(left),
        "{index}"
    );
    assert_eq!(branches.len(), 5, "{index}");
    // A rebuild keeps to the limit too, and says how many it wrote and which it left out: of
    // master, f2, f3, f4, e2 and e3 (with tasks) and e1 (without), four and e1.
    let out = taskhook(&["manifest", "rebuild", "srv.git"], s.dir.path());
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}{}", stderr(&out));
    assert!(
        text.contains("srv.git: 5 branch manifests written (refs/meta/tasks at ")
            && text.contains("; left out for taskhook.maxBranches: "),
        "{text}"
    );
    s.assert_fsck_clean();
}

/// The same limit on a first push, before any manifest exists, and on many branches at once.
#[test]
fn a_first_push_of_many_branches_keeps_to_the_limit() {
    let s = Server::new();
    git(&s.bare(), &["config", "taskhook.maxBranches", "2"]);
    s.commit_file("t/runtask.yml", GOOD);
    let out = git_output(
        &s.work(),
        &["push", "origin", "master:a", "master:b", "master:c"],
    );
    assert!(!out.status.success(), "accepted: {}", stderr(&out));
    assert!(
        stderr(&out)
            .contains("3 branches with tasks, more than taskhook.maxBranches (2) allows: a, b, c;"),
        "{}",
        stderr(&out)
    );
    assert_eq!(s.meta(), None);
    // Judged one ref at a time, eight pass; post-receive lists two and names the rest, the
    // first five on lines of their own.
    assert!(
        taskhook(&["install", "--update-hook", "srv.git"], s.dir.path())
            .status
            .success()
    );
    let refs: Vec<String> = (1..=8).map(|i| format!("master:b{i}")).collect();
    let mut args = vec!["push", "origin"];
    args.extend(refs.iter().map(String::as_str));
    let out = git_output(&s.work(), &args);
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stderr(&out);
    assert_eq!(
        text.matches("is not in the schedule manifest").count(),
        5,
        "{text}"
    );
    assert!(
        text.contains("and 1 more branches are not in the schedule manifest"),
        "{text}"
    );
    let index: serde_json::Value = serde_json::from_str(&s.show("index.json")).expect("json");
    assert_eq!(index["branches"].as_object().expect("branches").len(), 2);
    s.assert_fsck_clean();
}
