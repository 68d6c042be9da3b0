//! Torture, bounded in time: many concurrent pushes to different branches, and post-receive
//! killed mid-write. After each, every branch manifest equals a full `manifest build` at its
//! head and `git fsck --full` is clean.

mod util;

use std::time::{Duration, Instant};

use util::*;

#[test]
fn fifty_concurrent_pushes_to_different_branches_all_land() {
    let s = Server::new();
    s.commit_file("t/runtask.yml", GOOD);
    assert!(s.push("master").status.success());
    const N: usize = 50;
    for i in 0..N {
        git(&s.work(), &["branch", &format!("b{i:02}")]);
    }
    // Each branch gets its own commit so that every manifest differs.
    for i in 0..N {
        git(&s.work(), &["checkout", "-q", &format!("b{i:02}")]);
        s.commit_file(&format!("t{i:02}/runtask.yml"), GOOD);
    }
    let start = Instant::now();
    let handles: Vec<_> = (0..N)
        .map(|i| {
            let work = s.work();
            std::thread::spawn(move || git_output(&work, &["push", "origin", &format!("b{i:02}")]))
        })
        .collect();
    for h in handles {
        let out = h.join().expect("push thread");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    assert!(start.elapsed() < Duration::from_secs(120));
    let index: serde_json::Value = serde_json::from_str(&s.show("index.json")).expect("index");
    assert_eq!(
        index["branches"].as_object().map(|b| b.len()),
        Some(N + 1),
        "no lost update"
    );
    for i in 0..N {
        s.assert_manifest_is_exact(&format!("b{i:02}"));
    }
    s.assert_manifest_is_exact("master");
    s.assert_fsck_clean();
}

#[test]
fn post_receive_killed_mid_write_leaves_a_valid_manifest() {
    let s = Server::new();
    for i in 0..150 {
        write(&s.work().join(format!("t{i:03}/runtask.yml")), GOOD);
    }
    git(&s.work(), &["add", "-A"]);
    git(&s.work(), &["commit", "-q", "-m", "many"]);
    assert!(s.push("master").status.success());
    git(&s.bare(), &["config", "taskhook.staleLockSeconds", "1"]);
    for round in 0..12u64 {
        let old = git(&s.bare(), &["rev-parse", "master"]);
        s.commit_file(
            &format!("t{round:03}/runtask.yml"),
            &GOOD.replace("rpmlint", &format!("r{round}")),
        );
        // Move the branch without hooks (a fetch into the server), then run post-receive as git
        // would, and kill it.
        let new = git(&s.work(), &["rev-parse", "HEAD"]);
        let work = s.work().display().to_string();
        git(
            &s.bare(),
            &["fetch", "-q", &work, "+refs/heads/master:refs/heads/master"],
        );
        let mut child = taskhook_cmd()
            .args(["hook", "post-receive"])
            .current_dir(s.bare())
            .env("GIT_DIR", ".")
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("post-receive");
        {
            use std::io::Write as _;
            let mut stdin = child.stdin.take().expect("stdin");
            let _ = writeln!(stdin, "{old} {new} refs/heads/master");
        }
        std::thread::sleep(Duration::from_millis(2 + round * 3));
        let _ = child.kill();
        let _ = child.wait();
        // Whatever the moment: the manifest is the old one, intact, or the complete new one.
        s.assert_fsck_clean();
        let m: serde_json::Value =
            serde_json::from_str(&s.show("branches/master.json")).expect("manifest json");
        if m["commit"] == new.as_str() {
            s.assert_manifest_is_exact("master");
        } else {
            assert_eq!(m["commit"], old.as_str(), "round {round}");
        }
        // The next push repairs whatever the kill left (a stale lock waits out staleLockSeconds).
        s.commit_file("t000/note.txt", &format!("{round}\n"));
        let out = s.push("master");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        s.assert_manifest_is_exact("master");
        s.assert_fsck_clean();
    }
}
