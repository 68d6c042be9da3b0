//! What a maintainer reads: the messages that matter, word for word.

mod util;

use std::path::Path;

use util::*;

const BASE: &str = "name: t\ndesc: d\nmaintainer: m\ninput:\n  args: [koji_build]\nactions:\n  - name: x\n    dummy: {result: PASSED}\n";

/// Every diagnostic for one task holding `text`: `(code, line, message, help)`.
fn diags(text: &str) -> Vec<(String, u64, String, String)> {
    let dir = tempfile::tempdir().expect("tmp");
    write(&dir.path().join("t/runtask.yml"), text);
    diags_in(dir.path())
}

fn diags_in(dir: &Path) -> Vec<(String, u64, String, String)> {
    let out = taskhook(&["check", "--format", "json"], dir);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    v["diagnostics"]
        .as_array()
        .expect("diagnostics")
        .iter()
        .map(|d| {
            (
                d["code"].as_str().unwrap_or("").to_string(),
                d["line"].as_u64().unwrap_or(0),
                d["message"].as_str().unwrap_or("").to_string(),
                d["help"].as_str().unwrap_or("").to_string(),
            )
        })
        .collect()
}

#[test]
fn the_old_on_key_and_other_yaml11_boolean_keys() {
    let d = diags(&format!("{BASE}scheduling:\n  on: [koji_build]\n"));
    assert_eq!(
        d,
        vec![(
            "yaml-bool-key".to_string(),
            10,
            "the key `on` is the boolean True to the runner's YAML 1.1 reader (PyYAML), not the word `on`".to_string(),
            "rename it to `item_types` (the key was `on` in taskhook's first version)".to_string()
        )]
    );
    let d = diags(&BASE.replace(
        "dummy: {result: PASSED}",
        "python: {file: a.py, callable: run, yes: 1, off: 2}",
    ));
    let codes: Vec<&str> = d.iter().map(|x| x.0.as_str()).collect();
    assert_eq!(codes, vec!["yaml-bool-key", "yaml-bool-key"], "{d:?}");
    assert_eq!(d[1].3, "quote it (`\"off\":`) if you mean the word");
    // Quoted, the word is a word.
    assert!(diags(&BASE.replace(
        "dummy: {result: PASSED}",
        "python: {file: a.py, callable: run, \"yes\": 1}"
    ))
    .is_empty());
}

#[test]
fn every_duplicate_key_is_reported() {
    let d = diags(&format!("{BASE}name: again\ndesc: again\n"));
    let lines: Vec<(String, u64)> = d.iter().map(|x| (x.0.clone(), x.1)).collect();
    assert_eq!(
        lines,
        vec![("duplicate-key".into(), 9), ("duplicate-key".into(), 10)]
    );
}

#[test]
fn ambiguous_scalars_say_both_readings() {
    let d = diags(&format!("{BASE}scheduling:\n  branches: [010]\n"));
    assert_eq!(
        (d[0].2.as_str(), d[0].3.as_str()),
        (
            "`010` is the integer 8 (octal) to the runner's YAML 1.1 reader but the integer 10 to YAML 1.2 readers",
            "quote it (\"010\") if you mean the string"
        )
    );
    let d = diags(&format!("{BASE}scheduling:\n  arches: [x86_64, on]\n"));
    assert_eq!(
        (d[0].2.as_str(), d[0].3.as_str()),
        (
            "`on` is the boolean true to the runner's YAML 1.1 reader but a string to YAML 1.2 readers",
            "quote it (\"on\") if you mean the string"
        )
    );
    let d = diags(&format!("{BASE}scheduling:\n  run: yes\n"));
    assert_eq!(d[0].3, "write true");
}

#[test]
fn a_misspelled_item_type_in_input_args_is_named_where_it_is_used() {
    let text = "name: t\ndesc: d\nmaintainer: m\ninput:\n  args: [koji_biuld]\nactions:\n  - name: x\n    python: {file: a.py, callable: run, nvr: \"${koji_build}\"}\n";
    let d = diags(text);
    let undefined = d
        .iter()
        .find(|x| x.0 == "undefined-variable")
        .expect("undefined");
    assert_eq!(
        undefined.3,
        "`koji_build` is an item type: list it in `input.args` (which has `koji_biuld`: did you mean `koji_build` there?)"
    );
    let arg = d.iter().find(|x| x.0 == "unknown-input-arg").expect("arg");
    assert!(arg.3.contains("koji_build"), "{arg:?}");
}

#[test]
fn near_misses_only_when_the_file_is_a_formula() {
    let dir = tempfile::tempdir().expect("tmp");
    let d = dir.path();
    // Concourse's task.yml is another tool's YAML: not taskhook's business.
    write(
        &d.join("ci/task.yml"),
        "platform: linux\nimage_resource:\n  type: registry-image\nrun:\n  path: make\n",
    );
    for name in ["runtest.yml", "runtasks.yml", "run_task.yml"] {
        write(
            &d.join(format!("tests/{}/{name}", name.replace('.', "_"))),
            BASE,
        );
    }
    let got = diags_in(d);
    let helps: Vec<&str> = got
        .iter()
        .filter(|x| x.0 == "misnamed-formula")
        .map(|x| x.3.as_str())
        .collect();
    assert_eq!(
        helps,
        vec![
            "rename it: git mv tests/run_task_yml/run_task.yml tests/run_task_yml/runtask.yml",
            "rename it: git mv tests/runtasks_yml/runtasks.yml tests/runtasks_yml/runtask.yml",
            "rename it: git mv tests/runtest_yml/runtest.yml tests/runtest_yml/runtask.yml",
        ],
        "{got:?}"
    );
    assert!(
        !got.iter().any(|x| x.2.starts_with("`task.yml`")),
        "{got:?}"
    );
}

#[test]
fn a_task_below_the_depth_limit_is_an_error_naming_the_setting() {
    let dir = tempfile::tempdir().expect("tmp");
    write(&dir.path().join("a/b/c/d/e/runtask.yml"), BASE);
    let got = diags_in(dir.path());
    assert_eq!(
        (got[0].0.as_str(), got[0].2.as_str()),
        (
            "too-deep",
            "task `a/b/c/d/e` is 5 directory levels deep; discovery stops at 4 (`taskhook.maxDepth`), so it would never run"
        )
    );
}

#[test]
fn configuration_mistakes_are_named() {
    let s = Server::new();
    git(&s.bare(), &["config", "taskhook.polcy", "warn"]);
    let out = taskhook(&["check", "srv.git", "--rev", "HEAD"], s.dir.path());
    assert_eq!(
        String::from_utf8_lossy(&out.stderr).lines().next(),
        Some("taskhook: warning: unknown setting `taskhook.polcy` is ignored (did you mean `taskhook.policy`?)")
    );
    // An empty bare repository: HEAD names a branch that does not exist yet.
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(
        err.contains("HEAD points at refs/heads/master, which does not exist"),
        "{err}"
    );
    git(&s.bare(), &["config", "--unset", "taskhook.polcy"]);
    git(&s.bare(), &["config", "taskhook.maxYamlDepth", "deep"]);
    s.commit_file("t/runtask.yml", BASE);
    let out = s.push("master");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        err.contains("the server's taskhook configuration is invalid (invalid git config `taskhook.maxYamlDepth = deep`: expected a whole number of at least 4); this is not a problem with your push: contact the server admin"),
        "{err}"
    );
}

#[test]
fn manifest_commands_in_a_maintainers_clone() {
    let s = Server::new();
    s.commit_file("t/runtask.yml", BASE);
    assert!(s.push("master").status.success());
    let clone = s.dir.path().join("clone");
    git(s.dir.path(), &["clone", "-q", "srv.git", "clone"]);
    git(
        &clone,
        &["fetch", "-q", "origin", "refs/meta/tasks:refs/meta/tasks"],
    );
    git(&clone, &["checkout", "-q", "-b", "local-only"]);
    git(&clone, &["branch", "-q", "-D", "master"]);
    // show: the branch exists on the remote, so nothing "no longer exists".
    let out = taskhook(&["manifest", "show", "clone"], s.dir.path());
    assert!(out.status.success());
    assert!(
        out.stderr.is_empty(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = taskhook(
        &[
            "manifest", "show", "--format", "human", "--branch", "master", "clone",
        ],
        s.dir.path(),
    );
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("item types: koji_build; branches: all; arches: noarch"),
        "{text}"
    );
    // rebuild refuses a clone unless asked, and goes on with the other arguments.
    let out = taskhook(
        &["manifest", "rebuild", "clone", "srv.git", "nope"],
        s.dir.path(),
    );
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("taskhook: clone: a repository with a work tree (a clone): manifests belong on the server's bare repository; give --non-bare to write one here anyway"), "{err}");
    assert!(
        err.contains("taskhook: nope: not a git repository"),
        "{err}"
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("srv.git: 1 branch manifest "));
    assert!(taskhook(
        &["manifest", "rebuild", "--non-bare", "clone"],
        s.dir.path()
    )
    .status
    .success());
}

#[test]
fn check_sees_what_a_push_would_send_and_the_servers_settings() {
    let s = Server::new();
    git(&s.bare(), &["config", "taskhook.namespaces", "qa"]);
    s.commit_file("t/runtask.yml", &format!("namespace: qa\n{BASE}"));
    assert!(s.push("master").status.success());
    let work = s.work();
    // Ignored files are not part of a push, so not part of the verdict.
    write(&work.join(".gitignore"), "ignored-dir/\n");
    write(&work.join("ignored-dir/runtask.yml"), "not: [valid\n");
    let out = taskhook(&["check"], &work);
    let text = String::from_utf8_lossy(&out.stdout);
    // Locally the default namespaces apply: `qa` is not among them.
    assert!(text.contains("bad-namespace"), "{text}");
    assert!(!text.contains("ignored-dir"), "{text}");
    // With the server's published settings, the verdict is the server's.
    let d = Daemon::serve(s.dir.path());
    let out = taskhook(&["check", "--server", &d.url("srv.git")], &work);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stderr).contains("settings: policy reject, namespaces qa"));
    // One formula on its own.
    let out = taskhook(&["check", "t/runtask.yml"], &work);
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("t/runtask.yml:1:12: error[bad-namespace]"),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
}
