//! `taskhook-hook`: taskhook's server hooks and nothing else, for the shims `taskhook install`
//! writes. git starts two hook processes on every push; this binary leaves out what only the
//! other commands need (the command line parser, the bus service with its TLS and async
//! runtime), so each of those starts sooner. See `taskhook::server::entry`.

use std::ffi::OsString;
use std::process::ExitCode;

use taskhook::error::exit;
use taskhook::server::entry::{finish, run_hook};

const HELP: &str = "\
taskhook-hook: runs taskhook's server hooks, as the shims `taskhook install` writes call it.

Usage:
  taskhook-hook hook pre-receive              (git's ref updates on stdin)
  taskhook-hook hook post-receive             (git's ref updates on stdin)
  taskhook-hook hook update <REF> <OLD> <NEW>
  taskhook-hook hook-shim <SHIM> [ARGS]...    (run by the kernel from a shim's `#!` line)

It takes exactly these command lines of `taskhook` and runs the same code; it is a smaller
binary so that the two processes git starts on every push start sooner. Keep it beside
`taskhook` (the same directory, the same version): `taskhook install` then points the shims
at it, and at `taskhook` itself when it is not there. Everything else (installing, checking,
planning, the bus service): `taskhook --help`. Manual: `man taskhook-hook` (the page of
`taskhook hook`, which `taskhook extras` installs).
";

// musl's own allocator is slow for the hooks' many small allocations (docs/BENCHMARKS.md,
// thirty-fourth round); the glibc build keeps glibc's.
#[cfg(target_env = "musl")]
#[global_allocator]
static ALLOCATOR: dlmalloc::GlobalDlmalloc = dlmalloc::GlobalDlmalloc;

fn main() -> ExitCode {
    taskhook::error::trace::start();
    let args: Vec<OsString> = std::env::args_os().skip(1).collect();
    if let Some(result) = run_hook(&args) {
        return finish(result);
    }
    match args.first().and_then(|a| a.to_str()) {
        Some("--help" | "-h" | "help") if args.len() == 1 => {
            print!("{HELP}");
            ExitCode::from(exit::OK)
        }
        Some("--version" | "-V") if args.len() == 1 => {
            println!("taskhook-hook {}", env!("CARGO_PKG_VERSION"));
            ExitCode::from(exit::OK)
        }
        _ => {
            let given: Vec<String> = args
                .iter()
                .map(|a| a.to_string_lossy().escape_debug().to_string())
                .collect();
            eprintln!(
                "taskhook-hook: error: not a hook command line: {:?}\n\n{HELP}",
                given.join(" ")
            );
            ExitCode::from(exit::USAGE)
        }
    }
}
