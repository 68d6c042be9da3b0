//! Links GCC's unwinder into the binary (`libgcc_eh.a`, as `gcc -static-libgcc` does) instead
//! of loading `libgcc_s.so.1` at every start.
//!
//! The hooks are short processes, so their start counts: git starts both for every push.
//! Loading `libgcc_s.so.1` runs its constructor, `__cpu_indicator_init`, which asks the CPU
//! about itself with a dozen `cpuid` instructions; in a virtual machine each of those traps to
//! the hypervisor (about 10 µs here), so the library took 0.15 ms of every hook run
//! (docs/BENCHMARKS.md, "seventh round"). Rust's standard library names `gcc_s` for the
//! unwinder on `*-linux-gnu`, and no flag turns that into the static archive, so this script
//! puts a linker script named `libgcc_s.so` first on the library path that links
//! `libgcc_eh.a` instead: the same unwinder (panics, backtraces and `catch_unwind` work as
//! before), without the library and its constructor.
//!
//! Nothing changes when the C compiler has no `libgcc_eh.a`, for other targets, for static
//! builds (`crt-static` already links it), for fuzzing builds, or with
//! `TASKHOOK_SHARED_LIBGCC=1` in the build's environment, for packagers whose rules ask for the
//! shared library.

use std::path::PathBuf;
use std::process::Command;

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rerun-if-env-changed=TASKHOOK_SHARED_LIBGCC");
    let var = |name: &str| std::env::var(name).unwrap_or_default();
    let static_build = var("CARGO_CFG_TARGET_FEATURE")
        .split(',')
        .any(|f| f == "crt-static");
    // Fuzzing builds link libFuzzer's C++ runtime, which loads libgcc_s.so.1 itself: one
    // unwinder per process is the safe number.
    let fuzzing = std::env::var_os("CARGO_CFG_FUZZING").is_some();
    if var("CARGO_CFG_TARGET_OS") != "linux"
        || var("CARGO_CFG_TARGET_ENV") != "gnu"
        || static_build
        || fuzzing
        || !var("TASKHOOK_SHARED_LIBGCC").is_empty()
    {
        return;
    }
    let Some(archive) = libgcc_eh() else {
        return;
    };
    let dir = PathBuf::from(var("OUT_DIR")).join("libgcc");
    let script = format!("INPUT({})\n", archive.display());
    if std::fs::create_dir_all(&dir).is_ok()
        && std::fs::write(dir.join("libgcc_s.so"), script).is_ok()
    {
        println!("cargo:rustc-link-search=native={}", dir.display());
    }
}

/// Where `cc`, the linker rustc drives on these targets, has `libgcc_eh.a`, if it has one:
/// asked for a file it does not have, `-print-file-name` answers with the bare name.
fn libgcc_eh() -> Option<PathBuf> {
    let out = Command::new("cc")
        .arg("-print-file-name=libgcc_eh.a")
        .output()
        .ok()?;
    let path = PathBuf::from(String::from_utf8(out.stdout).ok()?.trim());
    let usable = out.status.success()
        && path.is_absolute()
        && path.is_file()
        && !path.to_string_lossy().contains(['(', ')', ' ', '"']);
    usable.then_some(path)
}
