//! A private RabbitMQ node for the tests: its own data directory, node name, epmd port and AMQP
//! port on 127.0.0.1, started from the scripts under `/usr/lib/rabbitmq/bin` (the `/usr/sbin`
//! wrappers switch to the `rabbitmq` user) and always stopped, epmd included, however the test
//! ends.

use super::free_port;
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const SBIN: &str = "/usr/lib/rabbitmq/bin";

pub struct Broker {
    dir: tempfile::TempDir,
    node: String,
    pub port: u16,
    dist_port: u16,
    epmd_port: u16,
    server: Option<Child>,
    /// The TLS listener's port, when the node has one (`start_tls`).
    pub tls_port: Option<u16>,
}

/// What a client needs to log in over the TLS listener of `Broker::start_tls`: the CA that
/// signed the broker's certificate, and a client certificate whose common name is `user`.
pub struct ClientCert {
    pub ca: PathBuf,
    pub cert: PathBuf,
    pub key: PathBuf,
    pub user: String,
}

impl Broker {
    /// Whether this machine has RabbitMQ (`.ci/run` installs it).
    pub fn available() -> bool {
        Path::new(SBIN).join("rabbitmq-server").exists()
    }

    pub fn start() -> Broker {
        let mut b = Self::prepared();
        b.launch();
        b
    }

    /// A node that also listens for AMQP over TLS on `tls_port`, where it asks every client for
    /// a certificate signed by its test CA and takes the certificate's common name as the user
    /// (RabbitMQ's EXTERNAL mechanism, as Fedora's broker does). The user of the returned
    /// certificate exists, with every permission on `/`. Needs `openssl`.
    pub fn start_tls() -> (Broker, ClientCert) {
        let mut b = Self::prepared();
        let d = b.dir.path().join("tls");
        std::fs::create_dir_all(&d).expect("mkdir");
        let user = "taskhook-listen".to_string();
        openssl(
            &d,
            "req -x509 -newkey rsa:2048 -nodes -days 2 -keyout ca.key -out ca.pem \
             -subj /CN=taskhook-test-CA",
        );
        for (name, cn, ext) in [
            (
                "server",
                "localhost",
                "subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth\n",
            ),
            ("client", user.as_str(), "extendedKeyUsage=clientAuth\n"),
        ] {
            std::fs::write(d.join(format!("{name}.ext")), ext).expect("ext");
            openssl(
                &d,
                &format!(
                    "req -newkey rsa:2048 -nodes -keyout {name}.key -out {name}.csr -subj /CN={cn}"
                ),
            );
            openssl(
                &d,
                &format!(
                    "x509 -req -days 2 -CAcreateserial -in {name}.csr -CA ca.pem -CAkey ca.key \
                     -extfile {name}.ext -out {name}.pem"
                ),
            );
        }
        let path = |f: &str| d.join(f).display().to_string();
        std::fs::write(
            b.dir.path().join("enabled_plugins"),
            "[rabbitmq_auth_mechanism_ssl].\n",
        )
        .expect("plugins");
        // The ports are picked free and bound by the node seconds later; should something else
        // bind one meanwhile, the node serves no TLS, and is stopped and started on others.
        for attempt in 1..=3 {
            let tls_port = free_port();
            if attempt > 1 {
                b.port = free_port();
            }
            std::fs::write(
                b.dir.path().join("rabbitmq.conf"),
                format!(
                    "listeners.ssl.default = 127.0.0.1:{tls_port}\n\
                     ssl_options.cacertfile = {}\n\
                     ssl_options.certfile = {}\n\
                     ssl_options.keyfile = {}\n\
                     ssl_options.verify = verify_peer\n\
                     ssl_options.fail_if_no_peer_cert = true\n\
                     ssl_cert_login_from = common_name\n\
                     auth_mechanisms.1 = PLAIN\n\
                     auth_mechanisms.2 = AMQPLAIN\n\
                     auth_mechanisms.3 = EXTERNAL\n",
                    path("ca.pem"),
                    path("server.pem"),
                    path("server.key"),
                ),
            )
            .expect("rabbitmq.conf");
            b.tls_port = Some(tls_port);
            let launched = b.try_launch();
            let start = Instant::now();
            while launched.is_ok()
                && TcpStream::connect(("127.0.0.1", tls_port)).is_err()
                && start.elapsed() < Duration::from_secs(30)
            {
                std::thread::sleep(Duration::from_millis(50));
            }
            if launched.is_ok() && TcpStream::connect(("127.0.0.1", tls_port)).is_ok() {
                break;
            }
            let said = launched.err().unwrap_or_else(|| b.tail_of_logs());
            assert!(
                attempt < 3,
                "RabbitMQ did not open its TLS port in three tries; the last said:\n{said}"
            );
            eprintln!("RabbitMQ did not open TLS port {tls_port}; trying another:\n{said}");
            b.stop();
        }
        // With EXTERNAL the password is never asked for; the user must exist all the same.
        b.ctl(&["add_user", &user, "not-used-with-a-certificate"]);
        b.ctl(&["set_permissions", "-p", "/", &user, ".*", ".*", ".*"]);
        let cert = ClientCert {
            ca: d.join("ca.pem"),
            cert: d.join("client.pem"),
            key: d.join("client.key"),
            user,
        };
        (b, cert)
    }

    /// A node's directories and ports, not started.
    fn prepared() -> Broker {
        assert!(
            Self::available(),
            "RabbitMQ is not installed: run .ci/run, or apt-get install rabbitmq-server"
        );
        let dir = tempfile::tempdir().expect("tempdir");
        for d in ["home", "mnesia", "log"] {
            std::fs::create_dir_all(dir.path().join(d)).expect("mkdir");
        }
        std::fs::write(dir.path().join("enabled_plugins"), "[].\n").expect("plugins");
        std::fs::write(dir.path().join("env.conf"), "").expect("env");
        // The Erlang cookie, made before anything starts: else the node and a rabbitmqctl started
        // beside it may both make it, one of them finds it before its mode is 0400, and stops.
        let port = free_port();
        let cookie = dir.path().join("home/.erlang.cookie");
        std::fs::write(&cookie, format!("TASKHOOKTEST{port}")).expect("cookie");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&cookie, std::fs::Permissions::from_mode(0o400))
                .expect("cookie mode");
        }
        Broker {
            node: format!("taskhook-test-{port}@localhost"),
            port,
            dist_port: free_port(),
            epmd_port: free_port(),
            server: None,
            tls_port: None,
            dir,
        }
    }

    fn env(&self, cmd: &mut Command) {
        let d = self.dir.path();
        cmd.env("HOME", d.join("home"))
            .env("RABBITMQ_NODENAME", &self.node)
            .env("RABBITMQ_NODE_IP_ADDRESS", "127.0.0.1")
            .env("RABBITMQ_NODE_PORT", self.port.to_string())
            .env("RABBITMQ_DIST_PORT", self.dist_port.to_string())
            .env("RABBITMQ_MNESIA_BASE", d.join("mnesia"))
            .env("RABBITMQ_LOG_BASE", d.join("log"))
            .env("RABBITMQ_ENABLED_PLUGINS_FILE", d.join("enabled_plugins"))
            .env("RABBITMQ_PID_FILE", d.join("pid"))
            .env("RABBITMQ_CONF_ENV_FILE", d.join("env.conf"))
            .env("ERL_EPMD_ADDRESS", "127.0.0.1")
            .env("ERL_EPMD_PORT", self.epmd_port.to_string())
            // A crash dump goes with the node's files, not into the directory tests run in.
            .env("ERL_CRASH_DUMP", d.join("erl_crash.dump"))
            .current_dir(d);
        if self.tls_port.is_some() {
            cmd.env("RABBITMQ_CONFIG_FILE", d.join("rabbitmq.conf"));
        }
    }

    /// Starts (or restarts) the node on the same port and data, and waits until it serves.
    pub fn launch(&mut self) {
        if let Err(e) = self.try_launch() {
            panic!("{e}");
        }
    }

    /// `launch`, saying why the node does not serve instead of failing the test.
    fn try_launch(&mut self) -> Result<(), String> {
        let mut cmd = Command::new(Path::new(SBIN).join("rabbitmq-server"));
        self.env(&mut cmd);
        let log = std::fs::File::create(self.dir.path().join("server.out")).expect("log");
        cmd.stdin(Stdio::null())
            .stdout(log.try_clone().expect("log"))
            .stderr(log);
        #[cfg(unix)]
        {
            use std::os::unix::process::CommandExt;
            cmd.process_group(0);
        }
        self.server = Some(cmd.spawn().expect("rabbitmq-server"));
        let waited = self.ctl(&["--timeout", "60", "wait", &self.pid_file()]);
        let start = Instant::now();
        loop {
            // A node that stopped while booting opens no port; what answers there is another's.
            if self.exited() {
                return Err(format!(
                    "RabbitMQ stopped while starting (wait: {waited}):\n{}",
                    self.tail_of_logs()
                ));
            }
            if TcpStream::connect(("127.0.0.1", self.port)).is_ok() {
                return Ok(());
            }
            if start.elapsed() > Duration::from_secs(60) {
                return Err(format!(
                    "RabbitMQ did not open its port (wait: {waited}):\n{}",
                    self.tail_of_logs()
                ));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Whether the node started by `launch` has stopped.
    fn exited(&mut self) -> bool {
        let server = self.server.as_mut().map(|c| c.try_wait());
        matches!(server, Some(Ok(Some(_))))
    }

    /// The last lines of the node's output and of its log files, for a failure's message (the
    /// node's directory goes with the test).
    fn tail_of_logs(&self) -> String {
        let mut files = vec![self.dir.path().join("server.out")];
        if let Ok(entries) = std::fs::read_dir(self.dir.path().join("log")) {
            files.extend(entries.flatten().map(|e| e.path()));
        }
        let mut said = String::new();
        for f in files {
            let text = std::fs::read_to_string(&f).unwrap_or_default();
            let lines: Vec<&str> = text.lines().collect();
            said.push_str(&format!("== {}\n", f.display()));
            for l in &lines[lines.len().saturating_sub(20)..] {
                said.push_str(l);
                said.push('\n');
            }
        }
        said
    }

    fn pid_file(&self) -> String {
        self.dir.path().join("pid").display().to_string()
    }

    /// Runs `rabbitmqctl -n NODE args` and returns its output.
    pub fn ctl(&self, args: &[&str]) -> String {
        let mut cmd = Command::new(Path::new(SBIN).join("rabbitmqctl"));
        self.env(&mut cmd);
        let out = cmd
            .arg("-n")
            .arg(&self.node)
            .args(args)
            .stdin(Stdio::null())
            .output()
            .expect("rabbitmqctl");
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    }

    /// Stops the node (its data stays, so `launch` brings back durable queues and messages).
    pub fn stop(&mut self) {
        if let Some(mut child) = self.server.take() {
            self.ctl(&["stop"]);
            let start = Instant::now();
            while start.elapsed() < Duration::from_secs(20) {
                if let Ok(Some(_)) = child.try_wait() {
                    return;
                }
                std::thread::sleep(Duration::from_millis(50));
            }
            kill_group(&mut child);
        }
    }

    pub fn url(&self) -> String {
        format!("amqp://guest:guest@127.0.0.1:{}/%2F", self.port)
    }

    /// How many messages wait in `queue` (ready + unacknowledged).
    pub fn queue_depth(&self, queue: &str) -> Option<u64> {
        let out = self.ctl(&["list_queues", "-q", "name", "messages"]);
        out.lines().find_map(|l| {
            let mut parts = l.split_whitespace();
            (parts.next() == Some(queue))
                .then(|| parts.next()?.parse().ok())
                .flatten()
        })
    }

    pub fn dir(&self) -> PathBuf {
        self.dir.path().to_path_buf()
    }
}

/// Runs `openssl` with `args` (split at spaces) in `dir`, failing the test with its output if
/// it fails.
pub fn openssl(dir: &Path, args: &str) {
    let out = Command::new("openssl")
        .args(args.split_whitespace())
        .current_dir(dir)
        .stdin(Stdio::null())
        .output()
        .expect("openssl (apt-get install openssl)");
    assert!(
        out.status.success(),
        "openssl {args}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn kill_group(child: &mut Child) {
    // The server script runs beam as a child; the process group holds both.
    // `--`: procps' `kill -KILL -123` would signal every process the user owns.
    let _ = Command::new("kill")
        .args(["-s", "KILL", "--", &format!("-{}", child.id())])
        .status();
    let _ = child.kill();
    let _ = child.wait();
}

impl Drop for Broker {
    fn drop(&mut self) {
        self.stop();
        let _ = Command::new("epmd")
            .args(["-port", &self.epmd_port.to_string(), "-kill"])
            .env("ERL_EPMD_ADDRESS", "127.0.0.1")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }
}
