//! `taskhook checkout`: the runner's side of a job.

use std::path::{Path, PathBuf};
use std::time::Duration;

use super::Format;
use crate::error::{exit, CmdResult, Failure};
use crate::runner::checkout::{self, CheckoutError, Limits, Options};
use crate::trigger::fetch;
use crate::trigger::plan::Job;

const MAX_JOB: u64 = 1024 * 1024;

pub struct Args<'a> {
    pub job: &'a str,
    pub dest: Option<&'a Path>,
    pub exec: Option<&'a str>,
    pub cache_dir: Option<&'a Path>,
    pub cache_max_repos: usize,
    pub timeout: u64,
    pub format: Format,
}

pub fn run(args: &Args) -> CmdResult {
    let job = read_job(args.job)?;
    let dest = args
        .dest
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from(&job.id));
    let opts = Options {
        dest,
        cache_dir: args
            .cache_dir
            .map(Path::to_path_buf)
            .unwrap_or_else(fetch::default_cache_dir),
        cache_max_repos: args.cache_max_repos,
        timeout: Duration::from_secs(args.timeout.max(1)),
        limits: Limits::default(),
    };
    let done = checkout::checkout(&job, &opts).map_err(|e| match e {
        CheckoutError::Io(m) => Failure::usage(m),
        e @ CheckoutError::Cache(_) => Failure::usage(e.to_string()),
        other => Failure::invalid(other.to_string()),
    })?;
    for note in &done.notes {
        eprintln!("taskhook: note: {note}");
    }
    match args.format {
        Format::Human => eprintln!(
            "taskhook: {} checked out into {} by {} ({} files, {} bytes; tree {} and formula sha256 verified at {})",
            job.task_path,
            done.dest.display(),
            done.method.as_str(),
            done.files,
            done.bytes,
            crate::error::short(&job.tree),
            crate::error::short(&job.git_commit),
        ),
        Format::Json => crate::outln!(
            "{}",
            serde_json::json!({
                "dest": done.dest.display().to_string(),
                "method": done.method.as_str(),
                "files": done.files,
                "bytes": done.bytes,
                "notes": done.notes,
                "job": job.id,
                "tree": job.tree,
                "commit": job.git_commit,
            })
        ),
    }
    match args.exec {
        Some(cmd) => run_exec(cmd, &job, &done.dest),
        None => Ok(exit::OK),
    }
}

fn read_job(file: &str) -> Result<Job, Failure> {
    let buf = super::read_input(file, MAX_JOB, "the job")?;
    serde_json::from_slice(&buf).map_err(|e| {
        Failure::invalid(format!(
            "the job is not one job object as `taskhook plan` prints it: {e}"
        ))
    })
}

/// Runs `cmd` with `sh -c` in the task directory, the job in its environment and on stdin.
fn run_exec(cmd: &str, job: &Job, dir: &Path) -> CmdResult {
    use std::io::Write;
    let mut child = std::process::Command::new("sh")
        .arg("-c")
        .arg(cmd)
        .current_dir(dir)
        .env("TASKHOOK_JOB_ID", &job.id)
        .env("TASKHOOK_ITEM", &job.item)
        .env("TASKHOOK_ITEM_TYPE", &job.item_type)
        .env("TASKHOOK_ARCH", &job.arch)
        .env("TASKHOOK_TASKNAME", &job.taskname)
        .env("TASKHOOK_FORMULA", "runtask.yml")
        .stdin(std::process::Stdio::piped())
        .spawn()
        .map_err(|e| Failure::usage(format!("cannot run sh -c {cmd:?}: {e}")))?;
    if let Some(mut stdin) = child.stdin.take() {
        let _ = stdin.write_all(&serde_json::to_vec(job).unwrap_or_default());
    }
    let status = child
        .wait()
        .map_err(|e| Failure::usage(format!("{cmd}: {e}")))?;
    if status.success() {
        Ok(exit::OK)
    } else {
        Err(Failure::invalid(format!("`{cmd}` exited with {status}")))
    }
}
