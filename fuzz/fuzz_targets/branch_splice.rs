//! post-receive's new branch file made by editing the stored one in place
//! (`report_bytes_in`) is byte for byte what copying its lines gives (`report_bytes`), or both
//! refuse, whatever the push did and whatever the stored file holds: the input picks a stored
//! manifest's tasks, a push's changes (tasks replaced, removed, added) and bytes of the stored
//! file overwritten (damaged, or edited by hand).
#![no_main]
use libfuzzer_sys::fuzz_target;
use taskhook::config::Config;
use taskhook::manifest::{report_bytes, report_bytes_in};
use taskhook::validate::check::{Report, TaskReport};

fn task(path: &str, version: u32) -> TaskReport {
    TaskReport {
        path: path.to_string(),
        formula_path: format!("{path}/runtask.yml"),
        tree: Some(format!("{version:040x}")),
        sha256: Some(format!("{version:064x}")),
        formula: taskhook::validate::formula::Formula {
            desc: Some(format!("version {version}")),
            ..taskhook::validate::formula::Formula::empty()
        },
        diagnostics: Vec::new(),
    }
}

fuzz_target!(|data: &[u8]| {
    let config = Config::default();
    let Some((&stored_tasks, rest)) = data.split_first() else {
        return;
    };
    let mut paths: Vec<String> = (0..usize::from(stored_tasks % 64))
        .map(|i| format!("t{:03}", i * 2))
        .collect();
    let full = Report {
        tasks: paths.iter().map(|p| task(p, 0)).collect(),
        ..Report::default()
    };
    let Some(mut stored) = report_bytes("main", &"1".repeat(40), &full, &config, None) else {
        return;
    };
    // Up to eight changes, two bytes each: what (replace, remove, add) and which task.
    let (changes, damage) = rest.split_at(rest.len().min(16));
    let mut replaced = Vec::new();
    let mut tasks: Vec<TaskReport> = Vec::new();
    for change in changes.chunks_exact(2) {
        let which = usize::from(change[1]);
        match change[0] % 3 {
            0 if !paths.is_empty() => {
                let i = which % paths.len();
                if !tasks.iter().any(|t| t.path == paths[i]) {
                    replaced.push(paths.remove(i));
                }
            }
            1 if !paths.is_empty() => {
                let p = paths[which % paths.len()].clone();
                if !tasks.iter().any(|t| t.path == p) {
                    replaced.push(p.clone());
                    tasks.push(task(&p, 1));
                }
            }
            _ => {
                let p = format!("t{:03}", which % 140);
                if !paths.contains(&p) && !tasks.iter().any(|t| t.path == p) {
                    paths.push(p.clone());
                    tasks.push(task(&p, 1));
                }
            }
        }
    }
    paths.sort();
    let report = Report {
        reused_count: paths.len() - tasks.len(),
        tasks,
        replaced,
        ..Report::default()
    };
    // The rest overwrites bytes of the stored file: a position (two bytes) and a byte.
    for d in damage.chunks_exact(3) {
        let at = usize::from(u16::from_le_bytes([d[0], d[1]]));
        if let Some(b) = stored.get_mut(at) {
            *b = d[2];
        }
    }
    let commit = "2".repeat(40);
    let copied = report_bytes("main", &commit, &report, &config, Some(&stored));
    let header = format!("blob {}\0", stored.len()).into_bytes();
    let from = header.len();
    let buffer = [&header[..], &stored[..]].concat();
    let edited = report_bytes_in("main", &commit, &report, &config, buffer, from);
    assert_eq!(
        copied.as_deref().map(String::from_utf8_lossy),
        edited.as_deref().map(String::from_utf8_lossy)
    );
});
