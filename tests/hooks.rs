//! The server side on real git: installed hooks, real pushes, manifests read back through
//! `git archive --remote` from a loopback git daemon.

mod util;

use util::*;

fn stderr(o: &std::process::Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

#[test]
fn good_push_is_accepted_and_manifest_is_served_by_git_archive() {
    let s = Server::new();
    s.commit_file("rpmlint/runtask.yml", GOOD);
    let out = s.push("master");
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stderr(&out)
        .contains("remote: taskhook: refs/heads/master: 1 task ok (1 checked, 0 unchanged)"));
    let daemon = Daemon::serve(s.dir.path());
    let archive = git_cmd()
        .args([
            "archive",
            &format!("--remote={}", daemon.url("srv.git")),
            "refs/meta/tasks",
            "branches/master.json",
        ])
        .output()
        .expect("git archive");
    assert!(archive.status.success(), "{}", stderr(&archive));
    let out = run_with_stdin("tar", &["-xO"], s.dir.path(), &archive.stdout);
    let m: serde_json::Value = serde_json::from_slice(&out.stdout).expect("manifest json");
    let head = git(&s.bare(), &["rev-parse", "master"]);
    assert_eq!(m["commit"], head.as_str());
    let tasks = manifest_tasks(&m);
    assert_eq!(tasks[0]["path"], "rpmlint");
    assert_eq!(tasks[0]["item_types"], serde_json::json!(["koji_build"]));
    let blob = git(&s.bare(), &["rev-parse", "master:rpmlint/runtask.yml"]);
    let bytes = git_output(&s.bare(), &["cat-file", "blob", &blob]).stdout;
    use sha2::Digest;
    let digest = format!("{:x}", sha2::Sha256::digest(&bytes));
    assert_eq!(tasks[0]["formula_sha256"], digest.as_str());
    assert_eq!(
        tasks[0]["tree"],
        git(&s.bare(), &["rev-parse", "master:rpmlint"]).as_str()
    );
}

#[test]
fn bad_push_is_rejected_and_nothing_moves() {
    let s = Server::new();
    s.commit_file("rpmlint/runtask.yml", GOOD);
    assert!(s.push("master").status.success());
    let before = (git(&s.bare(), &["rev-parse", "master"]), s.meta());
    s.commit_file(
        "abicheck/runtask.yml",
        "name: abicheck\ndesc: d\nmaintainer: m\ninput:\n  args: [koji_build]\nactions:\n  - name: run\n    python:\n      file: a.py\n      callable: run\n      nvr: ${koji_bulid}\n  - name: report\n    resultsdb:\n      results: $output\n",
    );
    let out = s.push("master");
    assert!(!out.status.success());
    let text: String = stderr(&out)
        .lines()
        .filter(|l| l.starts_with("remote:"))
        .map(|l| format!("{}\n", l.trim_end()))
        .collect();
    let text = text.replace(&git(&s.work(), &["rev-parse", "HEAD"])[..12], "<commit>");
    insta::assert_snapshot!(text);
    assert_eq!(before, (git(&s.bare(), &["rev-parse", "master"]), s.meta()));
}

/// A push of many broken formulas lists the first 200 findings, counts the rest, and still
/// counts every error in its verdict: the pusher is not sent thousands of lines.
#[test]
fn a_push_of_many_broken_formulas_lists_two_hundred_findings() {
    let s = Server::new();
    let keys: String = (0..60).map(|i| format!("  k{i}: 1\n")).collect();
    let formula = format!("{GOOD}environment:\n{keys}");
    for i in 0..6 {
        write(&s.work().join(format!("t{i}/runtask.yml")), &formula);
    }
    git(&s.work(), &["add", "-A"]);
    git(&s.work(), &["commit", "-q", "-m", "broken"]);
    let out = s.push("master");
    assert!(!out.status.success());
    let text = stderr(&out);
    // Six formulas of 60 errors: 49 kept each and one counting the other 11, so 300, of
    // which the first 200 are listed.
    let listed = text.lines().filter(|l| l.contains(": error[")).count();
    assert_eq!(listed, 200, "{text}");
    assert!(text.contains("remote: ... 100 more findings not listed here; `taskhook check` in your checkout lists them all"), "{text}");
    assert!(
        text.contains("remote: invalid: 6 tasks, 300 errors, 0 warnings"),
        "{text}"
    );
    assert!(
        text.contains("push rejected: 300 errors in task formulas"),
        "{text}"
    );
}

/// A branch file of hundreds of KB (1,500 tasks) is stored uncompressed while loose (its id
/// computed on another thread while it is written) and read back as such: the result is an
/// object git reads under the id it computes itself, and the manifest a full computation gives.
#[test]
fn a_large_branch_manifest_is_stored_as_git_stores_it() {
    stored_uncompressed(1500, 256 * 1024);
}

/// The same from 64 KB (400 tasks), where the id is computed before the file is written.
#[test]
fn a_mid_sized_branch_manifest_is_stored_as_git_stores_it() {
    stored_uncompressed(400, 64 * 1024);
}

fn stored_uncompressed(tasks: usize, at_least: u64) {
    let s = Server::new();
    for i in 0..tasks {
        write(&s.work().join(format!("tasks/t{i:04}/runtask.yml")), GOOD);
    }
    git(&s.work(), &["add", "-A"]);
    git(&s.work(), &["commit", "-q", "-m", "many"]);
    let out = s.push("master");
    assert!(out.status.success(), "{}", stderr(&out));
    let file = "refs/meta/tasks:branches/master.json";
    // The next two pushes each read the version before them and write a new one.
    for (task, name) in [("t0200", "rpmlint-200"), ("t0123", "rpmlint-123")] {
        s.commit_file(
            &format!("tasks/{task}/runtask.yml"),
            &GOOD.replace("rpmlint", name),
        );
        let out = s.push("master");
        let ok = format!("{tasks} tasks ok (1 checked, {} unchanged)", tasks - 1);
        assert!(stderr(&out).contains(&ok), "{}", stderr(&out));
        s.assert_manifest_is_exact("master");
        let size: u64 = git(&s.bare(), &["cat-file", "-s", file])
            .trim()
            .parse()
            .expect("size");
        assert!(size >= at_least, "the branch file is only {size} bytes");
        // Its loose file holds it uncompressed: its bytes and a few more per 64 KB.
        let id = git(&s.bare(), &["rev-parse", file]);
        let loose = s.bare().join("objects").join(&id[..2]).join(id[2..].trim());
        let stored = std::fs::metadata(&loose).expect("a loose object").len();
        assert!(
            stored > size && stored < size + size / 1000 + 64,
            "{stored} bytes stored for {size}"
        );
        // git reads the loose object and finds the id it is stored under.
        s.assert_stored_under_its_id(file);
        s.assert_fsck_clean();
    }
}

/// post-receive takes over the verdict pre-receive gave for the same push instead of walking
/// the tree again, and leaves nothing behind.
#[test]
fn post_receive_takes_over_the_verdict_pre_receive_gave() {
    let s = Server::new();
    s.commit_file("a/runtask.yml", GOOD);
    s.commit_file("b/runtask.yml", GOOD);
    assert!(s.push("master").status.success());
    s.commit_file("b/runtask.yml", &GOOD.replace("rpmlint", "rpmlint-b"));
    let out = s.push_with_env("master", "TASKHOOK_TRACE", "1");
    let err = stderr(&out);
    assert!(out.status.success(), "{err}");
    assert!(err.contains("verdict taken over from pre-receive"), "{err}");
    s.assert_manifest_is_exact("master");
    // One file for the branch, written over by each push to it.
    let slots = || -> Vec<String> {
        std::fs::read_dir(s.bare().join("taskhook/handover"))
            .expect("the handover directory")
            .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
            .collect()
    };
    let first = slots();
    assert!(
        first.len() == 1 && first[0].starts_with("slot-"),
        "{first:?}"
    );
    s.commit_file("a/runtask.yml", &GOOD.replace("rpmlint", "rpmlint-a"));
    let out = s.push_with_env("master", "TASKHOOK_TRACE", "1");
    assert!(stderr(&out).contains("verdict taken over from pre-receive"));
    s.assert_manifest_is_exact("master");
    assert_eq!(slots(), first);
}

/// A push of several branches: every verdict is taken over (the handed-over manifest tree is
/// the same for all), every manifest is exact, and the line for the pusher and the manifest
/// commit's title name five branches and count the rest; the commit's body lists every ref.
#[test]
fn a_push_of_many_branches_names_five_and_counts_the_rest() {
    let s = Server::new();
    s.commit_file("a/runtask.yml", GOOD);
    assert!(s.push("master").status.success());
    let refs: Vec<String> = (1..=8).map(|i| format!("master:b{i}")).collect();
    let mut args = vec!["push", "origin"];
    args.extend(refs.iter().map(String::as_str));
    assert!(git_output(&s.work(), &args).status.success());
    s.commit_file("a/runtask.yml", &GOOD.replace("rpmlint", "rpmlint-a"));
    let refs: Vec<String> = (1..=8).map(|i| format!("HEAD:b{i}")).collect();
    let mut args = vec!["push", "origin"];
    args.extend(refs.iter().map(String::as_str));
    let out = git_cmd()
        .args(&args)
        .env("TASKHOOK_TRACE", "1")
        .current_dir(s.work())
        .output()
        .expect("git push");
    let err = stderr(&out);
    assert!(out.status.success(), "{err}");
    assert_eq!(
        err.matches("verdict taken over from pre-receive").count(),
        1,
        "{err}"
    );
    assert!(
        err.contains(
            "schedule manifest updated for b1, b2, b3, b4, b5 and 3 more (refs/meta/tasks at "
        ),
        "{err}"
    );
    for branch in ["b1", "b8"] {
        s.assert_manifest_is_exact(branch);
    }
    let message = git(&s.bare(), &["log", "-1", "--format=%B", "refs/meta/tasks"]);
    assert!(
        message.starts_with("taskhook: update b1, b2, b3, b4, b5 and 3 more\n"),
        "{message}"
    );
    assert!(
        (1..=8).all(|i| message.contains(&format!("refs/heads/b{i}: "))),
        "{message}"
    );
}

/// A directory of hundreds of tasks is a large tree, which git stores compressed. pre-receive
/// hands the pushed one on; the next push to the branch compares its own with it without
/// inflating it again, once the data hashes to the tree's id, and never otherwise.
#[test]
fn a_large_tree_is_carried_to_the_next_push_only_as_it_is() {
    let s = Server::new();
    for i in 0..600 {
        write(&s.work().join(format!("tasks/t{i:04}/runtask.yml")), GOOD);
    }
    git(&s.work(), &["add", "-A"]);
    git(&s.work(), &["commit", "-q", "-m", "many"]);
    assert!(s.push("master").status.success());
    let push = |name: &str| {
        s.commit_file("tasks/t0100/runtask.yml", &GOOD.replace("rpmlint", name));
        let out = s.push_with_env("master", "TASKHOOK_TRACE", "1");
        let err = stderr(&out);
        assert!(out.status.success(), "{err}");
        assert!(
            err.contains("600 tasks ok (1 checked, 599 unchanged)"),
            "{err}"
        );
        s.assert_manifest_is_exact("master");
        err
    };
    // The first push wrote no manifest before it, so handed nothing over; the second is
    // handed the first's tree.
    push("rpmlint-1");
    let err = push("rpmlint-2");
    assert!(err.contains("earlier tree taken over"), "{err}");
    // The tree's bytes in the branch's slot damaged: refused, and read from the store.
    let dir = s.bare().join("taskhook/handover");
    let slot = std::fs::read_dir(&dir)
        .expect("handover directory")
        .map(|e| e.expect("entry").path())
        .find(|p| p.to_string_lossy().contains("slot-"))
        .expect("the branch's slot");
    let mut bytes = std::fs::read(&slot).expect("read");
    // `taskhook handover 3 <verdict's length> <trees' length> <digest>`: a byte in the middle
    // of the trees (the file may run on past them, from a longer slot written before).
    let header = bytes.iter().position(|&b| b == b'\n').expect("a header") + 1;
    let fields: Vec<usize> = String::from_utf8_lossy(&bytes[..header])
        .split(' ')
        .skip(3)
        .take(2)
        .map(|n| n.parse().expect("a length"))
        .collect();
    let at = header + fields[0] + fields[1] / 2;
    bytes[at] ^= 1;
    std::fs::write(&slot, &bytes).expect("write");
    let err = push("rpmlint-3");
    assert!(err.contains("earlier tree refused"), "{err}");
    assert!(!err.contains("earlier tree taken over"), "{err}");
}

/// The state file does not name the commit (the index does): a push that changes a formula
/// but no finding and no task count leaves `state/<branch>.json`, and so the `state/` tree, the
/// objects they were, and post-receive writes neither again. A push that adds a finding does
/// change it.
#[test]
fn a_push_that_changes_no_finding_leaves_the_state_file_as_it_was() {
    let s = Server::with_policy(Some("warn"));
    s.commit_file("a/runtask.yml", GOOD);
    s.commit_file("b/runtask.yml", GOOD);
    assert!(s.push("master").status.success());
    let ids = || {
        (
            git(
                &s.bare(),
                &["rev-parse", "refs/meta/tasks:state/master.json"],
            ),
            git(&s.bare(), &["rev-parse", "refs/meta/tasks:state"]),
            git(
                &s.bare(),
                &["rev-parse", "refs/meta/tasks:branches/master.json"],
            ),
        )
    };
    let before = ids();
    s.commit_file("b/runtask.yml", &GOOD.replace("rpmlint", "rpmlint-b"));
    assert!(s.push("master").status.success());
    let after = ids();
    assert_eq!(
        (&before.0, &before.1),
        (&after.0, &after.1),
        "state file or tree rewritten"
    );
    assert_ne!(before.2, after.2, "the branch file pins the new commit");
    s.assert_manifest_is_exact("master");
    // An invalid formula is a finding: the state file changes with it.
    s.commit_file("b/runtask.yml", "name: [broken\n");
    assert!(s.push("master").status.success());
    assert_ne!(ids().0, after.0, "a new finding must change the state file");
    s.assert_manifest_is_exact("master");
}

/// A state file in the layout before the one above names its commit. Where that commit is the
/// one the index names, the next push still reuses it; where it is not (edited by hand), the
/// push checks every task instead of trusting it.
#[test]
fn a_state_file_naming_another_commit_than_the_index_is_not_trusted() {
    let s = Server::new();
    s.commit_file("a/runtask.yml", GOOD);
    s.commit_file("b/runtask.yml", GOOD);
    assert!(s.push("master").status.success());
    let head = git(&s.bare(), &["rev-parse", "master"]);
    let stored = s.show("state/master.json");
    let naming =
        |commit: &str| stored.replacen('{', &format!("{{\n  \"commit\": \"{commit}\","), 1);
    for (commit, checked) in [
        (head.trim().to_string(), "1 checked"),
        ("1".repeat(40), "2 checked"),
    ] {
        let state = naming(&commit);
        edit_ref_tree(
            &s.bare(),
            "refs/meta/tasks",
            &[("state/master.json", Some(state.as_bytes()))],
            s.dir.path(),
        );
        s.commit_file(
            "b/runtask.yml",
            &GOOD.replace("rpmlint", &format!("rpmlint-{checked}")),
        );
        let out = s.push("master");
        let err = stderr(&out);
        assert!(out.status.success(), "{err}");
        assert!(err.contains(&format!("2 tasks ok ({checked},")), "{err}");
        s.assert_manifest_is_exact("master");
    }
}

/// A handed-over verdict that is damaged, or that a push left behind long ago, is not used:
/// post-receive computes the verdict itself, and the manifest is what a full build gives.
#[test]
fn a_damaged_or_stale_handover_is_not_trusted() {
    let s = Server::new();
    s.commit_file("a/runtask.yml", GOOD);
    assert!(s.push("master").status.success());
    // Between the hooks (git runs reference-transaction hooks after pre-receive and before
    // post-receive), every handed-over verdict is damaged.
    let hook = s.bare().join("hooks/reference-transaction");
    executable(
        &hook,
        "#!/bin/sh
for f in \"$GIT_DIR\"/taskhook/handover/slot-*; do [ -f \"$f\" ] && printf 'taskhook handover 3 7 0 00\\n{\"key\":' > \"$f\"; done\nexit 0\n",
    );
    s.commit_file("a/runtask.yml", &GOOD.replace("rpmlint", "rpmlint-a"));
    let out = s.push_with_env("master", "TASKHOOK_TRACE", "1");
    let err = stderr(&out);
    assert!(out.status.success(), "{err}");
    assert!(!err.contains("verdict taken over"), "{err}");
    assert!(err.contains("trace: verdict at"), "{err}");
    s.assert_manifest_is_exact("master");
    std::fs::remove_file(&hook).expect("removed");
    // A file left by a push that never finished is removed by a later pre-receive: one push
    // in sixteen looks (the chance that 300 pushes all miss is below 1e-8).
    let stale = s.bare().join("taskhook/handover/left-behind.json");
    write(&stale, "{}");
    make_an_hour_old(&stale);
    let mut pushes = 0;
    while stale.exists() {
        assert!(pushes < 300, "not removed after {pushes} pushes");
        pushes += 1;
        s.commit_file("a/runtask.yml", &format!("{GOOD}# {pushes}\n"));
        assert!(s.push("master").status.success());
    }
    s.assert_manifest_is_exact("master");
}

/// A verdict handed over for one stored manifest is not taken when the manifest ref has moved
/// to another commit between the hooks: post-receive reads the manifest and computes the
/// verdict itself, and the manifest is what a full build gives.
#[test]
fn a_handover_for_a_manifest_commit_since_replaced_is_not_taken() {
    let s = Server::new();
    s.commit_file("a/runtask.yml", GOOD);
    s.commit_file("b/runtask.yml", GOOD);
    assert!(s.push("master").status.success());
    // Between the hooks, once: the manifest ref moves to a new commit of the same tree.
    let hook = s.bare().join("hooks/reference-transaction");
    let marker = s.bare().join("moved-once");
    executable(
        &hook,
        &format!(
            "#!/bin/sh\n[ -e '{m}' ] && exit 0\ntouch '{m}'\n\
             export GIT_AUTHOR_NAME=t GIT_AUTHOR_EMAIL=t@x GIT_COMMITTER_NAME=t GIT_COMMITTER_EMAIL=t@x\n\
             c=$(git commit-tree -p refs/meta/tasks -m moved 'refs/meta/tasks^{{tree}}') || exit 1\n\
             git update-ref refs/meta/tasks \"$c\"\n",
            m = marker.display()
        ),
    );
    s.commit_file("b/runtask.yml", &GOOD.replace("rpmlint", "rpmlint-b"));
    let before = git(&s.bare(), &["rev-parse", "refs/meta/tasks"]);
    let out = s.push_with_env("master", "TASKHOOK_TRACE", "1");
    let err = stderr(&out);
    assert!(out.status.success(), "{err}");
    assert!(marker.exists(), "the hook ran: {err}");
    // post-receive wrote on top of the moved commit, not of the one pre-receive read.
    assert_ne!(git(&s.bare(), &["rev-parse", "refs/meta/tasks^"]), before);
    assert!(!err.contains("verdict taken over"), "{err}");
    assert!(err.contains("post-receive: input read"), "{err}");
    assert_eq!(err.matches("trace: verdict at").count(), 2, "{err}");
    s.assert_manifest_is_exact("master");
}

/// A refused push hands nothing over.
#[test]
fn a_refused_push_hands_nothing_over() {
    let s = Server::new();
    s.commit_file("a/runtask.yml", GOOD);
    s.commit_file(
        "b/runtask.yml",
        &GOOD.replace("koji_build\n", "koji_bild\n"),
    );
    assert!(!s.push("master").status.success());
    let dir = s.bare().join("taskhook/handover");
    assert!(
        !dir.exists() || std::fs::read_dir(&dir).expect("dir").next().is_none(),
        "a refused push left a verdict"
    );
}

#[test]
fn a_push_large_enough_to_arrive_as_a_pack_is_validated() {
    let s = Server::new();
    for i in 0..120 {
        write(&s.work().join(format!("t{i:03}/runtask.yml")), GOOD);
        write(
            &s.work().join(format!("t{i:03}/data.txt")),
            &format!("{i}\n"),
        );
    }
    write(
        &s.work().join("t050/runtask.yml"),
        &GOOD.replace("koji_build\n", "koji_bild\n"),
    );
    git(&s.work(), &["add", "-A"]);
    git(&s.work(), &["commit", "-q", "-m", "many"]);
    let out = s.push("master");
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("t050/runtask.yml:6:7: error[unknown-input-arg]"),
        "{}",
        stderr(&out)
    );
    write(&s.work().join("t050/runtask.yml"), GOOD);
    git(&s.work(), &["commit", "-q", "-am", "fix"]);
    let out = s.push("master");
    assert!(out.status.success(), "{}", stderr(&out));
    // The rejected push stored nothing, so everything is checked on the first accepted one...
    assert!(
        stderr(&out).contains("120 tasks ok (120 checked, 0 unchanged)"),
        "{}",
        stderr(&out)
    );
    // ...and afterwards only the changed task is parsed: the others' trees match the manifest.
    s.commit_file("t007/runtask.yml", &GOOD.replace("rpmlint", "rpmlint-7"));
    let out = s.push("master");
    assert!(
        stderr(&out).contains("120 tasks ok (1 checked, 119 unchanged)"),
        "{}",
        stderr(&out)
    );
    s.assert_manifest_is_exact("master");
    // More than receive.unpackLimit (100) objects: git kept the push as a pack.
    assert!(!git(&s.bare(), &["count-objects", "-v"]).contains("in-pack: 0"));
}

#[test]
fn client_pushes_to_the_manifest_ref_are_rejected() {
    let s = Server::new();
    s.commit_file("rpmlint/runtask.yml", GOOD);
    assert!(s.push("master").status.success());
    let meta = s.meta();
    let out = s.push("+HEAD:refs/meta/tasks");
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("refs/meta/tasks is written by the server's post-receive hook only")
    );
    assert_eq!(meta, s.meta());
}

#[test]
fn branch_create_and_delete_update_the_index_and_tags_are_ignored() {
    let s = Server::new();
    s.commit_file("rpmlint/runtask.yml", GOOD);
    assert!(s.push("master").status.success());
    assert!(s.push("master:f40").status.success());
    assert!(s.push("master:feature/x").status.success());
    let index: serde_json::Value = serde_json::from_str(&s.show("index.json")).expect("json");
    assert_eq!(index["branches"]["f40"]["manifest"], "branches/f40.json");
    assert_eq!(
        index["branches"]["feature/x"]["manifest"],
        "branches/feature/x.json"
    );
    assert!(s
        .show("branches/feature/x.json")
        .contains("\"branch\": \"feature/x\""));
    let meta = s.meta();
    git(&s.work(), &["tag", "v1"]);
    assert!(s.push("v1").status.success());
    assert_eq!(meta, s.meta(), "a tag push writes nothing");
    assert!(s.push(":f40").status.success());
    let index: serde_json::Value = serde_json::from_str(&s.show("index.json")).expect("json");
    assert!(index["branches"].get("f40").is_none());
    assert!(!git(
        &s.bare(),
        &["ls-tree", "-r", "--name-only", "refs/meta/tasks"]
    )
    .contains("f40"));
}

/// Makes branches `b0`..`b{n-1}` off master, each adding a task, and pushes them all at once;
/// every push succeeds.
fn push_branches_at_once(s: &Server, n: usize) {
    for i in 0..n {
        git(
            &s.work(),
            &["checkout", "-q", "-b", &format!("b{i}"), "master"],
        );
        s.commit_file(&format!("task{i}/runtask.yml"), GOOD);
    }
    let handles: Vec<_> = (0..n)
        .map(|i| {
            let work = s.work();
            std::thread::spawn(move || git_output(&work, &["push", "origin", &format!("b{i}")]))
        })
        .collect();
    for h in handles {
        let out = h.join().expect("thread");
        assert!(out.status.success(), "{}", stderr(&out));
    }
}

#[test]
fn concurrent_pushes_to_different_branches_all_land() {
    let s = Server::new();
    s.commit_file("rpmlint/runtask.yml", GOOD);
    assert!(s.push("master").status.success());
    let n = 8;
    push_branches_at_once(&s, n);
    let index: serde_json::Value = serde_json::from_str(&s.show("index.json")).expect("json");
    for i in 0..n {
        let b = format!("b{i}");
        let head = git(&s.bare(), &["rev-parse", &b]);
        assert_eq!(index["branches"][&b]["commit"], head.as_str(), "{b}");
    }
    for i in 0..n {
        s.assert_manifest_is_exact(&format!("b{i}"));
    }
    let merges = git(&s.bare(), &["rev-list", "--merges", "refs/meta/tasks"]);
    assert!(merges.is_empty());
    let count: usize = git(&s.bare(), &["rev-list", "--count", "refs/meta/tasks"])
        .parse()
        .expect("count");
    assert_eq!(count, n + 1, "one linear commit per push");
    let fsck = git_output(&s.bare(), &["fsck", "--full"]);
    assert!(fsck.status.success(), "{}", stderr(&fsck));
}

#[test]
fn policy_warn_accepts_and_lists_invalid_tasks() {
    let s = Server::with_policy(Some("warn"));
    s.commit_file(
        "broken/runtask.yml",
        "name: x\ndesc: d\nmaintainer: m\nactions: []\n",
    );
    s.commit_file("rpmlint/runtask.yml", GOOD);
    let out = s.push("master");
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stderr(&out).contains("accepted with"));
    let m: serde_json::Value = serde_json::from_str(&s.show("branches/master.json")).expect("json");
    let tasks = manifest_tasks(&m);
    let broken = &tasks[0];
    assert_eq!(broken["path"], "broken");
    assert_eq!(broken["valid"], false);
    let codes: Vec<&str> = broken["diagnostics"]
        .as_array()
        .expect("diags")
        .iter()
        .filter_map(|d| d["code"].as_str())
        .collect();
    assert!(codes.contains(&"empty-actions"), "{codes:?}");
    assert_eq!(tasks[1]["valid"], true);
}

#[test]
fn rebuild_twice_writes_one_commit_and_show_reports_staleness() {
    let dir = tempfile::tempdir().expect("tmp");
    git(dir.path(), &["init", "-q", "-b", "master", "work"]);
    let work = dir.path().join("work");
    write(&work.join("rpmlint/runtask.yml"), GOOD);
    git(&work, &["add", "-A"]);
    git(&work, &["commit", "-q", "-m", "x"]);
    git(&work, &["branch", "f40"]);
    git(dir.path(), &["clone", "-q", "--bare", "work", "srv.git"]);
    let srv = dir.path().join("srv.git");
    let out = taskhook(&["manifest", "rebuild", "srv.git"], dir.path());
    assert!(out.status.success(), "{}", stderr(&out));
    let first = git(&srv, &["rev-parse", "refs/meta/tasks"]);
    let out = taskhook(&["manifest", "rebuild", "srv.git"], dir.path());
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).contains("already up to date"));
    let out = taskhook(
        &["manifest", "rebuild", "--format", "json", "srv.git"],
        dir.path(),
    );
    let line: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    assert_eq!(line["branches"], 2);
    assert_eq!(line["changed"], false);
    assert_eq!(first, git(&srv, &["rev-parse", "refs/meta/tasks"]));
    let out = taskhook(
        &["manifest", "show", "--branch", "f40", "srv.git"],
        dir.path(),
    );
    assert!(out.status.success());
    let m: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    assert_eq!(m["branch"], "f40");
    // Move a branch behind taskhook's back: show says the manifest is stale.
    write(&work.join("x.txt"), "x");
    git(&work, &["add", "-A"]);
    git(&work, &["commit", "-q", "-m", "y"]);
    git(&work, &["push", "-q", "../srv.git", "master"]);
    let out = taskhook(
        &["manifest", "show", "--branch", "master", "srv.git"],
        dir.path(),
    );
    assert!(
        stderr(&out).contains("the manifest of `master` is stale"),
        "{}",
        stderr(&out)
    );
    let build = taskhook(
        &["manifest", "build", "--rev", "master", "srv.git"],
        dir.path(),
    );
    let m: serde_json::Value = serde_json::from_slice(&build.stdout).expect("json");
    assert_eq!(m["commit"], git(&srv, &["rev-parse", "master"]).as_str());
}

#[test]
fn a_stale_lock_does_not_block_pushes_forever() {
    let s = Server::new();
    s.commit_file("rpmlint/runtask.yml", GOOD);
    assert!(s.push("master").status.success());
    // A lock left a moment ago by a killed writer: post-receive waits until it is stale.
    git(&s.bare(), &["config", "taskhook.staleLockSeconds", "1"]);
    s.commit_file("two/runtask.yml", GOOD);
    let lock = s.bare().join("refs/meta/tasks.lock");
    std::fs::write(&lock, "stale").expect("lock");
    let out = s.push("master");
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("remote: taskhook: waiting for refs/meta/tasks.lock: another push is writing manifests, or a killed one left it"),
        "the pusher is told why the push pauses: {}",
        stderr(&out)
    );
    let m: serde_json::Value = serde_json::from_str(&s.show("branches/master.json")).expect("json");
    assert!(
        manifest_tasks(&m).iter().any(|t| t["path"] == "two"),
        "{}\n{m}",
        stderr(&out)
    );
}

/// git keeps a reftable repository's refs in `reftable/`, which gitoxide does not read: the
/// manifest ref is read and moved through git, so git (and `git archive`, and the trigger) sees
/// it, and no loose ref file is left where git does not look.
#[test]
fn a_reftable_repository_gets_its_manifest_where_git_reads_it() {
    // git before 2.45 makes no reftable repository (and reads none).
    let probe = tempfile::tempdir().expect("tempdir");
    let made = git_output(
        probe.path(),
        &["init", "-q", "--bare", "--ref-format=reftable", "r"],
    );
    if !made.status.success() {
        eprintln!(
            "skipped: this git makes no reftable repository: {}",
            stderr(&made)
        );
        return;
    }
    let s = Server::with_ref_format("reftable");
    s.commit_file("broken/runtask.yml", "name: broken\n");
    let out = s.push("master");
    assert!(!out.status.success(), "a broken formula was accepted");
    git(&s.work(), &["rm", "-q", "-r", "broken"]);
    s.commit_file("rpmlint/runtask.yml", GOOD);
    let out = s.push("master");
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        s.meta().is_some(),
        "git sees no manifest ref: {}",
        stderr(&out)
    );
    assert!(
        !s.bare().join("refs/meta").exists(),
        "a loose ref git never reads"
    );
    s.assert_manifest_is_exact("master");
    // Concurrent pushes take turns at the reftable's one lock; none is lost.
    let n = 4;
    push_branches_at_once(&s, n);
    for i in 0..n {
        s.assert_manifest_is_exact(&format!("b{i}"));
    }
    assert!(s.push(":b0").status.success());
    let index: serde_json::Value = serde_json::from_str(&s.show("index.json")).expect("json");
    assert!(index["branches"].get("b0").is_none(), "{index}");
    assert_eq!(
        index["branches"]["b1"]["commit"],
        git(&s.bare(), &["rev-parse", "b1"]).as_str()
    );
    let meta = s.meta();
    assert!(!s.push("+HEAD:refs/meta/tasks").status.success());
    assert_eq!(meta, s.meta());
    let rebuild = taskhook(&["manifest", "rebuild", "srv.git"], s.dir.path());
    assert!(
        String::from_utf8_lossy(&rebuild.stdout).contains("4 branch manifests already up to date"),
        "{}{}",
        String::from_utf8_lossy(&rebuild.stdout),
        stderr(&rebuild)
    );
    let check = taskhook(&["check", "--rev", "b1", "srv.git"], s.dir.path());
    assert_eq!(check.status.code(), Some(0), "{}", stderr(&check));
    let (code, text) = doctor_says(s.dir.path());
    assert_eq!(code, Some(0), "{text}");
    assert!(text.contains("ok  refs: in a reftable"), "{text}");
    // A ref in the way of the manifest ref, listed by git: the pusher is told which, at once.
    let meta = s.meta().expect("manifest");
    git(&s.bare(), &["update-ref", "-d", "refs/meta/tasks"]);
    git(&s.bare(), &["update-ref", "refs/meta/tasks/x", &meta]);
    // The work tree is on b3, the last branch pushed above.
    s.commit_file("b3more/runtask.yml", GOOD);
    let started = std::time::Instant::now();
    let out = s.push("b3");
    assert!(
        stderr(&out).contains("git update-ref -d refs/meta/tasks/x"),
        "{}",
        stderr(&out)
    );
    assert!(started.elapsed() < std::time::Duration::from_secs(5));
    git(&s.bare(), &["update-ref", "-d", "refs/meta/tasks/x"]);
    let rebuild = taskhook(&["manifest", "rebuild", "srv.git"], s.dir.path());
    assert!(rebuild.status.success(), "{}", stderr(&rebuild));
    // The reftable's lock guards every ref (a compaction may hold it a while): waited for,
    // never removed as taskhook's own stale ref lock is.
    git(&s.bare(), &["config", "taskhook.staleLockSeconds", "1"]);
    git(&s.bare(), &["update-ref", "refs/heads/moved", "b1"]);
    let lock = s.bare().join("reftable/tables.list.lock");
    std::fs::write(&lock, "").expect("lock");
    make_an_hour_old(&lock);
    let held = taskhook(&["manifest", "rebuild", "srv.git"], s.dir.path());
    assert_eq!(held.status.code(), Some(2), "{}", stderr(&held));
    assert!(
        stderr(&held).contains("waiting for reftable/tables.list.lock: git holds it"),
        "{}",
        stderr(&held)
    );
    assert!(lock.exists(), "git's lock was removed");
    std::fs::remove_file(&lock).expect("release");
    let rebuild = taskhook(&["manifest", "rebuild", "srv.git"], s.dir.path());
    assert!(rebuild.status.success(), "{}", stderr(&rebuild));
    s.assert_manifest_is_exact("moved");

    // A push of several branches: post-receive reads their heads with one git, not one each
    // (git's trace, which the hooks' gits inherit, shows each git run).
    let branches: Vec<String> = (0..6).map(|i| format!("c{i}")).collect();
    for b in &branches {
        git(&s.work(), &["checkout", "-q", "-b", b, "master"]);
        s.commit_file(&format!("{b}/runtask.yml"), GOOD);
    }
    let trace = s.dir.path().join("git-trace.log");
    let mut push: Vec<&str> = vec!["push", "origin"];
    push.extend(branches.iter().map(String::as_str));
    let out = git_cmd()
        .args(&push)
        .current_dir(s.work())
        .env("GIT_TRACE", &trace)
        .output()
        .expect("git push");
    assert!(out.status.success(), "{}", stderr(&out));
    for b in &branches {
        s.assert_manifest_is_exact(b);
    }
    let runs = std::fs::read_to_string(&trace).expect("trace");
    let reads = runs
        .lines()
        .filter(|l| l.contains("built-in: git for-each-ref") && l.contains("refs/heads/c"))
        .count();
    assert_eq!(reads, 1, "{runs}");
}

/// Every directory and file below the repository `dir` (`hooks/` left out: its shims are the
/// admin's), by path relative to it, with whether it is a directory and its mode.
fn modes_below(dir: &std::path::Path) -> Vec<(String, bool, u32)> {
    use std::os::unix::fs::MetadataExt as _;
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).expect("read_dir").flatten() {
            let meta = std::fs::symlink_metadata(e.path()).expect("stat");
            let rel = e
                .path()
                .strip_prefix(dir)
                .expect("below")
                .display()
                .to_string();
            if rel == "hooks" {
                continue;
            }
            if meta.is_dir() {
                stack.push(e.path());
            }
            out.push((rel, meta.is_dir(), meta.mode() & 0o7777));
        }
    }
    out.sort();
    out
}

/// dist-git makes its repositories with `git init --shared`, and every packager's push writes
/// into them: what the hooks write (objects, the manifest ref, their own files) is writable by
/// the group, as what git writes is, or the next push by another packager fails to write beside
/// it. With a mode (`0640`), nothing is more open than it.
#[test]
fn a_shared_repository_stays_writable_by_its_group() {
    // Directories, loose objects, other files: the bits each must have.
    for (how, want) in [
        ("group", [0o2070, 0o444, 0o060]),
        ("all", [0o2075, 0o444, 0o064]),
    ] {
        let s = Server::shared(how);
        for i in 0..3 {
            s.commit_file(&format!("t{i}/runtask.yml"), GOOD);
        }
        // Pushed under the usual umask, which alone would leave the group out.
        let mut push = std::process::Command::new("sh");
        hermetic(&mut push);
        let out = push
            .args([
                "-c",
                "umask 022 && exec git push -q origin master master:f40",
            ])
            .current_dir(s.work())
            .output()
            .expect("push");
        assert!(out.status.success(), "{}", stderr(&out));
        assert!(s.bare().join("taskhook/handover").is_dir() && s.meta().is_some());
        let lacking: Vec<_> = modes_below(&s.bare())
            .into_iter()
            .filter(|(rel, dir, mode)| {
                let object = rel.starts_with("objects/") && !rel.starts_with("objects/info");
                let bits = want[if *dir {
                    0
                } else if object {
                    1
                } else {
                    2
                }];
                mode & bits != bits
            })
            .collect();
        assert_eq!(lacking, [], "--shared={how}");
        s.assert_manifest_is_exact("f40");
    }
    let s = Server::shared("0640");
    s.commit_file("t/runtask.yml", GOOD);
    assert!(s.push("master").status.success());
    let open: Vec<_> = modes_below(&s.bare())
        .into_iter()
        .filter(|(_, _, mode)| mode & 0o007 != 0)
        .collect();
    assert_eq!(open, [], "--shared=0640: nothing for others");
}

#[test]
fn install_is_idempotent_and_leaves_foreign_hooks_alone() {
    let dir = tempfile::tempdir().expect("tmp");
    git(dir.path(), &["init", "-q", "--bare", "a.git"]);
    git(dir.path(), &["init", "-q", "--bare", "b.git"]);
    assert!(taskhook(&["install", "a.git"], dir.path()).status.success());
    let first = std::fs::read_to_string(dir.path().join("a.git/hooks/pre-receive")).expect("hook");
    let out = taskhook(&["install", "a.git"], dir.path());
    assert!(String::from_utf8_lossy(&out.stdout).contains("pre-receive: already installed"));
    let out = taskhook(&["install", "--format", "json", "a.git"], dir.path());
    let line: serde_json::Value = serde_json::from_str(
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .next()
            .expect("a line"),
    )
    .expect("json");
    assert_eq!(
        (line["hook"].as_str(), line["state"].as_str()),
        (Some("pre-receive"), Some("unchanged"))
    );
    assert_eq!(
        first,
        std::fs::read_to_string(dir.path().join("a.git/hooks/pre-receive")).expect("hook")
    );
    std::fs::write(
        dir.path().join("b.git/hooks/pre-receive"),
        "#!/bin/sh\nexec mine\n",
    )
    .expect("foreign");
    let out = taskhook(&["install", "--policy", "warn", "b.git"], dir.path());
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stdout).contains("pre-receive: NOT installed"));
    assert_eq!(
        std::fs::read_to_string(dir.path().join("b.git/hooks/pre-receive")).expect("hook"),
        "#!/bin/sh\nexec mine\n"
    );
    assert_eq!(
        git(&dir.path().join("b.git"), &["config", "taskhook.policy"]),
        "warn"
    );
    assert_eq!(
        taskhook(&["install", "not-a-repo"], dir.path())
            .status
            .code(),
        Some(2)
    );
}

#[test]
fn update_hook_gives_per_ref_verdicts() {
    let s = Server::new();
    let dir = s.dir.path();
    assert!(taskhook(&["install", "--update-hook", "srv.git"], dir)
        .status
        .success());
    std::fs::remove_file(s.bare().join("hooks/pre-receive")).expect("rm");
    s.commit_file("rpmlint/runtask.yml", GOOD);
    assert!(s.push("master").status.success());
    s.commit_file("bad/runtask.yml", "name: x\n");
    let out = s.push("master:f40");
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("bad/runtask.yml: error[missing-field]"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn a_new_branch_reuses_the_manifest_of_its_commit() {
    let s = Server::new();
    s.commit_file("rpmlint/runtask.yml", GOOD);
    assert!(s.push("master").status.success());
    assert!(s.push("master:f41").status.success());
    let a: serde_json::Value = serde_json::from_str(&s.show("branches/master.json")).expect("json");
    let b: serde_json::Value = serde_json::from_str(&s.show("branches/f41.json")).expect("json");
    assert_eq!(a["tasks"], b["tasks"]);
    assert_eq!(b["branch"], "f41");
}

#[test]
fn the_time_budget_bounds_a_push_and_rejects_what_it_could_not_check() {
    let s = Server::new();
    git(&s.bare(), &["config", "taskhook.timeBudget", "1ms"]);
    for i in 0..300 {
        write(&s.work().join(format!("t{i:03}/runtask.yml")), GOOD);
    }
    git(&s.work(), &["add", "-A"]);
    git(&s.work(), &["commit", "-q", "-m", "many"]);
    let out = s.push("master");
    assert!(!out.status.success());
    let err = stderr(&out);
    // One summary, not one line per unchecked task, and a footer that says who can help.
    assert_eq!(err.matches("error[time-budget]").count(), 1, "{err}");
    assert!(
        err.contains(
            "tasks were not checked: validation ran out of its time budget (1 ms) (first: `t"
        ),
        "{err}"
    );
    assert!(
        err.contains("the server's time budget (`taskhook.timeBudget`, 1 ms) ran out before every task was checked"),
        "{err}"
    );
    assert_eq!(s.meta(), None);
}

/// Reuse of stored verdicts must never change a manifest: every step compares the stored
/// manifest with a full computation, through changes that move tasks in and out of nesting.
#[test]
fn incremental_manifests_equal_full_computation() {
    let s = Server::with_policy(Some("warn"));
    s.commit_file("a/runtask.yml", GOOD);
    s.commit_file("a/b/runtask.yml", GOOD);
    s.commit_file("c/d/runtask.yml", GOOD);
    s.commit_file("c/e/Runtask.yaml", GOOD);
    s.commit_file("f/g/h/runtask.yml", "name: broken\n");
    let step = |what: &str| {
        let out = s.push("master");
        assert!(out.status.success(), "{what}: {}", stderr(&out));
        assert!(
            !stderr(&out).contains("did not match"),
            "{what}: {}",
            stderr(&out)
        );
        s.assert_manifest_is_exact("master");
    };
    step("first push");
    s.commit_file("a/runtask.yml", &GOOD.replace("rpmlint", "rpmlint-a"));
    step("change the enclosing task");
    std::fs::remove_file(s.work().join("a/runtask.yml")).expect("rm");
    git(&s.work(), &["commit", "-q", "-am", "a is no task any more"]);
    step("a/b is not nested any more");
    s.commit_file("runtask.yml", GOOD);
    step("a root task encloses everything");
    std::fs::remove_file(s.work().join("runtask.yml")).expect("rm");
    git(&s.work(), &["commit", "-q", "-am", "no root task"]);
    step("root task gone");
    s.commit_file("c/x.txt", "x");
    step("a sibling file changes next to a misnamed formula");
    s.commit_file("f/g/h/runtask.yml", GOOD);
    step("the broken task is fixed");
    assert!(s.push("master:f41").status.success());
    s.assert_manifest_is_exact("f41");
    s.commit_file("new/runtask.yml", GOOD);
    assert!(s.push("master:f42").status.success());
    s.assert_manifest_is_exact("f42");
    s.commit_file("a/b/runtask.yml", &GOOD.replace("rpmlint", "rpmlint-b"));
    step("one task changes");
    // Directories that are gone take their tasks along: a whole subtree, a renamed one, and a
    // directory replaced by a file.
    s.commit_file("c/more/runtask.yml", GOOD);
    s.commit_file("deep/x/y/runtask.yml", GOOD);
    s.commit_file("deep/x/z/runtask.yml", GOOD);
    step("more tasks");
    git(&s.work(), &["rm", "-rq", "c"]);
    git(&s.work(), &["commit", "-q", "-m", "c is gone"]);
    step("a subtree with tasks and a misnamed formula is deleted");
    git(&s.work(), &["mv", "deep/x", "deep/w"]);
    git(&s.work(), &["commit", "-q", "-m", "renamed"]);
    step("a directory of tasks is renamed");
    git(&s.work(), &["rm", "-rq", "new"]);
    s.commit_file("new", "a file now\n");
    step("a task directory became a file");
    git(&s.work(), &["mv", "deep", ".deep"]);
    git(&s.work(), &["commit", "-q", "-m", "hidden"]);
    step("a directory of tasks became hidden");
}

/// Under `warn`, pre-receive accepts a push it could not check within its time budget (and
/// says so); post-receive then records every task's real verdict, with no budget of its own,
/// so a task is never recorded as unchecked or invalid when it is valid, and none is dropped.
#[test]
fn tasks_pre_receive_could_not_check_are_recorded_with_their_real_verdict() {
    let s = Server::with_policy(Some("warn"));
    git(&s.bare(), &["config", "taskhook.timeBudget", "1ms"]);
    for i in 0..300 {
        write(&s.work().join(format!("t{i:03}/runtask.yml")), GOOD);
    }
    git(&s.work(), &["add", "-A"]);
    git(&s.work(), &["commit", "-q", "-m", "many"]);
    let out = s.push("master");
    assert!(out.status.success());
    assert!(
        stderr(&out).contains("error[time-budget]"),
        "{}",
        stderr(&out)
    );
    let m: serde_json::Value = serde_json::from_str(&s.show("branches/master.json")).expect("json");
    let tasks = manifest_tasks(&m);
    assert_eq!(tasks.len(), 300, "no task is dropped");
    assert!(tasks.iter().all(|t| t["valid"] == true));
    s.assert_manifest_is_exact("master");
}

/// Admins set defaults server-wide with `git config --system`; the hooks read that level too.
#[test]
fn system_level_git_config_is_honoured() {
    let s = Server::new();
    let system = s.dir.path().join("system-gitconfig");
    std::fs::write(&system, "[taskhook]\n\tpolicy = warn\n").expect("write");
    s.commit_file("broken/runtask.yml", "name: x\n");
    let out = git_cmd()
        .args(["push", "origin", "master"])
        .current_dir(s.work())
        .env_remove("GIT_CONFIG_NOSYSTEM")
        .env("GIT_CONFIG_SYSTEM", &system)
        .output()
        .expect("git push");
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stderr(&out).contains("(policy `warn`)"), "{}", stderr(&out));
}

/// A post-receive that finishes after a newer push's (same branch) must not roll the manifest
/// back to the older commit.
#[test]
fn a_late_post_receive_never_overwrites_a_newer_manifest() {
    let s = Server::new();
    s.commit_file("a/runtask.yml", GOOD);
    assert!(s.push("master").status.success());
    let first = git(&s.bare(), &["rev-parse", "master"]);
    s.commit_file("b/runtask.yml", GOOD);
    assert!(s.push("master").status.success());
    let second = git(&s.bare(), &["rev-parse", "master"]);
    // Replay the first push's post-receive now, as if it had been slow.
    // git runs hooks with the repository as the working directory; so does this.
    let line = format!("{} {first} refs/heads/master\n", "0".repeat(40));
    let out = run_with_stdin(bin(), &["hook", "post-receive"], &s.bare(), line.as_bytes());
    assert!(out.status.success(), "{}", stderr(&out));
    let index: serde_json::Value = serde_json::from_str(&s.show("index.json")).expect("json");
    assert_eq!(index["branches"]["master"]["commit"], second.as_str());
    s.assert_manifest_is_exact("master");
}

/// A damaged `index.json` does not block pushes, is reported, and `manifest rebuild` repairs it.
#[test]
fn a_damaged_index_is_reported_and_rebuild_repairs_it() {
    let s = Server::new();
    s.commit_file("a/runtask.yml", GOOD);
    assert!(s.push("master").status.success());
    // Damage index.json behind taskhook's back.
    let bare = s.bare();
    let blob = run_with_stdin(
        "git",
        &["hash-object", "-w", "--stdin"],
        &bare,
        b"{ not json",
    );
    let blob = String::from_utf8(blob.stdout).expect("utf8");
    git(&bare, &["read-tree", "refs/meta/tasks"]);
    git(
        &bare,
        &[
            "update-index",
            "--add",
            "--cacheinfo",
            &format!("100644,{},index.json", blob.trim()),
        ],
    );
    let tree = git(&bare, &["write-tree"]);
    let commit = git(
        &bare,
        &[
            "commit-tree",
            &tree,
            "-p",
            "refs/meta/tasks",
            "-m",
            "damaged",
        ],
    );
    git(&bare, &["update-ref", "refs/meta/tasks", &commit]);
    std::fs::remove_file(bare.join("index")).expect("rm index");
    s.commit_file("b/runtask.yml", GOOD);
    let out = s.push("master");
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("the schedule manifest was not updated"),
        "{}",
        stderr(&out)
    );
    let out = taskhook(&["manifest", "rebuild", "srv.git"], s.dir.path());
    assert!(out.status.success(), "{}", stderr(&out));
    s.assert_manifest_is_exact("master");
    let parents = git(&bare, &["rev-list", "--count", "refs/meta/tasks"]);
    assert_eq!(parents, "3", "the repair keeps the audit log");
}

/// Replaces (or, with `None`, removes) files in the manifest ref's tree, as a hand edit or an
/// older taskhook would have left them.
fn edit_manifest(s: &Server, files: &[(&str, Option<&str>)]) {
    let files: Vec<(&str, Option<&[u8]>)> = files
        .iter()
        .map(|(path, text)| (*path, text.map(str::as_bytes)))
        .collect();
    edit_ref_tree(&s.bare(), "refs/meta/tasks", &files, s.dir.path());
}

/// A branch file as schema version 3 wrote it: each task an object with every key, the formula
/// path included, and no `columns`.
fn as_version_3(v4: &str) -> String {
    let mut m: serde_json::Value = serde_json::from_str(v4).expect("json");
    let tasks: Vec<String> = manifest_tasks(&m)
        .into_iter()
        .map(|mut t| {
            let path = t["path"].as_str().expect("path").to_string();
            t["formula"] = format!("{path}/runtask.yml").into();
            if t["diagnostics"] == serde_json::json!([]) {
                t.as_object_mut().expect("task").remove("diagnostics");
            }
            serde_json::to_string(&t).expect("json")
        })
        .collect();
    let object = m.as_object_mut().expect("object");
    object.remove("columns");
    object.remove("tasks");
    object.insert("schema".into(), 3.into());
    let head = serde_json::to_string_pretty(&m).expect("json");
    let head = head.strip_suffix("\n}").expect("an object");
    format!(
        "{head},\n  \"tasks\": [\n    {}\n  ]\n}}\n",
        tasks.join(",\n    ")
    )
}

/// Manifests written by the previous schema (3: tasks as objects) keep working: the trigger
/// reads them, the next push checks the whole tree once (the old state file is not trusted)
/// and writes version 4, and `manifest rebuild` migrates every branch.
#[test]
fn schema_3_manifests_are_migrated() {
    let s = Server::new();
    s.commit_file("a/runtask.yml", GOOD);
    s.commit_file("b/runtask.yml", GOOD);
    assert!(s.push("master").status.success());
    assert!(s.push("master:f41").status.success());
    let v4 = s.show("branches/master.json");
    assert!(v4.contains("\"schema\": 4"), "{v4}");
    let old = |file: &str| s.show(file).replace("\"schema\": 4", "\"schema\": 3");
    let (master, f41) = (
        as_version_3(&s.show("branches/master.json")),
        as_version_3(&s.show("branches/f41.json")),
    );
    let (index, state) = (old("index.json"), old("state/master.json"));
    edit_manifest(
        &s,
        &[
            ("branches/master.json", Some(&master)),
            ("branches/f41.json", Some(&f41)),
            ("index.json", Some(&index)),
            ("state/master.json", Some(&state)),
            ("state/f41.json", None),
        ],
    );
    assert!(s
        .show("branches/master.json")
        .contains("\"formula\":\"a/runtask.yml\""));
    // The trigger reads version 3 as it is.
    let plan = taskhook(
        &[
            "plan",
            "--remote",
            &format!("file://{}", s.bare().display()),
            "--item-type",
            "koji_build",
            "--item",
            "foo-1.0-1.fc40",
            "--branch",
            "master",
        ],
        s.dir.path(),
    );
    assert!(plan.status.success(), "{}", stderr(&plan));
    let jobs = String::from_utf8_lossy(&plan.stdout);
    assert!(jobs.contains("\"formula\":\"a/runtask.yml\""), "{jobs}");
    // A push from a version 3 state file: every task checked, version 4 written.
    s.commit_file("a/runtask.yml", &GOOD.replace("rpmlint", "rpmlint-a"));
    let out = s.push("master");
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("2 tasks ok (2 checked, 0 unchanged)"),
        "{}",
        stderr(&out)
    );
    assert!(s.show("branches/master.json").contains("\"schema\": 4"));
    s.assert_manifest_is_exact("master");
    // The next one starts from it.
    s.commit_file("b/runtask.yml", &GOOD.replace("rpmlint", "rpmlint-b"));
    let out = s.push("master");
    assert!(
        stderr(&out).contains("2 tasks ok (1 checked, 1 unchanged)"),
        "{}",
        stderr(&out)
    );
    // f41 is still version 3 until the rebuild.
    assert!(s.show("branches/f41.json").contains("\"schema\": 3"));
    let out = taskhook(&["manifest", "rebuild", "srv.git"], s.dir.path());
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(s.show("branches/f41.json").contains("\"schema\": 4"));
    assert!(s.show("index.json").contains("\"schema\": 4"));
    s.assert_manifest_is_exact("f41");
    s.assert_manifest_is_exact("master");
}

/// A branch file that no longer holds the tasks its state file counts (edited by hand) is not
/// spliced: the hook says so, checks the whole tree, and the manifest is exact again.
#[test]
fn a_branch_file_that_disagrees_with_its_state_is_recomputed() {
    let s = Server::new();
    s.commit_file("a/runtask.yml", GOOD);
    s.commit_file("b/runtask.yml", GOOD);
    assert!(s.push("master").status.success());
    let edited: String = s
        .show("branches/master.json")
        .lines()
        .filter(|l| !l.trim_start().starts_with("[\"a\","))
        .map(|l| format!("{l}\n"))
        .collect();
    edit_manifest(&s, &[("branches/master.json", Some(&edited))]);
    s.commit_file("b/runtask.yml", &GOOD.replace("rpmlint", "rpmlint-b"));
    let out = s.push("master");
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("did not match its state file; checked every task"),
        "{}",
        stderr(&out)
    );
    s.assert_manifest_is_exact("master");
}

/// `TASKHOOK_TRACE=1` where git runs the hooks: each hook says when each step ended, and the
/// push is otherwise the same.
#[test]
fn trace_says_where_a_push_spends_its_time() {
    let s = Server::new();
    s.commit_file("a/runtask.yml", GOOD);
    let out = s.push_with_env("master", "TASKHOOK_TRACE", "1");
    assert!(out.status.success(), "{}", stderr(&out));
    let said = stderr(&out);
    for step in [
        "pre-receive: input read",
        "repository opened",
        "verdict",
        "post-receive: input read",
        "branch manifest assembled",
        "manifest written",
    ] {
        assert!(
            said.contains(&format!("taskhook: trace: {step} at ")),
            "{step}: {said}"
        );
    }
    assert!(said.contains("1 task ok"), "{said}");
    let quiet = s.push("master");
    assert!(!stderr(&quiet).contains("trace:"), "{}", stderr(&quiet));
}
