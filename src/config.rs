//! Settings, read from git config (`taskhook.*`) so admins use the tools they know:
//! `git config --system taskhook.policy warn`. The table in README.md lists every key.

use std::time::Duration;

use crate::git::Repo;

pub const DEFAULT_REF: &str = "refs/meta/tasks";

/// Every `taskhook.*` key, as the README's table lists them.
pub const KEYS: &[&str] = &[
    "policy",
    "manifestRef",
    "namespaces",
    "maxFormulaBytes",
    "maxYamlDepth",
    "maxYamlNodes",
    "maxAliases",
    "maxTasks",
    "maxBranches",
    "maxDepth",
    "timeBudget",
    "staleLockSeconds",
    "verdictHook",
];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Policy {
    /// Errors reject the push.
    Reject,
    /// Errors are printed and the push is accepted; invalid tasks are listed in the manifest.
    Warn,
}

impl Policy {
    pub fn as_str(self) -> &'static str {
        match self {
            Policy::Reject => "reject",
            Policy::Warn => "warn",
        }
    }

    pub fn parse(s: &str) -> Option<Policy> {
        match s {
            "reject" => Some(Policy::Reject),
            "warn" => Some(Policy::Warn),
            _ => None,
        }
    }
}

/// Resource limits for one document.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    pub max_bytes: usize,
    pub max_depth: usize,
    /// Nodes after alias expansion: bounds alias bombs.
    pub max_nodes: usize,
    pub max_aliases: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_bytes: 64 * 1024,
            max_depth: 32,
            max_nodes: 20_000,
            max_aliases: 100,
        }
    }
}

/// Settings that change what counts as valid.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rules {
    pub namespaces: Vec<String>,
    pub limits: Limits,
}

impl Default for Rules {
    fn default() -> Self {
        Rules {
            namespaces: vec!["scratch".into(), "dist".into(), "pkg".into()],
            limits: Limits::default(),
        }
    }
}

/// Discovery settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Bounds {
    /// How many directory levels below the root are searched (the root is level 0).
    pub max_depth: usize,
    pub max_tasks: usize,
    /// Directory entries the walk may list in all: bounds its work on any tree.
    pub max_entries: usize,
}

impl Default for Bounds {
    fn default() -> Self {
        Bounds {
            max_depth: 4,
            max_tasks: 10_000,
            max_entries: 200_000,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    pub policy: Policy,
    pub manifest_ref: String,
    pub rules: Rules,
    pub bounds: Bounds,
    /// How long a hook may spend validating one push.
    pub time_budget: Duration,
    /// A ref lock older than this is taken to be left by a killed process.
    pub stale_lock: Duration,
    /// Which hook gives the verdict on pushed branches: `pre-receive` (the whole push at once)
    /// or `update` (each ref on its own; pre-receive then only guards the manifest ref).
    pub verdict_hook: VerdictHook,
    /// The most branches with tasks (or findings) the manifest lists: each costs the server a
    /// branch file of up to a few MB, against the pusher's hundred bytes for a ref.
    pub max_branches: usize,
}

/// The hook that validates pushed branches.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VerdictHook {
    PreReceive,
    Update,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            policy: Policy::Reject,
            manifest_ref: DEFAULT_REF.to_string(),
            rules: Rules::default(),
            bounds: Bounds::default(),
            time_budget: Duration::from_secs(60),
            stale_lock: Duration::from_secs(5),
            verdict_hook: VerdictHook::PreReceive,
            max_branches: 1000,
        }
    }
}

#[derive(Debug, thiserror::Error)]
#[error("invalid git config `{key} = {value}`: {expected}")]
pub struct ConfigError {
    pub key: String,
    pub value: String,
    pub expected: String,
}

impl Config {
    /// Reads `taskhook.*` from the repository's git config (repo, global, system).
    pub fn load(repo: &Repo) -> Result<Config, ConfigError> {
        Config::from_lookup(|key| repo.config(key))
    }

    /// Warnings for `taskhook.*` keys that taskhook does not know (a typo is otherwise silently
    /// ignored), with the key it probably meant.
    pub fn unknown_keys(repo: &Repo) -> Vec<String> {
        let mut out = Vec::new();
        for key in repo.config_keys("taskhook") {
            if KEYS.iter().any(|k| k.eq_ignore_ascii_case(&key)) {
                continue;
            }
            let hint = crate::suggest::did_you_mean(&key, KEYS)
                .map(|k| format!(" (did you mean `taskhook.{k}`?)"))
                .unwrap_or_default();
            out.push(format!("unknown setting `taskhook.{key}` is ignored{hint}"));
        }
        out
    }

    /// Builds a config from any key lookup; unset keys keep their defaults.
    pub fn from_lookup(get: impl Fn(&str) -> Option<String>) -> Result<Config, ConfigError> {
        let mut c = Config::default();
        let bad = |key: &str, value: &str, expected: &str| ConfigError {
            key: key.to_string(),
            value: value.to_string(),
            expected: expected.to_string(),
        };
        let number = |key: &str, min: u64| -> Result<Option<u64>, ConfigError> {
            // Only byte sizes and counts take suffixes; depths and seconds are plain numbers.
            let sized = !matches!(
                key,
                "taskhook.maxYamlDepth" | "taskhook.staleLockSeconds" | "taskhook.maxDepth"
            );
            match get(key) {
                None => Ok(None),
                Some(v) => {
                    let parsed = if sized {
                        parse_size(&v)
                    } else {
                        v.trim().parse::<u64>().ok()
                    };
                    parsed.filter(|n| *n >= min).map(Some).ok_or_else(|| {
                        let suffixes = if sized {
                            " (k, m suffixes allowed)"
                        } else {
                            ""
                        };
                        bad(
                            key,
                            &v,
                            &format!("expected a whole number of at least {min}{suffixes}"),
                        )
                    })
                }
            }
        };
        if let Some(v) = get("taskhook.policy") {
            c.policy = Policy::parse(v.trim())
                .ok_or_else(|| bad("taskhook.policy", &v, "expected `reject` or `warn`"))?;
        }
        if let Some(v) = get("taskhook.manifestRef") {
            if !v.starts_with("refs/") || v.starts_with("refs/heads/") || v.contains("..") {
                return Err(bad(
                    "taskhook.manifestRef",
                    &v,
                    "expected a ref outside refs/heads/, such as refs/meta/tasks",
                ));
            }
            c.manifest_ref = v;
        }
        if let Some(v) = get("taskhook.namespaces") {
            let list: Vec<String> = v
                .split([',', ' '])
                .filter(|s| !s.is_empty())
                .map(str::to_string)
                .collect();
            if list.is_empty() {
                return Err(bad(
                    "taskhook.namespaces",
                    &v,
                    "expected a comma-separated list of namespaces",
                ));
            }
            c.rules.namespaces = list;
        }
        if let Some(n) = number("taskhook.maxFormulaBytes", 64)? {
            c.rules.limits.max_bytes = n as usize;
        }
        if let Some(n) = number("taskhook.maxYamlDepth", 4)? {
            // Deeper trees would be walked recursively; no plausible formula nests this deep.
            if n > 256 {
                return Err(bad(
                    "taskhook.maxYamlDepth",
                    &n.to_string(),
                    "expected at most 256",
                ));
            }
            c.rules.limits.max_depth = n as usize;
        }
        if let Some(n) = number("taskhook.maxYamlNodes", 16)? {
            c.rules.limits.max_nodes = n as usize;
        }
        if let Some(n) = number("taskhook.maxAliases", 0)? {
            c.rules.limits.max_aliases = n as usize;
        }
        if let Some(n) = number("taskhook.maxTasks", 1)? {
            c.bounds.max_tasks = n as usize;
        }
        if let Some(n) = number("taskhook.maxBranches", 1)? {
            c.max_branches = n as usize;
        }
        if let Some(n) = number("taskhook.maxDepth", 0)? {
            c.bounds.max_depth = n as usize;
        }
        if let Some(v) = get("taskhook.timeBudget") {
            c.time_budget = parse_duration(&v).ok_or_else(|| {
                bad(
                    "taskhook.timeBudget",
                    &v,
                    "expected seconds (`60`) or milliseconds (`500ms`), more than zero and at most a day",
                )
            })?;
        }
        if let Some(n) = number("taskhook.staleLockSeconds", 1)? {
            if n > 86_400 {
                return Err(bad(
                    "taskhook.staleLockSeconds",
                    &n.to_string(),
                    "expected at most 86400 (a day)",
                ));
            }
            c.stale_lock = Duration::from_secs(n);
        }
        if let Some(v) = get("taskhook.verdictHook") {
            c.verdict_hook = match v.trim() {
                "pre-receive" => VerdictHook::PreReceive,
                "update" => VerdictHook::Update,
                _ => {
                    return Err(bad(
                        "taskhook.verdictHook",
                        &v,
                        "expected `pre-receive` or `update`",
                    ))
                }
            };
        }
        Ok(c)
    }

    /// A digest of everything that changes a verdict. A cached result is reused only when the
    /// fingerprint matches, so a config change or an upgrade revalidates everything. `rules`
    /// counts the changes to what the checks find, for builds of one version: 3 for the YAML
    /// constructs PyYAML reads otherwise, keys compared as Python compares them, and at most
    /// 50 findings a formula.
    pub fn fingerprint(&self) -> String {
        use sha2::{Digest, Sha256};
        let text = format!(
            "taskhook {} rules 3; namespaces={:?}; limits={:?}; bounds={:?}",
            env!("CARGO_PKG_VERSION"),
            self.rules.namespaces,
            self.rules.limits,
            self.bounds
        );
        let digest = Sha256::digest(text.as_bytes());
        hex(&digest[..8])
    }
}

pub fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write;
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        let _ = write!(s, "{b:02x}");
    }
    s
}

/// A duration of at most a day: anything longer is a mistake, and deadlines are computed by
/// adding it to the current time.
fn parse_duration(v: &str) -> Option<Duration> {
    const DAY: Duration = Duration::from_secs(86_400);
    let v = v.trim();
    let d = match v.strip_suffix("ms") {
        Some(ms) => Duration::from_millis(ms.trim().parse().ok()?),
        None => Duration::from_secs(v.strip_suffix('s').unwrap_or(v).trim().parse().ok()?),
    };
    (!d.is_zero() && d <= DAY).then_some(d)
}

fn parse_size(v: &str) -> Option<u64> {
    let v = v.trim();
    let (digits, mult) = match v.chars().last()? {
        'k' | 'K' => (&v[..v.len() - 1], 1024),
        'm' | 'M' => (&v[..v.len() - 1], 1024 * 1024),
        _ => (v, 1),
    };
    digits.parse::<u64>().ok()?.checked_mul(mult)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_keys_and_rejects_nonsense() {
        let c = Config::from_lookup(|k| match k {
            "taskhook.policy" => Some("warn".into()),
            "taskhook.maxFormulaBytes" => Some("128k".into()),
            "taskhook.namespaces" => Some("dist, pkg".into()),
            _ => None,
        })
        .expect("valid");
        assert_eq!(c.policy, Policy::Warn);
        assert_eq!(c.rules.limits.max_bytes, 128 * 1024);
        assert_eq!(c.rules.namespaces, vec!["dist", "pkg"]);
        let e = Config::from_lookup(|k| (k == "taskhook.policy").then(|| "maybe".into()))
            .expect_err("invalid");
        assert_eq!(
            e.to_string(),
            "invalid git config `taskhook.policy = maybe`: expected `reject` or `warn`"
        );
    }
}
