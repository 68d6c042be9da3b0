//! The JSON Schemas in `schema/`, checked with a real JSON Schema validator against real files:
//! every corpus formula, invalid formulas (agreeing with the validator on structure), and
//! manifests written by the hooks.

mod util;

use std::path::Path;

use taskhook::validate::yaml;
use util::*;

fn load(name: &str) -> jsonschema::Validator {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("schema")
        .join(name);
    let schema: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(path).expect("schema")).expect("json");
    jsonschema::validator_for(&schema).expect("valid schema")
}

fn formula_json(text: &str) -> serde_json::Value {
    yaml_to_json(&yaml::parse(text.as_bytes(), &yaml::Limits::default()).expect("yaml"))
}

#[test]
fn every_corpus_formula_fits_the_schema_except_known_structural_errors() {
    let v = load("formula.schema.json");
    for entry in std::fs::read_dir(corpus().join("formulas")).expect("corpus") {
        let path = entry.expect("entry").path();
        let name = path
            .file_name()
            .expect("name")
            .to_string_lossy()
            .into_owned();
        let doc = formula_json(&std::fs::read_to_string(&path).expect("read"));
        // Structural errors the schema can see too: `module` as input arg, `shell:` as a string.
        let structurally_bad = name.ends_with("@32ab3ac")
            || name.ends_with("@4a22adf")
            || name.ends_with("@8d1845e")
            || name.ends_with("@419a069");
        assert_eq!(v.is_valid(&doc), !structurally_bad, "{name}");
    }
}

#[test]
fn schema_agrees_with_the_validator_on_structural_errors() {
    let v = load("formula.schema.json");
    let base = "name: t\ndesc: d\nmaintainer: m\ninput:\n  args: [koji_build]\n";
    let bad = [
        format!("{base}actions: []\n"),
        format!("{base}actions:\n  - name: x\n    shel: [ls]\n"),
        format!("{base}actions:\n  - name: x\n    shell: ls\n"),
        format!("{base}actions:\n  - name: x\n    koji: {{action: download, arch: all, archs: x}}\n"),
        format!("{base}actions:\n  - name: x\n    dummy: {{result: PASSED}}\n    shell: [ls]\n"),
        format!("{base}actions:\n  - name: x\n    dummy: {{result: PASSED}}\nscheduling:\n  run: maybe\n"),
        format!("{base}actions:\n  - name: x\n    dummy: {{result: PASSED}}\nscheduling:\n  item_types: [koji_bulid]\n"),
        "name: t\ndesc: d\nmaintainer: m\ntask:\n  - name: x\n".to_string(),
        "- a\n".to_string(),
    ];
    for text in &bad {
        let doc = formula_json(text);
        assert!(!v.is_valid(&doc), "schema accepts:\n{text}");
        let dir = tempfile::tempdir().expect("tmp");
        write(&dir.path().join("t/runtask.yml"), text);
        assert_eq!(
            taskhook(&["check"], dir.path()).status.code(),
            Some(1),
            "validator accepts:\n{text}"
        );
    }
    assert!(v.is_valid(&formula_json(GOOD)));
}

#[test]
fn manifests_written_by_the_hooks_fit_their_schemas() {
    let s = Server::with_policy(Some("warn"));
    s.commit_file("rpmlint/runtask.yml", GOOD);
    s.commit_file("broken/runtask.yml", "name: x\n");
    s.commit_file("misnamed/runtask.yaml", GOOD);
    assert!(s.push("master").status.success());
    assert!(s.push("master:epel/9").status.success());
    let index: serde_json::Value = serde_json::from_str(&s.show("index.json")).expect("json");
    let iv = load("index.schema.json");
    assert!(iv.is_valid(&index), "{index}");
    let mv = load("manifest.schema.json");
    for b in ["master", "epel/9"] {
        let m: serde_json::Value =
            serde_json::from_str(&s.show(&format!("branches/{b}.json"))).expect("json");
        let errors: Vec<String> = mv.iter_errors(&m).map(|e| e.to_string()).collect();
        assert!(errors.is_empty(), "{b}: {errors:?}");
        assert!(!m["problems"].as_array().expect("problems").is_empty());
        // The invalid task's row carries its diagnostics; the valid one's ends before them.
        let rows = m["tasks"].as_array().expect("rows");
        let lengths: Vec<usize> = rows
            .iter()
            .filter_map(|r| r.as_array().map(Vec::len))
            .collect();
        assert_eq!(lengths, [13, 12], "{b}");
        // A row one value short, or with its values out of order, does not fit.
        let mut short = m.clone();
        short["tasks"][1].as_array_mut().expect("row").pop();
        assert!(!mv.is_valid(&short));
        let mut swapped = m.clone();
        swapped["tasks"][1].as_array_mut().expect("row").swap(3, 8);
        assert!(!mv.is_valid(&swapped));
    }
    let mut broken = index.clone();
    broken["branches"]["master"]["sha256"] = "nope".into();
    assert!(!iv.is_valid(&broken));
}
