//! `taskhook demo`: the whole story on built-in examples, in a temporary directory, with real
//! git: a server repo with the hooks, a rejected push, a fixed push, the manifest served by
//! `git daemon` on loopback, and the jobs for a koji build message.

use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::error::{exit, CmdResult, Failure};

const RPMLINT: &str = include_str!("../examples/tasks/rpmlint/runtask.yml");
const ABICHECK: &str = include_str!("../examples/tasks/abicheck/runtask.yml");
const ABICHECK_MISTAKE: &str = include_str!("../examples/mistakes/abicheck/runtask.yml");
const EVENT: &str = include_str!("../examples/koji_build_complete.json");

/// The daemon and the directory to remove if the demo is interrupted (Ctrl-C, SIGTERM).
static RUNNING: Mutex<Option<Child>> = Mutex::new(None);
static SCRATCH: Mutex<Option<PathBuf>> = Mutex::new(None);

/// Stops the daemon however the demo ends.
struct Daemon;

impl Drop for Daemon {
    fn drop(&mut self) {
        stop_daemon();
    }
}

fn stop_daemon() {
    if let Ok(mut slot) = RUNNING.lock() {
        if let Some(mut child) = slot.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

fn on_interrupt() {
    stop_daemon();
    if let Ok(mut dir) = SCRATCH.lock() {
        if let Some(d) = dir.take() {
            // A git child may still be writing there for a moment; try again until it is gone.
            for _ in 0..40 {
                if std::fs::remove_dir_all(&d).is_ok() || !d.exists() {
                    break;
                }
                std::thread::sleep(Duration::from_millis(50));
            }
        }
    }
    eprintln!(
        "\ntaskhook demo: interrupted; the daemon is stopped and the temporary files are removed"
    );
    std::process::exit(130);
}

fn git(cwd: &Path, args: &[&str]) -> Result<Output, Failure> {
    Command::new("git")
        .args(args)
        .current_dir(cwd)
        .env("GIT_AUTHOR_NAME", "Demo Maintainer")
        .env("GIT_AUTHOR_EMAIL", "maintainer@example.org")
        .env("GIT_COMMITTER_NAME", "Demo Maintainer")
        .env("GIT_COMMITTER_EMAIL", "maintainer@example.org")
        .stdin(Stdio::null())
        .output()
        .map_err(|e| Failure::usage(format!("cannot run git: {e}")))
}

fn git_ok(cwd: &Path, args: &[&str]) -> Result<Output, Failure> {
    let out = git(cwd, args)?;
    if !out.status.success() {
        return Err(Failure::usage(format!(
            "git {} failed: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        )));
    }
    Ok(out)
}

fn write(path: &Path, text: &str) -> Result<(), Failure> {
    let io = |e: std::io::Error| Failure::usage(format!("cannot write {}: {e}", path.display()));
    std::fs::create_dir_all(path.parent().unwrap_or(Path::new("."))).map_err(io)?;
    std::fs::write(path, text).map_err(io)
}

fn step(n: u32, text: &str) {
    crate::outln!("\n== {n}. {text}");
}

fn indent(text: &str) {
    for line in text.lines() {
        crate::outln!("   {line}");
    }
}

pub fn run(keep: Option<&Path>) -> CmdResult {
    let _temp;
    let root: PathBuf = match keep {
        Some(dir) => {
            if dir.exists() {
                return Err(Failure::usage(format!(
                    "{} already exists; --keep wants a new directory",
                    dir.display()
                )));
            }
            std::fs::create_dir_all(dir)
                .map_err(|e| Failure::usage(format!("cannot create {}: {e}", dir.display())))?;
            dir.to_path_buf()
        }
        None => {
            _temp = tempfile::Builder::new()
                .prefix("taskhook-demo-")
                .tempdir()
                .map_err(|e| Failure::usage(format!("cannot create a temporary directory: {e}")))?;
            _temp.path().to_path_buf()
        }
    };
    let exe = std::env::current_exe()
        .map_err(|e| Failure::usage(format!("cannot find taskhook: {e}")))?;
    if keep.is_none() {
        if let Ok(mut dir) = SCRATCH.lock() {
            *dir = Some(root.clone());
        }
    }
    // Best effort: if a handler cannot be installed, the demo still cleans up when it ends.
    let _ = ctrlc::set_handler(on_interrupt);
    crate::outln!("taskhook demo in {}", root.display());

    push_story(&root, &exe)?;
    let (daemon, port) = serve_and_fetch(&root)?;
    let plan = plan_story(&root, &exe, port)?;
    let checked_out = runner_checkout(&exe, &root, &plan.stdout)?;
    drop(daemon);

    match keep {
        Some(dir) => crate::outln!(
            "\nThe files are in {}; no process is left running.",
            dir.display()
        ),
        None => {
            crate::outln!("\nDone: the daemon is stopped and the temporary directory is removed.")
        }
    }
    Ok(if plan.status.success() && checked_out {
        exit::OK
    } else {
        exit::INVALID
    })
}

/// Steps 1 to 3: a server repository with the hooks, a push with mistakes (rejected), the fix
/// (`taskhook check` agrees) and a push that lands.
fn push_story(root: &Path, exe: &Path) -> Result<(), Failure> {
    let root = root.to_path_buf();
    let exe = exe.to_path_buf();
    step(
        1,
        "A dist-git server repository with taskhook's hooks installed",
    );
    git_ok(
        &root,
        &["init", "-q", "--bare", "-b", "master", "tasks.git"],
    )?;
    for hook in ["pre-receive", "post-receive"] {
        use crate::server::install::{install_hook, Layout, Outcome};
        if let Outcome::Installed(path) =
            install_hook(&root.join("tasks.git"), &Layout::Plain, hook, &exe)?
        {
            let shown = path
                .strip_prefix(&root)
                .unwrap_or(&path)
                .display()
                .to_string();
            crate::outln!("   {shown}: installed");
        }
    }

    step(2, "A maintainer pushes two tasks; one formula has mistakes");
    git_ok(&root, &["init", "-q", "-b", "master", "work"])?;
    let work = root.join("work");
    git_ok(&work, &["remote", "add", "origin", "../tasks.git"])?;
    write(&work.join("rpmlint/runtask.yml"), RPMLINT)?;
    write(&work.join("abicheck/runtask.yml"), ABICHECK_MISTAKE)?;
    git_ok(&work, &["add", "-A"])?;
    git_ok(&work, &["commit", "-q", "-m", "Add rpmlint and abicheck"])?;
    crate::outln!("   $ git push origin master");
    let out = git(&work, &["push", "origin", "master"])?;
    indent(&String::from_utf8_lossy(&out.stderr));
    if out.status.success() {
        return Err(Failure::usage(
            "the push with mistakes was accepted; the hooks are not working",
        ));
    }

    step(
        3,
        "The maintainer fixes the formula (`taskhook check` agrees) and pushes again",
    );
    write(&work.join("abicheck/runtask.yml"), ABICHECK)?;
    let check = Command::new(&exe)
        .args(["check"])
        .current_dir(&work)
        .output()
        .map_err(|e| Failure::usage(format!("cannot run taskhook check: {e}")))?;
    crate::outln!("   $ taskhook check");
    indent(&String::from_utf8_lossy(&check.stdout));
    git_ok(
        &work,
        &[
            "commit",
            "-q",
            "-am",
            "abicheck: fix variable names and scheduling",
        ],
    )?;
    crate::outln!("   $ git push origin master");
    let out = git_ok(&work, &["push", "origin", "master"])?;
    indent(&String::from_utf8_lossy(&out.stderr));

    Ok(())
}

/// Step 4: git daemon serves the repository on loopback; the manifest is one `git archive`.
fn serve_and_fetch(root: &Path) -> Result<(Daemon, u16), Failure> {
    let root = root.to_path_buf();
    step(
        4,
        "The server serves the repository with git daemon on 127.0.0.1",
    );
    let (daemon, port) = start_daemon(&root)?;
    let url = format!("git://127.0.0.1:{port}/tasks.git");
    crate::outln!(
        "   $ git archive --remote={url} --format=tar.gz -1 refs/meta/tasks branches/master.json"
    );
    let start = Instant::now();
    let archive = git_ok(
        &root,
        &[
            "archive",
            &format!("--remote={url}"),
            "--format=tar.gz",
            "-1",
            "refs/meta/tasks",
            "branches/master.json",
        ],
    )?;
    let took = start.elapsed();
    let manifest = crate::trigger::fetch::read_single_file(
        &archive.stdout,
        "branches/master.json",
        crate::manifest::MAX_MANIFEST_BYTES,
    )
    .map_err(|e| Failure::usage(e.to_string()))?;
    crate::outln!(
        "   {} bytes over the wire in {} ms for the {}-byte manifest; its first lines:",
        archive.stdout.len(),
        took.as_millis(),
        manifest.len()
    );
    indent(
        &String::from_utf8_lossy(&manifest)
            .lines()
            .take(12)
            .collect::<Vec<_>>()
            .join("\n"),
    );
    crate::outln!("   ...");

    Ok((daemon, port))
}

/// Step 5: a koji build message in, jobs out, without cloning.
fn plan_story(root: &Path, exe: &Path, port: u16) -> Result<Output, Failure> {
    let root = root.to_path_buf();
    step(
        5,
        "A koji build of tasks-2.1.0-1.fc40 completes; the trigger plans jobs without cloning",
    );
    write(&root.join("koji_build_complete.json"), EVENT)?;
    crate::outln!("   $ taskhook plan --remote 'git://127.0.0.1:{port}/{{name}}.git' --event koji_build_complete.json --fallback-branch master --explain");
    let plan = Command::new(exe)
        .args([
            "plan",
            "--remote",
            &format!("git://127.0.0.1:{port}/{{name}}.git"),
            "--event",
            "koji_build_complete.json",
            "--fallback-branch",
            "master",
            "--explain",
        ])
        .current_dir(&root)
        .output()
        .map_err(|e| Failure::usage(format!("cannot run taskhook plan: {e}")))?;
    indent(&String::from_utf8_lossy(&plan.stderr));
    crate::outln!("   jobs (JSON Lines):");
    indent(&String::from_utf8_lossy(&plan.stdout));
    Ok(plan)
}

/// Step 6: a runner takes the first job and checks out exactly the task it pins, verified.
fn runner_checkout(exe: &Path, root: &Path, jobs: &[u8]) -> Result<bool, Failure> {
    step(
        6,
        "A runner checks out the first job's task: no clone, verified against the job",
    );
    let Some(job) = String::from_utf8_lossy(jobs)
        .lines()
        .next()
        .map(str::to_string)
    else {
        crate::outln!("   (no jobs)");
        return Ok(false);
    };
    write(&root.join("job.json"), &format!("{job}\n"))?;
    crate::outln!("   $ taskhook checkout --job job.json --dest runner-task");
    let out = Command::new(exe)
        .args(["checkout", "--job", "job.json", "--dest", "runner-task"])
        .current_dir(root)
        .output()
        .map_err(|e| Failure::usage(format!("cannot run taskhook checkout: {e}")))?;
    indent(&String::from_utf8_lossy(&out.stderr));
    let mut files: Vec<String> = std::fs::read_dir(root.join("runner-task"))
        .map(|d| {
            d.filter_map(|e| e.ok())
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    files.sort();
    crate::outln!("   runner-task/: {}", files.join(", "));
    Ok(out.status.success())
}

/// `git-daemon` serving every repository under `base` read-only, with upload-archive enabled,
/// on 127.0.0.1:`port` only. The tests serve their repositories with the same command.
pub fn daemon_command(git_daemon: &Path, base: &Path, port: u16) -> Command {
    let mut cmd = Command::new(git_daemon);
    cmd.arg("--reuseaddr")
        .arg("--listen=127.0.0.1")
        .arg(format!("--port={port}"))
        .arg(format!("--base-path={}", base.display()))
        .arg("--export-all")
        .arg("--enable=upload-archive")
        .arg(base)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    cmd
}

fn start_daemon(root: &Path) -> Result<(Daemon, u16), Failure> {
    let exec_path = git_ok(root, &["--exec-path"])?;
    let daemon_bin =
        PathBuf::from(String::from_utf8_lossy(&exec_path.stdout).trim()).join("git-daemon");
    for _ in 0..5 {
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map_err(|e| Failure::usage(format!("cannot find a free port: {e}")))?
            .port();
        // Run git-daemon itself: `git daemon` would start it as a child of its own, which
        // killing `git` leaves running.
        let child = daemon_command(&daemon_bin, root, port)
            .spawn()
            .map_err(|e| Failure::usage(format!("cannot start git daemon: {e}")))?;
        if let Ok(mut slot) = RUNNING.lock() {
            *slot = Some(child);
        }
        let daemon = Daemon;
        let start = Instant::now();
        while start.elapsed() < Duration::from_secs(5) {
            if TcpStream::connect(("127.0.0.1", port)).is_ok() {
                return Ok((daemon, port));
            }
            let exited = RUNNING
                .lock()
                .ok()
                .and_then(|mut s| s.as_mut().map(|c| matches!(c.try_wait(), Ok(Some(_)))))
                .unwrap_or(true);
            if exited {
                break;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        drop(daemon);
    }
    Err(Failure::usage("git daemon did not start"))
}
