//! The differential test against the runner's YAML reader, PyYAML (YAML 1.1): wherever
//! taskhook's reader accepts a document, PyYAML loads the same structure. Inputs: every corpus
//! formula, the examples, constructs where YAML 1.1 and 1.2 readers part ways, and thousands
//! of mutations of the corpus.
//!
//! A longer search, outside the suite: `TASKHOOK_PYYAML_MUTATIONS=200000
//! TASKHOOK_PYYAML_SEED=7 cargo test --release --test pyyaml` (3,000 mutations from one fixed
//! seed unless told). With `TASKHOOK_PYYAML_KEEP=DIR`, each document read differently is
//! written to DIR under its case's name; `TASKHOOK_PYYAML_CASES=DIR` adds each file in DIR.

mod util;

use std::path::Path;
use std::process::Command;

use taskhook::validate::yaml;
use util::*;

/// A python3 that has PyYAML (Debian's python3-yaml, installed by .ci/run).
fn python_with_yaml() -> String {
    for py in ["python3", "/usr/bin/python3"] {
        let ok = Command::new(py)
            .args(["-c", "import yaml"])
            .status()
            .is_ok_and(|s| s.success());
        if ok {
            return py.to_string();
        }
    }
    panic!("no python3 with PyYAML: apt-get install python3-yaml (.ci/run does)");
}

/// PyYAML's reading as JSON: a string key as itself, other keys marked with their type
/// (`<int>1`, a float by its bits), dates and timestamps by what Python compares them by (`<aware>` microseconds in
/// UTC, as `stamp_text` writes taskhook's), one JSON line per file.
const READER: &str = r#"
import datetime, json, math, os, struct, sys, yaml
def stamp(v):
    if not isinstance(v, datetime.datetime):
        return "<date>%d" % v.toordinal()
    us = ((v.toordinal() * 86400 + v.hour * 3600 + v.minute * 60 + v.second) * 10**6
          + v.microsecond)
    off = v.utcoffset()
    if off is None:
        return "<naive>%d" % us
    return "<aware>%d" % (us - (off.days * 86400 + off.seconds) * 10**6 - off.microseconds)
def conv(v):
    if isinstance(v, dict):
        return {key(k): conv(x) for k, x in v.items()}
    if isinstance(v, list):
        return [conv(x) for x in v]
    if isinstance(v, datetime.date):
        return stamp(v)
    if isinstance(v, float) and (math.isnan(v) or math.isinf(v)):
        return "<special float>"
    if isinstance(v, str) and any(0xD800 <= ord(c) <= 0xDFFF for c in v):
        return "<lone surrogate>"
    if isinstance(v, bool) or v is None or isinstance(v, (int, float, str)):
        return v
    return "<%s>" % type(v).__name__
def key(k):
    if k is True: return "<bool>true"
    if k is False: return "<bool>false"
    if k is None: return "<null>"
    if isinstance(k, datetime.date): return stamp(k)
    if isinstance(k, float):
        if math.isnan(k): return "<float>nan"
        return "<float>%d" % struct.unpack("<Q", struct.pack("<d", k))[0]
    if isinstance(k, int): return "<int>%d" % k
    if isinstance(k, str): return conv(k)
    return "<complex>"
d = sys.argv[1]
for name in sorted(os.listdir(d)):
    with open(os.path.join(d, name), "rb") as f:
        data = f.read()
    try:
        out = {"name": name, "ok": True, "value": conv(yaml.safe_load(data))}
    except Exception as e:
        out = {"name": name, "ok": False, "error": type(e).__name__}
    print(json.dumps(out, sort_keys=True))
"#;

/// Numbers compare by value (PyYAML's 1.0 and taskhook's 1 are the same float).
fn same(a: &serde_json::Value, b: &serde_json::Value) -> bool {
    use serde_json::Value as J;
    match (a, b) {
        (J::Number(x), J::Number(y)) => match (x.as_f64(), y.as_f64()) {
            (Some(p), Some(q)) => p == q || (p - q).abs() <= 1e-9 * p.abs().max(q.abs()),
            _ => x == y,
        },
        (J::Array(x), J::Array(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(p, q)| same(p, q))
        }
        (J::Object(x), J::Object(y)) => {
            x.len() == y.len() && x.iter().all(|(k, v)| y.get(k).is_some_and(|w| same(v, w)))
        }
        _ => a == b,
    }
}

/// Where YAML 1.1 and 1.2 readers part ways, and other constructs a hostile pusher may try.
const CONSTRUCTS: &[&str] = &[
    "a: 1\n# comment\u{2028}namespace: evil\n",
    "a: 1 # note\u{85}b: 2\n",
    "a: 1\u{2029}b: 2\n",
    "%YAML 1.2\n---\na: on\n",
    "%TAG ! tag:example.com,2000:\n---\na: !x 1\n",
    "base: &b {x: 1, y: 2}\nc:\n  <<: *b\n  x: 3\n",
    "a: &a {k: 1}\nb: &b {k: 2}\nc:\n  <<: [*a, *b]\n",
    "a: &a {k: 1}\nb: &b {k: 2}\nc:\n  <<: *a\n  <<: *b\n",
    "c:\n  <<: 5\n",
    "c:\n  \"<<\": {k: 1}\n",
    "a: !!python/object/apply:os.system [ls]\n",
    "a: !!python/name:os.system\n",
    "a: !!binary aGVsbG8=\n",
    "a: !!set {x, y}\n",
    "? [a, b]\n: c\n",
    "a: 010\nb: 0o10\nc: 0x1f\nd: 1:20\ne: 1_000\nf: +12\n",
    "a: yes\nb: No\nc: on\nd: OFF\ne: y\nf: n\n",
    "on: 1\nyes: 2\n",
    "a: 1e3\nb: 1.0e+3\nc: .5\nd: -.inf\ne: .NaN\nf: 6.8523015e+5\n",
    "a: 2001-12-14t21:59:43.10-05:00\nb: 2002-12-14\n",
    "a: [2001-1-1 1:02:03.1234567 -5, 2001-12-14 21:59:43.10Z, 2001-12-14T21:59:43, 0001-01-01]\n",
    "a:\n  2001-01-01 00:00:00Z: 1\n  2001-01-01 01:00:00+01:00: 2\n",
    "a:\n  2001-01-01 00:00:00.1234567: 1\n  2001-1-1 0:00:00.1234569: 2\n",
    "a:\n  2001-01-01: 1\n  2001-01-01 00:00:00: 2\n  2001-01-01 00:00:00Z: 3\n",
    "a:\n  .nan: 1\n  .NaN: 2\n",
    "a:\n  0.5: 1\n  0.50: 2\n  1.0: 3\n  -0.0: 4\n",
    "a:\n  7:55:35.0_1: 1\n  b: -2:10:1.01\n",
    "a:\n  7:55:35.0_1: 1\n  28535.01: 2\n",
    "a:\n  9007199254740993: 1\n  9007199254740992.0: 2\n",
    "a: ~\nb: null\nc: Null\nd:\n",
    "a: 'it''s'\nb: \"tab\\there\"\nc: |\n  x\n  y\nd: >\n  folded\n  text\n",
    "a: \t1\n",
    "a:\n- 1\n- 2\n",
    "a: [1, 2\n",
    "a: {b: [c, {d: e}]}\n",
    "a: 99999999999999999999\n",
    "a: 0b1010\n",
    "a: \"\\u2028\"\n",
    "a: x\u{7f}\n",
    "a: x\u{1}\n",
    // Found by longer mutation searches: anchor names as PyYAML ends them, `?` and `:` in flow
    // collections, keys left out, names defined twice, a document that is one block scalar.
    "input:\n  &args:\n    - x\n",
    "a: &x.y 1\n",
    "a: &x[1, 2]\n",
    "a: [x? y, z]\n",
    "a: [?x]\n",
    "a: [b, :c]\n",
    "a: [b, : c]\n",
    "a: {k: 1, : c}\n",
    "a: &x 1\nb: &x 2\nc: *x\n",
    "|\nname: x\n",
    // Scalars as PyYAML's resolver patterns and constructors read them, a second byte-order mark.
    "a: +.5\nb: ._5\nc: .5\n",
    "a: 1:2:3.5\nb: -1:30.5\n",
    "a: 2001-1-1\nb: 2001-1-1 1:00:00\n",
    "a: 2001-02-30\n",
    "a: 2001-01-01 24:00:00\n",
    "a: 2001-01-01 10:00:00 +24\n",
    "a: 0b_\n",
    "a: 0_\nb: -0_7\n",
    "a: !!int yes\n",
    "a: =\n",
    "a: <<\n",
    "\u{feff}\u{feff}a: b\n",
    // Keys Python takes for one (1 and 1.0), a tagged `<<` that is no merge key.
    "x:\n  1: a\n  1.0: b\n",
    "!!str <<: {a: 1}\n",
    // Keys over two lines, tags followed by a flow indicator, a byte-order mark after a comment,
    // a block scalar ending the file without a line break.
    "a: {\"b\nc\": 1}\n",
    "a: [!!null, x]\n",
    "a: {k: !!null}\n",
    "a: !!map{b: 1}\n",
    "# c\n\u{feff}x: 1\n",
    "a: |\n  text",
];

struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

/// Small edits that keep most of a document: a byte changed, a line duplicated or dropped,
/// an indent changed, a YAML-significant string inserted.
fn mutate(rng: &mut Rng, base: &[u8]) -> Vec<u8> {
    const INSERTS: &[&str] = &[
        ": ", "- ", "&a ", "*a", "<<: ", "!!str ", "'", "\"", "#", "\n  ", "{", "}", "[", "]",
        "? ", "yes", "on", "010", "1:2", "~", "|\n", ">-\n", "\t", "\u{2028}", "%", "---\n",
    ];
    let mut out = base.to_vec();
    for _ in 0..(1 + rng.next() % 3) {
        if out.is_empty() {
            break;
        }
        let at = (rng.next() as usize) % out.len();
        match rng.next() % 4 {
            0 => {
                let set = b" :-#'\"[]{}&*!|>\n0aY";
                out[at] = set[(rng.next() as usize) % set.len()];
            }
            1 => {
                let s = INSERTS[(rng.next() as usize) % INSERTS.len()];
                out.splice(at..at, s.bytes());
            }
            2 => {
                let start = out[..at]
                    .iter()
                    .rposition(|b| *b == b'\n')
                    .map_or(0, |i| i + 1);
                let end = out[at..]
                    .iter()
                    .position(|b| *b == b'\n')
                    .map_or(out.len(), |i| at + i + 1);
                let line = out[start..end].to_vec();
                out.splice(start..start, line);
            }
            _ => {
                out.remove(at);
            }
        }
    }
    out
}

#[test]
fn taskhook_reads_what_pyyaml_loads() {
    let py = python_with_yaml();
    let dir = tempfile::tempdir().expect("tmp");
    let mut cases: Vec<(String, Vec<u8>)> = Vec::new();
    let mut seeds = Vec::new();
    for sub in ["formulas", "sti", "tmt", "trigger_rules", "other"] {
        let Ok(entries) = std::fs::read_dir(corpus().join(sub)) else {
            continue;
        };
        let mut paths: Vec<_> = entries
            .map(|e| e.expect("entry").path())
            .filter(|p| p.is_file())
            .collect();
        paths.sort();
        for p in paths {
            let bytes = std::fs::read(&p).expect("read");
            if sub == "formulas" {
                seeds.push(bytes.clone());
            }
            cases.push((
                format!(
                    "corpus-{sub}-{}",
                    p.file_name().expect("name").to_string_lossy()
                ),
                bytes,
            ));
        }
    }
    for (i, text) in CONSTRUCTS.iter().enumerate() {
        cases.push((format!("construct-{i:03}"), text.as_bytes().to_vec()));
    }
    for example in [
        "examples/tasks/rpmlint/runtask.yml",
        "examples/tasks/abicheck/runtask.yml",
        "examples/mistakes/abicheck/runtask.yml",
    ] {
        cases.push((
            example.replace('/', "-"),
            std::fs::read(Path::new(env!("CARGO_MANIFEST_DIR")).join(example)).expect("example"),
        ));
    }
    cases.push(("good".into(), GOOD.as_bytes().to_vec()));
    // More documents to compare, one per file, from a directory named by the caller.
    if let Ok(extra) = std::env::var("TASKHOOK_PYYAML_CASES") {
        let mut paths: Vec<_> = std::fs::read_dir(&extra)
            .expect("TASKHOOK_PYYAML_CASES directory")
            .map(|e| e.expect("entry").path())
            .collect();
        paths.sort();
        for p in paths {
            let name = p.file_name().expect("name").to_string_lossy().into_owned();
            cases.push((format!("case-{name}"), std::fs::read(&p).expect("read")));
        }
    }
    let number = |name: &str, default: u64| {
        std::env::var(name)
            .ok()
            .and_then(|v| v.parse::<u64>().ok())
            .unwrap_or(default)
    };
    // xorshift never leaves 0: a seed of 0 is taken as 1.
    let mut rng = Rng(number("TASKHOOK_PYYAML_SEED", 0x00c0_ffee_1234_5678).max(1));
    for i in 0..number("TASKHOOK_PYYAML_MUTATIONS", 3000) as usize {
        let base = &seeds[i % seeds.len()];
        cases.push((format!("mutation-{i:05}"), mutate(&mut rng, base)));
    }
    for (name, bytes) in &cases {
        std::fs::write(dir.path().join(name), bytes).expect("write");
    }
    let out = Command::new(&py)
        .args(["-c", READER])
        .arg(dir.path())
        .output()
        .expect("python");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut pyyaml = std::collections::HashMap::new();
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        let v: serde_json::Value = serde_json::from_str(line).expect("reader JSON");
        pyyaml.insert(v["name"].as_str().unwrap_or("").to_string(), v);
    }
    let limits = yaml::Limits::default();
    let (mut accepted, mut rejected, mut differ) = (0, 0, Vec::new());
    for (name, bytes) in &cases {
        let theirs = &pyyaml[name];
        match yaml::parse(bytes, &limits) {
            Ok(node) => {
                accepted += 1;
                let ours = yaml_to_json_typed_keys(&node);
                if theirs["ok"] != true {
                    differ.push(format!(
                        "{name}: taskhook accepts, PyYAML refuses ({})\n{}",
                        theirs["error"],
                        String::from_utf8_lossy(bytes)
                    ));
                } else if !same(&ours, &theirs["value"]) {
                    differ.push(format!(
                        "{name}: taskhook reads\n  {ours}\nPyYAML loads\n  {}\n{}",
                        theirs["value"],
                        String::from_utf8_lossy(bytes)
                    ));
                }
            }
            Err(_) => rejected += 1,
        }
    }
    if let Ok(keep) = std::env::var("TASKHOOK_PYYAML_KEEP") {
        std::fs::create_dir_all(&keep).expect("TASKHOOK_PYYAML_KEEP directory");
        for name in differ.iter().filter_map(|d| d.split(':').next()) {
            std::fs::copy(dir.path().join(name), Path::new(&keep).join(name)).expect("kept");
        }
    }
    eprintln!(
        "{} documents: taskhook accepted {accepted}, rejected {rejected}; {} differ",
        cases.len(),
        differ.len()
    );
    assert!(
        differ.is_empty(),
        "{} differences:\n\n{}",
        differ.len(),
        differ
            .iter()
            .take(60)
            .cloned()
            .collect::<Vec<_>>()
            .join("\n\n")
    );
}
