//! Fetches one branch manifest from a remote task repository without cloning it:
//! `git archive --remote` of the single file (git://, ssh://, file://, a path), or, where
//! upload-archive is not served (smart HTTP), a depth-1 fetch of the manifest ref into a cache.
//! Every network step has a timeout; everything fetched is size-limited.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use crate::git::Repo;

pub mod cache;
mod error;
pub mod upload_archive;

pub use error::FetchError;

/// Where and how to fetch.
pub struct Remote<'a> {
    pub url: &'a str,
    pub manifest_ref: &'a str,
    pub timeout: Duration,
    pub max_bytes: usize,
    pub cache_dir: &'a Path,
    /// How many repositories the cache keeps (see [`cache`]).
    pub cache_max_repos: usize,
}

/// Output of a finished `git` child.
pub struct Output {
    pub status_ok: bool,
    pub stdout: Vec<u8>,
    pub stderr: String,
}

/// Runs git with a deadline and a cap on stdout, without a shell.
pub fn run_git(
    args: &[&str],
    cwd: Option<&Path>,
    timeout: Duration,
    max: usize,
    what: &str,
) -> Result<Output, FetchError> {
    run_git_bounded(args, cwd, timeout, max, what, None)
}

/// Like [`run_git`], and when `disk` is `(dir, bytes)`, git is also stopped once `dir` holds more
/// than `bytes`: a fetch from an untrusted server cannot fill the disk.
pub fn run_git_bounded(
    args: &[&str],
    cwd: Option<&Path>,
    timeout: Duration,
    max: usize,
    what: &str,
    disk: Option<(&Path, u64)>,
) -> Result<Output, FetchError> {
    let mut cmd = crate::git::git_command();
    cmd.args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .env("GIT_TERMINAL_PROMPT", "0")
        // git's messages in English whatever the service's locale: what went wrong is told
        // from them (`unable to access '`, `not our ref`...), and a localized git says
        // `konnte nicht auf '...' zugreifen`.
        .env("LC_ALL", "C");
    // ssh never asks for a password or a host key here (a service has no one to ask); an ssh
    // command the environment or git's config gives (an identity for the remote) is git's to
    // use as it is.
    if std::env::var_os("GIT_SSH_COMMAND").is_none()
        && std::env::var_os("GIT_SSH").is_none()
        && !(args.iter().any(|a| names_ssh(a)) && ssh_command_configured())
    {
        cmd.env("GIT_SSH_COMMAND", "ssh -o BatchMode=yes");
    }
    if let Some(dir) = cwd {
        cmd.current_dir(dir);
    }
    // Its own process group, so a timeout ends git's children (ssh, remote helpers) too.
    #[cfg(unix)]
    {
        use std::os::unix::process::CommandExt;
        cmd.process_group(0);
    }
    let mut child = cmd.spawn().map_err(|e| FetchError::Spawn(e.to_string()))?;
    let group = child.id();
    let mut stdout = child
        .stdout
        .take()
        .ok_or_else(|| FetchError::Spawn("no stdout".into()))?;
    let mut stderr = child
        .stderr
        .take()
        .ok_or_else(|| FetchError::Spawn("no stderr".into()))?;
    let child = std::sync::Arc::new(std::sync::Mutex::new(child));
    // The watchdog kills git at the deadline; reading stdout to its end is what normally
    // finishes first, with no polling on the fast path.
    let (done, finished) = std::sync::mpsc::channel::<()>();
    let disk = disk.map(|(d, n)| (d.to_path_buf(), n));
    let overflowed = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let watchdog = {
        let child = std::sync::Arc::clone(&child);
        let overflowed = std::sync::Arc::clone(&overflowed);
        std::thread::spawn(move || {
            let deadline = std::time::Instant::now() + timeout;
            // Without a disk bound, one wait; with one, a look at the disk every 50 ms.
            let step = if disk.is_some() {
                Duration::from_millis(50)
            } else {
                timeout
            };
            loop {
                let left = deadline.saturating_duration_since(std::time::Instant::now());
                match finished.recv_timeout(step.min(left)) {
                    Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {}
                    _ => return false,
                }
                let over = disk.as_ref().is_some_and(|(dir, n)| dir_bytes(dir) > *n);
                if over || std::time::Instant::now() >= deadline {
                    overflowed.store(over, std::sync::atomic::Ordering::Relaxed);
                    kill_group(group);
                    if let Ok(mut c) = child.lock() {
                        let _ = c.kill();
                    }
                    return true;
                }
            }
        })
    };
    let err_reader = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = (&mut stderr).take(64 * 1024).read_to_string(&mut s);
        let _ = std::io::copy(&mut stderr, &mut std::io::sink());
        s
    });
    let mut out = Vec::new();
    let read = (&mut stdout).take(max as u64 + 1).read_to_end(&mut out);
    if out.len() > max {
        if let Ok(mut c) = child.lock() {
            let _ = c.kill();
        }
    }
    let status = loop {
        let polled = child
            .lock()
            .map_err(|_| FetchError::Spawn("lock poisoned".into()))?
            .try_wait();
        match polled {
            Ok(Some(status)) => break status,
            Ok(None) => std::thread::sleep(Duration::from_millis(1)),
            Err(e) => return Err(FetchError::Spawn(e.to_string())),
        }
    };
    let _ = done.send(());
    if watchdog.join().unwrap_or(false) {
        // Not joining the stderr reader: a grandchild (ssh) may still hold the pipe open.
        if overflowed.load(std::sync::atomic::Ordering::Relaxed) {
            return Err(FetchError::TooLarge(max));
        }
        return Err(FetchError::Timeout(timeout.as_secs(), what.to_string()));
    }
    let stderr = err_reader.join().unwrap_or_default();
    if out.len() > max {
        return Err(FetchError::TooLarge(max));
    }
    read.map_err(|e| FetchError::Corrupt(e.to_string()))?;
    Ok(Output {
        status_ok: status.success(),
        stdout: out,
        stderr,
    })
}

/// Whether a git argument is (or, `--remote=URL`, names) a remote git reaches over ssh:
/// `ssh://`, `git+ssh://`, `ssh+git://`, or scp-like `[user@]host:path`.
fn names_ssh(arg: &str) -> bool {
    let url = arg.strip_prefix("--remote=").unwrap_or(arg);
    if ["ssh://", "git+ssh://", "ssh+git://"]
        .iter()
        .any(|p| url.starts_with(p))
    {
        return true;
    }
    // scp-like, as git tells it from a path: a colon before any slash, no scheme.
    match url.find(':') {
        Some(colon) => !url.starts_with('-') && !url.contains("://") && !url[..colon].contains('/'),
        None => false,
    }
}

/// Whether git's config (`git config core.sshCommand`: system, global, `-c` in the
/// environment) names an ssh command; asked once per process, and only for an ssh remote.
fn ssh_command_configured() -> bool {
    static CONFIGURED: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *CONFIGURED.get_or_init(|| {
        crate::git::git_command()
            .args(["config", "--get", "core.sshCommand"])
            .stdin(Stdio::null())
            .stderr(Stdio::null())
            .output()
            .is_ok_and(|out| out.status.success() && !out.stdout.trim_ascii().is_empty())
    })
}

/// Refuses remote URLs that would make git run a command (`ext::`), use an inherited file
/// descriptor (`fd::`) or any other remote helper: a job or an event names its repository, so
/// the URL is untrusted.
pub fn check_url(url: &str) -> Result<(), String> {
    let allowed = ["git://", "http://", "https://", "ssh://", "file://"];
    if url.starts_with('-') || url.bytes().any(|b| b.is_ascii_control()) {
        return Err(format!("`{url}` is not a repository URL"));
    }
    if allowed.iter().any(|p| url.starts_with(p)) || url.starts_with('/') {
        return Ok(());
    }
    if url.contains("::") {
        return Err(format!(
            "`{url}` uses a remote helper; taskhook fetches only over git://, http(s)://, ssh:// and file:// or from a path"
        ));
    }
    // scp-like `host:path` is ssh; anything with a scheme-like prefix is refused.
    if url.contains("://") {
        return Err(format!("`{url}`: unsupported transport"));
    }
    Ok(())
}

/// The bytes of the files below `dir`.
fn dir_bytes(dir: &Path) -> u64 {
    let mut total = 0;
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in entries.flatten() {
            match e.metadata() {
                Ok(m) if m.is_dir() => stack.push(e.path()),
                Ok(m) => total += m.len(),
                Err(_) => {}
            }
        }
    }
    total
}

/// Kills process group `pgid` (git and whatever it started) with SIGKILL; without `unsafe`, by
/// running `kill`. The `--` matters: procps' `kill -KILL -123` reads `-123` as an option and
/// signals every process the user owns (`kill(-1, ...)`).
pub(crate) fn kill_group(pgid: u32) {
    if pgid <= 1 {
        return;
    }
    let _ = Command::new("kill")
        .args(["-s", "KILL", "--", &format!("-{pgid}")])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
}

pub fn is_http(url: &str) -> bool {
    url.starts_with("http://") || url.starts_with("https://")
}

/// Fetches `path` (e.g. `branches/f40.json`) from the manifest ref. `Ok(None)`: the ref exists
/// but the file does not.
///
/// Over http(s) by a depth-1 fetch; otherwise by `git archive --remote`, and by the depth-1
/// fetch where the server does not serve archives: git daemon runs no upload-archive unless
/// told to (and then answers as for a repository it does not export), and some ssh servers
/// allow only fetches and pushes (Pagure's: "Invalid call, invalid operation"). An ssh host
/// that refused an archive once is sent fetches from then on, for the rest of the process.
pub fn fetch_file(remote: &Remote, path: &str) -> Result<Option<Vec<u8>>, FetchError> {
    fetch_file_noting(remote, path, &mut None)
}

/// [`fetch_file`], saying in `note` when it fetched where it would have asked for an archive.
pub fn fetch_file_noting(
    remote: &Remote,
    path: &str,
    note: &mut Option<String>,
) -> Result<Option<Vec<u8>>, FetchError> {
    if is_http(remote.url) {
        return fetch_via_shallow(remote, path);
    }
    if archive_refused_by(remote.url) {
        *note = Some("this ssh host refused an archive before: fetched at depth 1".into());
        return fetch_via_shallow(remote, path);
    }
    // Without a cache to fetch into, what the archive request got is the answer.
    let or_else = |fetched: Result<Option<Vec<u8>>, FetchError>, archived: FetchError| match fetched
    {
        Err(FetchError::Cache(_)) => Err(archived),
        fetched => fetched,
    };
    match fetch_via_archive(remote, path) {
        Err(e @ FetchError::Unreachable(_)) if !transport_failed(&e.to_string()) => {
            *note = Some(format!("no archive ({e}): fetched at depth 1"));
            let fetched = fetch_via_shallow(remote, path);
            if fetched.is_ok() {
                remember_archive_refused(remote.url);
            }
            or_else(fetched, e)
        }
        Err(e @ FetchError::NoRepository(_)) if remote.url.starts_with("git://") => {
            *note = Some("git daemon serves no archive of it: fetched at depth 1".into());
            or_else(fetch_via_shallow(remote, path), e)
        }
        other => other,
    }
}

/// Whether a failed request's messages say the connection or the login failed (so a fetch
/// over the same transport fails too), rather than that the server refused the request.
fn transport_failed(message: &str) -> bool {
    [
        "cannot connect",
        "Could not resolve hostname",
        "connect to host",
        "Connection refused",
        "Connection timed out",
        "Connection closed by",
        "Connection reset",
        "No route to host",
        "Network is unreachable",
        "Permission denied (",
        "Host key verification failed",
        "kex_exchange_identification",
    ]
    .iter()
    .any(|s| message.contains(s))
}

/// The ssh hosts (`ssh://host:port`, `user@host`) that refused an archive in this process.
static ARCHIVE_REFUSED: std::sync::Mutex<Vec<String>> = std::sync::Mutex::new(Vec::new());

/// The host part of an ssh remote, `None` for any other.
fn ssh_host(url: &str) -> Option<&str> {
    if !names_ssh(url) {
        return None;
    }
    match url.find("://") {
        Some(at) => {
            let rest = &url[at + 3..];
            Some(&url[..at + 3 + rest.find('/').unwrap_or(rest.len())])
        }
        None => url.split(':').next(),
    }
}

fn archive_refused_by(url: &str) -> bool {
    let (Some(host), Ok(refused)) = (ssh_host(url), ARCHIVE_REFUSED.lock()) else {
        return false;
    };
    refused.iter().any(|h| h == host)
}

fn remember_archive_refused(url: &str) {
    if let (Some(host), Ok(mut refused)) = (ssh_host(url), ARCHIVE_REFUSED.lock()) {
        // Bounded: a listener talks to a handful of hosts.
        if !refused.iter().any(|h| h == host) && refused.len() < 64 {
            refused.push(host.to_string());
        }
    }
}

/// `git archive --remote=URL ARGS...`: in process for `git://`, else by running git.
///
/// Asked once more, within the same time limit, when the server's answer is a failure that
/// lost its reason: git's `upload-archive` stops relaying its archiver's messages once the
/// archiver has exited, so now and then (about one time in 200 here) a missing repository, ref
/// or path comes back as only "archiver died with error". Without the reason a missing
/// manifest path would read as an unreachable server.
pub fn archive(
    url: &str,
    args: &[&str],
    timeout: Duration,
    max: usize,
) -> Result<upload_archive::Archive, FetchError> {
    let deadline = std::time::Instant::now() + timeout;
    let out = archive_once(url, args, timeout, max)?;
    if out.ok || !reason_lost(&out.message) {
        return Ok(out);
    }
    match deadline.checked_duration_since(std::time::Instant::now()) {
        Some(left) if !left.is_zero() => archive_once(url, args, left, max),
        _ => Ok(out),
    }
}

/// Whether a failed archive's messages say only that git's archiver died, not why.
fn reason_lost(message: &str) -> bool {
    let mut lines = message.lines().map(str::trim).filter(|l| !l.is_empty());
    let died = |l: &str| l.contains("archiver died with error");
    lines.next().is_some_and(died) && lines.all(died)
}

fn archive_once(
    url: &str,
    args: &[&str],
    timeout: Duration,
    max: usize,
) -> Result<upload_archive::Archive, FetchError> {
    match url.strip_prefix("git://") {
        // The git protocol is spoken in process: no git process per event.
        Some(rest) => upload_archive::fetch(rest, args, timeout, max),
        None => {
            let remote_arg = format!("--remote={url}");
            let mut argv = vec!["archive", remote_arg.as_str()];
            argv.extend(args);
            let out = run_git(&argv, None, timeout, max, url)?;
            Ok(upload_archive::Archive {
                ok: out.status_ok,
                data: out.stdout,
                message: out.stderr,
            })
        }
    }
}

fn fetch_via_archive(remote: &Remote, path: &str) -> Result<Option<Vec<u8>>, FetchError> {
    // `-1`: the server gzips at zlib's fastest level. Its compression at the default level is
    // about half of what serving one manifest costs it (10 of 19 ms for 2,000 tasks here); the
    // fastest level sends about 11% more bytes (JSON of hex digests compresses little more).
    let args = ["--format=tar.gz", "-1", remote.manifest_ref, path];
    let out = archive(remote.url, &args, remote.timeout, remote.max_bytes)?;
    if !out.ok {
        let msg = out.message.trim();
        if msg.contains("did not match any files") || msg.contains("pathspec") {
            return Ok(None);
        }
        if msg.contains("no such ref")
            || msg.contains("not a valid object name")
            || msg.contains("not a tree object")
        {
            return Err(FetchError::NoManifestRef(remote.manifest_ref.to_string()));
        }
        if let Some(why) = no_repository(msg) {
            return Err(FetchError::NoRepository(why.to_string()));
        }
        return Err(FetchError::Unreachable(format!(
            "git archive --remote={} failed: {}",
            remote.url,
            reason(msg)
        )));
    }
    read_single_file(&out.data, path, remote.max_bytes).map(Some)
}

/// What in git's stderr says the remote has no repository at that address, when it does: over
/// http(s) the server answered 404 (`repository '...' not found`), a path or an ssh remote is not
/// a git repository (`does not appear to be a git repository`), or a forge's ssh service said so
/// in its own words (then its line, which says more than git's "Could not read from remote
/// repository"). A refused login or an unreachable host says otherwise.
fn no_repository(stderr: &str) -> Option<&str> {
    // Forgejo's and Gitea's ssh (`serv`): "Forgejo: Cannot find repository: rpms/foo".
    // GitLab's (gitlab-shell): "GitLab: The project you were looking for could not be found or
    // you don't have permission to view it." (older ones stop at "found.").
    // gitolite's: "FATAL: R any rpms/foo user DENIED by fallthru" then "(or you mis-spelled the
    // reponame)". GitLab and gitolite say the same of a repository the user may not read, as
    // GitLab's https does with its 404.
    let forge = |l: &&str| {
        l.contains("Cannot find repository: ")
            || l.contains("The project you were looking for could not be found")
            || (l.contains("DENIED by fallthru") && stderr.contains("mis-spelled the reponame"))
    };
    let mut lines = stderr.lines().map(|l| {
        let l = l.trim();
        l.strip_prefix("remote:").map_or(l, str::trim)
    });
    if let Some(line) = lines.find(forge) {
        return Some(line);
    }
    let said = reason(stderr);
    let missing = (said.starts_with("fatal: repository '") && said.ends_with("' not found"))
        || said.contains("does not appear to be a git repository")
        // git daemon's answer to a fetch (upload-pack, which it runs by default) of a
        // repository it does not have or does not export.
        || said.contains("access denied or repository not exported")
        // Pagure's ssh: "No such repository" written where git reads the protocol.
        || said.contains("bad line length character: No s");
    missing.then_some(said)
}

/// The line of git's stderr that says why: what the remote side called fatal, else the first
/// `fatal:` line, else the last line.
pub fn reason(s: &str) -> &str {
    let lines = || s.lines().map(str::trim).filter(|l| !l.is_empty());
    lines()
        .filter_map(|l| l.strip_prefix("remote:").map(str::trim))
        .find(|l| l.starts_with("fatal:"))
        .or_else(|| lines().find(|l| l.starts_with("fatal:")))
        .or_else(|| lines().next_back())
        .unwrap_or("no message")
}

/// Extracts `path` from a gzip'd tar stream, in process, with a size cap.
pub fn read_single_file(tar_gz: &[u8], path: &str, max: usize) -> Result<Vec<u8>, FetchError> {
    let gz = flate2::read::GzDecoder::new(tar_gz);
    let mut archive = tar::Archive::new(gz.take(max as u64 * 2 + 1024 * 1024));
    let entries = archive
        .entries()
        .map_err(|e| FetchError::Corrupt(e.to_string()))?;
    for entry in entries {
        let mut entry = entry.map_err(|e| FetchError::Corrupt(e.to_string()))?;
        let name = entry
            .path()
            .map_err(|e| FetchError::Corrupt(e.to_string()))?
            .to_string_lossy()
            .into_owned();
        if name != path {
            continue;
        }
        if entry.size() > max as u64 {
            return Err(FetchError::TooLarge(max));
        }
        let mut buf = Vec::new();
        (&mut entry)
            .take(max as u64 + 1)
            .read_to_end(&mut buf)
            .map_err(|e| FetchError::Corrupt(e.to_string()))?;
        if buf.len() > max {
            return Err(FetchError::TooLarge(max));
        }
        return Ok(buf);
    }
    Err(FetchError::Corrupt(format!(
        "the archive does not contain {path}"
    )))
}

/// For smart HTTP: keep a bare cache repo per remote and fetch the manifest ref at depth 1.
fn fetch_via_shallow(remote: &Remote, path: &str) -> Result<Option<Vec<u8>>, FetchError> {
    let started = std::time::Instant::now();
    let dir = cache::path_of(remote.cache_dir, remote.url);
    // A repository grown past twice what one fetch may add (fetches from a server that sends
    // as much as it may, faster than git's gc drops it) is started again.
    let oversized = cache::exists(&dir) && dir_bytes(&dir) > 2 * fetch_growth(remote.max_bytes);
    if !cache::exists(&dir) || oversized {
        // Kept only once a fetch succeeded: a missing repository leaves nothing behind.
        let made = cache::make(remote.cache_dir)?;
        let fetched = shallow_into(&made, remote, path, remote.timeout);
        match fetched {
            Ok(_) => cache::settle(&made, &dir, oversized, remote.cache_max_repos),
            Err(_) => cache::discard(&made),
        }
        return fetched;
    }
    let fetched = cache::Lock::acquire(&dir, remote.timeout)
        .and_then(|_lock| shallow_into(&dir, remote, path, remote.timeout));
    let left = remote.timeout.saturating_sub(started.elapsed());
    match &fetched {
        // Perhaps the cache repository is damaged (or was just removed): fetched again into a
        // new one, which replaces it if that works.
        Err(e)
            if (the_cache_may_explain(e) || !cache::exists(&dir))
                && left >= Duration::from_secs(1) =>
        {
            let made = cache::make(remote.cache_dir)?;
            let again = shallow_into(&made, remote, path, left);
            match again {
                Ok(_) => cache::settle(&made, &dir, true, remote.cache_max_repos),
                Err(_) => cache::discard(&made),
            }
            again
        }
        _ => fetched,
    }
}

/// What one fetch of the manifest ref may add to a cache repository: four times the largest
/// manifest file, and 1 MiB.
fn fetch_growth(max_bytes: usize) -> u64 {
    4 * max_bytes as u64 + (1 << 20)
}

/// Whether git's stderr from a failed fetch gives a reason the server or the network gave: the
/// server refused what was asked (an object it does not serve by id, a ref it does not have,
/// an error of its own), or the connection failed.
pub fn server_or_network_said(stderr: &str) -> bool {
    [
        "unadvertised object",
        "not our ref",
        "couldn't find remote ref",
        "no such remote ref",
        "remote error",
        "unable to access '",
        "Could not read from remote repository",
        "RPC failed",
        "the remote end hung up",
        "early EOF",
    ]
    .iter()
    .any(|s| stderr.contains(s))
}

/// Whether a failed fetch into a cache repository may have failed for the repository's sake
/// (a damaged pack or config, files removed), not the server's: not a refusal or an answer of
/// the server, not a network failure, not a timeout.
pub fn the_cache_may_explain(e: &FetchError) -> bool {
    match e {
        FetchError::Corrupt(_) => true,
        FetchError::Unreachable(m) => !server_or_network_said(m),
        _ => false,
    }
}

/// A depth-1 fetch of the manifest ref into the cache repository `dir`, then `path` read from
/// it.
fn shallow_into(
    dir: &Path,
    remote: &Remote,
    path: &str,
    timeout: Duration,
) -> Result<Option<Vec<u8>>, FetchError> {
    let bound = dir_bytes(dir) + fetch_growth(remote.max_bytes);
    let local_ref = "refs/taskhook/manifest";
    let refspec = format!("+{}:{local_ref}", remote.manifest_ref);
    let fetch = || {
        run_git_bounded(
            &[
                // This repository and no other: not one named by the environment (see
                // `git::git_command`), nor, if this one is damaged, one around it.
                "--git-dir=.",
                // No hook runs here, whatever a cache made by an older taskhook (`git init`,
                // with `init.templateDir`'s hooks) or the global config holds.
                "-c",
                "core.hooksPath=/dev/null",
                // What a fetch brings is kept as one pack, never unpacked into loose objects: a
                // manifest commit is a handful of objects, which git would otherwise write as
                // loose files, one more set per manifest version, and the disk bound below
                // walks the cache's files on every fetch. git's automatic gc, run by the fetch,
                // joins the packs once there are many, and drops the manifests no ref reaches
                // any more after an hour rather than two weeks.
                "-c",
                "fetch.unpackLimit=1",
                "-c",
                "gc.pruneExpire=1.hour.ago",
                // ...within the fetch, under the cache repository's lock, not in the
                // background, where it would hold git's locks against the next fetch.
                "-c",
                "gc.autoDetach=false",
                "-c",
                "maintenance.autoDetach=false",
                "fetch",
                "--quiet",
                "--depth=1",
                "--no-tags",
                remote.url,
                &refspec,
            ],
            Some(dir),
            timeout,
            64 * 1024,
            remote.url,
            // The manifest ref holds small files; a server sending more is refused.
            Some((dir, bound)),
        )
    };
    let mut out = fetch()?;
    // A git killed at a timeout or at the bound leaves its locks; once older than the timeout
    // no live fetch holds them, so they are removed and the fetch is tried again.
    if !out.status_ok
        && out.stderr.contains(".lock': File exists")
        && clear_stale_locks(dir, remote.timeout)
    {
        out = fetch()?;
    }
    // A transfer faster than the watchdog's look at the disk is caught here.
    if dir_bytes(dir) > bound {
        return Err(FetchError::TooLarge(remote.max_bytes));
    }
    if !out.status_ok {
        let msg = out.stderr.trim();
        if msg.contains("couldn't find remote ref") {
            return Err(FetchError::NoManifestRef(remote.manifest_ref.to_string()));
        }
        if let Some(why) = no_repository(msg) {
            return Err(FetchError::NoRepository(why.to_string()));
        }
        return Err(FetchError::Unreachable(format!(
            "git fetch {} failed: {}",
            remote.url,
            reason(msg)
        )));
    }
    let repo = Repo::open(dir).map_err(|e| FetchError::Corrupt(e.to_string()))?;
    let commit = repo
        .ref_target(local_ref)
        .map_err(|e| FetchError::Corrupt(e.to_string()))?
        .ok_or_else(|| FetchError::NoManifestRef(remote.manifest_ref.to_string()))?;
    let tree = repo
        .commit_tree(commit)
        .map_err(|e| FetchError::Corrupt(e.to_string()))?;
    let Some(id) = repo
        .path_id(tree, path)
        .map_err(|e| FetchError::Corrupt(e.to_string()))?
    else {
        return Ok(None);
    };
    if repo
        .object_size(id)
        .map_err(|e| FetchError::Corrupt(e.to_string()))?
        > remote.max_bytes as u64
    {
        return Err(FetchError::TooLarge(remote.max_bytes));
    }
    repo.read_path(tree, path)
        .map_err(|e| FetchError::Corrupt(e.to_string()))
}

/// Removes the lock files of a cache repository (top level and under `refs/`) older than
/// `age`, which no live fetch (bounded by that timeout) can hold: a git killed at a timeout
/// leaves them. Whether any was removed.
pub fn clear_stale_locks(dir: &Path, age: Duration) -> bool {
    fn walk(dir: &Path, age: Duration, depth: usize, removed: &mut bool) {
        let Ok(entries) = std::fs::read_dir(dir) else {
            return;
        };
        for e in entries.flatten() {
            let path = e.path();
            let Ok(meta) = e.metadata() else { continue };
            if meta.is_dir() {
                if depth < 8 && (depth > 0 || e.file_name() == "refs") {
                    walk(&path, age, depth + 1, removed);
                }
                continue;
            }
            let old = meta
                .modified()
                .ok()
                .and_then(|m| m.elapsed().ok())
                .is_some_and(|e| e > age);
            if old
                && path.extension().is_some_and(|x| x == "lock")
                && std::fs::remove_file(&path).is_ok()
            {
                *removed = true;
            }
        }
    }
    let mut removed = false;
    walk(dir, age, 0, &mut removed);
    removed
}

/// The bare cache repository for `url` under `cache_dir` (made on first use, see [`cache`]),
/// shared by `plan`'s manifest fetches and `checkout`'s task fetches.
pub fn cache_repo(cache_dir: &Path, url: &str, max_repos: usize) -> Result<PathBuf, FetchError> {
    let dir = cache::path_of(cache_dir, url);
    if !cache::exists(&dir) {
        let made = cache::make(cache_dir)?;
        cache::settle(&made, &dir, false, max_repos);
        if !cache::exists(&dir) {
            return Err(FetchError::Cache(format!(
                "cannot make the cache repository {}",
                dir.display()
            )));
        }
    }
    Ok(dir)
}

/// The default cache directory for HTTP remotes.
pub fn default_cache_dir() -> PathBuf {
    if let Some(x) = std::env::var_os("XDG_CACHE_HOME") {
        return PathBuf::from(x).join("taskhook");
    }
    if let Some(h) = std::env::var_os("HOME") {
        return PathBuf::from(h).join(".cache").join("taskhook");
    }
    std::env::temp_dir().join("taskhook-cache")
}

/// Fills `{name}` and `{namespace}` in a remote URL template. Values are checked so that an
/// event cannot steer the URL elsewhere.
pub fn expand_remote(
    template: &str,
    name: Option<&str>,
    namespace: Option<&str>,
) -> Result<String, String> {
    let safe = |v: &str| {
        !v.is_empty()
            && !v.starts_with('.')
            && v.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"._+-".contains(&b))
    };
    let mut rest = template;
    while let Some(open) = rest.find('{') {
        let close = rest[open..].find('}').map(|c| open + c);
        let placeholder = close.map_or(&rest[open..], |c| &rest[open..=c]);
        if placeholder != "{name}" && placeholder != "{namespace}" {
            return Err(format!(
                "the remote `{template}` has `{placeholder}`: the placeholders are `{{name}}` and `{{namespace}}`"
            ));
        }
        rest = &rest[open + placeholder.len()..];
    }
    let mut url = template.to_string();
    if url.contains("{name}") {
        let n = name.ok_or("the event names no repository for `{name}` in --remote")?;
        if !safe(n) {
            return Err(format!(
                "the event's repository name `{n}` is not safe to put in a URL"
            ));
        }
        url = url.replace("{name}", n);
    }
    if url.contains("{namespace}") {
        let ns = namespace.unwrap_or("rpms");
        if !safe(ns) {
            return Err(format!(
                "the event's namespace `{ns}` is not safe to put in a URL"
            ));
        }
        url = url.replace("{namespace}", ns);
    }
    Ok(url)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_archive_refused_by_an_ssh_host_is_remembered_for_that_host_only() {
        assert_eq!(
            ssh_host("ssh://git@h:2222/rpms/a.git"),
            Some("ssh://git@h:2222")
        );
        assert_eq!(ssh_host("git@h:rpms/a.git"), Some("git@h"));
        assert_eq!(ssh_host("git://h/rpms/a.git"), None);
        assert_eq!(ssh_host("/srv/a.git"), None);
        assert!(!archive_refused_by("ssh://refusing.example/rpms/a.git"));
        remember_archive_refused("ssh://refusing.example/rpms/a.git");
        assert!(archive_refused_by("ssh://refusing.example/rpms/b.git"));
        assert!(!archive_refused_by("ssh://other.example/rpms/a.git"));
        assert!(!archive_refused_by("git://refusing.example/rpms/a.git"));
        assert!(transport_failed(
            "ssh: connect to host h port 22: Connection refused"
        ));
        assert!(!transport_failed(
            "Invalid call, invalid operation\nfatal: the remote end hung up unexpectedly"
        ));
        // What git makes of Pagure's ssh answer for a repository it does not have (the other
        // forges' are in `a_missing_repository_is_told_from_other_failures`).
        assert!(no_repository("fatal: protocol error: bad line length character: No s").is_some());
    }

    #[test]
    fn ssh_remotes_are_told_from_the_rest_of_gits_arguments() {
        for ssh in [
            "ssh://h/x.git",
            "--remote=ssh://h/x.git",
            "git+ssh://h/x",
            "ssh+git://h/x",
            "h:x.git",
            "git@pkgs.example.org:rpms/foo.git",
            "--remote=h:/srv/x.git",
        ] {
            assert!(names_ssh(ssh), "{ssh}");
        }
        for not in [
            "git://h/x",
            "--remote=https://h/x",
            "file:///srv/x.git",
            "/srv/x.git",
            "./a:b",
            "refs/meta/tasks:branches/f40.json",
            "+refs/meta/tasks:refs/taskhook/manifest",
            "core.hooksPath=/dev/null",
            "--format=tar.gz",
            "-c",
        ] {
            assert!(!names_ssh(not), "{not}");
        }
    }

    /// Serves the git protocol on 127.0.0.1 with one canned answer per connection, in turn;
    /// returns the URL and a handle that yields how many requests came.
    fn canned_daemon(answers: Vec<&'static [u8]>) -> (String, std::thread::JoinHandle<usize>) {
        use std::io::Write;
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let port = listener.local_addr().expect("addr").port();
        let handle = std::thread::spawn(move || {
            listener.set_nonblocking(true).expect("nonblocking");
            let mut served = 0;
            let until = std::time::Instant::now() + Duration::from_secs(10);
            while served < answers.len() && std::time::Instant::now() < until {
                let Ok((mut conn, _)) = listener.accept() else {
                    std::thread::sleep(Duration::from_millis(5));
                    continue;
                };
                conn.set_nonblocking(false).expect("blocking");
                // The request, the arguments and their flush; then the canned answer.
                let mut request = Vec::new();
                let mut buf = [0u8; 4096];
                while !request.ends_with(b"0000") {
                    match conn.read(&mut buf) {
                        Ok(0) | Err(_) => break,
                        Ok(n) => request.extend_from_slice(&buf[..n]),
                    }
                }
                conn.write_all(answers[served]).expect("answer");
                served += 1;
            }
            // Anyone asking after the last answer is counted, not served.
            std::thread::sleep(Duration::from_millis(300));
            while listener.accept().is_ok() {
                served += 1;
            }
            served
        });
        (format!("git://127.0.0.1:{port}/t.git"), handle)
    }

    const DIED: &[u8] = b"0008ACK\n00000032\x03git upload-archive: archiver died with error\n0000";
    const NO_PATH: &[u8] =
        b"0008ACK\n00000031\x02fatal: pathspec 'x' did not match any files\n0000";

    #[test]
    fn an_answer_that_lost_its_reason_is_asked_again() {
        let (url, served) = canned_daemon(vec![DIED, NO_PATH]);
        let out = archive(&url, &["HEAD", "x"], Duration::from_secs(5), 1024).expect("answer");
        assert!(!out.ok);
        assert!(
            out.message.contains("did not match any files"),
            "{}",
            out.message
        );
        assert_eq!(served.join().expect("daemon"), 2);

        // A reason is taken as it comes; so is a second answer without one.
        let (url, served) = canned_daemon(vec![NO_PATH]);
        let out = archive(&url, &["HEAD", "x"], Duration::from_secs(5), 1024).expect("answer");
        assert!(out.message.contains("pathspec"), "{}", out.message);
        assert_eq!(served.join().expect("daemon"), 1);
        let (url, served) = canned_daemon(vec![DIED, DIED]);
        let out = archive(&url, &["HEAD", "x"], Duration::from_secs(5), 1024).expect("answer");
        assert!(
            !out.ok && out.message.contains("archiver died"),
            "{}",
            out.message
        );
        assert_eq!(served.join().expect("daemon"), 2);
    }

    #[test]
    fn a_lost_reason_is_told_from_a_reason() {
        assert!(reason_lost(
            "fatal: sent error to the client: git upload-archive: archiver died with error\n\
             remote: git upload-archive: archiver died with error\n"
        ));
        assert!(reason_lost("git upload-archive: archiver died with error"));
        for kept in [
            "",
            "remote: fatal: '/x' does not appear to be a git repository\n\
             remote: git upload-archive: archiver died with error",
            "fatal: no such ref",
        ] {
            assert!(!reason_lost(kept), "{kept}");
        }
    }

    #[test]
    fn a_missing_repository_is_told_from_other_failures() {
        for (missing, said) in [
            (
                "fatal: repository 'https://src.example.org/tests/nope.git/' not found\n",
                "fatal: repository 'https://src.example.org/tests/nope.git/' not found",
            ),
            (
                "fatal: '/srv/git/nope.git' does not appear to be a git repository\n",
                "fatal: '/srv/git/nope.git' does not appear to be a git repository",
            ),
            (
                "remote: fatal: '/x' does not appear to be a git repository\n\
                 remote: git upload-archive: archiver died with error\n",
                "fatal: '/x' does not appear to be a git repository",
            ),
            // The forges' ssh services, in their own words: theirs is the line that says why.
            (
                "Forgejo: Cannot find repository: rpms/foo\n\
                 fatal: Could not read from remote repository.\n\n\
                 Please make sure you have the correct access rights\n\
                 and the repository exists.\n",
                "Forgejo: Cannot find repository: rpms/foo",
            ),
            (
                "remote: \nremote: ========================================\nremote: \n\
                 remote: The project you were looking for could not be found or you don't \
                 have permission to view it.\nremote: \n\
                 fatal: Could not read from remote repository.\n",
                "The project you were looking for could not be found or you don't have \
                 permission to view it.",
            ),
            (
                "GitLab: The project you were looking for could not be found.\n\
                 fatal: Could not read from remote repository.\n",
                "GitLab: The project you were looking for could not be found.",
            ),
            (
                "FATAL: R any rpms/nope trigger DENIED by fallthru\n\
                 (or you mis-spelled the reponame)\n\
                 fatal: Could not read from remote repository.\n",
                "FATAL: R any rpms/nope trigger DENIED by fallthru",
            ),
        ] {
            assert_eq!(no_repository(missing), Some(said), "{missing}");
        }
        for other in [
            "fatal: unable to access 'https://src.example.org/x.git/': Could not resolve host\n",
            "fatal: Authentication failed for 'https://src.example.org/x.git/'\n",
            "fatal: couldn't find remote ref refs/meta/tasks\n",
            "ssh: connect to host h port 22: Connection refused\n\
             fatal: Could not read from remote repository.\n",
            // gitolite refusing a write, or a read by a rule that names the repository.
            "FATAL: W any rpms/foo trigger DENIED by fallthru\n",
            "FATAL: R refs/meta/tasks rpms/foo trigger DENIED by rule\n",
            "",
        ] {
            assert_eq!(no_repository(other), None, "{other}");
        }
    }

    #[test]
    fn templates() {
        assert_eq!(
            expand_remote("git://h/{namespace}/{name}", Some("ansible"), None).as_deref(),
            Ok("git://h/rpms/ansible")
        );
        assert!(expand_remote("git://h/rpms/{name}", Some("../etc"), None).is_err());
        assert!(expand_remote("git://h/rpms/{name}", None, None).is_err());
        assert_eq!(
            expand_remote("git://h/{namespac}/{name}", Some("a"), None),
            Err("the remote `git://h/{namespac}/{name}` has `{namespac}`: the placeholders are `{name}` and `{namespace}`".into())
        );
        assert!(expand_remote("git://h/{name", Some("a"), None).is_err());
    }
}
