//! How every command ends: the exit codes, in one place, and the error that carries one.
//!
//! This module sits below every command so that the hooks, the trigger and the CLI share one
//! notion of failure without importing each other.

/// Exit codes, in one place. Documented in README.md ("Exit codes").
pub mod exit {
    /// Success: the tree is valid (warnings allowed), the push is accepted, the command worked.
    pub const OK: u8 = 0;
    /// Invalid input: errors in the tasks, a rejected push, a malformed event or manifest,
    /// an unreachable remote.
    pub const INVALID: u8 = 1;
    /// Usage error or internal error (bad arguments, bad configuration, git failures).
    pub const USAGE: u8 = 2;
}

/// An error that ends a command, with the exit code it maps to.
#[derive(Debug)]
pub struct Failure {
    pub code: u8,
    pub message: String,
}

impl Failure {
    pub fn usage(message: impl Into<String>) -> Self {
        Failure {
            code: exit::USAGE,
            message: message.into(),
        }
    }

    pub fn invalid(message: impl Into<String>) -> Self {
        Failure {
            code: exit::INVALID,
            message: message.into(),
        }
    }
}

impl<E: std::error::Error> From<E> for Failure {
    fn from(e: E) -> Self {
        Failure::usage(e.to_string())
    }
}

/// What a command returns: its exit code, or the failure that ended it.
pub type CmdResult = Result<u8, Failure>;

/// The first 12 characters of an object id, for messages.
pub fn short(id: &str) -> &str {
    id.get(..12).unwrap_or(id)
}

/// `println!` that never panics: a closed stdout (`taskhook ... | head`) ends the output, not
/// the process with a panic.
#[macro_export]
macro_rules! outln {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stdout().lock(), $($arg)*);
    }};
}

/// `TASKHOOK_TRACE=1`: each step of a hook says on stderr how long after the start of `main`
/// it ended, so an admin can see where a slow push spends its time.
pub mod trace {
    use std::sync::OnceLock;
    use std::time::Instant;

    static START: OnceLock<Option<Instant>> = OnceLock::new();

    /// Called first thing in `main`.
    pub fn start() {
        START.get_or_init(|| std::env::var_os("TASKHOOK_TRACE").map(|_| Instant::now()));
    }

    /// Says that `step` just ended (when tracing), in one write: stderr is unbuffered, and a
    /// line written in pieces can be split by git's side band or by another thread's line.
    pub fn step(step: &str) {
        if let Some(Some(t)) = START.get() {
            let line = format!(
                "taskhook: trace: {step} at {:.3} ms\n",
                t.elapsed().as_secs_f64() * 1000.0
            );
            let _ = std::io::Write::write_all(&mut std::io::stderr(), line.as_bytes());
        }
    }
}
