//! `taskhook install`: puts the hook shims from `hooks/` into bare repositories. Idempotent, and
//! it never replaces a hook it did not install.

use std::fs;
use std::io::Write;
use std::path::Path;

use crate::config::Policy;
use crate::error::Failure;

const MARKER: &str = "# taskhook-shim:";

const SHIMS: &[(&str, &str)] = &[
    ("pre-receive", include_str!("../../hooks/pre-receive")),
    ("post-receive", include_str!("../../hooks/post-receive")),
    ("update", include_str!("../../hooks/update")),
];

/// What happened to one hook file.
#[derive(Debug, PartialEq, Eq)]
pub enum Outcome {
    Installed,
    Unchanged,
    Updated,
    Foreign,
}

/// The shim text for `hook`, calling the binary at `exe`.
pub fn shim(hook: &str, exe: &Path) -> Option<String> {
    let quoted = exe.display().to_string().replace('\'', r"'\''");
    SHIMS
        .iter()
        .find(|(name, _)| *name == hook)
        .map(|(_, text)| text.replace("@TASKHOOK@", &quoted))
}

/// Installs the shims named in `hooks` into the bare repository `repo`.
pub fn install_into(
    repo: &Path,
    hooks: &[&str],
    exe: &Path,
) -> Result<Vec<(String, Outcome)>, Failure> {
    if !(repo.join("HEAD").is_file() && repo.join("objects").is_dir()) {
        return Err(Failure::usage(format!(
            "{} is not a bare git repository (no HEAD and objects/)",
            repo.display()
        )));
    }
    let dir = repo.join("hooks");
    fs::create_dir_all(&dir)
        .map_err(|e| Failure::usage(format!("cannot create {}: {e}", dir.display())))?;
    let mut out = Vec::new();
    for hook in hooks {
        let text = shim(hook, exe).ok_or_else(|| Failure::usage(format!("unknown hook {hook}")))?;
        let path = dir.join(hook);
        let outcome = match fs::read_to_string(&path) {
            Ok(existing) if existing == text => Outcome::Unchanged,
            Ok(existing) if existing.lines().any(|l| l.starts_with(MARKER)) => {
                write_hook(&path, &text)?;
                Outcome::Updated
            }
            Ok(_) => Outcome::Foreign,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                write_hook(&path, &text)?;
                Outcome::Installed
            }
            Err(e) => {
                return Err(Failure::usage(format!(
                    "cannot read {}: {e}",
                    path.display()
                )))
            }
        };
        out.push((hook.to_string(), outcome));
    }
    Ok(out)
}

fn write_hook(path: &Path, text: &str) -> Result<(), Failure> {
    let tmp = path.with_extension("taskhook-new");
    let io = |e: std::io::Error| Failure::usage(format!("cannot write {}: {e}", path.display()));
    {
        let mut f = fs::File::create(&tmp).map_err(io)?;
        f.write_all(text.as_bytes()).map_err(io)?;
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        fs::set_permissions(&tmp, fs::Permissions::from_mode(0o755)).map_err(io)?;
    }
    fs::rename(&tmp, path).map_err(io)
}

/// Sets `taskhook.policy` in the repository's own config file with git itself.
pub fn set_policy(repo: &Path, policy: Policy) -> Result<(), Failure> {
    let status = std::process::Command::new("git")
        .arg("config")
        .arg("--file")
        .arg(repo.join("config"))
        .arg("taskhook.policy")
        .arg(policy.as_str())
        .status()
        .map_err(|e| Failure::usage(format!("cannot run git config: {e}")))?;
    if !status.success() {
        return Err(Failure::usage(format!(
            "git config failed for {}",
            repo.display()
        )));
    }
    Ok(())
}
