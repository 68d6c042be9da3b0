//! `taskhook extras`: man pages and shell completions generated from the command definitions,
//! and the JSON Schemas, installed under a prefix.

use std::path::{Path, PathBuf};

use clap::CommandFactory;

use super::Cli;
use crate::error::{exit, CmdResult, Failure};

const SCHEMAS: &[(&str, &str)] = &[
    (
        "formula.schema.json",
        include_str!("../../schema/formula.schema.json"),
    ),
    (
        "manifest.schema.json",
        include_str!("../../schema/manifest.schema.json"),
    ),
    (
        "index.schema.json",
        include_str!("../../schema/index.schema.json"),
    ),
];

fn write(path: &Path, bytes: &[u8]) -> Result<(), Failure> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)
            .map_err(|e| Failure::usage(format!("cannot create {}: {e}", dir.display())))?;
    }
    std::fs::write(path, bytes)
        .map_err(|e| Failure::usage(format!("cannot write {}: {e}", path.display())))?;
    crate::outln!("{}", path.display());
    Ok(())
}

pub fn run(prefix: &Path) -> CmdResult {
    let share = prefix.join("share");
    // Man pages: one for taskhook and one per subcommand (taskhook-plan.1, ...).
    let cmd = Cli::command();
    let man = share.join("man/man1");
    let mut pages: Vec<(String, clap::Command)> = vec![("taskhook".into(), cmd.clone())];
    for sub in cmd.get_subcommands() {
        pages.push((format!("taskhook-{}", sub.get_name()), sub.clone()));
    }
    for (name, c) in pages {
        let mut buf = Vec::new();
        clap_mangen::Man::new(c)
            .title(name.clone())
            .render(&mut buf)
            .map_err(|e| Failure::usage(format!("cannot render the man page {name}: {e}")))?;
        write(&man.join(format!("{name}.1")), &buf)?;
    }
    let shells: [(clap_complete::Shell, PathBuf); 3] = [
        (
            clap_complete::Shell::Bash,
            share.join("bash-completion/completions/taskhook"),
        ),
        (
            clap_complete::Shell::Zsh,
            share.join("zsh/site-functions/_taskhook"),
        ),
        (
            clap_complete::Shell::Fish,
            share.join("fish/vendor_completions.d/taskhook.fish"),
        ),
    ];
    for (shell, path) in shells {
        let mut buf = Vec::new();
        clap_complete::generate(shell, &mut Cli::command(), "taskhook", &mut buf);
        write(&path, &buf)?;
    }
    for (name, text) in SCHEMAS {
        write(&share.join("taskhook/schema").join(name), text.as_bytes())?;
    }
    Ok(exit::OK)
}
