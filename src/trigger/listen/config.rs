//! `taskhook listen`'s configuration: fedora-messaging's `config.toml` format, so an operator
//! reuses the file they have, plus taskhook's own settings under `[consumer_config]`.
//!
//! The file is read into a TOML value and then validated key by key into [`ListenConfig`],
//! which cannot hold an invalid setting; every problem names its key.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use toml::{Table, Value};

use crate::config::DEFAULT_REF;

/// Keys fedora-messaging knows that `listen` does not use: accepted silently, so a consumer's
/// existing file works as it is. (`passive_declares`, `publish_priority` and `monitoring` mean
/// for `listen` what they mean for fedora-messaging; `publish_exchange` and `topic_prefix` are
/// compared with the jobs' exchange and topic.)
const FEDORA_MESSAGING_KEYS: &[&str] = &["callback", "log_config"];

/// RabbitMQ's default `consumer_timeout`: how long a delivery may stay unacknowledged before
/// the broker closes the channel and delivers it again.
const CONSUMER_TIMEOUT: Duration = Duration::from_secs(30 * 60);

/// Where jobs go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Jobs {
    /// Published to the broker as fedora-messaging messages, with publisher confirms, with the
    /// routing key `<topic>.<item_type>`, and with `priority` when set.
    Amqp {
        exchange: String,
        topic: String,
        priority: Option<u8>,
    },
    /// A command run per job, the job JSON on its stdin; exit 0 is delivered. One still
    /// running after `timeout` (when set) is killed, with what it started, and has failed.
    Exec {
        argv: Vec<String>,
        timeout: Option<Duration>,
    },
    /// JSON Lines on stdout.
    Stdout,
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Tls {
    pub ca_cert: Option<PathBuf>,
    pub certfile: Option<PathBuf>,
    pub keyfile: Option<PathBuf>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Exchange {
    pub name: String,
    pub kind: String,
    pub durable: bool,
    pub auto_delete: bool,
    pub arguments: Table,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Queue {
    pub name: String,
    pub durable: bool,
    pub auto_delete: bool,
    pub exclusive: bool,
    pub arguments: Table,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Binding {
    pub queue: String,
    pub exchange: String,
    pub routing_keys: Vec<String>,
}

/// A validated configuration.
#[derive(Debug, Clone, PartialEq)]
pub struct ListenConfig {
    pub amqp_url: String,
    pub tls: Tls,
    pub client_properties: BTreeMap<String, String>,
    pub exchanges: Vec<Exchange>,
    pub queues: Vec<Queue>,
    pub bindings: Vec<Binding>,
    /// fedora-messaging's `passive_declares`: exchanges and queues are only checked to exist,
    /// for a user the broker does not let create them (bindings are declared either way).
    pub passive_declares: bool,
    pub prefetch_count: u16,
    /// fedora-messaging's `[monitoring]` address and port: where `/live`, `/ready` and the
    /// metrics are served unless `--metrics` says.
    pub monitoring: Option<std::net::SocketAddr>,
    /// The `--remote` template.
    pub remote: String,
    pub fallback_branch: Option<String>,
    pub rawhide_branch: String,
    pub rawhide_release: Option<u32>,
    pub manifest_ref: String,
    pub timeout: Duration,
    pub cache_dir: Option<PathBuf>,
    /// How many repositories the http(s) fetch cache keeps.
    pub cache_max_repos: usize,
    pub jobs: Jobs,
    pub max_retries: u32,
}

/// fedora-messaging's settings for what it publishes. Jobs go where `jobs_exchange` and
/// `jobs_topic` say (taskhook's contract: routing key `<jobs_topic>.<item_type>`); the first two
/// are only compared with them, to warn of a file that expects otherwise.
struct Publishing {
    /// `publish_exchange`.
    exchange: Option<String>,
    /// `topic_prefix`.
    topic_prefix: Option<String>,
    /// `publish_priority`: the jobs' AMQP priority.
    priority: Option<u8>,
}

/// What is wrong with a configuration file.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read {path}: {message}")]
    Read { path: String, message: String },
    #[error("{path}: not valid TOML: {message}")]
    Syntax { path: String, message: String },
    #[error("{path}: {key}: {message}")]
    Key {
        path: String,
        key: String,
        message: String,
    },
}

impl ListenConfig {
    /// Reads and validates the file at `path`. Unknown keys are returned as warnings.
    pub fn load(path: &Path) -> Result<(ListenConfig, Vec<String>), ConfigError> {
        let shown = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|e| ConfigError::Read {
            path: shown.clone(),
            message: e.to_string(),
        })?;
        Self::parse(&text, &shown)
    }

    /// Validates a configuration's text; `path` names it in messages.
    pub fn parse(text: &str, path: &str) -> Result<(ListenConfig, Vec<String>), ConfigError> {
        let table: Table = text
            .parse()
            .map_err(|e: toml::de::Error| ConfigError::Syntax {
                path: path.to_string(),
                message: e.message().to_string(),
            })?;
        let mut r = Reader {
            path,
            warnings: Vec::new(),
        };
        let config = r.config(&table)?;
        Ok((config, r.warnings))
    }
}

struct Reader<'a> {
    path: &'a str,
    warnings: Vec<String>,
}

type Checked<T> = Result<T, ConfigError>;

impl Reader<'_> {
    fn bad(&self, key: &str, message: impl Into<String>) -> ConfigError {
        ConfigError::Key {
            path: self.path.to_string(),
            key: key.to_string(),
            message: message.into(),
        }
    }

    fn unknown(&mut self, table: &Table, prefix: &str, known: &[&str]) {
        for k in table.keys() {
            if !known.contains(&k.as_str()) {
                let key = if prefix.is_empty() {
                    k.clone()
                } else {
                    format!("{prefix}.{k}")
                };
                let hint = crate::validate::diag::did_you_mean(k, known)
                    .map(|s| format!(" (did you mean `{s}`?)"))
                    .unwrap_or_default();
                self.warnings.push(format!(
                    "{}: unknown key `{key}` is ignored{hint}",
                    self.path
                ));
            }
        }
    }

    fn table<'t>(&self, parent: &'t Table, key: &str, name: &str) -> Checked<Option<&'t Table>> {
        match parent.get(key) {
            None => Ok(None),
            Some(Value::Table(t)) => Ok(Some(t)),
            Some(_) => Err(self.bad(name, "expected a table")),
        }
    }

    fn string(&self, t: &Table, key: &str, name: &str) -> Checked<Option<String>> {
        match t.get(key) {
            None => Ok(None),
            Some(Value::String(s)) => Ok(Some(s.clone())),
            Some(_) => Err(self.bad(name, "expected a string")),
        }
    }

    /// A string where fedora-messaging also allows an empty value or `false` for "none".
    fn optional_path(&self, t: &Table, key: &str, name: &str) -> Checked<Option<PathBuf>> {
        match t.get(key) {
            None | Some(Value::Boolean(false)) => Ok(None),
            Some(Value::String(s)) if s.is_empty() => Ok(None),
            Some(Value::String(s)) => Ok(Some(PathBuf::from(s))),
            Some(_) => Err(self.bad(name, "expected a file path (a string)")),
        }
    }

    fn boolean(&self, t: &Table, key: &str, name: &str, default: bool) -> Checked<bool> {
        match t.get(key) {
            None => Ok(default),
            Some(Value::Boolean(b)) => Ok(*b),
            Some(_) => Err(self.bad(name, "expected true or false")),
        }
    }

    fn integer(&self, t: &Table, key: &str, name: &str, max: i64) -> Checked<Option<i64>> {
        match t.get(key) {
            None => Ok(None),
            Some(Value::Integer(n)) if (0..=max).contains(n) => Ok(Some(*n)),
            Some(Value::Integer(n)) => {
                Err(self.bad(name, format!("{n} is out of range (0 to {max})")))
            }
            Some(_) => Err(self.bad(name, "expected a whole number")),
        }
    }

    fn config(&mut self, t: &Table) -> Checked<ListenConfig> {
        let known = [
            "amqp_url",
            "tls",
            "client_properties",
            "exchanges",
            "queues",
            "bindings",
            "qos",
            "consumer_config",
            "passive_declares",
            "publish_exchange",
            "topic_prefix",
            "publish_priority",
            "monitoring",
        ];
        let all: Vec<&str> = known.iter().chain(FEDORA_MESSAGING_KEYS).copied().collect();
        self.unknown(t, "", &all);
        let amqp_url = self
            .string(t, "amqp_url", "amqp_url")?
            .unwrap_or_else(|| "amqp://localhost/%2F".to_string());
        if !(amqp_url.starts_with("amqp://") || amqp_url.starts_with("amqps://")) {
            return Err(self.bad(
                "amqp_url",
                format!("`{amqp_url}` is not an amqp:// or amqps:// URL"),
            ));
        }
        let tls = self.tls(t)?;
        if tls.certfile.is_some() && !amqp_url.starts_with("amqps://") {
            return Err(self.bad(
                "tls.certfile",
                "client certificates need an amqps:// amqp_url",
            ));
        }
        let client_properties = self.client_properties(t)?;
        let exchanges = self.exchanges(t)?;
        let queues = self.queues(t)?;
        let bindings = self.bindings(t, &queues)?;
        let passive_declares = self.boolean(t, "passive_declares", "passive_declares", false)?;
        if passive_declares && queues.iter().any(|q| q.name.is_empty()) {
            return Err(self.bad(
                "passive_declares",
                "a queue the broker names cannot be checked, only made: add a [queues.NAME] \
                 table for the queue that exists",
            ));
        }
        let prefetch_count = match self.table(t, "qos", "qos")? {
            Some(q) => {
                self.unknown(q, "qos", &["prefetch_count", "prefetch_size"]);
                self.integer(
                    q,
                    "prefetch_count",
                    "qos.prefetch_count",
                    i64::from(u16::MAX),
                )?
                .map_or(10, |n| n as u16)
            }
            None => 10,
        };
        if prefetch_count == 0 {
            return Err(self.bad(
                "qos.prefetch_count",
                "0 (unlimited) would let the broker send every queued message at once; set a bound such as 10",
            ));
        }
        let cc = self
            .table(t, "consumer_config", "consumer_config")?
            .ok_or_else(|| {
                self.bad(
                    "consumer_config",
                    "missing: taskhook's settings (at least `remote`) live here",
                )
            })?;
        let monitoring = self.monitoring(t)?;
        // fedora-messaging's publishing settings: the jobs' priority, and what the jobs'
        // exchange and topic are compared with.
        let publishing = Publishing {
            exchange: self.string(t, "publish_exchange", "publish_exchange")?,
            topic_prefix: self.string(t, "topic_prefix", "topic_prefix")?,
            priority: self
                .integer(t, "publish_priority", "publish_priority", 255)?
                .map(|n| n as u8),
        };
        self.consumer_config(
            cc,
            publishing,
            ListenConfig {
                amqp_url,
                tls,
                client_properties,
                exchanges,
                queues,
                bindings,
                passive_declares,
                prefetch_count,
                monitoring,
                remote: String::new(),
                fallback_branch: None,
                rawhide_branch: "rawhide".into(),
                rawhide_release: None,
                manifest_ref: DEFAULT_REF.into(),
                timeout: Duration::from_secs(20),
                cache_dir: None,
                cache_max_repos: crate::trigger::fetch::cache::DEFAULT_MAX_REPOS,
                jobs: Jobs::Stdout,
                max_retries: 3,
            },
        )
    }

    fn tls(&mut self, t: &Table) -> Checked<Tls> {
        let Some(tls) = self.table(t, "tls", "tls")? else {
            return Ok(Tls::default());
        };
        self.unknown(tls, "tls", &["ca_cert", "certfile", "keyfile"]);
        let out = Tls {
            ca_cert: self.optional_path(tls, "ca_cert", "tls.ca_cert")?,
            certfile: self.optional_path(tls, "certfile", "tls.certfile")?,
            keyfile: self.optional_path(tls, "keyfile", "tls.keyfile")?,
        };
        if out.certfile.is_some() != out.keyfile.is_some() {
            return Err(self.bad(
                "tls",
                "certfile and keyfile go together: give both or neither",
            ));
        }
        for (key, p) in [
            ("tls.ca_cert", &out.ca_cert),
            ("tls.certfile", &out.certfile),
            ("tls.keyfile", &out.keyfile),
        ] {
            if let Some(p) = p {
                if !p.is_file() {
                    return Err(self.bad(key, format!("{} is not a readable file", p.display())));
                }
            }
        }
        Ok(out)
    }

    fn client_properties(&self, t: &Table) -> Checked<BTreeMap<String, String>> {
        let mut out = BTreeMap::new();
        out.insert("app".to_string(), "taskhook listen".to_string());
        out.insert("product".to_string(), "taskhook".to_string());
        out.insert("version".to_string(), env!("CARGO_PKG_VERSION").to_string());
        if let Some(cp) = self.table(t, "client_properties", "client_properties")? {
            let scalar = |v: &Value| match v {
                Value::String(s) => Some(s.clone()),
                Value::Integer(_) | Value::Boolean(_) | Value::Float(_) => Some(v.to_string()),
                _ => None,
            };
            for (k, v) in cp {
                // A list (fedora-messaging's `fedora.toml` has `app_contacts_email = [...]`)
                // goes as one string, its items joined: the connection's properties are text
                // for the broker's administrators.
                let v = match v {
                    Value::Array(items) => items
                        .iter()
                        .map(scalar)
                        .collect::<Option<Vec<_>>>()
                        .map(|v| v.join(", ")),
                    v => scalar(v),
                };
                let v = v.ok_or_else(|| {
                    self.bad(
                        &format!("client_properties.{k}"),
                        "expected a string (or a list of them)",
                    )
                })?;
                out.insert(k.clone(), v);
            }
        }
        Ok(out)
    }

    /// `[monitoring]`: `address` (an IP address; empty or left out: every interface) and
    /// `port`; an empty table, as fedora-messaging's default, serves nothing.
    fn monitoring(&mut self, t: &Table) -> Checked<Option<std::net::SocketAddr>> {
        let Some(m) = self.table(t, "monitoring", "monitoring")? else {
            return Ok(None);
        };
        self.unknown(m, "monitoring", &["address", "port"]);
        if m.is_empty() {
            return Ok(None);
        }
        let port = self
            .integer(m, "port", "monitoring.port", i64::from(u16::MAX))?
            .ok_or_else(|| self.bad("monitoring.port", "missing: the port to serve on"))?;
        let address = self
            .string(m, "address", "monitoring.address")?
            .filter(|a| !a.is_empty())
            .unwrap_or_else(|| "0.0.0.0".into());
        let ip: std::net::IpAddr = address.parse().map_err(|_| {
            self.bad(
                "monitoring.address",
                format!("`{address}` is not an IP address (such as 127.0.0.1 or ::1)"),
            )
        })?;
        Ok(Some(std::net::SocketAddr::new(ip, port as u16)))
    }

    fn arguments(&self, t: &Table, name: &str) -> Checked<Table> {
        Ok(self
            .table(t, "arguments", &format!("{name}.arguments"))?
            .cloned()
            .unwrap_or_default())
    }

    fn exchanges(&mut self, t: &Table) -> Checked<Vec<Exchange>> {
        let mut out = Vec::new();
        for (name, v) in self
            .table(t, "exchanges", "exchanges")?
            .into_iter()
            .flatten()
        {
            let key = format!("exchanges.{name}");
            let Value::Table(e) = v else {
                return Err(self.bad(&key, "expected a table"));
            };
            self.unknown(e, &key, &["type", "durable", "auto_delete", "arguments"]);
            let kind = self
                .string(e, "type", &format!("{key}.type"))?
                .unwrap_or_else(|| "topic".into());
            if !["topic", "direct", "fanout", "headers"].contains(&kind.as_str()) {
                return Err(self.bad(
                    &format!("{key}.type"),
                    format!("`{kind}` is not an exchange type (topic, direct, fanout, headers)"),
                ));
            }
            out.push(Exchange {
                name: name.clone(),
                kind,
                durable: self.boolean(e, "durable", &format!("{key}.durable"), true)?,
                auto_delete: self.boolean(
                    e,
                    "auto_delete",
                    &format!("{key}.auto_delete"),
                    false,
                )?,
                arguments: self.arguments(e, &key)?,
            });
        }
        Ok(out)
    }

    fn queues(&mut self, t: &Table) -> Checked<Vec<Queue>> {
        let mut out = Vec::new();
        for (name, v) in self.table(t, "queues", "queues")?.into_iter().flatten() {
            let key = format!("queues.{name}");
            let Value::Table(q) = v else {
                return Err(self.bad(&key, "expected a table"));
            };
            self.unknown(
                q,
                &key,
                &["durable", "auto_delete", "exclusive", "arguments"],
            );
            out.push(Queue {
                name: name.clone(),
                durable: self.boolean(q, "durable", &format!("{key}.durable"), false)?,
                auto_delete: self.boolean(q, "auto_delete", &format!("{key}.auto_delete"), true)?,
                exclusive: self.boolean(q, "exclusive", &format!("{key}.exclusive"), true)?,
                arguments: self.arguments(q, &key)?,
            });
        }
        if t.get("queues").is_none() {
            // fedora-messaging's default: one queue the broker names, which lives as long as the
            // connection (as in the `fedora.toml` it ships for Fedora's public broker).
            self.warnings.push(format!(
                "{}: queues: none configured, so the broker names one that lives only while the \
                 listener is connected (events published while it is not are missed): for a \
                 trigger, add a durable [queues.NAME] table, shared by every listener",
                self.path
            ));
            out.push(Queue {
                name: String::new(),
                durable: false,
                auto_delete: true,
                exclusive: true,
                arguments: Table::new(),
            });
        }
        if out.is_empty() {
            return Err(self.bad(
                "queues",
                "no queue to consume: add a [queues.NAME] table (durable, shared by every listener) and a [[bindings]] entry for it",
            ));
        }
        Ok(out)
    }

    fn bindings(&mut self, t: &Table, queues: &[Queue]) -> Checked<Vec<Binding>> {
        let list = match t.get("bindings") {
            // fedora-messaging's default: everything, to the queue the broker names.
            None if queues.iter().any(|q| q.name.is_empty()) => {
                self.warnings.push(format!(
                    "{}: bindings: none configured, so every message on amq.topic is consumed \
                     (`#`), as fedora-messaging does: bind only the topics taskhook plans",
                    self.path
                ));
                let mut b = Table::new();
                b.insert("routing_keys".into(), Value::Array(vec!["#".into()]));
                vec![Value::Table(b)]
            }
            None => Vec::new(),
            Some(Value::Array(a)) => a.clone(),
            Some(_) => {
                return Err(self.bad("bindings", "expected an array of tables ([[bindings]])"))
            }
        };
        let mut out = Vec::new();
        for (i, v) in list.iter().enumerate() {
            let key = format!("bindings[{i}]");
            let Value::Table(b) = v else {
                return Err(self.bad(&key, "expected a table"));
            };
            self.unknown(b, &key, &["queue", "exchange", "routing_keys"]);
            // Without a name, as for fedora-messaging: the queue the broker names.
            let queue = self
                .string(b, "queue", &format!("{key}.queue"))?
                .unwrap_or_default();
            if !queues.iter().any(|q| q.name == queue) {
                return Err(self.bad(
                    &format!("{key}.queue"),
                    if queue.is_empty() {
                        "missing: name one of the [queues] tables (a binding without one is \
                         for the queue the broker names when no [queues] table is given)"
                            .to_string()
                    } else {
                        format!("`{queue}` is not one of the [queues] tables")
                    },
                ));
            }
            let exchange = self
                .string(b, "exchange", &format!("{key}.exchange"))?
                .unwrap_or_else(|| "amq.topic".into());
            let routing_keys = match b.get("routing_keys") {
                Some(Value::Array(keys)) => keys
                    .iter()
                    .map(|k| k.as_str().map(str::to_string))
                    .collect::<Option<Vec<_>>>()
                    .ok_or_else(|| self.bad(&format!("{key}.routing_keys"), "expected a list of strings"))?,
                Some(_) => return Err(self.bad(&format!("{key}.routing_keys"), "expected a list of strings")),
                None => return Err(self.bad(&format!("{key}.routing_keys"), "missing: the topics to consume, such as [\"org.fedoraproject.prod.buildsys.build.state.change\"]")),
            };
            out.push(Binding {
                queue,
                exchange,
                routing_keys,
            });
        }
        Ok(out)
    }

    fn consumer_config(
        &mut self,
        cc: &Table,
        publishing: Publishing,
        mut c: ListenConfig,
    ) -> Checked<ListenConfig> {
        let known = [
            "remote",
            "fallback_branch",
            "rawhide_branch",
            "rawhide_release",
            "manifest_ref",
            "timeout",
            "cache_dir",
            "cache_max_repos",
            "jobs",
            "jobs_exchange",
            "jobs_topic",
            "exec",
            "exec_timeout",
            "max_retries",
        ];
        self.unknown(cc, "consumer_config", &known);
        let key = |k: &str| format!("consumer_config.{k}");
        c.remote = self
            .string(cc, "remote", &key("remote"))?
            .ok_or_else(|| self.bad(&key("remote"), "missing: the task repositories' URL, such as \"https://src.fedoraproject.org/{namespace}/{name}.git\""))?;
        if let Err(e) = crate::trigger::fetch::expand_remote(&c.remote, Some("x"), Some("rpms")) {
            return Err(self.bad(&key("remote"), e));
        }
        c.fallback_branch = self.string(cc, "fallback_branch", &key("fallback_branch"))?;
        if let Some(b) = self.string(cc, "rawhide_branch", &key("rawhide_branch"))? {
            c.rawhide_branch = b;
        }
        c.rawhide_release = self
            .integer(cc, "rawhide_release", &key("rawhide_release"), 10_000)?
            .map(|n| n as u32);
        if let Some(r) = self.string(cc, "manifest_ref", &key("manifest_ref"))? {
            if !r.starts_with("refs/") {
                return Err(self.bad(
                    &key("manifest_ref"),
                    format!("`{r}` is not a full ref name (refs/...)"),
                ));
            }
            c.manifest_ref = r;
        }
        if let Some(s) = self.integer(cc, "timeout", &key("timeout"), 3600)? {
            if s == 0 {
                return Err(self.bad(&key("timeout"), "must be at least 1 second"));
            }
            c.timeout = Duration::from_secs(s as u64);
        }
        c.cache_dir = self.optional_path(cc, "cache_dir", &key("cache_dir"))?;
        if let Some(n) = self.integer(cc, "cache_max_repos", &key("cache_max_repos"), 1 << 20)? {
            if n == 0 {
                return Err(self.bad(&key("cache_max_repos"), "must be at least 1"));
            }
            c.cache_max_repos = n as usize;
        }
        c.max_retries = self
            .integer(cc, "max_retries", &key("max_retries"), 100)?
            .map_or(3, |n| n as u32);
        let jobs = self
            .string(cc, "jobs", &key("jobs"))?
            .unwrap_or_else(|| "amqp".into());
        let exec = self.string(cc, "exec", &key("exec"))?;
        c.jobs = match jobs.as_str() {
            "amqp" => {
                let topic = self
                    .string(cc, "jobs_topic", &key("jobs_topic"))?
                    .unwrap_or_else(|| "taskhook.job".into());
                let exchange = self
                    .string(cc, "jobs_exchange", &key("jobs_exchange"))?
                    .unwrap_or_else(|| "amq.topic".into());
                // A file written for a fedora-messaging publisher may expect these to apply.
                if let Some(prefix) = publishing.topic_prefix.filter(|p| !p.is_empty()) {
                    let prefix = prefix.trim_end_matches('.');
                    if !topic.starts_with(&format!("{prefix}.")) {
                        self.warnings.push(format!(
                            "{}: topic_prefix `{prefix}` is not put before the jobs' topic: jobs \
                             go out as `{topic}.<item_type>`; to publish them under it, set \
                             consumer_config.jobs_topic = \"{prefix}.{topic}\"",
                            self.path
                        ));
                    }
                }
                if let Some(other) = publishing.exchange.filter(|x| *x != exchange) {
                    self.warnings.push(format!(
                        "{}: publish_exchange `{other}` is not where jobs go: they go to `{exchange}`; \
                         to publish them to `{other}`, set consumer_config.jobs_exchange = \"{other}\"",
                        self.path
                    ));
                }
                Jobs::Amqp {
                    exchange,
                    topic,
                    priority: publishing.priority,
                }
            }
            "exec" => {
                let command = exec.ok_or_else(|| {
                    self.bad(
                        &key("exec"),
                        "missing: `jobs = \"exec\"` runs this command per job",
                    )
                })?;
                let argv = shlex::split(&command)
                    .filter(|a| !a.is_empty())
                    .ok_or_else(|| {
                        self.bad(
                            &key("exec"),
                            format!("`{command}` is not a command line (check its quotes)"),
                        )
                    })?;
                // Seconds; none (or 0) lets a command run as long as it takes.
                let timeout = self
                    .integer(cc, "exec_timeout", &key("exec_timeout"), 7 * 24 * 3600)?
                    .filter(|s| *s > 0)
                    .map(|s| Duration::from_secs(s as u64));
                // The message stays unacked while its jobs run: past the broker's consumer
                // timeout the broker takes it back and delivers it again, jobs and all.
                if timeout.is_none_or(|t| t >= CONSUMER_TIMEOUT) {
                    self.warnings.push(format!(
                        "{}: consumer_config.exec_timeout: {}: a message stays unacknowledged \
                         while its jobs run, and one held past the broker's consumer timeout \
                         (RabbitMQ's consumer_timeout, {} minutes by default) is taken back and \
                         delivered again, its jobs run again: set exec_timeout below it, or have \
                         the command hand the job on rather than run it",
                        self.path,
                        timeout.map_or("not set".to_string(), |t| format!("{} s", t.as_secs())),
                        CONSUMER_TIMEOUT.as_secs() / 60
                    ));
                }
                Jobs::Exec { argv, timeout }
            }
            "stdout" => Jobs::Stdout,
            other => {
                return Err(self.bad(
                    &key("jobs"),
                    format!("`{other}` is none of amqp, exec, stdout"),
                ))
            }
        };
        Ok(c)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = r#"
amqp_url = "amqp://guest:guest@127.0.0.1:5672/%2F"
callback = "ignored:Consumer"

[client_properties]
app = "taskhook at example"

[exchanges."amq.topic"]
type = "topic"
durable = true

[queues.taskhook]
durable = true
auto_delete = false
exclusive = false
arguments = { "x-dead-letter-exchange" = "taskhook.dlx" }

[[bindings]]
queue = "taskhook"
exchange = "amq.topic"
routing_keys = ["org.fedoraproject.prod.buildsys.build.state.change"]

[qos]
prefetch_count = 25

[consumer_config]
remote = "https://src.fedoraproject.org/{namespace}/{name}.git"
fallback_branch = "rawhide"
rawhide_release = 44
timeout = 10
jobs = "exec"
exec = "runner --from-job -"
exec_timeout = 600
"#;

    #[test]
    fn a_fedora_messaging_file_with_consumer_config() {
        let (c, warnings) = ListenConfig::parse(GOOD, "c.toml").expect("valid");
        assert!(warnings.is_empty(), "{warnings:?}");
        assert_eq!(c.prefetch_count, 25);
        assert_eq!(c.queues[0].name, "taskhook");
        assert!(c.queues[0].durable && !c.queues[0].exclusive);
        assert_eq!(c.bindings[0].routing_keys.len(), 1);
        assert_eq!(c.rawhide_release, Some(44));
        assert_eq!(c.timeout, Duration::from_secs(10));
        assert_eq!(
            c.jobs,
            Jobs::Exec {
                argv: vec!["runner".into(), "--from-job".into(), "-".into()],
                timeout: Some(Duration::from_secs(600)),
            }
        );
        assert_eq!(c.client_properties["app"], "taskhook at example");
    }

    #[test]
    fn exec_jobs_that_may_outlast_the_brokers_consumer_timeout_are_warned_of() {
        for (setting, warned) in [
            ("exec_timeout = 600", None),
            ("exec_timeout = 1799", None),
            ("exec_timeout = 1800", Some("1800 s")),
            ("exec_timeout = 0", Some("not set")),
            ("", Some("not set")),
        ] {
            let text = GOOD.replace("exec_timeout = 600", setting);
            let (_, warnings) = ListenConfig::parse(&text, "c.toml").expect("valid");
            match warned {
                None => assert!(warnings.is_empty(), "{setting}: {warnings:?}"),
                Some(what) => assert!(
                    warnings.len() == 1
                        && warnings[0].starts_with(&format!(
                            "c.toml: consumer_config.exec_timeout: {what}: a message stays \
                             unacknowledged while its jobs run"
                        ))
                        && warnings[0].contains("30 minutes by default"),
                    "{setting}: {warnings:?}"
                ),
            }
        }
    }

    #[test]
    fn jobs_go_where_taskhooks_keys_say_and_fedora_messagings_are_compared_with_them() {
        let amqp = GOOD.replace(
            "jobs = \"exec\"\nexec = \"runner --from-job -\"",
            "jobs = \"amqp\"",
        );
        let (c, _) = ListenConfig::parse(&amqp, "c.toml").expect("valid");
        assert!(!c.passive_declares);
        let plain = Jobs::Amqp {
            exchange: "amq.topic".into(),
            topic: "taskhook.job".into(),
            priority: None,
        };
        assert_eq!(c.jobs, plain);
        // fedora-messaging's sample file: its defaults, which agree with taskhook's.
        let sample = "passive_declares = false\npublish_exchange = \"amq.topic\"\n\
                      topic_prefix = \"\"\n";
        let (c, warnings) = ListenConfig::parse(&format!("{sample}{amqp}"), "c.toml").expect("ok");
        assert!(warnings.is_empty(), "{warnings:?}");
        assert_eq!(c.jobs, plain);
        // A file for a publisher elsewhere: the jobs' routing key stays `<jobs_topic>.<type>`,
        // and the warnings say which key moves them.
        let set = "passive_declares = true\npublish_exchange = \"fm\"\n\
                   topic_prefix = \"org.fedoraproject.prod\"\npublish_priority = 3\n";
        let text = format!("{set}{amqp}");
        let (c, warnings) = ListenConfig::parse(&text, "c.toml").expect("valid");
        assert!(c.passive_declares);
        assert_eq!(
            c.jobs,
            Jobs::Amqp {
                exchange: "amq.topic".into(),
                topic: "taskhook.job".into(),
                priority: Some(3),
            }
        );
        assert_eq!(
            warnings,
            [
                "c.toml: topic_prefix `org.fedoraproject.prod` is not put before the jobs' topic: \
                 jobs go out as `taskhook.job.<item_type>`; to publish them under it, set \
                 consumer_config.jobs_topic = \"org.fedoraproject.prod.taskhook.job\"",
                "c.toml: publish_exchange `fm` is not where jobs go: they go to `amq.topic`; to \
                 publish them to `fm`, set consumer_config.jobs_exchange = \"fm\"",
            ]
        );
        // Set as the warnings say: no warning.
        let text = format!(
            "{text}jobs_exchange = \"fm\"\njobs_topic = \"org.fedoraproject.prod.taskhook.job\"\n"
        );
        let (c, warnings) = ListenConfig::parse(&text, "c.toml").expect("valid");
        assert!(warnings.is_empty(), "{warnings:?}");
        assert_eq!(
            c.jobs,
            Jobs::Amqp {
                exchange: "fm".into(),
                topic: "org.fedoraproject.prod.taskhook.job".into(),
                priority: Some(3),
            }
        );
        for (bad, key) in [
            ("passive_declares = \"yes\"\n", "passive_declares"),
            ("publish_priority = 256\n", "publish_priority"),
            ("topic_prefix = 1\n", "topic_prefix"),
            ("publish_exchange = false\n", "publish_exchange"),
        ] {
            let err = ListenConfig::parse(&format!("{bad}{amqp}"), "c.toml")
                .expect_err(bad)
                .to_string();
            assert!(err.starts_with(&format!("c.toml: {key}: ")), "{err}");
        }
    }

    #[test]
    fn fedora_messagings_own_file_for_the_public_broker_is_read_as_fedora_messaging_reads_it() {
        // The shape of the `fedora.toml` fedora-messaging ships: no [queues], a binding without
        // a queue; the broker names the queue, which lives while the connection does.
        let text = "amqp_url = \"amqps://fedora:@rabbitmq.fedoraproject.org/%2Fpublic_pubsub\"\n\
                    callback = \"fedora_messaging.example:printer\"\n\
                    [client_properties]\napp = \"Example\"\n\
                    app_contacts_email = [\"a@example.org\", \"b@example.org\"]\n\
                    [exchanges.\"amq.topic\"]\ntype = \"topic\"\ndurable = true\n\
                    auto_delete = false\narguments = {}\n\
                    [[bindings]]\nexchange = \"amq.topic\"\nrouting_keys = [\"a.b\"]\n\
                    [consumer_config]\nremote = \"git://h/{name}\"\n\
                    [qos]\nprefetch_size = 0\nprefetch_count = 25\n\
                    [log_config]\nversion = 1\n[log_config.root]\nlevel = \"ERROR\"\n";
        let (c, warnings) = ListenConfig::parse(text, "f.toml").expect("valid");
        assert_eq!(
            c.client_properties["app_contacts_email"],
            "a@example.org, b@example.org"
        );
        let server_named = Queue {
            name: String::new(),
            durable: false,
            auto_delete: true,
            exclusive: true,
            arguments: Table::new(),
        };
        assert_eq!(c.queues, vec![server_named.clone()]);
        assert_eq!(c.bindings.len(), 1);
        assert_eq!(c.bindings[0].queue, "");
        assert_eq!(warnings.len(), 1, "{warnings:?}");
        assert!(warnings[0].starts_with("f.toml: queues: none configured"));
        // Without bindings either: everything, as fedora-messaging's defaults say, and said.
        let bare = "[consumer_config]\nremote = \"git://h/{name}\"\n";
        let (c, warnings) = ListenConfig::parse(bare, "f.toml").expect("valid");
        assert_eq!(c.queues, vec![server_named]);
        assert_eq!(c.bindings[0].routing_keys, vec!["#".to_string()]);
        assert_eq!(c.bindings[0].exchange, "amq.topic");
        assert_eq!(warnings.len(), 2, "{warnings:?}");
        assert!(warnings[1].starts_with("f.toml: bindings: none configured"));
        // A binding without a queue, where queues are named, and a server-named queue checked
        // passively, are mistakes.
        let err = ListenConfig::parse(&GOOD.replace("queue = \"taskhook\"\n", ""), "c.toml")
            .expect_err("no queue")
            .to_string();
        assert!(
            err.starts_with("c.toml: bindings[0].queue: missing"),
            "{err}"
        );
        let err = ListenConfig::parse(&format!("passive_declares = true\n{bare}"), "c.toml")
            .expect_err("passive")
            .to_string();
        assert!(err.starts_with("c.toml: passive_declares: "), "{err}");
    }

    #[test]
    fn the_readmes_configuration_is_valid_and_means_what_its_comments_say() {
        let readme = include_str!("../../../README.md");
        let section = readme
            .split("## Run the trigger")
            .nth(1)
            .expect("the README's listen section");
        let toml = section
            .split("```toml\n")
            .nth(1)
            .and_then(|s| s.split("```").next())
            .expect("a toml block");
        // The certificate files are checked to be readable: any readable file stands for them.
        let readable = concat!(env!("CARGO_MANIFEST_DIR"), "/README.md");
        let toml: String = toml
            .lines()
            .map(|line| match line.split_once(" = ") {
                Some((k @ ("ca_cert" | "keyfile" | "certfile"), _)) => {
                    format!("{k} = \"{readable}\"\n")
                }
                _ => format!("{line}\n"),
            })
            .collect();
        let (c, warnings) = ListenConfig::parse(&toml, "README.md").expect("valid");
        assert!(warnings.is_empty(), "{warnings:?}");
        assert!(c.passive_declares);
        assert_eq!(
            c.jobs,
            Jobs::Amqp {
                exchange: "amq.topic".into(),
                topic: "org.fedoraproject.prod.taskhook.job".into(),
                priority: None,
            }
        );
        assert_eq!(c.queues[0].name, "taskhook-trigger");
        assert!(c.tls.certfile.is_some());
    }

    #[test]
    fn monitoring_is_where_the_health_checks_and_metrics_are_served() {
        let with = |m: &str| ListenConfig::parse(&format!("{GOOD}\n[monitoring]\n{m}"), "c.toml");
        let at = |m: &str| with(m).expect("valid").0.monitoring;
        assert_eq!(
            ListenConfig::parse(GOOD, "c.toml")
                .expect("valid")
                .0
                .monitoring,
            None
        );
        assert_eq!(
            at(""),
            None,
            "an empty table serves nothing, as for fedora-messaging"
        );
        assert_eq!(
            at("port = 8080"),
            Some("0.0.0.0:8080".parse().expect("addr"))
        );
        assert_eq!(
            at("address = \"\"\nport = 8080"),
            Some("0.0.0.0:8080".parse().expect("addr"))
        );
        assert_eq!(
            at("address = \"::1\"\nport = 9"),
            Some("[::1]:9".parse().expect("addr"))
        );
        for (m, key) in [
            ("address = \"127.0.0.1\"", "monitoring.port"),
            ("port = 70000", "monitoring.port"),
            ("address = \"localhost\"\nport = 1", "monitoring.address"),
        ] {
            let err = with(m).expect_err(m).to_string();
            assert!(err.starts_with(&format!("c.toml: {key}: ")), "{err}");
        }
    }

    #[test]
    fn every_problem_names_its_key() {
        let head = GOOD.split("[consumer_config]").next().expect("head");
        let cases = [
            (
                "remote = \"git://h/{name}\"\njobs = \"exec\"",
                "consumer_config.exec",
            ),
            (
                "remote = \"git://h/{name}\"\njobs = \"kafka\"",
                "consumer_config.jobs",
            ),
            (
                "remote = \"git://h/{name}\"\ntimeout = \"10\"",
                "consumer_config.timeout",
            ),
            ("remote = \"git://h/{nam}\"", "consumer_config.remote"),
            ("jobs = \"stdout\"", "consumer_config.remote"),
            (
                "remote = \"git://h/{name}\"\nmax_retries = 1000",
                "consumer_config.max_retries",
            ),
            (
                "remote = \"git://h/{name}\"\ncache_max_repos = 0",
                "consumer_config.cache_max_repos",
            ),
        ];
        for (body, key) in cases {
            let text = format!("{head}[consumer_config]\n{body}\n");
            let err = ListenConfig::parse(&text, "c.toml")
                .expect_err(body)
                .to_string();
            assert!(
                err.starts_with(&format!("c.toml: {key}: ")),
                "{body}: {err}"
            );
        }
        let text = format!(
            "{head}[consumer_config]\nremote = \"git://h/{{name}}\"\ncache_max_repos = 50\n"
        );
        let (c, _) = ListenConfig::parse(&text, "c.toml").expect("valid");
        assert_eq!(c.cache_max_repos, 50);
        let err = ListenConfig::parse("amqp_url = 5", "c.toml")
            .expect_err("bad")
            .to_string();
        assert_eq!(err, "c.toml: amqp_url: expected a string");
        let err = ListenConfig::parse(
            &GOOD.replace("prefetch_count = 25", "prefetch_count = 0"),
            "c.toml",
        )
        .expect_err("bad")
        .to_string();
        assert!(
            err.starts_with("c.toml: qos.prefetch_count: 0 (unlimited)"),
            "{err}"
        );
        let err = ListenConfig::parse(
            "[queues]\n[consumer_config]\nremote = \"git://h/x\"",
            "c.toml",
        )
        .expect_err("bad")
        .to_string();
        assert!(
            err.starts_with("c.toml: queues: no queue to consume"),
            "{err}"
        );
    }

    #[test]
    fn unknown_keys_are_warnings_with_a_suggestion() {
        let (_, warnings) =
            ListenConfig::parse(&GOOD.replace("fallback_branch", "fallback_brnch"), "c.toml")
                .expect("valid");
        assert_eq!(
            warnings,
            vec!["c.toml: unknown key `consumer_config.fallback_brnch` is ignored (did you mean `fallback_branch`?)"]
        );
    }
}
