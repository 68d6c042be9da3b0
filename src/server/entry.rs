//! How git starts a hook, for both binaries: `taskhook` and `taskhook-hook`.
//!
//! git runs two hooks on every push, each a new process, so what a hook process costs before
//! it does any work counts on every push. `taskhook-hook` (`src/bin/taskhook-hook.rs`) is a
//! second, smaller binary of the same crate that only runs the hooks: linked without the
//! command line parser, the bus service and its TLS and async runtime, it is about half the
//! size, needs about 6,000 fewer relocations at load and no `libm`, and a hook in it takes
//! about 0.2 ms less (docs/BENCHMARKS.md, "tenth round"). `taskhook install` points the shims at it
//! when it sits beside `taskhook` ([`crate::server::install::hook_binary`]); `taskhook`
//! itself still takes the same command lines, for shims written before it existed and for
//! hook dispatchers that call `taskhook hook <HOOK>`.

use std::ffi::OsString;
use std::path::Path;
use std::process::ExitCode;

use crate::error::{CmdResult, Failure};
use crate::server::{hooks, install};

/// Runs the hook `args` (the command line after the program name) name, if they name one
/// exactly: `hook pre-receive`, `hook post-receive`, `hook update REF OLD NEW`, or
/// `hook-shim SHIM [ARGS]`, which is how the kernel starts a binary from a shim whose `#!`
/// line names it (the shim says which hook it is and where the system git config is).
/// Anything else is `None`.
pub fn run_hook(args: &[OsString]) -> Option<CmdResult> {
    if args.first().is_some_and(|a| a == install::SHIM_ARG) {
        return Some(from_shim(&args[1..]));
    }
    let args: Vec<&str> = args.iter().map(|a| a.to_str()).collect::<Option<_>>()?;
    hook_by_name(&args)
}

fn hook_by_name(args: &[&str]) -> Option<CmdResult> {
    match args {
        ["hook", "pre-receive"] => Some(hooks::pre_receive()),
        ["hook", "post-receive"] => Some(hooks::post_receive()),
        ["hook", "update", r, old, new] if !r.starts_with('-') => Some(hooks::update(&[
            r.to_string(),
            old.to_string(),
            new.to_string(),
        ])),
        _ => None,
    }
}

/// Runs the hook a shim stands for; `args` are the shim's path and git's arguments.
fn from_shim(args: &[OsString]) -> CmdResult {
    // Only the kernel runs this, with a path; `--help` or nothing at all gets the usage hint.
    let Some(shim) = args
        .first()
        .filter(|a| !a.to_string_lossy().starts_with('-'))
    else {
        return Err(Failure::usage(format!(
            "`{} {}` is run by the kernel from a hook shim's `#!` line, with the \
             shim's path; to run a hook by hand use `taskhook hook <HOOK>`",
            program(),
            install::SHIM_ARG
        )));
    };
    let (hook, system) = install::read_shim(Path::new(shim)).map_err(Failure::usage)?;
    if let Some(system) = system {
        crate::git::use_system_config(system.into());
    }
    let rest: Vec<&str> = args[1..]
        .iter()
        .map(|a| a.to_str())
        .collect::<Option<_>>()
        .ok_or_else(|| Failure::usage("hook arguments are not UTF-8"))?;
    let mut line = vec!["hook", hook.as_str()];
    line.extend(rest);
    hook_by_name(&line).ok_or_else(|| {
        Failure::usage(format!(
            "the shim {} runs `taskhook hook {}` with {} argument(s), which is not a hook \
             taskhook runs; reinstall with `taskhook install`",
            Path::new(shim).display(),
            hook,
            line.len() - 2
        ))
    })?
}

/// The name this process was started as, for messages (`taskhook` or `taskhook-hook`).
fn program() -> String {
    std::env::args_os()
        .next()
        .and_then(|a| {
            Path::new(&a)
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
        })
        .unwrap_or_else(|| "taskhook".to_string())
}

/// The exit status of a command's result; a failure's message goes to stderr.
pub fn finish(result: CmdResult) -> ExitCode {
    match result {
        Ok(code) => ExitCode::from(code),
        Err(f) => {
            eprintln!("taskhook: error: {}", f.message);
            ExitCode::from(f.code)
        }
    }
}
