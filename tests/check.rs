//! `taskhook check`: verdicts on real formulas, every diagnostic code, hostile input, and the
//! promise that a checkout and a commit get the same verdict.

mod util;

use std::path::Path;
use std::time::{Duration, Instant};

use util::*;

fn check_json(dir: &Path, extra: &[&str]) -> (i32, serde_json::Value) {
    let mut args = vec!["check", "--format", "json"];
    args.extend(extra);
    let out = taskhook(&args, dir);
    let v = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("json: {e}: {}", String::from_utf8_lossy(&out.stderr)));
    (out.status.code().unwrap_or(-1), v)
}

fn codes(v: &serde_json::Value) -> Vec<String> {
    v["diagnostics"]
        .as_array()
        .expect("diagnostics")
        .iter()
        .map(|d| d["code"].as_str().unwrap_or("").to_string())
        .collect()
}

/// One task directory holding `text`; returns the codes found.
fn codes_for(text: &str) -> Vec<String> {
    let dir = tempfile::tempdir().expect("tmp");
    write(&dir.path().join("t/runtask.yml"), text);
    codes(&check_json(dir.path(), &[]).1)
}

/// The verdict a Taskotron engineer gives each real formula of the corpus, laid out as a task.
#[test]
fn corpus_formulas_get_the_expected_verdicts() {
    let expected: &[(&str, &[&str])] = &[
        ("TomasTomecek__taskotron-tasks__sa_package__task.yml", &[]),
        ("fedora-modularity__check_modulemd__runtask.yml", &[]),
        (
            "fedora-modularity__check_modulemd__runtask.yml@0f0b9fc",
            &[],
        ),
        // The first draft declared an input arg `module`, which no trigger passes.
        (
            "fedora-modularity__check_modulemd__runtask.yml@32ab3ac",
            &["unknown-input-arg"],
        ),
        (
            "fedora-modularity__check_modulemd__runtask.yml@3bcbbd9",
            &[],
        ),
        // `shell: >` is a string: libtaskotron would run it character by character.
        (
            "fedora-modularity__check_modulemd__runtask.yml@419a069",
            &["shell-not-list"],
        ),
        (
            "fedora-modularity__check_modulemd__runtask.yml@4a22adf",
            &["bad-namespace", "unknown-input-arg"],
        ),
        (
            "fedora-modularity__check_modulemd__runtask.yml@700f58f",
            &[],
        ),
        (
            "fedora-modularity__check_modulemd__runtask.yml@799593a",
            &[],
        ),
        (
            "fedora-modularity__check_modulemd__runtask.yml@79ce7de",
            &[],
        ),
        (
            "fedora-modularity__check_modulemd__runtask.yml@822f854",
            &[],
        ),
        (
            "fedora-modularity__check_modulemd__runtask.yml@8682d15",
            &[],
        ),
        (
            "fedora-modularity__check_modulemd__runtask.yml@8d1845e",
            &["bad-namespace", "unknown-input-arg"],
        ),
        (
            "fedora-modularity__check_modulemd__runtask.yml@9077c37",
            &[],
        ),
        (
            "fedora-modularity__check_modulemd__runtask.yml@908fbf9",
            &[],
        ),
        // namespace `modules` is not in the result-namespace allow-list (scratch, dist, pkg).
        (
            "fedora-modularity__check_modulemd__runtask.yml@a624027",
            &["bad-namespace"],
        ),
        (
            "fedora-modularity__check_modulemd__runtask.yml@be96694",
            &["bad-namespace"],
        ),
        (
            "fedora-modularity__check_modulemd__runtask.yml@c1a86a5",
            &["bad-namespace"],
        ),
        (
            "fedora-modularity__check_modulemd__runtask.yml@e4897b6",
            &[],
        ),
        (
            "fedora-modularity__check_modulemd__runtask.yml@e5b5486",
            &[],
        ),
        (
            "fedora-modularity__check_modulemd__runtask.yml@e6acd7a",
            &[],
        ),
        (
            "fedora-modularity__check_modulemd__runtask.yml@ff94ea4",
            &[],
        ),
        (
            "fedora-python__taskotron-python-versions__runtask.yaml@023e76a",
            &[],
        ),
        (
            "fedora-python__taskotron-python-versions__runtask.yaml@3e953c4",
            &[],
        ),
        (
            "fedora-python__taskotron-python-versions__runtask.yaml@f88fc68",
            &[],
        ),
        ("fedora-python__taskotron-python-versions__runtask.yml", &[]),
        (
            "fedora-python__taskotron-python-versions__runtask.yml@26484a0",
            &[],
        ),
        (
            "fedora-python__taskotron-python-versions__runtask.yml@c2b8df0",
            &[],
        ),
        (
            "fedora-python__taskotron-python-versions__runtask.yml@e336d49",
            &[],
        ),
        (
            "fedora-python__taskotron-python-versions__runtask.yml@fb0c227",
            &[],
        ),
    ];
    let dir = corpus().join("formulas");
    let mut seen = 0;
    for entry in std::fs::read_dir(&dir).expect("corpus") {
        let name = entry
            .expect("entry")
            .file_name()
            .to_string_lossy()
            .into_owned();
        let want = expected
            .iter()
            .find(|(n, _)| *n == name)
            .unwrap_or_else(|| panic!("no expected verdict for corpus file {name}"))
            .1;
        let text = std::fs::read_to_string(dir.join(&name)).expect("read");
        let mut got = codes_for(&text);
        got.sort();
        got.dedup();
        assert_eq!(got, want, "{name}");
        seen += 1;
    }
    assert_eq!(seen, expected.len());
}

/// Laid out under their original names, the misnamed corpus formulas are rejected with a hint.
#[test]
fn corpus_files_under_their_own_names_are_misnamed() {
    let dir = tempfile::tempdir().expect("tmp");
    let src = corpus().join("formulas");
    std::fs::create_dir_all(dir.path().join("python-versions")).expect("mkdir");
    std::fs::copy(
        src.join("fedora-python__taskotron-python-versions__runtask.yaml@f88fc68"),
        dir.path().join("python-versions/runtask.yaml"),
    )
    .expect("copy");
    std::fs::create_dir_all(dir.path().join("sa_package")).expect("mkdir");
    std::fs::copy(
        src.join("TomasTomecek__taskotron-tasks__sa_package__task.yml"),
        dir.path().join("sa_package/task.yml"),
    )
    .expect("copy");
    let out = taskhook(&["check"], dir.path());
    assert_eq!(out.status.code(), Some(1));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("python-versions/runtask.yaml: error[misnamed-formula]: `runtask.yaml` looks like a task formula, but the runner only reads `runtask.yml`\n  help: rename it: git mv python-versions/runtask.yaml python-versions/runtask.yml"), "{text}");
    assert!(
        text.contains("sa_package/task.yml: error[misnamed-formula]"),
        "{text}"
    );
}

const BASE: &str = "name: t\ndesc: d\nmaintainer: m\ninput:\n  args: [koji_build]\nactions:\n";

#[test]
fn every_formula_code_is_reported() {
    let cases: &[(&str, String)] = &[
        ("yaml-syntax", "name: [unclosed\n".to_string()),
        ("not-a-mapping", "- a\n- b\n".to_string()),
        ("empty-formula", "".to_string()),
        ("missing-field", "name: t\n".to_string()),
        ("wrong-type", format!("{BASE}  - name: x\n    dummy: {{result: PASSED}}\n").replace("name: t", "name: [t]")),
        ("unknown-key", format!("{BASE}  - name: x\n    dummy: {{result: PASSED}}\nmaintaner: x\n")),
        ("legacy-task-key", "name: t\ndesc: d\nmaintainer: m\ntask:\n  - name: x\n".to_string()),
        ("bad-namespace", format!("namespace: modules\n{BASE}  - name: x\n    dummy: {{result: PASSED}}\n")),
        ("unknown-input-arg", "name: t\ndesc: d\nmaintainer: m\ninput:\n  args: [module]\nactions:\n  - name: x\n    dummy: {result: PASSED}\n".to_string()),
        ("duplicate-arg", "name: t\ndesc: d\nmaintainer: m\ninput:\n  args: [koji_build, koji_build]\nactions:\n  - name: x\n    dummy: {result: PASSED}\n".to_string()),
        ("empty-actions", "name: t\ndesc: d\nmaintainer: m\ninput:\n  args: [koji_build]\nactions: []\n".to_string()),
        ("unknown-directive", format!("{BASE}  - name: x\n    shel: [ls]\n")),
        ("missing-directive", format!("{BASE}  - name: x\n")),
        ("many-directives", format!("{BASE}  - name: x\n    dummy: {{result: PASSED}}\n    shell: [ls]\n")),
        ("unknown-parameter", format!("{BASE}  - name: x\n    koji: {{action: download, koji_build: $koji_build, arch: all, archs: x}}\n")),
        ("missing-parameter", format!("{BASE}  - name: x\n    koji: {{action: download, arch: all}}\n")),
        ("bad-parameter", format!("{BASE}  - name: x\n    koji: {{action: fetch, koji_build: $koji_build, arch: all}}\n")),
        ("shell-not-list", format!("{BASE}  - name: x\n    shell: ls -l\n")),
        ("bad-shell-command", format!("{BASE}  - name: x\n    shell:\n      - {{ignore: [ls]}}\n")),
        ("undefined-variable", format!("{BASE}  - name: x\n    python: {{file: a.py, callable: run, x: $koji_tag}}\n")),
        ("bad-export", format!("{BASE}  - name: x\n    dummy: {{result: PASSED}}\n    export: 2bad\n")),
        ("ambiguous-yaml", format!("{BASE}  - name: x\n    dummy: {{result: PASSED}}\nscheduling:\n  run: yes\n")),
        ("unknown-item-type", format!("{BASE}  - name: x\n    dummy: {{result: PASSED}}\nscheduling:\n  item_types: [koji_bulid]\n")),
        ("trigger-not-input", format!("{BASE}  - name: x\n    dummy: {{result: PASSED}}\nscheduling:\n  item_types: [koji_tag]\n")),
        ("yaml-bool-key", format!("{BASE}  - name: x\n    dummy: {{result: PASSED}}\nscheduling:\n  on: [koji_build]\n")),
        ("unknown-arch", format!("{BASE}  - name: x\n    dummy: {{result: PASSED}}\nscheduling:\n  arches: [x86-64]\n")),
        ("never-triggered", "name: t\ndesc: d\nmaintainer: m\nactions:\n  - name: x\n    dummy: {result: PASSED}\n".to_string()),
        ("duplicate-key", format!("{BASE}  - name: x\n    dummy: {{result: PASSED}}\nname: again\n")),
        ("yaml-tag", format!("{BASE}  - name: x\n    dummy: {{result: !!python/object:os.system ls}}\n")),
        ("yaml-limit", format!("{BASE}  - name: x\n    dummy: {{result: {}}}\n", "[".repeat(100) + &"]".repeat(100))),
    ];
    for (code, text) in cases {
        let got = codes_for(text);
        assert!(
            got.iter().any(|c| c == code),
            "{code} not reported for:\n{text}\ngot {got:?}"
        );
    }
}

#[test]
fn the_good_formula_is_clean() {
    assert_eq!(codes_for(GOOD), Vec::<String>::new());
}

#[test]
fn discovery_codes() {
    let dir = tempfile::tempdir().expect("tmp");
    let d = dir.path();
    write(&d.join("outer/runtask.yml"), GOOD);
    write(&d.join("outer/inner/runtask.yml"), GOOD);
    write(&d.join("bad name/runtask.yml"), GOOD);
    write(&d.join("Misnamed/Runtask.yml"), GOOD);
    write(&d.join(".hidden/runtask.yml"), "not even yaml: [");
    write(&d.join("a/b/c/d/e/f/runtask.yml"), GOOD);
    std::fs::create_dir_all(d.join("linked")).expect("mkdir");
    std::os::unix::fs::symlink("../outer/runtask.yml", d.join("linked/runtask.yml"))
        .expect("symlink");
    let (code, v) = check_json(d, &[]);
    assert_eq!(code, 1);
    let c = codes(&v);
    for want in [
        "nested-task",
        "bad-path",
        "misnamed-formula",
        "formula-not-a-file",
        "depth-limit",
    ] {
        assert!(c.iter().any(|x| x == want), "{want} missing: {c:?}");
    }
    assert!(!v["tasks"]
        .as_array()
        .expect("tasks")
        .iter()
        .any(|t| t["path"] == ".hidden"));
}

#[test]
fn too_many_tasks_is_an_error() {
    let dir = tempfile::tempdir().expect("tmp");
    for i in 0..5 {
        write(&dir.path().join(format!("t{i}/runtask.yml")), GOOD);
    }
    git(dir.path(), &["init", "-q"]);
    git(dir.path(), &["config", "taskhook.maxTasks", "3"]);
    let (code, v) = check_json(dir.path(), &[]);
    assert_eq!(code, 1);
    assert!(codes(&v).contains(&"too-many-tasks".to_string()));
}

/// Asserts that `taskhook check`, in a checkout holding one task, `rpmlint`, whose formula is
/// `formula`, finds it invalid and prints exactly `expected`.
fn assert_invalid_word_for_word(formula: &str, expected: &str) {
    let dir = tempfile::tempdir().expect("tmp");
    write(&dir.path().join("rpmlint/runtask.yml"), formula);
    let out = taskhook(&["check"], dir.path());
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(String::from_utf8_lossy(&out.stdout), expected);
}

/// Word for word: the messages maintainers see most.
#[test]
fn most_common_messages_word_for_word() {
    assert_invalid_word_for_word(
        "name: rpmlint\ndesc: d\nmaintainer: m\ninput:\n  args: [koji_bulid]\nactions:\n  - name: run\n    shel: [ls]\n",
        "rpmlint/runtask.yml:5:10: error[unknown-input-arg]: `koji_bulid` is not an item type the trigger can pass
 5 |   args: [koji_bulid]
   |          ^
  help: did you mean `koji_build`?
rpmlint/runtask.yml:8:5: error[unknown-directive]: unknown directive `shel` in action `run`
 8 |     shel: [ls]
   |     ^
  help: did you mean `shell`?
invalid: 1 task, 2 errors, 0 warnings
"
    );
}

/// Word for word: a construct PyYAML reads otherwise, with the fix for that construct rather
/// than the general advice for YAML syntax.
#[test]
fn constructs_pyyaml_reads_otherwise_say_how_to_fix_them() {
    assert_invalid_word_for_word(
        "name: rpmlint\ndesc: d\nmaintainer: m\nactions:\n  - name: run\n    shell: [echo, x? y]\n",
        "rpmlint/runtask.yml:6:19: error[yaml-syntax]: `x? y` inside `[...]` or `{...}` is read differently by the runner's YAML 1.1 reader, which takes its `?` for a key indicator
 6 |     shell: [echo, x? y]
   |                   ^
  help: quote it: \"x? y\"
invalid: 1 task, 1 error, 0 warnings
"
    );
}

/// Word for word: a number PyYAML loads and taskhook does not hold is a YAML matter with the
/// fix for it, not the advice for a formula too large.
#[test]
fn a_number_past_64_bits_says_to_quote_it() {
    assert_invalid_word_for_word(
        "name: rpmlint\ndesc: d\nmaintainer: m\nactions:\n  - name: run\n    shell: [echo, 99999999999999999999]\n",
        "rpmlint/runtask.yml:6:19: error[yaml-syntax]: `99999999999999999999` is written as an integer this reader cannot hold
 6 |     shell: [echo, 99999999999999999999]
   |                   ^
  help: quote it if it is text: \"99999999999999999999\"
invalid: 1 task, 1 error, 0 warnings
"
    );
}

#[test]
fn rendered_diagnostics_snapshot() {
    let dir = tempfile::tempdir().expect("tmp");
    write(
        &dir.path().join("abicheck/runtask.yml"),
        "name: abicheck
desc: compare ABI
maintainer: qa
namespace: distt
input:
  args: [koji_build]
actions:
  - name: download
    koji:
      action: download
      koji_build: ${koji_biuld}
      arch: all
      src: yes please
  - name: run
    shell: ./run.sh
scheduling:
  run: no
  branches: [f*, 40]
",
    );
    let out = taskhook(&["check"], dir.path());
    insta::assert_snapshot!(String::from_utf8_lossy(&out.stdout));
}

fn assert_bounded(name: &str, bytes: &[u8], want_code: &str) {
    let dir = tempfile::tempdir().expect("tmp");
    std::fs::create_dir_all(dir.path().join("t")).expect("mkdir");
    std::fs::write(dir.path().join("t/runtask.yml"), bytes).expect("write");
    let start = Instant::now();
    let (code, v) = check_json(dir.path(), &[]);
    assert!(
        start.elapsed() < Duration::from_secs(10),
        "{name} took {:?}",
        start.elapsed()
    );
    assert_eq!(code, 1, "{name}");
    let c = codes(&v);
    assert!(c.iter().any(|x| x == want_code), "{name}: {c:?}");
}

#[test]
fn hostile_inputs_get_clear_errors() {
    let bomb = "a: &a [\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\"]
b: &b [*a,*a,*a,*a,*a,*a,*a,*a,*a]
c: &c [*b,*b,*b,*b,*b,*b,*b,*b,*b]
d: &d [*c,*c,*c,*c,*c,*c,*c,*c,*c]
e: &e [*d,*d,*d,*d,*d,*d,*d,*d,*d]
f: &f [*e,*e,*e,*e,*e,*e,*e,*e,*e]
g: &g [*f,*f,*f,*f,*f,*f,*f,*f,*f]
";
    assert_bounded("alias bomb", bomb.as_bytes(), "yaml-limit");
    assert_bounded(
        "10k deep",
        ("[".repeat(10_000) + &"]".repeat(10_000)).as_bytes(),
        "yaml-limit",
    );
    assert_bounded(
        "10k deep maps",
        format!("a: {}", "{a: ".repeat(10_000)).as_bytes(),
        "yaml-limit",
    );
    assert_bounded(
        "3 MB",
        format!("name: {}\n", "x".repeat(3 << 20)).as_bytes(),
        "formula-too-large",
    );
    assert_bounded("invalid utf-8", b"name: t\ndesc: \xff\xfe\n", "not-utf8");
    assert_bounded("empty", b"", "empty-formula");
    assert_bounded("tabs", b"name: t\n\tdesc: d\n", "yaml-syntax");
    assert_bounded("nul bytes", b"name: t\0\0\n", "yaml-character");
    assert_bounded("two documents", b"name: t\n---\nname: u\n", "yaml-syntax");
}

#[test]
fn not_utf8_points_at_the_byte() {
    let dir = tempfile::tempdir().expect("tmp");
    std::fs::create_dir_all(dir.path().join("t")).expect("mkdir");
    std::fs::write(dir.path().join("t/runtask.yml"), b"name: t\ndesc: ab\xff\n").expect("write");
    let (_, v) = check_json(dir.path(), &[]);
    let d = &v["diagnostics"][0];
    assert_eq!(
        (d["line"].as_u64(), d["column"].as_u64()),
        (Some(2), Some(9))
    );
}

/// The verdict on a commit of a bare repository equals the verdict on its checkout.
#[test]
fn rev_on_bare_repo_equals_checkout() {
    let dir = tempfile::tempdir().expect("tmp");
    let work = dir.path().join("work");
    write(&work.join("good/runtask.yml"), GOOD);
    write(
        &work.join("bad/runtask.yml"),
        "name: x\ndesc: [d]\nmaintainer: m\nactions: []\n",
    );
    write(&work.join("tests/Runtask.yaml"), GOOD);
    write(&work.join("nested/runtask.yml"), GOOD);
    write(&work.join("nested/sub/runtask.yml"), GOOD);
    std::fs::create_dir_all(work.join("link")).expect("mkdir");
    std::os::unix::fs::symlink("../good/runtask.yml", work.join("link/runtask.yml"))
        .expect("symlink");
    git(dir.path(), &["init", "-q", "work"]);
    git(&work, &["add", "-A"]);
    git(&work, &["commit", "-q", "-m", "x"]);
    git(dir.path(), &["clone", "-q", "--bare", "work", "bare.git"]);
    let (c1, on_disk) = check_json(&work, &[]);
    let (c2, on_bare) = check_json(&dir.path().join("bare.git"), &["--rev", "HEAD"]);
    let (c3, bare_default) = check_json(&dir.path().join("bare.git"), &[]);
    assert_eq!(c1, 1);
    assert_eq!((c1, &on_disk["diagnostics"]), (c2, &on_bare["diagnostics"]));
    assert_eq!((c2, &on_bare), (c3, &bare_default));
    assert_eq!(on_disk["tasks"], on_bare["tasks"]);
}

#[test]
fn usage_errors_exit_2() {
    let dir = tempfile::tempdir().expect("tmp");
    assert_eq!(
        taskhook(&["check", "no/such/dir"], dir.path())
            .status
            .code(),
        Some(2)
    );
    assert_eq!(taskhook(&["frobnicate"], dir.path()).status.code(), Some(2));
    git(dir.path(), &["init", "-q", "r"]);
    let out = taskhook(&["check", "r", "--rev", "nope"], dir.path());
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("unknown revision `nope`"));
}

/// Package repositories keep Standard Test Interface playbooks (`tests/tests.yml`) and tmt
/// metadata: they are not formulas and must not be mistaken for misnamed ones.
#[test]
fn sti_and_tmt_files_are_not_formulas() {
    let dir = tempfile::tempdir().expect("tmp");
    for (i, entry) in std::fs::read_dir(corpus().join("sti"))
        .expect("sti")
        .enumerate()
    {
        let path = entry.expect("entry").path();
        let target = dir.path().join(format!("pkg{i}/tests/tests.yml"));
        std::fs::create_dir_all(target.parent().expect("parent")).expect("mkdir");
        std::fs::copy(&path, &target).expect("copy");
    }
    let fmf = corpus().join("tmt/psss__did__tests__main.fmf");
    std::fs::create_dir_all(dir.path().join("did/tests")).expect("mkdir");
    std::fs::copy(fmf, dir.path().join("did/tests/main.fmf")).expect("copy");
    let (code, v) = check_json(dir.path(), &[]);
    assert_eq!(code, 0, "{v}");
    assert_eq!(v["tasks"], serde_json::json!([]));
    assert_eq!(v["diagnostics"], serde_json::json!([]));
}
