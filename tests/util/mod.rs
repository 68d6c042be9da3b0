//! Test helpers: real git repositories in temp dirs, installed hooks, and a loopback git daemon
//! that is always stopped.
#![allow(dead_code)]

use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

pub fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_taskhook")
}

pub fn corpus() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/corpus")
}

/// Makes a command independent of the caller's git environment: no inherited `GIT_*`
/// variable (`GIT_DIR` would redirect every git command), no global or system git config (a
/// `core.hooksPath` or `init.defaultBranch` there would change what the tests see), and
/// taskhook's default cache in the target directory rather than the caller's `~/.cache`. A test
/// that wants one of these sets it after this.
pub fn hermetic(cmd: &mut Command) -> &mut Command {
    for (k, _) in std::env::vars_os() {
        let k_text = k.to_string_lossy();
        if k_text.starts_with("GIT_") || k_text.starts_with("TASKHOOK_") {
            cmd.env_remove(&k);
        }
    }
    let empty = Path::new(env!("CARGO_TARGET_TMPDIR")).join("empty-gitconfig");
    if !empty.exists() {
        let _ = std::fs::write(&empty, "");
    }
    // taskhook's default cache (plan, checkout) under the target directory, not the caller's.
    let cache = Path::new(env!("CARGO_TARGET_TMPDIR")).join("xdg-cache");
    // `listen` reads fedora-messaging's variable when no --config is given.
    cmd.env_remove("FEDORA_MESSAGING_CONF");
    cmd.env("GIT_CONFIG_GLOBAL", empty)
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("XDG_CACHE_HOME", cache)
}

/// `git` made hermetic.
pub fn git_cmd() -> Command {
    let mut c = Command::new("git");
    hermetic(&mut c);
    c
}

/// The taskhook binary made hermetic.
pub fn taskhook_cmd() -> Command {
    let mut c = Command::new(bin());
    hermetic(&mut c);
    c
}

pub fn taskhook(args: &[&str], cwd: &Path) -> Output {
    taskhook_cmd()
        .args(args)
        .current_dir(cwd)
        .env("NO_COLOR", "1")
        .output()
        .expect("run taskhook")
}

/// `taskhook doctor srv.git` run in `cwd`: its exit code and what it printed.
pub fn doctor_says(cwd: &Path) -> (Option<i32>, String) {
    let out = taskhook(&["doctor", "srv.git"], cwd);
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
    )
}

pub fn git(cwd: &Path, args: &[&str]) -> String {
    let out = git_output(cwd, args);
    assert!(
        out.status.success(),
        "git {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

pub fn git_output(cwd: &Path, args: &[&str]) -> Output {
    git_cmd()
        .args(args)
        .current_dir(cwd)
        .env("GIT_AUTHOR_NAME", "Test")
        .env("GIT_AUTHOR_EMAIL", "test@example.org")
        .env("GIT_COMMITTER_NAME", "Test")
        .env("GIT_COMMITTER_EMAIL", "test@example.org")
        .output()
        .expect("run git")
}

/// Runs `program args` in `cwd` with `input` on stdin; returns the whole output.
pub fn run_with_stdin(program: &str, args: &[&str], cwd: &Path, input: &[u8]) -> Output {
    use std::io::Write;
    let mut child = hermetic(&mut Command::new(program))
        .args(args)
        .current_dir(cwd)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(input)
        .expect("write stdin");
    child.wait_with_output().expect("wait")
}

pub fn write(path: &Path, text: &str) {
    std::fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
    std::fs::write(path, text).expect("write");
}

pub const GOOD: &str = "name: rpmlint
desc: check packages with rpmlint
maintainer: qa
input:
  args:
    - koji_build
actions:
  - name: download
    koji:
      action: download
      koji_build: ${koji_build}
      arch: [all]
  - name: run
    python:
      file: run_rpmlint.py
      callable: run
      workdir: ${workdir}
    export: out
  - name: report
    resultsdb:
      results: ${out}
";

/// A bare server repository with taskhook's hooks installed, and a clone to push from.
pub struct Server {
    pub dir: tempfile::TempDir,
}

impl Server {
    pub fn new() -> Server {
        Self::with_policy(None)
    }

    /// A server repository and a work clone, without taskhook's hooks (layout tests install
    /// them their own way).
    pub fn uninstalled() -> Server {
        let dir = tempfile::tempdir().expect("tempdir");
        git(
            dir.path(),
            &["init", "-q", "--bare", "-b", "master", "srv.git"],
        );
        git(dir.path(), &["init", "-q", "-b", "master", "work"]);
        git(
            &dir.path().join("work"),
            &["remote", "add", "origin", "../srv.git"],
        );
        Server { dir }
    }

    pub fn with_policy(policy: Option<&str>) -> Server {
        Self::made_with(policy, &[])
    }

    /// A server whose refs git keeps in `format` (`git init --ref-format`: `reftable`).
    pub fn with_ref_format(format: &str) -> Server {
        Self::made_with(None, &["--ref-format", format])
    }

    /// A server made with `git init --shared=<how>` (`group`, `all`, `0640`), as dist-git
    /// makes its repositories.
    pub fn shared(how: &str) -> Server {
        Self::made_with(None, &[&format!("--shared={how}")])
    }

    fn made_with(policy: Option<&str>, init: &[&str]) -> Server {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut args = vec!["init", "-q", "--bare", "-b", "master"];
        args.extend(init);
        args.push("srv.git");
        git(dir.path(), &args);
        let mut args = vec!["install"];
        if let Some(p) = policy {
            args.extend(["--policy", p]);
        }
        args.push("srv.git");
        let out = taskhook(&args, dir.path());
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        git(dir.path(), &["init", "-q", "-b", "master", "work"]);
        git(
            &dir.path().join("work"),
            &["remote", "add", "origin", "../srv.git"],
        );
        Server { dir }
    }

    pub fn bare(&self) -> PathBuf {
        self.dir.path().join("srv.git")
    }

    pub fn work(&self) -> PathBuf {
        self.dir.path().join("work")
    }

    pub fn commit_file(&self, path: &str, text: &str) {
        write(&self.work().join(path), text);
        git(&self.work(), &["add", "-A"]);
        git(
            &self.work(),
            &["commit", "-q", "-m", &format!("change {path}")],
        );
    }

    pub fn push(&self, refspec: &str) -> Output {
        git_output(&self.work(), &["push", "origin", refspec])
    }

    /// A push with `key=value` in git's environment, which a push over a local path passes on
    /// to the hooks (the forges' pusher variables, `TASKHOOK_TRACE`).
    pub fn push_with_env(&self, refspec: &str, key: &str, value: &str) -> Output {
        git_cmd()
            .args(["push", "origin", refspec])
            .current_dir(self.work())
            .env(key, value)
            .output()
            .expect("git push")
    }

    /// The blob at `rev:path` in the server repository is stored under the id `git hash-object`
    /// gives its content.
    pub fn assert_stored_under_its_id(&self, blob: &str) {
        let id = git(&self.bare(), &["rev-parse", blob]);
        let content = git_output(&self.bare(), &["cat-file", "blob", blob]).stdout;
        let rehashed = run_with_stdin("git", &["hash-object", "--stdin"], &self.bare(), &content);
        assert_eq!(String::from_utf8_lossy(&rehashed.stdout).trim(), id.trim());
    }

    pub fn meta(&self) -> Option<String> {
        let out = git_output(
            &self.bare(),
            &["rev-parse", "-q", "--verify", "refs/meta/tasks"],
        );
        out.status
            .success()
            .then(|| String::from_utf8_lossy(&out.stdout).trim().to_string())
    }

    pub fn show(&self, path: &str) -> String {
        git(&self.bare(), &["show", &format!("refs/meta/tasks:{path}")])
    }

    /// `git fsck --full --strict` finds nothing wrong in the server repository.
    pub fn assert_fsck_clean(&self) {
        let out = git_output(
            &self.bare(),
            &["fsck", "--full", "--strict", "--no-dangling"],
        );
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// The stored manifest of `branch`, made incrementally by the hooks, is byte for byte the
    /// manifest a full computation gives; so is the hooks' state file beside it.
    pub fn assert_manifest_is_exact(&self, branch: &str) {
        for (file, extra) in [("branches", None), ("state", Some("--state"))] {
            let stored = git_output(
                &self.bare(),
                &["show", &format!("refs/meta/tasks:{file}/{branch}.json")],
            )
            .stdout;
            let mut args = vec![
                "manifest", "build", "--rev", branch, "--branch", branch, "srv.git",
            ];
            args.extend(extra);
            let full = taskhook(&args, self.dir.path());
            assert!(
                full.status.success(),
                "{}",
                String::from_utf8_lossy(&full.stderr)
            );
            assert_eq!(
                String::from_utf8_lossy(&stored),
                String::from_utf8_lossy(&full.stdout),
                "stored {file} file of {branch} differs from a full computation"
            );
        }
    }
}

/// Writes an executable file (a hook, a script).
/// A branch file's tasks as objects keyed by column name, as any reader of schema version 4 sees
/// them: each row zipped with the file's `columns` (a row leaves out `diagnostics` when it has
/// none).
pub fn manifest_tasks(manifest: &serde_json::Value) -> Vec<serde_json::Value> {
    let columns: Vec<&str> = manifest["columns"]
        .as_array()
        .expect("columns")
        .iter()
        .map(|c| c.as_str().expect("a column name"))
        .collect();
    manifest["tasks"]
        .as_array()
        .expect("tasks")
        .iter()
        .map(|row| {
            let values = row.as_array().expect("a row");
            assert!(values.len() + 1 >= columns.len() && values.len() <= columns.len());
            let mut task: serde_json::Map<String, serde_json::Value> = columns
                .iter()
                .zip(values)
                .map(|(c, v)| (c.to_string(), v.clone()))
                .collect();
            task.entry("diagnostics").or_insert(serde_json::json!([]));
            serde_json::Value::Object(task)
        })
        .collect()
}

pub fn executable(path: &Path, text: &str) {
    write(path, text);
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755)).expect("chmod");
}

/// Sets `path`'s modification time an hour back: a lock file left long ago by a killed process.
pub fn make_an_hour_old(path: &Path) {
    std::fs::File::options()
        .write(true)
        .open(path)
        .expect("open")
        .set_modified(std::time::SystemTime::now() - std::time::Duration::from_secs(3600))
        .expect("mtime");
}

/// Commits, on top of `reference` in bare repository `bare`, its tree with `files` replaced
/// (or, with `None`, removed): a hand edit, an older writer's layout, or a hostile server's ref.
/// `scratch` is a directory for the temporary index and blobs.
pub fn edit_ref_tree(
    bare: &Path,
    reference: &str,
    files: &[(&str, Option<&[u8]>)],
    scratch: &Path,
) {
    let index = scratch.join("edit-index");
    let run = |args: &[&str], stdin: Option<&[u8]>| {
        let mut cmd = git_cmd();
        cmd.args(args)
            .current_dir(bare)
            .env("GIT_INDEX_FILE", &index)
            .env("GIT_COMMITTER_NAME", "Test")
            .env("GIT_COMMITTER_EMAIL", "test@example.org")
            .env("GIT_AUTHOR_NAME", "Test")
            .env("GIT_AUTHOR_EMAIL", "test@example.org")
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped());
        let mut child = cmd.spawn().expect("git");
        {
            use std::io::Write as _;
            let mut input = child.stdin.take().expect("stdin");
            input.write_all(stdin.unwrap_or_default()).expect("write");
        }
        let out = child.wait_with_output().expect("git");
        assert!(
            out.status.success(),
            "git {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    };
    run(&["read-tree", reference], None);
    for (path, content) in files {
        match content {
            Some(bytes) => {
                let blob = run(&["hash-object", "-w", "--stdin"], Some(bytes));
                run(
                    &[
                        "update-index",
                        "--add",
                        "--cacheinfo",
                        &format!("100644,{blob},{path}"),
                    ],
                    None,
                );
            }
            // Mode 0 in --index-info removes the entry (no work tree needed).
            None => {
                let line = format!("0 {}\t{path}\n", "0".repeat(40));
                run(&["update-index", "--index-info"], Some(line.as_bytes()));
            }
        }
    }
    let tree = run(&["write-tree"], None);
    let commit = run(&["commit-tree", &tree, "-p", reference, "-m", "edit"], None);
    run(&["update-ref", reference, &commit], None);
    let _ = std::fs::remove_file(&index);
}

/// A loopback port nothing listens on, for a server a test starts. A port from `bind(0)` is
/// free only until the kernel hands it out again, and a RabbitMQ node binds its ports seconds
/// after they are picked: meanwhile another test's server got the same port (a node then
/// failed to start three times, its AMQP port taken), or an outgoing connection took it as its
/// own. So ports come from below the kernel's ephemeral range (`net.ipv4.ip_local_port_range`),
/// which outgoing connections never use, and none is handed out twice by this process.
pub fn free_port() -> u16 {
    use std::sync::atomic::{AtomicU32, Ordering};
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let low = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|r| r.split_whitespace().next()?.parse::<u32>().ok())
        .unwrap_or(32768)
        .clamp(2048, 65535);
    let span = (low - 1024).min(12000);
    // Where this process starts in the span: processes run one after another differ.
    let first = std::process::id() % span;
    for _ in 0..span {
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let port = low - span + (first + n) % span;
        let Ok(port) = u16::try_from(port) else {
            continue;
        };
        if TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
    panic!("no free loopback port below {low}");
}

/// `git daemon --enable=upload-archive` on 127.0.0.1 and a free port; killed on drop.
pub struct Daemon {
    child: Child,
    pub port: u16,
}

impl Daemon {
    pub fn serve(base: &Path) -> Daemon {
        Self::serve_with(base, true)
    }

    /// git daemon as it runs unless told otherwise: fetches, and no `upload-archive`.
    pub fn serve_without_archive(base: &Path) -> Daemon {
        Self::serve_with(base, false)
    }

    fn serve_with(base: &Path, archive: bool) -> Daemon {
        // git-daemon itself: `git daemon` runs it as a child that killing `git` would orphan.
        let daemon = PathBuf::from(git(base, &["--exec-path"])).join("git-daemon");
        for _ in 0..10 {
            let port = free_port();
            let mut cmd = if archive {
                taskhook::demo::daemon_command(&daemon, base, port)
            } else {
                let mut cmd = Command::new(&daemon);
                cmd.args(["--reuseaddr", "--listen=127.0.0.1", "--export-all"])
                    .arg(format!("--port={port}"))
                    .arg(format!("--base-path={}", base.display()))
                    .arg(base)
                    .stdin(std::process::Stdio::null())
                    .stdout(std::process::Stdio::null())
                    .stderr(std::process::Stdio::null());
                cmd
            };
            let mut child = hermetic(&mut cmd).spawn().expect("git daemon");
            let start = Instant::now();
            while start.elapsed() < Duration::from_secs(5) {
                if TcpStream::connect(("127.0.0.1", port)).is_ok() {
                    return Daemon { child, port };
                }
                if let Ok(Some(_)) = child.try_wait() {
                    break;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            let _ = child.kill();
            let _ = child.wait();
        }
        panic!("git daemon did not start");
    }

    pub fn url(&self, path: &str) -> String {
        format!("git://127.0.0.1:{}/{path}", self.port)
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub mod broker;

/// A Python venv with the real fedora-messaging client from PyPI, made once per target dir
/// (`target/tmp/fedora-messaging-venv`) and shared by the tests that need it.
pub fn fedora_messaging_venv() -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("fedora-messaging-venv");
    let ready = dir.join(".ready");
    let lock = dir.with_extension("lock");
    let start = Instant::now();
    loop {
        if ready.exists() {
            return dir;
        }
        if std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&lock)
            .is_ok()
        {
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(600),
            "{} is held: another test is making the venv, or remove it",
            lock.display()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    let _ = std::fs::remove_dir_all(&dir);
    let made = Command::new("python3")
        .args(["-m", "venv"])
        .arg(&dir)
        .status()
        .expect("python3 -m venv");
    assert!(
        made.success(),
        "python3 -m venv failed (apt-get install python3-venv)"
    );
    let pip = Command::new(dir.join("bin/pip"))
        .args(["install", "--quiet", "fedora-messaging"])
        .status()
        .expect("pip");
    let _ = std::fs::remove_file(&lock);
    assert!(pip.success(), "pip install fedora-messaging failed");
    std::fs::write(&ready, "").expect("mark the venv ready");
    dir
}

/// Smart HTTP: `git http-backend` behind `tests/http_backend.py`, a tiny loopback CGI server
/// speaking protocol v0 (as many servers still do); killed on drop.
pub struct HttpBackend {
    child: Child,
    port: u16,
}

impl HttpBackend {
    pub fn serve(root: &Path, python: &str) -> HttpBackend {
        let backend = git(root, &["--exec-path"]) + "/git-http-backend";
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/http_backend.py");
        let mut child = hermetic(&mut Command::new(python))
            .arg(script)
            .arg(root)
            .arg(&backend)
            .arg("--v0")
            .stdout(std::process::Stdio::piped())
            .spawn()
            .expect("python http server");
        let mut line = String::new();
        use std::io::BufRead as _;
        std::io::BufReader::new(child.stdout.take().expect("stdout"))
            .read_line(&mut line)
            .expect("port");
        let port = line.trim().parse().expect("port");
        HttpBackend { child, port }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}/{path}", self.port)
    }
}

impl Drop for HttpBackend {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

use taskhook::validate::yaml::{Node, Scalar, Stamp, Value};

/// A YAML key as JSON would write the key PyYAML makes of it.
fn yaml_key(n: &Node) -> String {
    match &n.value {
        Value::Scalar { text, read, .. } => match read {
            Scalar::Null => "null".into(),
            Scalar::Bool(b) => b.to_string(),
            Scalar::Int(i) => i.to_string(),
            Scalar::Float(f) => format!("{f:?}"),
            Scalar::Timestamp(_) => "<timestamp>".into(),
            Scalar::Str => text.clone(),
        },
        _ => "<complex>".into(),
    }
}

/// A date or timestamp as the differential test's PyYAML reader writes it: its kind and the
/// number Python compares it by (`<aware>` counts microseconds in UTC).
pub fn stamp_text(stamp: &Stamp) -> String {
    match stamp {
        Stamp::Date(d) => format!("<date>{d}"),
        Stamp::Naive(us) => format!("<naive>{us}"),
        Stamp::Aware(us) => format!("<aware>{us}"),
    }
}

/// A key as the differential test's PyYAML reader writes it: a string as itself, any other
/// scalar marked with its type (`<int>1`, so that the keys 1 and '1' stay apart; a float by its
/// bits, which both languages' correctly rounded readers agree on).
fn typed_yaml_key(n: &Node) -> String {
    match &n.value {
        Value::Scalar { text, read, .. } => match read {
            Scalar::Null => "<null>".into(),
            Scalar::Bool(b) => format!("<bool>{b}"),
            Scalar::Int(i) => format!("<int>{i}"),
            Scalar::Float(f) if f.is_nan() => "<float>nan".into(),
            Scalar::Float(f) => format!("<float>{}", f.to_bits()),
            Scalar::Timestamp(stamp) => stamp_text(stamp),
            Scalar::Str => text.clone(),
        },
        _ => "<complex>".into(),
    }
}

/// What taskhook's YAML reader read, as JSON (timestamps and special floats as markers, as the
/// PyYAML side writes them).
pub fn yaml_to_json(n: &Node) -> serde_json::Value {
    to_json(n, &yaml_key)
}

/// [`yaml_to_json`] with each key that is not a string marked with its type (`<int>1`).
pub fn yaml_to_json_typed_keys(n: &Node) -> serde_json::Value {
    to_json(n, &typed_yaml_key)
}

fn to_json(n: &Node, key: &dyn Fn(&Node) -> String) -> serde_json::Value {
    match &n.value {
        Value::Scalar { text, read, .. } => match read {
            Scalar::Null => serde_json::Value::Null,
            Scalar::Bool(b) => (*b).into(),
            Scalar::Int(i) => (*i).into(),
            Scalar::Float(f) if f.is_finite() => {
                serde_json::Number::from_f64(*f).map_or(serde_json::Value::Null, Into::into)
            }
            Scalar::Float(_) => "<special float>".into(),
            Scalar::Timestamp(stamp) => stamp_text(stamp).into(),
            Scalar::Str => text.clone().into(),
        },
        Value::Seq(items) => items.iter().map(|item| to_json(item, key)).collect(),
        Value::Map(entries) => {
            let map = entries
                .iter()
                .map(|(k, v)| (key(k), to_json(v, key)))
                .collect::<serde_json::Map<_, _>>();
            // Two keys written alike are one key to PyYAML, which taskhook must not accept.
            if map.len() < entries.len() {
                return "<keys written alike>".into();
            }
            map.into()
        }
    }
}
