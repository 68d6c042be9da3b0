//! The hooks binary as `scripts/build-server` makes it where Rust's musl target is installed:
//! static, with musl's C library and dlmalloc as its allocator. Built here (a debug build, in a
//! target directory of its own), installed beside `taskhook` as a server installs the two, and
//! pushed to through real git.

mod util;

use std::path::{Path, PathBuf};
use std::process::Command;

use util::*;

/// Rust's musl target for this machine, when its standard library is installed.
fn musl_target() -> Result<String, String> {
    let out = Command::new("rustc")
        .arg("-vV")
        .output()
        .map_err(|e| format!("cannot run rustc: {e}"))?;
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let host = text
        .lines()
        .find_map(|l| l.strip_prefix("host: "))
        .ok_or("rustc -vV names no host")?;
    let target = host
        .strip_suffix("-unknown-linux-gnu")
        .map(|arch| format!("{arch}-unknown-linux-musl"))
        .ok_or_else(|| format!("no musl target for {host}"))?;
    let out = Command::new("rustc")
        .args(["--print", "target-libdir", "--target", &target])
        .output()
        .map_err(|e| format!("cannot run rustc: {e}"))?;
    let dir = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
    let has_std = std::fs::read_dir(&dir).is_ok_and(|entries| {
        entries
            .flatten()
            .any(|e| e.file_name().to_string_lossy().starts_with("libstd-"))
    });
    if has_std {
        Ok(target)
    } else {
        Err(format!(
            "{target} is not installed (rustup target add {target})"
        ))
    }
}

/// Builds the musl hooks binary; its path.
fn build_musl_hook(target: &str) -> PathBuf {
    let target_dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("musl-hook");
    let out = Command::new(env!("CARGO"))
        .args(["build", "--quiet", "--no-default-features"])
        .args(["--bin", "taskhook-hook", "--target", target])
        .env("CARGO_TARGET_DIR", &target_dir)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("cargo build");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    target_dir.join(target).join("debug/taskhook-hook")
}

#[test]
fn the_static_musl_hook_binary_rejects_and_records_as_the_usual_one() {
    let target = match musl_target() {
        Ok(t) => t,
        Err(why) => {
            // .ci/run installs the target; a developer's `cargo test` may not have it.
            eprintln!("note: the musl hooks binary is not tested here: {why}");
            return;
        }
    };
    let hook_bin = build_musl_hook(&target);
    let elf = std::fs::read(&hook_bin).expect("read the binary");
    assert!(
        !elf.windows(b"ld-linux".len()).any(|w| w == b"ld-linux"),
        "{} asks for a dynamic loader",
        hook_bin.display()
    );

    let s = Server::uninstalled();
    let bin_dir = s.dir.path().join("bin");
    std::fs::create_dir(&bin_dir).expect("mkdir");
    std::os::unix::fs::symlink(bin(), bin_dir.join("taskhook")).expect("symlink");
    std::os::unix::fs::symlink(&hook_bin, bin_dir.join("taskhook-hook")).expect("symlink");
    let taskhook_path = bin_dir.join("taskhook");
    let out = taskhook(
        &[
            "install",
            "--bin",
            &taskhook_path.to_string_lossy(),
            "srv.git",
        ],
        s.dir.path(),
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let shim = std::fs::read_to_string(s.bare().join("hooks/pre-receive")).expect("shim");
    let first = shim.lines().next().unwrap_or_default();
    assert_eq!(
        first,
        format!("#!{} hook-shim", bin_dir.join("taskhook-hook").display())
    );

    // A formula with a typo in a variable: refused, with where and what.
    s.commit_file(
        "rpmlint/runtask.yml",
        &GOOD.replace("${koji_build}", "${koji_bulid}"),
    );
    let out = s.push("master");
    let said = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(!out.status.success(), "{said}");
    assert!(said.contains("rpmlint/runtask.yml:"), "{said}");
    assert!(said.contains("koji_bulid"), "{said}");
    assert_eq!(s.meta(), None, "a refused push wrote a manifest");

    // Mended, and a second task: accepted, and the manifest is what a full build computes.
    s.commit_file("rpmlint/runtask.yml", GOOD);
    s.commit_file("abicheck/runtask.yml", &GOOD.replace("rpmlint", "abicheck"));
    let out = s.push("master");
    let said = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(out.status.success(), "{said}");
    assert!(said.contains("2 tasks ok"), "{said}");
    s.assert_manifest_is_exact("master");
    s.commit_file(
        "abicheck/runtask.yml",
        &GOOD.replace("rpmlint", "abi-check"),
    );
    assert!(s.push("master").status.success());
    s.assert_manifest_is_exact("master");
    s.assert_fsck_clean();
    let (code, said) = doctor_says(s.dir.path());
    assert_eq!(code, Some(0), "{said}");
}
