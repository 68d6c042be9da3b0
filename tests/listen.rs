//! `taskhook listen` against a real RabbitMQ node started for each test, task repositories
//! served by git daemon, and (for interop) the real fedora-messaging client from PyPI.

mod util;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use lapin::options::{
    BasicAckOptions, BasicGetOptions, BasicPublishOptions, ConfirmSelectOptions, QueueBindOptions,
    QueueDeclareOptions,
};
use lapin::types::FieldTable;
use lapin::{BasicProperties, Connection, ConnectionProperties};
use util::broker::Broker;
use util::*;

const KOJI_TOPIC: &str = "org.fedoraproject.prod.buildsys.build.state.change";

/// A task repository `ansible.git` with one koji_build task on branch epel7, served by git daemon.
fn served() -> (Server, Daemon) {
    let s = Server::new();
    s.commit_file("build/runtask.yml", GOOD);
    let out = s.push("HEAD:epel7");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let root = s.dir.path().join("srv");
    std::fs::create_dir_all(&root).expect("mkdir");
    std::fs::rename(s.bare(), root.join("ansible.git")).expect("rename");
    let d = Daemon::serve(&root);
    (s, d)
}

fn config(dir: &Path, broker: &Broker, remote: &str, extra: &str) -> PathBuf {
    let path = dir.join("listen.toml");
    write(
        &path,
        &format!(
            r#"amqp_url = "{url}"

[client_properties]
app = "taskhook tests"

[queues.taskhook]
durable = true
auto_delete = false
exclusive = false

[[bindings]]
queue = "taskhook"
exchange = "amq.topic"
routing_keys = ["{KOJI_TOPIC}"]

[qos]
prefetch_count = 8

[consumer_config]
remote = "{remote}"
timeout = 10
cache_dir = "{cache}"
{extra}
"#,
            url = broker.url(),
            cache = dir.join("cache").display(),
            extra = if extra.contains("max_retries") {
                extra.to_string()
            } else {
                format!("max_retries = 3\n{extra}")
            },
        ),
    );
    path
}

struct Listener {
    child: Child,
    log: PathBuf,
}

impl Listener {
    fn start(config: &Path, log: PathBuf) -> Listener {
        Self::start_with(config, log, &[])
    }

    /// `taskhook listen --config CONFIG EXTRA...`, its stderr in `log`, not waited for.
    fn spawn(config: &Path, log: PathBuf, extra: &[&str]) -> Listener {
        Self::spawn_env(config, log, extra, &[])
    }

    /// [`Listener::spawn`] with these environment variables set (`Some`) or removed (`None`).
    fn spawn_env(
        config: &Path,
        log: PathBuf,
        extra: &[&str],
        env: &[(&str, Option<&Path>)],
    ) -> Listener {
        let file = std::fs::File::create(&log).expect("log");
        let mut cmd = taskhook_cmd();
        for (key, value) in env {
            match value {
                Some(v) => cmd.env(key, v),
                None => cmd.env_remove(key),
            };
        }
        let child = cmd
            .args(["listen", "--config"])
            .arg(config)
            .args(extra)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(file)
            .spawn()
            .expect("taskhook listen");
        Listener { child, log }
    }

    fn start_with(config: &Path, log: PathBuf, extra: &[&str]) -> Listener {
        let mut l = Self::spawn(config, log, extra);
        // Consuming means the queue and its bindings exist: nothing published after is lost.
        l.wait_for("the listener did not start", |log| {
            log.contains("connected; consuming")
        });
        l
    }

    /// Waits until the log is `done`, failing the test with `what` and the log when the
    /// listener exits or 30 s pass first.
    fn wait_for(&mut self, what: &str, done: impl Fn(&str) -> bool) {
        let start = Instant::now();
        loop {
            let log = self.log();
            if done(&log) {
                return;
            }
            assert!(
                self.alive() && start.elapsed() < Duration::from_secs(30),
                "{what}:\n{log}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    fn alive(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// The exit code once the listener exits by itself, failing the test after 30 s.
    fn exit_code(&mut self) -> Option<i32> {
        let start = Instant::now();
        while start.elapsed() < Duration::from_secs(30) {
            if let Ok(Some(status)) = self.child.try_wait() {
                return status.code();
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        panic!("the listener did not stop by itself:\n{}", self.log());
    }

    /// SIGTERM, then the exit code and how long it took.
    fn terminate(&mut self) -> (Option<i32>, Duration) {
        let start = Instant::now();
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        while start.elapsed() < Duration::from_secs(30) {
            if let Ok(Some(status)) = self.child.try_wait() {
                return (status.code(), start.elapsed());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        (None, start.elapsed())
    }
}

impl Drop for Listener {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime")
}

async fn connect(url: &str) -> lapin::Result<Connection> {
    Connection::connect(url, ConnectionProperties::default()).await
}

/// Declares a durable queue bound to the jobs' topic, so no published job is lost.
async fn declare_jobs_queue(url: &str, queue: &str) {
    declare_queue(url, queue, "taskhook.job.#").await;
}

/// Declares a durable queue bound to `key` on `amq.topic`.
async fn declare_queue(url: &str, queue: &str, key: &str) {
    let conn = connect(url).await.expect("connect");
    let ch = conn.create_channel().await.expect("channel");
    ch.queue_declare(
        queue.into(),
        QueueDeclareOptions {
            durable: true,
            ..QueueDeclareOptions::default()
        },
        FieldTable::default(),
    )
    .await
    .expect("declare");
    ch.queue_bind(
        queue.into(),
        "amq.topic".into(),
        key.into(),
        QueueBindOptions::default(),
        FieldTable::default(),
    )
    .await
    .expect("bind");
    let _ = conn.close(200, "done".into()).await;
}

/// Publishes persistent messages on `amq.topic` with publisher confirms.
async fn publish(url: &str, messages: &[(String, Vec<u8>)]) {
    let conn = connect(url).await.expect("connect");
    let ch = conn.create_channel().await.expect("channel");
    ch.confirm_select(ConfirmSelectOptions::default())
        .await
        .expect("confirms");
    let mut confirms = Vec::new();
    for (topic, body) in messages {
        confirms.push(
            ch.basic_publish(
                "amq.topic".into(),
                topic.as_str().into(),
                BasicPublishOptions::default(),
                body,
                BasicProperties::default().with_delivery_mode(2),
            )
            .await
            .expect("publish"),
        );
    }
    for c in confirms {
        assert!(c.await.expect("confirm").is_ack());
    }
    let _ = conn.close(200, "done".into()).await;
}

/// Takes every job waiting in `queue`; an unreachable broker (restarting) gives none.
async fn drain(url: &str, queue: &str) -> Vec<serde_json::Value> {
    let Ok(conn) = connect(url).await else {
        return Vec::new();
    };
    let Ok(ch) = conn.create_channel().await else {
        return Vec::new();
    };
    let mut jobs = Vec::new();
    while let Ok(Some(msg)) = ch.basic_get(queue.into(), BasicGetOptions::default()).await {
        let job: serde_json::Value = serde_json::from_slice(&msg.delivery.data).expect("job JSON");
        assert_eq!(
            msg.delivery
                .properties
                .message_id()
                .as_ref()
                .map(|s| s.as_str().to_string()),
            job["id"].as_str().map(str::to_string),
            "message_id is the job id"
        );
        if msg
            .delivery
            .acker
            .ack(BasicAckOptions::default())
            .await
            .is_err()
        {
            break;
        }
        jobs.push(job);
    }
    let _ = conn.close(200, "done".into()).await;
    jobs
}

/// Drains the jobs queue into `ids` (item → job ids); how many jobs it took.
fn collect(
    rt: &tokio::runtime::Runtime,
    url: &str,
    ids: &mut BTreeMap<String, BTreeSet<String>>,
) -> usize {
    let jobs = rt.block_on(drain(url, "jobs"));
    for job in &jobs {
        ids.entry(job["item"].as_str().unwrap_or("").to_string())
            .or_default()
            .insert(job["id"].as_str().unwrap_or("").to_string());
    }
    if jobs.is_empty() {
        std::thread::sleep(Duration::from_millis(50));
    }
    jobs.len()
}

fn koji_message(version: &str) -> Vec<u8> {
    serde_json::to_vec(&serde_json::json!({
        "build_id": 1, "old": 0, "new": 1, "name": "ansible", "version": version,
        "release": "1.el7", "instance": "primary", "owner": "kevin", "task_id": 1,
    }))
    .expect("json")
}

#[test]
fn two_listeners_survive_a_kill_and_a_broker_restart() {
    let mut broker = Broker::start();
    let (s, d) = served();
    let dir = s.dir.path();
    let cfg = config(dir, &broker, &d.url("{name}.git"), "");
    let rt = runtime();
    let url = broker.url();
    rt.block_on(declare_jobs_queue(&url, "jobs"));
    const N: usize = 300;
    let mut messages: Vec<(String, Vec<u8>)> = (0..N)
        .map(|i| (KOJI_TOPIC.to_string(), koji_message(&format!("1.{i}"))))
        .collect();
    messages.insert(N / 2, (KOJI_TOPIC.to_string(), b"{not json".to_vec()));
    let mut a = Listener::start(&cfg, dir.join("a.log"));
    let mut b = Listener::start(&cfg, dir.join("b.log"));
    let mut ids: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    let mut received = 0;
    let start = Instant::now();
    // In three parts: the first while both run; the second, then SIGKILL of one listener
    // mid-stream (its unacked messages go to the other) and a restart; the third after the
    // broker itself was stopped and started again, which both listeners survive.
    let parts: Vec<Vec<(String, Vec<u8>)>> = messages
        .chunks(messages.len() / 3 + 1)
        .map(<[_]>::to_vec)
        .collect();
    for (n, part) in parts.iter().enumerate() {
        rt.block_on(publish(&url, part));
        if n == 1 {
            std::thread::sleep(Duration::from_millis(100));
            let _ = a.child.kill();
            let _ = a.child.wait();
            a = Listener::start(&cfg, dir.join("a2.log"));
        }
        let want = parts[..=n]
            .iter()
            .flatten()
            .filter(|(_, body)| body.starts_with(b"{\""))
            .count();
        while ids.len() < want {
            assert!(
                start.elapsed() < Duration::from_secs(240),
                "only {} of {N} builds got jobs\nA:\n{}\nB:\n{}",
                ids.len(),
                a.log(),
                b.log()
            );
            received += collect(&rt, &url, &mut ids);
        }
        if n == 1 {
            broker.stop();
            std::thread::sleep(Duration::from_secs(1));
            broker.launch();
            for l in [&a, &b] {
                let reconnected = Instant::now();
                while l.log().matches("connected; consuming").count() < 2 {
                    assert!(
                        reconnected.elapsed() < Duration::from_secs(60),
                        "{}",
                        l.log()
                    );
                    std::thread::sleep(Duration::from_millis(100));
                }
            }
        }
    }
    // Redeliveries after the kill and the restart may still bring duplicates: take them too.
    std::thread::sleep(Duration::from_millis(500));
    received += collect(&rt, &url, &mut ids);
    for i in 0..N {
        let item = format!("ansible-1.{i}-1.el7");
        let set = ids
            .get(&item)
            .unwrap_or_else(|| panic!("no job for {item}"));
        assert_eq!(
            set.len(),
            1,
            "a redelivered build got another job id: {item} {set:?}"
        );
    }
    eprintln!(
        "{received} jobs received for {N} builds ({} duplicates)",
        received - N
    );
    let logs = format!(
        "{}{}{}",
        std::fs::read_to_string(dir.join("a.log")).unwrap_or_default(),
        a.log(),
        b.log()
    );
    assert!(logs.contains("outcome=malformed"), "{logs}");
    assert!(logs.contains("reconnecting"), "{logs}");
    assert!(a.alive() && b.alive(), "{logs}");
    for l in [&mut a, &mut b] {
        let (code, took) = l.terminate();
        assert_eq!(code, Some(0), "{}", l.log());
        assert!(took < Duration::from_secs(10), "took {took:?}");
        assert!(l.log().contains("taskhook listen: stopped"), "{}", l.log());
    }
    assert_eq!(broker.queue_depth("taskhook"), Some(0));
}

#[test]
fn failures_are_retried_then_dead_lettered_and_exec_jobs_are_acked_after_success() {
    let broker = Broker::start();
    let (s, d) = served();
    let dir = s.dir.path();
    let rt = runtime();
    let url = broker.url();
    // An unreachable remote: retried max_retries times, then dead-lettered.
    let marker = dir.join("ran");
    let cfg = config(
        dir,
        &broker,
        "git://127.0.0.1:9/{name}.git",
        &format!(
            "jobs = \"exec\"\nexec = \"sh -c 'cat >> {}'\"\nmax_retries = 1\n",
            marker.display()
        ),
    );
    let text = std::fs::read_to_string(&cfg).expect("cfg").replace(
        "exclusive = false\n",
        "exclusive = false\narguments = { \"x-dead-letter-exchange\" = \"taskhook.dlx\" }\n",
    );
    std::fs::write(
        &cfg,
        text + "\n[exchanges.\"taskhook.dlx\"]\ntype = \"fanout\"\n",
    )
    .expect("cfg");
    rt.block_on(async {
        let conn = connect(&url).await.expect("connect");
        let ch = conn.create_channel().await.expect("channel");
        ch.exchange_declare(
            "taskhook.dlx".into(),
            lapin::ExchangeKind::Fanout,
            lapin::options::ExchangeDeclareOptions {
                durable: true,
                ..Default::default()
            },
            FieldTable::default(),
        )
        .await
        .expect("dlx");
        ch.queue_declare(
            "dead".into(),
            QueueDeclareOptions::default(),
            FieldTable::default(),
        )
        .await
        .expect("dead");
        ch.queue_bind(
            "dead".into(),
            "taskhook.dlx".into(),
            "".into(),
            QueueBindOptions::default(),
            FieldTable::default(),
        )
        .await
        .expect("bind");
        let _ = conn.close(200, "".into()).await;
    });
    let mut l = Listener::start(&cfg, dir.join("l.log"));
    rt.block_on(publish(&url, &[(KOJI_TOPIC.into(), koji_message("9"))]));
    let start = Instant::now();
    while broker.queue_depth("dead") != Some(1) {
        assert!(start.elapsed() < Duration::from_secs(60), "{}", l.log());
        std::thread::sleep(Duration::from_millis(200));
    }
    let log = l.log();
    assert!(log.contains("attempt 1 failed"), "{log}");
    assert!(
        log.contains("outcome=retried-out: gave up after 2 attempt(s)"),
        "{log}"
    );
    assert!(!marker.exists());
    assert_eq!(l.terminate().0, Some(0));

    // The same listener with a reachable remote runs the exec command with the job on stdin.
    let text = std::fs::read_to_string(&cfg)
        .expect("cfg")
        .replace("git://127.0.0.1:9/{name}.git", &d.url("{name}.git"));
    std::fs::write(&cfg, text).expect("cfg");
    let mut l = Listener::start(&cfg, dir.join("l2.log"));
    rt.block_on(publish(&url, &[(KOJI_TOPIC.into(), koji_message("10"))]));
    let start = Instant::now();
    while !l.log().contains("outcome=delivered") {
        assert!(start.elapsed() < Duration::from_secs(30), "{}", l.log());
        std::thread::sleep(Duration::from_millis(100));
    }
    let ran = std::fs::read_to_string(&marker).expect("the exec command ran");
    let job: serde_json::Value = serde_json::from_str(ran.trim()).expect("job JSON on stdin");
    assert_eq!(job["item"], "ansible-10-1.el7");
    assert_eq!(broker.queue_depth("taskhook"), Some(0));
    assert_eq!(l.terminate().0, Some(0));

    // A command still running after exec_timeout is killed with what it started (here a
    // subshell that would leave a mark), and the job has failed: retried, then dead-lettered.
    let mark = dir.join("mark");
    // The configuration's `exec = ...` line made `line`, and each of `more` replaced.
    let set_exec = |line: &str, more: (&str, &str)| {
        let text = std::fs::read_to_string(&cfg).expect("cfg");
        let old = text
            .lines()
            .find(|l| l.starts_with("exec = "))
            .expect("exec line")
            .to_string();
        let text = text.replace(&old, line).replace(more.0, more.1);
        std::fs::write(&cfg, text).expect("cfg");
    };
    set_exec(
        &format!(
            "exec = \"sh -c '(sleep 3; touch {}) & wait'\"\nexec_timeout = 1",
            mark.display()
        ),
        ("max_retries = 1", "max_retries = 0"),
    );
    let mut l = Listener::start(&cfg, dir.join("l3.log"));
    rt.block_on(publish(&url, &[(KOJI_TOPIC.into(), koji_message("11"))]));
    let start = Instant::now();
    while broker.queue_depth("dead") != Some(2) {
        assert!(start.elapsed() < Duration::from_secs(30), "{}", l.log());
        std::thread::sleep(Duration::from_millis(100));
    }
    let log = l.log();
    assert!(
        log.contains("ran past exec_timeout (1 s) and was killed"),
        "{log}"
    );
    std::thread::sleep(Duration::from_secs(4));
    assert!(!mark.exists(), "what the command started outlived it");
    assert_eq!(l.terminate().0, Some(0));

    // A listener stopped while a command runs (no timeout now) waits its grace period, then
    // ends the command with all it started.
    let started = dir.join("started");
    set_exec(
        &format!(
            "exec = \"sh -c 'touch {}; (sleep 14; touch {}) & wait'\"",
            started.display(),
            mark.display()
        ),
        ("exec_timeout = 1\n", ""),
    );
    let mut l = Listener::start(&cfg, dir.join("l4.log"));
    rt.block_on(publish(&url, &[(KOJI_TOPIC.into(), koji_message("12"))]));
    let start = Instant::now();
    while !started.exists() {
        assert!(start.elapsed() < Duration::from_secs(30), "{}", l.log());
        std::thread::sleep(Duration::from_millis(100));
    }
    let (code, took) = l.terminate();
    assert_eq!(code, Some(0), "{}", l.log());
    assert!(took < Duration::from_secs(13), "{took:?}: {}", l.log());
    std::thread::sleep(Duration::from_secs(16).saturating_sub(took));
    assert!(
        !mark.exists(),
        "what the command started outlived the listener"
    );
}

#[test]
fn a_bad_configuration_names_the_key() {
    let dir = tempfile::tempdir().expect("tmp");
    let cfg = dir.path().join("c.toml");
    write(
        &cfg,
        "[queues.q]\n[[bindings]]\nqueue = \"q\"\nrouting_keys = [\"#\"]\n[consumer_config]\nremote = \"git://h/{name}\"\njobs = \"kafka\"\n",
    );
    let out = taskhook(
        &["listen", "--config", &cfg.display().to_string()],
        dir.path(),
    );
    assert_eq!(out.status.code(), Some(2));
    assert_eq!(
        String::from_utf8_lossy(&out.stderr),
        format!(
            "taskhook: error: {}: consumer_config.jobs: `kafka` is none of amqp, exec, stdout\n",
            cfg.display()
        )
    );
    // An http(s) remote is fetched through the cache: one the service cannot write is said at
    // start (before, every message failed, was retried and dead-lettered).
    let blocked = dir.path().join("not-a-directory");
    write(&blocked, "");
    let cache = blocked.join("cache");
    let http = |cache_dir: &Path| {
        format!(
            "[queues.q]\n[[bindings]]\nqueue = \"q\"\nrouting_keys = [\"#\"]\n[consumer_config]\nremote = \"https://h/{{name}}.git\"\ncache_dir = \"{}\"\n",
            cache_dir.display()
        )
    };
    write(&cfg, &http(&cache));
    let check = || {
        taskhook(
            &["listen", "--config", &cfg.display().to_string(), "--check"],
            dir.path(),
        )
    };
    let out = check();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.contains("consumer_config.cache_dir: cannot make a cache repository in"),
        "{err}"
    );
    // A git:// remote needs it only where the server serves no archives: a warning.
    write(&cfg, &http(&cache).replace("https://h/", "git://h/"));
    let out = check();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{err}");
    assert!(
        err.contains("taskhook listen: warning: consumer_config.cache_dir: cannot make a cache repository in"),
        "{err}"
    );
    write(&cfg, &http(&dir.path().join("cache")));
    let out = check();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let left = std::fs::read_dir(dir.path().join("cache"))
        .expect("made")
        .count();
    assert_eq!(left, 0, "the check leaves nothing in the cache");
    // Without --config, the file fedora-messaging's variable names; without either, a usage
    // error that names both.
    let out = taskhook_cmd()
        .args(["listen", "--check"])
        .env("FEDORA_MESSAGING_CONF", &cfg)
        .current_dir(dir.path())
        .output()
        .expect("taskhook");
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = taskhook(&["listen", "--check"], dir.path());
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains("--config <FILE>"), "{err}");
}

/// A broker that takes the connection and never answers (one caught starting, or a wrong port
/// held by something else) costs the listener one attempt, not its life: the set-up's deadline
/// counts it as lost, closes its socket (lapin's thread for it ends) and the listener tries
/// again.
#[test]
fn a_broker_that_never_answers_is_given_up_on_and_retried() {
    use std::io::Read;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;
    let silent = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = silent.local_addr().expect("address").port();
    silent.set_nonblocking(true).expect("nonblocking");
    // Accepts every connection and holds it, silent, counting those the listener closes; stops
    // accepting when the test ends (`Stop`), however it ends.
    struct Stop(Arc<std::sync::atomic::AtomicBool>);
    impl Drop for Stop {
        fn drop(&mut self) {
            self.0.store(true, Ordering::SeqCst);
        }
    }
    let stop = Stop(Arc::default());
    let stopped = stop.0.clone();
    let closed = Arc::new(AtomicUsize::new(0));
    let counted = closed.clone();
    std::thread::spawn(move || {
        while !stopped.load(Ordering::SeqCst) {
            let Ok((mut stream, _)) = silent.accept() else {
                std::thread::sleep(Duration::from_millis(20));
                continue;
            };
            let _ = stream.set_nonblocking(false);
            let counted = counted.clone();
            std::thread::spawn(move || {
                let mut buf = [0u8; 64];
                while matches!(stream.read(&mut buf), Ok(n) if n > 0) {}
                counted.fetch_add(1, Ordering::SeqCst);
            });
        }
    });
    let (_dir, mut l) = listener_for_port(port);
    wait_for_log(
        &mut l,
        "(the broker did not finish connecting and setting up within 20 s); reconnecting in 1 s",
        Duration::from_secs(60),
        "no attempt given up on",
    );
    assert!(l.alive(), "{}", l.log());
    // The attempt given up on is closed, not left open on a thread waiting for the broker.
    let given_up_at = Instant::now();
    while closed.load(Ordering::SeqCst) == 0 {
        assert!(
            given_up_at.elapsed() < Duration::from_secs(5),
            "the connection given up on is still open:\n{}",
            l.log()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A listener for a broker at 127.0.0.1:`port` (and a remote no event reaches), and the
/// directory that holds its configuration and log.
fn listener_for_port(port: u16) -> (tempfile::TempDir, Listener) {
    let dir = tempfile::tempdir().expect("tmp");
    let cfg = dir.path().join("c.toml");
    write(
        &cfg,
        &format!(
            "amqp_url = \"amqp://guest:guest@127.0.0.1:{port}/%2F\"\n[queues.q]\n[[bindings]]\nqueue = \"q\"\nrouting_keys = [\"#\"]\n[consumer_config]\nremote = \"git://127.0.0.1:1/{{name}}\"\n"
        ),
    );
    let l = Listener::spawn(&cfg, dir.path().join("l.log"), &[]);
    (dir, l)
}

/// Waits until the listener's log says `text`, while it runs, for at most `within`.
fn wait_for_log(l: &mut Listener, text: &str, within: Duration, missing: &str) {
    let start = Instant::now();
    while !l.log().contains(text) {
        assert!(
            l.alive() && start.elapsed() < within,
            "{missing}:\n{}",
            l.log()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// A broker address that drops connection attempts, as a firewall's DROP does (here: a listening
/// socket whose accept queue is full, so the kernel drops further SYNs): the TCP connect has a
/// deadline of its own, and the attempt is retried, instead of waiting on lapin's thread until
/// the kernel gives up about two minutes later.
#[test]
fn a_broker_that_drops_connection_attempts_is_retried_after_the_connect_deadline() {
    use std::io::BufRead;
    struct Killed(Child);
    impl Drop for Killed {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
    const FULL: &str = "import socket, sys, time
s = socket.socket(); s.bind(('127.0.0.1', 0)); s.listen(0)
held = []
for _ in range(4):
    c = socket.socket(); c.setblocking(False)
    try: c.connect(s.getsockname())
    except BlockingIOError: pass
    held.append(c)
time.sleep(0.5)
print(s.getsockname()[1], flush=True)
sys.stdin.read()
";
    let mut full = Killed(
        Command::new("python3")
            .args(["-c", FULL])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("python3"),
    );
    let mut line = String::new();
    std::io::BufReader::new(full.0.stdout.take().expect("stdout"))
        .read_line(&mut line)
        .expect("port");
    let port: u16 = line.trim().parse().expect("a port");
    let (_dir, mut l) = listener_for_port(port);
    wait_for_log(
        &mut l,
        &format!(
            "connecting to 127.0.0.1:{port} (the name's lookup and the TCP connection) took more than 10 s"
        ),
        Duration::from_secs(19),
        "no connect deadline",
    );
    assert!(l.log().contains("reconnecting in 1 s"), "{}", l.log());
    assert!(l.alive(), "{}", l.log());
}

/// Publishes a koji message with the fedora-messaging CLI and reads the job back with
/// fedora-messaging's own `get_message`.
#[test]
fn fedora_messaging_publishes_the_event_and_reads_the_job() {
    let venv = fedora_messaging_venv();
    let broker = Broker::start();
    let (s, d) = served();
    let dir = s.dir.path();
    let cfg = config(dir, &broker, &d.url("{name}.git"), "");
    // Also the schema's own topic, as a publisher without a topic_prefix sends it.
    let text = std::fs::read_to_string(&cfg).expect("config").replace(
        &format!("routing_keys = [\"{KOJI_TOPIC}\"]"),
        &format!("routing_keys = [\"{KOJI_TOPIC}\", \"buildsys.build.state.change\"]"),
    );
    write(&cfg, &text);
    let rt = runtime();
    rt.block_on(declare_jobs_queue(&broker.url(), "jobs"));
    let mut l = Listener::start(&cfg, dir.join("l.log"));
    let fm_conf = dir.join("fm.toml");
    write(
        &fm_conf,
        &format!(
            "amqp_url = \"{}\"\npublish_exchange = \"amq.topic\"\n[client_properties]\napp = \"taskhook interop test\"\n",
            broker.url()
        ),
    );
    let message: serde_json::Value = serde_json::from_slice(
        &std::fs::read(corpus().join("messages/fedora-messaging__koji_build_complete.json"))
            .expect("corpus"),
    )
    .expect("json");
    let file = dir.join("message.json");
    write(
        &file,
        &format!("{}\n", serde_json::to_string(&message).expect("json")),
    );
    let out = Command::new(venv.join("bin/fedora-messaging"))
        .arg("--conf")
        .arg(&fm_conf)
        .arg("publish")
        .arg(&file)
        .output()
        .expect("fedora-messaging publish");
    assert!(
        out.status.success(),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let reader = r#"
import json, sys, time
import pika
from fedora_messaging import message
params = pika.URLParameters(sys.argv[1])
conn = pika.BlockingConnection(params)
ch = conn.channel()
deadline = time.time() + 60
while True:
    method, properties, body = ch.basic_get("jobs", auto_ack=True)
    if method is not None:
        break
    if time.time() > deadline:
        sys.exit("no job arrived")
    time.sleep(0.1)
m = message.get_message(method.routing_key, properties, body)
print(json.dumps({"topic": m.topic, "id": m.id, "body": m.body, "severity": m.severity,
                  "schema": properties.headers.get("fedora_messaging_schema"),
                  "sent_at": properties.headers.get("sent-at"),
                  "persistent": properties.delivery_mode == 2,
                  "class": type(m).__name__}))
conn.close()
"#;
    // Python with fedora-messaging, its configuration `fm_conf`; what it printed.
    let python = |args: &[&str]| {
        let out = Command::new(venv.join("bin/python"))
            .args(args)
            .env("FEDORA_MESSAGING_CONF", &fm_conf)
            .output()
            .expect("python");
        assert!(
            out.status.success(),
            "{}\nlistener:\n{}",
            String::from_utf8_lossy(&out.stderr),
            l.log()
        );
        out.stdout
    };
    let read_job = || -> serde_json::Value {
        serde_json::from_slice(&python(&["-c", reader, &broker.url()])).expect("reader JSON")
    };
    let got = read_job();
    assert_eq!(got["topic"], "taskhook.job.koji_build");
    assert_eq!(got["class"], "Message");
    assert_eq!(got["schema"], "base.message");
    assert_eq!(got["severity"], 20);
    assert_eq!(got["persistent"], true);
    assert_eq!(got["id"], got["body"]["id"]);
    assert_eq!(got["body"]["item"], "ansible-1.8.3-1.el7");
    assert_eq!(got["body"]["git_branch"], "epel7");
    assert!(got["sent_at"]
        .as_str()
        .is_some_and(|s| s.ends_with("+00:00")));

    // The same build's message published through fedora-messaging's API with the schema's own
    // topic (no topic_prefix in the publisher's configuration): the same kind of job.
    let mut body = message["body"].clone();
    body["version"] = "1.8.4".into();
    let publisher = r#"
import json, sys
from fedora_messaging import api, message
api.publish(message.Message(topic="buildsys.build.state.change", body=json.loads(sys.argv[1])))
"#;
    python(&["-c", publisher, &body.to_string()]);
    assert_eq!(read_job()["body"]["item"], "ansible-1.8.4-1.el7");
    assert_eq!(l.terminate().0, Some(0));
}

#[test]
fn metrics_count_what_the_listener_did() {
    let broker = Broker::start();
    let (s, d) = served();
    let dir = s.dir.path();
    let cfg = config(dir, &broker, &d.url("{name}.git"), "jobs = \"stdout\"\n");
    let addr = format!("127.0.0.1:{}", free_port());
    let mut l = Listener::start_with(&cfg, dir.join("l.log"), &["--metrics", &addr]);
    // The health checks fedora-messaging's monitoring server answers, on the same port.
    assert_eq!(
        http_get(&addr, "/live").as_deref(),
        Some("{\"status\": \"OK\"}\n")
    );
    let ready = http_get(&addr, "/ready").unwrap_or_default();
    assert!(ready.starts_with("{\"consuming\": true, "), "{ready}");
    let rt = runtime();
    rt.block_on(publish(
        &broker.url(),
        &[
            (KOJI_TOPIC.into(), koji_message("1")),
            (KOJI_TOPIC.into(), b"not json".to_vec()),
            // Past the size a message may have, however valid: not parsed.
            (KOJI_TOPIC.into(), {
                let mut big = koji_message("3");
                big.pop();
                big.extend(format!(r#","padding":"{}"}}"#, "x".repeat(4 << 20)).bytes());
                big
            }),
            // A package with no repository on the server: nothing to run, nothing to retry.
            (
                KOJI_TOPIC.into(),
                serde_json::to_vec(&serde_json::json!({
                    "build_id": 2, "old": 0, "new": 1, "name": "no-such-package",
                    "version": "1", "release": "1.el7", "instance": "primary",
                    "owner": "kevin", "task_id": 2,
                }))
                .expect("json"),
            ),
        ],
    ));
    let start = Instant::now();
    loop {
        let body = http_get(&addr, "/metrics").unwrap_or_default();
        if body.contains("taskhook_listen_events_total{outcome=\"delivered\"} 1")
            && body.contains("taskhook_listen_events_total{outcome=\"malformed\"} 2")
            && body.contains("taskhook_listen_events_total{outcome=\"no-jobs\"} 1")
        {
            assert!(body.contains("taskhook_listen_jobs_total 1"), "{body}");
            assert!(body.contains("taskhook_listen_failures_total 0"), "{body}");
            assert!(
                l.log().contains("no repository is served there"),
                "{}",
                l.log()
            );
            assert!(
                l.log()
                    .contains("bytes, more than the 4194304 a message may have"),
                "{}",
                l.log()
            );
            assert!(
                body.contains("taskhook_listen_fetch_seconds_count"),
                "{body}"
            );
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "{body}\n{}",
            l.log()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(l.terminate().0, Some(0));
}

/// The body of `GET path` from `addr`, or `None` when it cannot be had.
fn http_get(addr: &str, path: &str) -> Option<String> {
    use std::io::{Read as _, Write as _};
    let mut c = std::net::TcpStream::connect(addr).ok()?;
    c.write_all(format!("GET {path} HTTP/1.1\r\nHost: x\r\n\r\n").as_bytes())
        .ok()?;
    let mut response = String::new();
    c.read_to_string(&mut response).ok()?;
    response
        .split_once("\r\n\r\n")
        .map(|(_, body)| body.to_string())
}

/// A listener configuration's `[tls]` table: the CA to check the broker with, and the client
/// certificate and key.
fn tls_section(ca: Option<&Path>, pair: Option<(&Path, &Path)>) -> String {
    let mut t = "\n[tls]\n".to_string();
    if let Some(ca) = ca {
        t += &format!("ca_cert = \"{}\"\n", ca.display());
    }
    if let Some((cert, key)) = pair {
        t += &format!(
            "certfile = \"{}\"\nkeyfile = \"{}\"\n",
            cert.display(),
            key.display()
        );
    }
    t
}

/// Fedora's broker takes the client's TLS certificate as its identity (amqps, RabbitMQ's
/// EXTERNAL mechanism): the listener logs in with the `[tls]` files of its config alone, and
/// without a certificate the broker turns it away.
#[test]
fn a_client_certificate_is_the_identity_over_amqps() {
    let (broker, cert) = Broker::start_tls();
    let (s, d) = served();
    let dir = s.dir.path();
    let amqps = format!(
        "amqps://127.0.0.1:{}/%2F",
        broker.tls_port.expect("TLS port")
    );
    let plain = config(dir, &broker, &d.url("{name}.git"), "");
    let text = std::fs::read_to_string(&plain)
        .expect("config")
        .replace(&broker.url(), &amqps);
    let with_cert = dir.join("tls.toml");
    let own = Some((cert.cert.as_path(), cert.key.as_path()));
    write(
        &with_cert,
        &format!("{text}{}", tls_section(Some(&cert.ca), own)),
    );
    let rt = runtime();
    let url = broker.url();
    rt.block_on(declare_jobs_queue(&url, "jobs"));
    let mut l = Listener::start(&with_cert, dir.join("tls.log"));
    let connections = broker.ctl(&["list_connections", "-q", "user", "auth_mechanism", "ssl"]);
    assert!(
        connections
            .lines()
            .any(|c| c.split_whitespace().collect::<Vec<_>>() == [&cert.user, "EXTERNAL", "true"]),
        "no EXTERNAL login over TLS as {}:\n{connections}",
        cert.user
    );
    rt.block_on(publish(&url, &[(KOJI_TOPIC.into(), koji_message("1"))]));
    let mut ids: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    let start = Instant::now();
    while ids.is_empty() {
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "no job over TLS:\n{}",
            l.log()
        );
        collect(&rt, &url, &mut ids);
    }
    assert_eq!(l.terminate().0, Some(0));

    // Without tls.ca_cert the broker's certificate is checked against the system's CAs, here
    // its CA alone (SSL_CERT_FILE stands for the system's store, as OpenSSL's does). The key
    // in the older PKCS#1 form this time (`BEGIN RSA PRIVATE KEY`), as keys long issued are.
    util::broker::openssl(
        dir,
        &format!(
            "rsa -in {} -traditional -out traditional.key",
            cert.key.display()
        ),
    );
    let traditional = dir.join("traditional.key");
    let pem = std::fs::read_to_string(&traditional).expect("key");
    assert!(pem.starts_with("-----BEGIN RSA PRIVATE KEY-----"), "{pem}");
    let system_cas = dir.join("system-cas.toml");
    write(
        &system_cas,
        &format!(
            "{text}{}",
            tls_section(None, Some((cert.cert.as_path(), traditional.as_path())))
        ),
    );
    let mut trusting = Listener::spawn_env(
        &system_cas,
        dir.join("system-cas.log"),
        &[],
        &[("SSL_CERT_FILE", Some(&cert.ca)), ("SSL_CERT_DIR", None)],
    );
    trusting.wait_for(
        "no connection with the broker's CA as the system's",
        |log| log.contains("connected; consuming"),
    );
    assert_eq!(trusting.terminate().0, Some(0));

    // The CA alone: TLS, but no certificate to show.
    let without_cert = dir.join("no-cert.toml");
    write(
        &without_cert,
        &format!("{text}{}", tls_section(Some(&cert.ca), None)),
    );
    // A Listener is killed when dropped, so a failed assertion leaves no process retrying.
    let mut refused = Listener::spawn(&without_cert, dir.join("no-cert.log"), &[]);
    refused.wait_for("no refused connection reported", |log| {
        log.contains("reconnecting")
    });
    let log = refused.log();
    assert!(!log.contains("connected; consuming"), "{log}");
}

#[test]
fn tls_and_login_mistakes_are_named_with_their_fix() {
    let (broker, cert) = Broker::start_tls();
    let (s, d) = served();
    let dir = s.dir.path();
    let plain_url = broker.url();
    let tls_url = format!(
        "amqps://127.0.0.1:{}/%2F",
        broker.tls_port.expect("TLS port")
    );
    let plain = config(dir, &broker, &d.url("{name}.git"), "");
    let text = std::fs::read_to_string(&plain).expect("config");
    let amqps = text.replace(&plain_url, &tls_url);
    let own = Some((cert.cert.as_path(), cert.key.as_path()));
    // A client certificate signed by no CA the broker knows, for the user the broker has.
    util::broker::openssl(
        dir,
        &format!(
            "req -x509 -newkey rsa:2048 -nodes -subj /CN={} -days 2 -keyout stranger.key \
             -out stranger.pem",
            cert.user
        ),
    );
    let (stranger, stranger_key) = (dir.join("stranger.pem"), dir.join("stranger.key"));
    let cases = [
        (
            "no-client-certificate",
            format!("{amqps}{}", tls_section(Some(&cert.ca), None)),
            "set tls.certfile and tls.keyfile",
        ),
        (
            "system-cas-only",
            format!("{amqps}{}", tls_section(None, own)),
            "not signed by a CA this system trusts: set tls.ca_cert",
        ),
        (
            "wrong-ca",
            format!("{amqps}{}", tls_section(Some(&cert.cert), own)),
            &format!(
                "not signed by the CA in tls.ca_cert ({})",
                cert.cert.display()
            ),
        ),
        (
            "unknown-client-certificate",
            format!(
                "{amqps}{}",
                tls_section(Some(&cert.ca), Some((&stranger, &stranger_key)))
            ),
            "the broker refused the client certificate in tls.certfile",
        ),
        (
            "amqps-to-the-plain-port",
            format!(
                "{}{}",
                text.replace("amqp://", "amqps://"),
                tls_section(Some(&cert.ca), None)
            ),
            "the port does not speak TLS",
        ),
        (
            "amqp-to-the-tls-port",
            amqps.replace("amqps://", "amqp://"),
            "the URL must start with amqps://",
        ),
        (
            "wrong-password",
            text.replace("guest:guest@", "guest:not-the-password@"),
            "check the user and password in amqp_url",
        ),
    ];
    // All at once (each is killed when dropped, however the test ends), then each log read.
    let mut listeners: Vec<_> = cases
        .iter()
        .map(|(name, body, _)| {
            let path = dir.join(format!("{name}.toml"));
            write(&path, body);
            // The system's CAs as the machine has them, whatever the caller's environment says.
            let system = [("SSL_CERT_FILE", None), ("SSL_CERT_DIR", None)];
            Listener::spawn_env(&path, dir.join(format!("{name}.log")), &[], &system)
        })
        .collect();
    for ((name, _, hint), l) in cases.iter().zip(&mut listeners) {
        // Some attempt says it: under load the broker can close the socket before its TLS
        // alert is read, and that attempt ends in `Connection reset by peer`.
        l.wait_for(
            &format!("{name}: no refused connection with `{hint}` reported"),
            |log| {
                log.lines()
                    .any(|line| line.contains("reconnecting") && line.contains(hint))
            },
        );
        let log = l.log();
        assert!(!log.contains("connected; consuming"), "{name}: {log}");
    }
}

#[test]
fn passive_declares_use_the_queue_the_broker_has_and_jobs_keep_their_routing_key() {
    let broker = Broker::start();
    let (s, d) = served();
    let dir = s.dir.path();
    // A user that may read and write but create nothing, as a broker whose queues its
    // administrators make gives one.
    broker.ctl(&["add_user", "watcher", "watcher-password"]);
    broker.ctl(&["set_permissions", "-p", "/", "watcher", "^$", ".*", ".*"]);
    let admin = broker.url();
    let text = std::fs::read_to_string(config(dir, &broker, &d.url("{name}.git"), ""))
        .expect("config")
        .replace("guest:guest@", "watcher:watcher-password@");
    let active = dir.join("active.toml");
    write(&active, &text);
    let passive = dir.join("passive.toml");
    write(
        &passive,
        &text.replacen(
            "[client_properties]",
            "passive_declares = true\ntopic_prefix = \"org.example.\"\npublish_priority = 5\n\n\
             [client_properties]",
            1,
        ),
    );

    // The queue does not exist yet: with passive declares it is not made, and the log says so.
    let mut l = Listener::spawn(&passive, dir.join("missing.log"), &[]);
    assert_eq!(l.exit_code(), Some(2), "{}", l.log());
    assert!(
        l.log().contains("queue `taskhook`")
            && l.log()
                .contains("create it on the broker, or set passive_declares = false"),
        "{}",
        l.log()
    );
    assert!(
        l.log()
            .contains("(queues and exchanges must exist: passive_declares)"),
        "{}",
        l.log()
    );

    // The administrators make it; a listener that declares it anyway is refused.
    let rt = runtime();
    rt.block_on(declare_queue(&admin, "taskhook", "nothing.yet"));
    rt.block_on(declare_jobs_queue(&admin, "jobs"));
    let mut l = Listener::spawn(&active, dir.join("active.log"), &[]);
    assert_eq!(l.exit_code(), Some(2), "{}", l.log());
    assert!(
        l.log().contains("ACCESS_REFUSED") && l.log().contains("set passive_declares = true"),
        "{}",
        l.log()
    );

    // One allowed to make it, but asking for other settings than it has, is told which.
    let other = dir.join("other.toml");
    write(
        &other,
        &text
            .replace("watcher:watcher-password@", "guest:guest@")
            .replacen(
                "exclusive = false\n",
                "exclusive = false\narguments = { \"x-message-ttl\" = 1000 }\n",
                1,
            ),
    );
    let mut l = Listener::spawn(&other, dir.join("other.log"), &[]);
    assert_eq!(l.exit_code(), Some(2), "{}", l.log());
    assert!(
        l.log().contains("PRECONDITION_FAILED")
            && l.log().contains("it exists with other settings"),
        "{}",
        l.log()
    );

    // Passive: the queue is used as it is, its binding added, and the job published with the
    // file's priority and taskhook's routing key; the file's topic_prefix (fedora-messaging's,
    // for what it publishes) is not applied to it, and a warning says which key would.
    let mut l = Listener::start(&passive, dir.join("passive.log"));
    assert!(
        l.log()
            .contains("as `taskhook.job.<item_type>` with priority 5")
            && l.log().contains(
                "topic_prefix `org.example` is not put before the jobs' topic: jobs go out as \
                 `taskhook.job.<item_type>`; to publish them under it, set \
                 consumer_config.jobs_topic = \"org.example.taskhook.job\""
            ),
        "{}",
        l.log()
    );
    rt.block_on(publish(&admin, &[(KOJI_TOPIC.into(), koji_message("1"))]));
    let start = Instant::now();
    let delivery = loop {
        let got = rt.block_on(async {
            let conn = connect(&admin).await.expect("connect");
            let ch = conn.create_channel().await.expect("channel");
            let got = ch
                .basic_get("jobs".into(), BasicGetOptions { no_ack: true })
                .await
                .expect("get");
            let _ = conn.close(200, "done".into()).await;
            got
        });
        if let Some(got) = got {
            break got.delivery;
        }
        assert!(start.elapsed() < Duration::from_secs(30), "{}", l.log());
        std::thread::sleep(Duration::from_millis(50));
    };
    assert_eq!(delivery.routing_key.as_str(), "taskhook.job.koji_build");
    assert_eq!(*delivery.properties.priority(), Some(5));
    let headers = delivery.properties.headers().clone().unwrap_or_default();
    assert_eq!(
        headers.inner().get("priority"),
        Some(&lapin::types::AMQPValue::LongInt(5))
    );
    let job: serde_json::Value = serde_json::from_slice(&delivery.data).expect("job JSON");
    assert_eq!(job["item"], "ansible-1-1.el7");
    assert_eq!(l.terminate().0, Some(0));
}

/// Waits until the jobs queue holds `n` jobs and returns them, failing with `l`'s log after 30 s.
fn jobs_arrive(rt: &tokio::runtime::Runtime, url: &str, n: usize, l: &Listener) -> Vec<String> {
    let start = Instant::now();
    let mut items = Vec::new();
    while items.len() < n {
        for job in rt.block_on(drain(url, "jobs")) {
            items.push(job["item"].as_str().unwrap_or("").to_string());
        }
        assert!(start.elapsed() < Duration::from_secs(30), "{}", l.log());
        std::thread::sleep(Duration::from_millis(50));
    }
    items
}

#[test]
fn a_queue_the_broker_names_and_an_exclusive_one_are_consumed_as_fedora_messaging_does() {
    let broker = Broker::start();
    let (s, d) = served();
    let dir = s.dir.path();
    let url = broker.url();
    let rt = runtime();
    rt.block_on(declare_jobs_queue(&url, "jobs"));
    let file = |queues: &str, binding_queue: &str| {
        format!(
            "amqp_url = \"{url}\"\n[client_properties]\napp = \"taskhook tests\"\n\
             app_contacts_email = [\"a@example.org\", \"b@example.org\"]\n\
             {queues}\n[[bindings]]\n{binding_queue}exchange = \"amq.topic\"\n\
             routing_keys = [\"{KOJI_TOPIC}\"]\n\n[consumer_config]\nremote = \"{}\"\n\
             cache_dir = \"{}\"\n",
            d.url("{name}.git"),
            dir.join("cache").display()
        )
    };

    // The shape of the `fedora.toml` fedora-messaging ships: no queue, a binding without one;
    // and its monitoring server, where a container platform's health checks ask.
    let named = dir.join("server-named.toml");
    let monitoring = format!("127.0.0.1:{}", free_port());
    write(
        &named,
        &format!(
            "{}\n[monitoring]\naddress = \"127.0.0.1\"\nport = {}\n",
            file("", ""),
            monitoring.rsplit(':').next().expect("port")
        ),
    );
    let mut l = Listener::start(&named, dir.join("server-named.log"));
    assert!(
        l.log().contains("connected; consuming amq.gen-")
            && l.log().contains("queues: none configured"),
        "{}",
        l.log()
    );
    // Its list of contacts reaches the broker (as one string).
    let connections = broker.ctl(&["list_connections", "client_properties"]);
    assert!(
        connections.contains("a@example.org, b@example.org"),
        "{connections}"
    );
    rt.block_on(publish(&url, &[(KOJI_TOPIC.into(), koji_message("1"))]));
    assert_eq!(jobs_arrive(&rt, &url, 1, &l), ["ansible-1-1.el7"]);
    // The message is counted once it is acked, a moment after its job is published.
    let start = Instant::now();
    let mut ready = String::new();
    while !ready.contains("\"received\": 1") && start.elapsed() < Duration::from_secs(10) {
        std::thread::sleep(Duration::from_millis(20));
        ready = http_get(&monitoring, "/ready").unwrap_or_default();
    }
    assert_eq!(
        Some(ready.as_str()),
        Some(
            "{\"consuming\": true, \"published\": 1, \"consumed\": {\"received\": 1, \
             \"processed\": 1, \"dropped\": 0, \"rejected\": 0, \"failed\": 0}}\n"
        )
    );
    assert_eq!(l.terminate().0, Some(0));

    // An exclusive queue, as that file suggests naming one: a second listener waits, retrying,
    // until the first lets go of it (as a listener does after a lost connection, until the
    // broker sees the old one die), then takes over.
    let uuid = "0e7b2a1c-5d1f-4c8e-9b7a-3f2d6c1e8a90";
    let exclusive = dir.join("exclusive.toml");
    write(
        &exclusive,
        &file(
            &format!(
                "[queues.{uuid}]\ndurable = false\nauto_delete = true\nexclusive = true\n\
                 arguments = {{}}\n"
            ),
            &format!("queue = \"{uuid}\"\n"),
        ),
    );
    let mut first = Listener::start(&exclusive, dir.join("first.log"));
    let mut second = Listener::spawn(&exclusive, dir.join("second.log"), &[]);
    second.wait_for(
        "the second listener did not retry the locked queue",
        |log| {
            log.contains("it is exclusive, and another connection holds it")
                && log.contains("reconnecting")
        },
    );
    assert_eq!(first.terminate().0, Some(0));
    second.wait_for("the second listener did not take the queue over", |log| {
        log.contains(&format!("connected; consuming {uuid}"))
    });
    rt.block_on(publish(&url, &[(KOJI_TOPIC.into(), koji_message("2"))]));
    assert_eq!(jobs_arrive(&rt, &url, 1, &second), ["ansible-2-1.el7"]);
    assert_eq!(second.terminate().0, Some(0));
}

/// Runs `f` on a channel of a new connection to `url`, closed after.
async fn with_channel<F, Fut>(url: &str, f: F)
where
    F: FnOnce(lapin::Channel) -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    let conn = connect(url).await.expect("connect");
    f(conn.create_channel().await.expect("channel")).await;
    let _ = conn.close(200, "done".into()).await;
}

#[test]
fn publishing_jobs_a_jobs_exchange_missing_deleted_or_forbidden() {
    use lapin::options::{ExchangeDeclareOptions, ExchangeDeleteOptions};
    let broker = Broker::start();
    let (s, d) = served();
    let dir = s.dir.path();
    let url = broker.url();
    let rt = runtime();

    // An exchange the broker does not have: the listener stops at start and says what to set,
    // instead of failing every message's jobs.
    let missing = config(
        dir,
        &broker,
        &d.url("{name}.git"),
        "jobs_exchange = \"taskhook.jobs\"\n",
    );
    let mut l = Listener::spawn(&missing, dir.join("missing.log"), &[]);
    assert_eq!(l.exit_code(), Some(2), "{}", l.log());
    assert!(
        l.log()
            .contains("consumer_config.jobs_exchange `taskhook.jobs`")
            && l.log()
                .contains("add an [exchanges.\"taskhook.jobs\"] table"),
        "{}",
        l.log()
    );

    // The exchange made, the listener starts; then it goes away and comes back. The publish
    // the broker refuses meanwhile closes the jobs channel; the retry opens another and the
    // event's job is delivered (before, every attempt after the first failed on the closed
    // channel, and the event was given up).
    let declare_exchange = |url: String| async move {
        with_channel(&url, |ch| async move {
            ch.exchange_declare(
                "taskhook.jobs".into(),
                lapin::ExchangeKind::Topic,
                ExchangeDeclareOptions {
                    durable: true,
                    ..ExchangeDeclareOptions::default()
                },
                FieldTable::default(),
            )
            .await
            .expect("declare the exchange");
            ch.queue_declare(
                "jobs".into(),
                QueueDeclareOptions {
                    durable: true,
                    ..QueueDeclareOptions::default()
                },
                FieldTable::default(),
            )
            .await
            .expect("declare the queue");
            ch.queue_bind(
                "jobs".into(),
                "taskhook.jobs".into(),
                "taskhook.job.#".into(),
                QueueBindOptions::default(),
                FieldTable::default(),
            )
            .await
            .expect("bind");
        })
        .await;
    };
    rt.block_on(declare_exchange(url.clone()));
    let cfg = config(
        dir,
        &broker,
        &d.url("{name}.git"),
        "jobs_exchange = \"taskhook.jobs\"\nmax_retries = 8\n",
    );
    let mut l = Listener::start(&cfg, dir.join("l.log"));
    rt.block_on(with_channel(&url, |ch| async move {
        ch.exchange_delete("taskhook.jobs".into(), ExchangeDeleteOptions::default())
            .await
            .expect("delete the exchange");
    }));
    rt.block_on(publish(&url, &[(KOJI_TOPIC.into(), koji_message("1"))]));
    l.wait_for("the refused publish was not reported", |log| {
        log.contains("attempt 1 failed") && log.contains("no exchange 'taskhook.jobs'")
    });
    rt.block_on(declare_exchange(url.clone()));
    assert_eq!(jobs_arrive(&rt, &url, 1, &l), ["ansible-1-1.el7"]);
    l.wait_for("the event was not delivered", |log| {
        log.contains("outcome=delivered") && log.contains("opened a new channel to publish jobs on")
    });
    assert_eq!(l.terminate().0, Some(0));

    // A user the broker does not let publish there: no attempt can do better, so the listener
    // puts the message back and stops, saying what to change, rather than giving up message
    // after message.
    broker.ctl(&["add_user", "reader", "reader-password"]);
    broker.ctl(&[
        "set_permissions",
        "-p",
        "/",
        "reader",
        ".*",
        "^taskhook$",
        ".*",
    ]);
    let reader = dir.join("reader.toml");
    write(
        &reader,
        &std::fs::read_to_string(config(dir, &broker, &d.url("{name}.git"), ""))
            .expect("config")
            .replace("guest:guest@", "reader:reader-password@"),
    );
    let mut l = Listener::start(&reader, dir.join("reader.log"));
    rt.block_on(publish(&url, &[(KOJI_TOPIC.into(), koji_message("2"))]));
    assert_eq!(l.exit_code(), Some(2), "{}", l.log());
    assert!(
        l.log().contains("outcome=requeued (stopping: ")
            && l.log()
                .contains("the broker does not let this user publish the jobs")
            && l.log().contains("ACCESS_REFUSED"),
        "{}",
        l.log()
    );
    assert_eq!(
        broker.queue_depth("taskhook"),
        Some(1),
        "the message is kept"
    );
}
