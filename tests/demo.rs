//! `taskhook demo`, the README's first command: the whole story, and nothing left running.

mod util;

use util::*;

#[test]
fn demo_tells_the_whole_story_and_leaves_nothing_running() {
    let dir = tempfile::tempdir().expect("tmp");
    let keep = dir.path().join("kept");
    let out = taskhook(
        &["demo", "--keep", keep.to_str().expect("utf8")],
        dir.path(),
    );
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{text}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for want in [
        "remote: abicheck/runtask.yml:14:21: error[undefined-variable]: `$koji_biuld` is not defined",
        "remote: taskhook: push rejected: 3 errors in task formulas (policy `reject`)",
        "ok: 2 tasks, 0 errors, 0 warnings",
        "remote: taskhook: schedule manifest updated for master",
        "taskhook: 3 jobs",
        "\"taskname\":\"abicheck\"",
        "checked out into runner-task by archive",
        "runner-task/: runtask.yml",
    ] {
        assert!(text.contains(want), "missing {want:?} in:\n{text}");
    }
    // The daemon is gone: its port no longer accepts connections.
    let port: u16 = text
        .split("git://127.0.0.1:")
        .nth(1)
        .and_then(|r| r.split('/').next())
        .and_then(|p| p.parse().ok())
        .expect("port in output");
    assert!(std::net::TcpStream::connect(("127.0.0.1", port)).is_err());
    // --keep leaves the files for exploring.
    assert!(git(&keep.join("tasks.git"), &["rev-parse", "refs/meta/tasks"]).len() == 40);
    // A second run into the same directory refuses rather than mixing files.
    let again = taskhook(
        &["demo", "--keep", keep.to_str().expect("utf8")],
        dir.path(),
    );
    assert_eq!(again.status.code(), Some(2));
}
