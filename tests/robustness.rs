//! No panic on any input: mutated real formulas, bus messages and manifests go through the
//! parsers thousands of times (a small deterministic generator, so failures reproduce).

mod util;

use std::time::{Duration, Instant};

use taskhook::config::Rules;
use taskhook::validate::formula;
use util::*;

/// xorshift64*: deterministic, no dependency.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

const SPICE: &[&[u8]] = &[
    b"&a ",
    b"*a",
    b"<<: ",
    b"!!python/object ",
    b"\t",
    b"\xff",
    b"\0",
    b"- ",
    b": ",
    b"{",
    b"[",
    b"}",
    b"]",
    b"'",
    b"\"",
    b"${",
    b"$",
    b"yes",
    b"---\n",
    b"\n  ",
    b"#",
    b"|\n",
    b">-\n",
    b"\xe2\x80\x8b",
];

fn mutate(rng: &mut Rng, input: &[u8]) -> Vec<u8> {
    let mut out = input.to_vec();
    for _ in 0..1 + rng.below(6) {
        let at = rng.below(out.len() + 1);
        match rng.below(4) {
            0 if !out.is_empty() => {
                let end = (at + rng.below(40)).min(out.len());
                out.drain(at.min(end)..end);
            }
            1 => {
                let s = SPICE[rng.below(SPICE.len())];
                out.splice(at..at, s.iter().copied());
            }
            2 if !out.is_empty() => {
                let i = at.min(out.len() - 1);
                out[i] = rng.next() as u8;
            }
            _ => out.truncate(at),
        }
    }
    out
}

fn corpus_files(dir: &str) -> Vec<Vec<u8>> {
    let mut files: Vec<_> = std::fs::read_dir(corpus().join(dir))
        .expect("corpus")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.is_file() && p.extension().is_none_or(|x| x != "md"))
        .collect();
    files.sort();
    files
        .iter()
        .map(|p| std::fs::read(p).expect("read"))
        .collect()
}

#[test]
fn mutated_formulas_never_panic() {
    let seeds = corpus_files("formulas");
    let rules = Rules::default();
    let mut rng = Rng(0x5eed_1234);
    let start = Instant::now();
    for i in 0..4000 {
        let base = &seeds[i % seeds.len()];
        let input = mutate(&mut rng, base);
        let (_, diags) = formula::validate(&input, "t/runtask.yml", "t", &rules);
        for d in &diags {
            assert!(!d.code.is_empty() && !d.message.is_empty());
        }
    }
    assert!(start.elapsed() < Duration::from_secs(60));
}

#[test]
fn mutated_messages_and_manifests_never_panic() {
    let rules = taskhook::trigger::event::BranchRules::default();
    let mut rng = Rng(0xfeed_beef);
    for base in corpus_files("messages")
        .into_iter()
        .chain(corpus_files("messages/modern"))
    {
        for _ in 0..300 {
            let _ = taskhook::trigger::event::parse(&mutate(&mut rng, &base), &rules);
        }
    }
    let s = Server::with_policy(Some("warn"));
    s.commit_file("a/runtask.yml", GOOD);
    s.commit_file("b/runtask.yml", "name: x\n");
    assert!(s.push("master").status.success());
    let index = s.show("index.json").into_bytes();
    let branch = s.show("branches/master.json").into_bytes();
    assert!(taskhook::manifest::parse_branch(&branch, 1 << 20).is_ok());
    for i in 0..1000 {
        let bytes = mutate(&mut rng, if i % 2 == 0 { &index } else { &branch });
        let _ = taskhook::manifest::parse_index(&bytes, 1 << 20);
        let _ = taskhook::manifest::parse_branch(&bytes, 1 << 20);
        for line in taskhook::manifest::task_lines(&bytes).unwrap_or_default() {
            let _ = taskhook::manifest::line_path(line);
        }
    }
    for _ in 0..2000 {
        let pattern = String::from_utf8_lossy(&mutate(&mut rng, b"f[0-9]*?[!a]")).into_owned();
        let text = String::from_utf8_lossy(&mutate(&mut rng, b"f40-branch")).into_owned();
        let _ = taskhook::trigger::plan::glob_match(&pattern, &text);
    }
}
