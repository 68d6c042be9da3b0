//! The command line itself: every argument is described, and the generated extras install.

mod util;

use clap::CommandFactory;
use util::*;

fn undescribed(cmd: &clap::Command, path: &str, out: &mut Vec<String>) {
    for arg in cmd.get_arguments() {
        let id = arg.get_id().as_str();
        if id == "help" || id == "version" {
            continue;
        }
        if arg.get_help().is_none()
            && arg.get_long_help().is_none()
            && arg.get_possible_values().is_empty()
        {
            out.push(format!("{path} {id}"));
        }
    }
    for sub in cmd.get_subcommands() {
        if sub.get_about().is_none() {
            out.push(format!("{path} {} (no description)", sub.get_name()));
        }
        undescribed(sub, &format!("{path} {}", sub.get_name()), out);
    }
}

#[test]
fn every_argument_and_command_has_a_description() {
    let mut missing = Vec::new();
    undescribed(&taskhook::cli::Cli::command(), "taskhook", &mut missing);
    assert!(missing.is_empty(), "undescribed: {missing:?}");
}

#[test]
fn extras_installs_man_pages_completions_and_schemas() {
    let dir = tempfile::tempdir().expect("tmp");
    let out = taskhook(&["extras", "--prefix", "p"], dir.path());
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let share = dir.path().join("p/share");
    let man =
        std::fs::read_to_string(share.join("man/man1/taskhook-checkout.1")).expect("man page");
    assert!(man.contains(".TH taskhook-checkout"), "{man}");
    // `man taskhook-hook` finds the page of `taskhook hook`, which says it is the hooks-only
    // binary's manual too.
    let hook = std::fs::read_to_string(share.join("man/man1/taskhook-hook.1")).expect("man page");
    assert!(hook.contains("hooks\\-only binary"), "{hook}");
    let bash =
        std::fs::read_to_string(share.join("bash-completion/completions/taskhook")).expect("bash");
    assert!(bash.contains("listen") && bash.contains("checkout"));
    assert!(share.join("zsh/site-functions/_taskhook").is_file());
    assert!(share
        .join("fish/vendor_completions.d/taskhook.fish")
        .is_file());
    let schema: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(share.join("taskhook/schema/formula.schema.json"))
            .expect("schema"),
    )
    .expect("json");
    assert!(schema.get("$id").is_none(), "no placeholder $id");
}

/// The binary starts without loading `libgcc_s.so.1`: build.rs links GCC's unwinder in, since the
/// library's constructor asks the CPU about itself with `cpuid`, which traps to the hypervisor
/// in a virtual machine (0.15 ms of every hook run in docs/BENCHMARKS.md's seventh round).
#[test]
#[cfg(all(
    target_os = "linux",
    target_env = "gnu",
    not(target_feature = "crt-static")
))]
fn the_binary_does_not_load_libgcc_s() {
    let probe = std::process::Command::new("cc")
        .arg("-print-file-name=libgcc_eh.a")
        .output();
    let has_archive = probe.is_ok_and(|o| {
        std::path::Path::new(String::from_utf8_lossy(&o.stdout).trim()).is_absolute()
    });
    if !has_archive || std::env::var_os("TASKHOOK_SHARED_LIBGCC").is_some() {
        return; // build.rs keeps the shared library then
    }
    for path in [
        env!("CARGO_BIN_EXE_taskhook"),
        env!("CARGO_BIN_EXE_taskhook-hook"),
    ] {
        let binary = std::fs::read(path).expect("read the binary");
        assert!(
            !names(&binary, "libgcc_s.so.1"),
            "{path} names libgcc_s.so.1: build.rs did not link libgcc_eh.a"
        );
    }
}

fn names(binary: &[u8], library: &str) -> bool {
    binary
        .windows(library.len())
        .any(|w| w == library.as_bytes())
}

/// `taskhook-hook` is the hooks without the rest: the bus service's runtime is what makes
/// `taskhook` load `libm`, so a hooks binary that needs it has pulled that in again.
#[test]
#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn the_hooks_binary_leaves_the_rest_out() {
    let hooks = std::fs::read(env!("CARGO_BIN_EXE_taskhook-hook")).expect("read");
    let full = std::fs::read(env!("CARGO_BIN_EXE_taskhook")).expect("read");
    assert!(hooks.len() < full.len());
    if names(&full, "libm.so.6") {
        assert!(!names(&hooks, "libm.so.6"), "taskhook-hook links libm");
    }
}

fn hooks_binary(args: &[&str]) -> std::process::Output {
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_taskhook-hook"));
    hermetic(&mut cmd)
        .args(args)
        .stdin(std::process::Stdio::null())
        .output()
        .expect("run taskhook-hook")
}

#[test]
fn the_hooks_binary_explains_itself_and_refuses_anything_else() {
    for help in [&["--help"][..], &["-h"], &["help"]] {
        let out = hooks_binary(help);
        assert_eq!(out.status.code(), Some(0));
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(text.contains("taskhook-hook hook pre-receive"), "{text}");
        assert!(text.contains("taskhook --help"), "{text}");
    }
    let out = hooks_binary(&["--version"]);
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        format!("taskhook-hook {}", env!("CARGO_PKG_VERSION"))
    );
    for wrong in [
        &[][..],
        &["check", "."],
        &["hook"],
        &["hook", "pre-receive", "extra"],
        &["hook", "update", "refs/heads/a"],
        &["--help", "extra"],
    ] {
        let out = hooks_binary(wrong);
        assert_eq!(out.status.code(), Some(2), "{wrong:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains("not a hook command line"), "{wrong:?}: {err}");
        assert!(err.contains("Usage:"), "{err}");
    }
    // A shim's marker argument without a shim is the kernel's business, and says so by name.
    let out = hooks_binary(&["hook-shim"]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("`taskhook-hook hook-shim` is run by the kernel"),
        "{err}"
    );
}

/// A repository named by a path above the working directory (`../srv.git`), or found from inside
/// a bare repository (its `refs/`), is the one opened: each command failed with "cannot open
/// its objects: .../../.git/objects is not a directory".
#[test]
fn a_repository_above_the_working_directory_is_found() {
    let s = Server::new();
    s.commit_file("rpmlint/runtask.yml", GOOD);
    assert!(s.push("master").status.success());
    let elsewhere = s.dir.path().join("elsewhere");
    std::fs::create_dir(&elsewhere).expect("mkdir");
    let inside = s.bare().join("refs");
    for (cwd, args) in [
        (&elsewhere, vec!["manifest", "show", "../srv.git"]),
        (&elsewhere, vec!["check", "--rev", "master", "../srv.git"]),
        (&elsewhere, vec!["doctor", "../srv.git"]),
        (&elsewhere, vec!["manifest", "rebuild", "../srv.git"]),
        (&inside, vec!["manifest", "show"]),
        (&inside, vec!["manifest", "show", ".."]),
        (&inside, vec!["check", "--rev", "master"]),
    ] {
        let out = taskhook(&args, cwd);
        assert_eq!(
            out.status.code(),
            Some(0),
            "{args:?} in {}: {}{}",
            cwd.display(),
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

/// The README's systemd unit for `listen` is one systemd accepts, and its command line one
/// taskhook accepts (where systemd-analyze is installed).
#[test]
fn the_readmes_systemd_unit_is_valid() {
    let readme =
        std::fs::read_to_string(std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("README.md"))
            .expect("README");
    let unit = readme
        .split("```ini\n")
        .nth(1)
        .and_then(|s| s.split("```").next())
        .expect("the README's unit");
    let exec = unit
        .lines()
        .find_map(|l| l.strip_prefix("ExecStart="))
        .expect("ExecStart");
    let args: Vec<&str> = exec.split_whitespace().collect();
    assert_eq!(args[0], "/usr/local/bin/taskhook");
    // Its arguments, with --check: taskhook takes them (the configuration file aside).
    let dir = tempfile::tempdir().expect("tmp");
    let cfg = dir.path().join("listen.toml");
    write(
        &cfg,
        &format!(
            "[queues.q]\n[consumer_config]\nremote = \"git://h/{{name}}\"\ncache_dir = \"{}\"\n",
            dir.path().join("cache").display()
        ),
    );
    let mut line: Vec<String> = args[1..].iter().map(|a| a.to_string()).collect();
    let at = line.iter().position(|a| a == "--config").expect("--config") + 1;
    line[at] = cfg.display().to_string();
    line.push("--check".into());
    let out = taskhook_cmd().args(&line).output().expect("taskhook");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let Some(analyze) = which("systemd-analyze") else {
        eprintln!("skipped: systemd-analyze is not installed");
        return;
    };
    let path = dir.path().join("taskhook-listen.service");
    // The unit as written, but for the binary's path, which must exist for systemd to accept it.
    write(&path, &unit.replace("/usr/local/bin/taskhook", bin()));
    let out = std::process::Command::new(analyze)
        .args(["verify", "--man=no"])
        .arg(&path)
        .output()
        .expect("systemd-analyze");
    assert!(
        out.status.success() && out.stderr.is_empty(),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// `program` as found on PATH.
fn which(program: &str) -> Option<std::path::PathBuf> {
    std::env::var_os("PATH")
        .iter()
        .flat_map(std::env::split_paths)
        .map(|d| d.join(program))
        .find(|p| p.is_file())
}
