//! Project tasks: `cargo xtask setup | build | run | test`.
//!
//! `setup` installs what building and tracing need (idempotent, quiet when all is in place);
//! the other tasks call it first.

use std::{
    path::{Path, PathBuf},
    process::{Command, ExitCode},
};

use anyhow::{Context as _, bail};

mod bench;
use clap::{Parser, Subcommand};

/// bpf-linker must be built against the LLVM major of the nightly rustc (22 here).
const BPF_LINKER_VERSION: &str = "0.13.0";
const LLVM_MAJOR: &str = "22";
/// Debian packages: LLVM for bpf-linker; iproute2 and bpftool for the kernel tests; real
/// servers and clients nobody here wrote (redis, nginx, ab, memcached, iperf3, python3's
/// http.server, haproxy) for tests/servers.rs; tmux, the terminal tests/top.rs drives
/// `tracer top` in; prometheus, the real server tests/prometheus.rs scrapes `tracer live
/// --metrics` with (on its own loopback port and data directory). The prometheus and
/// haproxy packages' own services are stopped and disabled after install.
const APT_PACKAGES: &[&str] = &[
    "llvm-22-dev",
    "libpolly-22-dev",
    "libzstd-dev",
    "iproute2",
    "bpftool",
    "redis-server",
    "redis-tools",
    "nginx",
    "apache2-utils",
    "memcached",
    "iperf3",
    "python3",
    "haproxy",
    "tmux",
    "prometheus",
];
const TRACEFS: &str = "/sys/kernel/tracing";

#[derive(Parser)]
#[command(name = "xtask", about = "Project tasks for tracer")]
struct Cli {
    #[command(subcommand)]
    task: Task,
}

#[derive(Subcommand)]
enum Task {
    /// Install the toolchain pieces (nightly rust-src, LLVM 22, bpf-linker) and mount tracefs.
    Setup,
    /// Set up, then build the tracer (eBPF object embedded).
    Build {
        /// Build with optimisations.
        #[arg(long)]
        release: bool,
    },
    /// Set up, build in release mode and run the tracer (default: `demo`).
    Run {
        /// Arguments for `tracer` (after `--`).
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<String>,
    },
    /// Set up, build in release mode and measure: recording size and report speed against
    /// perf on the same tracepoints and workload; writes BENCHMARKS.md.
    Bench {
        /// A shorter workload (CI-sized).
        #[arg(long)]
        quick: bool,
        /// Run one section only and print it (BENCHMARKS.md is left alone): `offline`
        /// (recording size, report speed and memory, linearity of report and exports),
        /// `filtered` (a flood while filtering for a quiet port), `pingpong` (latency
        /// overhead and each eBPF program's cost, BTF and classic tracepoints), `syscalls`
        /// (what one syscall costs, traced and untraced), `stream` (iperf3 throughput) or
        /// `rate` (the event rate held without loss, and the tracer's CPU per event).
        #[arg(long, value_name = "SECTION")]
        only: Option<String>,
    },
    /// Set up (and cargo-fuzz), then fuzz recordings -> engine -> every sink with libFuzzer,
    /// seeded with the recorded fixtures; a crash or leak fails, its input kept in
    /// fuzz/artifacts/recording/.
    Fuzz {
        /// How long to fuzz.
        #[arg(long, default_value_t = 60)]
        seconds: u64,
    },
    /// Set up, then run every test: unit tests and the kernel tests (root needed).
    Test {
        /// Extra arguments for `cargo test` (after `--`).
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<String>,
    },
}

fn main() -> ExitCode {
    match run(Cli::parse().task) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("xtask: error: {err:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(task: Task) -> anyhow::Result<()> {
    let root = workspace_root();
    match task {
        Task::Setup => setup(),
        Task::Build { release } => {
            setup()?;
            cargo(
                &root,
                &["build", if release { "--release" } else { "--quiet" }],
            )
        }
        Task::Run { args } => {
            setup()?;
            cargo(
                &root,
                &["build", "--release", "--quiet", "--package", "tracer"],
            )?;
            let args = if args.is_empty() {
                vec!["demo".to_owned()]
            } else {
                args
            };
            let status = Command::new(root.join("target/release/tracer"))
                .args(&args)
                .status()
                .context("running target/release/tracer")?;
            if !status.success() {
                bail!("tracer exited with {status}");
            }
            Ok(())
        }
        Task::Bench { quick, only } => {
            setup()?;
            cargo(
                &root,
                &["build", "--release", "--quiet", "--package", "tracer"],
            )?;
            bench::run(&root, quick, only.as_deref())
        }
        Task::Fuzz { seconds } => {
            setup()?;
            fuzz(&root, seconds)
        }
        Task::Test { args } => {
            setup()?;
            let mut cargo_args = vec!["test", "--workspace", "--exclude", "tracer-ebpf"];
            cargo_args.extend(args.iter().map(String::as_str));
            cargo_test(&root, &cargo_args)
        }
    }
}

/// cargo-fuzz's version (its own build of libFuzzer's driver).
const CARGO_FUZZ_VERSION: &str = "0.13.2";

/// Runs the `recording` fuzz target for `seconds`, installing cargo-fuzz first if needed.
fn fuzz(root: &Path, seconds: u64) -> anyhow::Result<()> {
    let installed = output("cargo-fuzz", &["--version"])
        .is_ok_and(|version| version.contains(CARGO_FUZZ_VERSION));
    if !installed {
        eprintln!("xtask fuzz: installing cargo-fuzz {CARGO_FUZZ_VERSION}");
        cargo(
            root,
            &[
                "install",
                "cargo-fuzz",
                "--locked",
                "--version",
                CARGO_FUZZ_VERSION,
            ],
        )?;
    }
    // Seeds: the recorded fixtures (libFuzzer adds what it finds next to them).
    let corpus = root.join("fuzz/corpus/recording");
    std::fs::create_dir_all(&corpus).context("creating the fuzz corpus")?;
    for dir in ["nic-download", "loopback"] {
        let fixtures = root.join("tracer/tests/fixtures").join(dir);
        for entry in std::fs::read_dir(&fixtures).context("reading the fixtures")? {
            let path = entry?.path();
            if let Some(name) = path.file_name() {
                std::fs::copy(&path, corpus.join(name)).context("seeding the corpus")?;
            }
        }
    }
    let time = format!("-max_total_time={seconds}");
    let status = Command::new("rustup")
        .args(["run", "nightly", "cargo", "fuzz", "run", "recording"])
        .arg(&corpus)
        .args(["--fuzz-dir", "fuzz", "--", &time])
        // Inputs up to 64 KiB, memory up to 4 GiB (the reader's bounds hold it far below),
        // a fixed seed so a run is repeatable.
        .args([
            "-max_len=65536",
            "-rss_limit_mb=4096",
            "-seed=1",
            "-print_final_stats=1",
        ])
        // The fuzz build's sanitizer flags must not reach the eBPF target: skip that build.
        .env("AYA_BUILD_SKIP", "1")
        .current_dir(root)
        .status()
        .context("running cargo fuzz (rustup run nightly cargo fuzz)")?;
    if !status.success() {
        bail!("the fuzzer found a failing input ({status}): see fuzz/artifacts/recording/");
    }
    Ok(())
}

fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("xtask sits in the workspace")
        .to_owned()
}

fn cargo(root: &Path, args: &[&str]) -> anyhow::Result<()> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned());
    let status = Command::new(cargo)
        .args(args)
        .current_dir(root)
        .status()
        .context("running cargo")?;
    if !status.success() {
        bail!("cargo {} failed ({status})", args.join(" "));
    }
    Ok(())
}

/// Runs `cargo test`, passing its output through, then prints one closing line with the
/// totals of every test binary (`total: N passed, N failed, N skipped`).
fn cargo_test(root: &Path, args: &[&str]) -> anyhow::Result<()> {
    use std::io::{BufRead as _, BufReader};
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned());
    let mut child = Command::new(cargo)
        .args(args)
        .current_dir(root)
        .stdout(std::process::Stdio::piped())
        .spawn()
        .context("running cargo test")?;
    let stdout = child.stdout.take().context("cargo test stdout")?;
    let (mut passed, mut failed, mut skipped) = (0u64, 0u64, 0u64);
    for line in BufReader::new(stdout).lines() {
        let line = line.context("reading cargo test output")?;
        println!("{line}");
        if let Some(rest) = line.strip_prefix("test result: ") {
            let count = |word: &str| {
                rest.split(';')
                    .find_map(|part| {
                        part.trim()
                            .strip_suffix(word)?
                            .trim()
                            .rsplit(' ')
                            .next()?
                            .parse::<u64>()
                            .ok()
                    })
                    .unwrap_or(0)
            };
            passed += count("passed");
            failed += count("failed");
            skipped += count("ignored");
        }
    }
    let status = child.wait().context("waiting for cargo test")?;
    println!("total: {passed} passed, {failed} failed, {skipped} skipped");
    if !status.success() {
        bail!("cargo test failed ({status})");
    }
    if passed == 0 {
        bail!("cargo test ran no test");
    }
    Ok(())
}

/// Installs what is missing; prints nothing when everything is in place.
fn setup() -> anyhow::Result<()> {
    let mut missing: Vec<String> = Vec::new();
    let nightly = output("rustup", &["toolchain", "list"]).unwrap_or_default();
    if !nightly.lines().any(|line| line.starts_with("nightly")) {
        bail!(
            "the `nightly` Rust toolchain is missing: install it with `rustup toolchain install nightly`"
        );
    }
    let components = output(
        "rustup",
        &["component", "list", "--toolchain", "nightly", "--installed"],
    )
    .unwrap_or_default();
    if !components.lines().any(|line| line.starts_with("rust-src")) {
        step("adding rust-src to the nightly toolchain (needed for -Z build-std=core)");
        sh(
            "rustup",
            &["component", "add", "rust-src", "--toolchain", "nightly"],
        )?;
    }

    let apt_missing: Vec<&str> = APT_PACKAGES
        .iter()
        .copied()
        .filter(|package| !dpkg_installed(package))
        .collect();
    let linker_ok = output("bpf-linker", &["--version"])
        .is_ok_and(|version| version.trim() == format!("bpf-linker {BPF_LINKER_VERSION}"));
    if !apt_missing.is_empty() {
        missing.extend(apt_missing.iter().map(|p| format!("Debian package {p}")));
    }
    if !linker_ok {
        missing.push(format!(
            "bpf-linker {BPF_LINKER_VERSION} (LLVM {LLVM_MAJOR})"
        ));
    }
    let perfetto_ok = Command::new("python3")
        .args([
            "-c",
            "import perfetto.protos.perfetto.trace.perfetto_trace_pb2",
        ])
        .stderr(std::process::Stdio::null())
        .status()
        .is_ok_and(|status| status.success());
    if !perfetto_ok {
        missing.push(
            "Python packages perfetto and protobuf (Perfetto's protos, for the export tests)"
                .to_owned(),
        );
    }
    let duckdb_ok = python_imports("duckdb");
    if !duckdb_ok {
        missing.push(format!(
            "Python package duckdb {DUCKDB_VERSION} (queries the Parquet export in tests/parquet.rs)"
        ));
    }
    let tracefs_ok = Path::new(TRACEFS).join("events").is_dir();
    if !tracefs_ok {
        missing.push(format!("tracefs at {TRACEFS}"));
    }
    if missing.is_empty() {
        return Ok(());
    }

    let is_root = output("id", &["-u"]).is_ok_and(|uid| uid.trim() == "0");
    let is_debian = Path::new("/etc/debian_version").exists();
    if !is_root || (!apt_missing.is_empty() && !is_debian) {
        bail!(
            "setup needs {}; run `cargo xtask setup` as root on Debian, or install them yourself \
             (LLVM {LLVM_MAJOR} development files, then `LLVM_PREFIX=/usr/lib/llvm-{LLVM_MAJOR} cargo install \
             bpf-linker --version {BPF_LINKER_VERSION} --no-default-features --features llvm-{LLVM_MAJOR}`)",
            missing.join(", ")
        );
    }
    if !apt_missing.is_empty() {
        step(&format!(
            "installing Debian packages: {}",
            apt_missing.join(" ")
        ));
        apt_install(&apt_missing)?;
        for service in ["prometheus", "haproxy"] {
            if apt_missing.contains(&service) {
                stop_packaged_service(service);
            }
        }
    }
    if !linker_ok {
        step(&format!(
            "building bpf-linker {BPF_LINKER_VERSION} against LLVM {LLVM_MAJOR} (about 3 minutes)"
        ));
        let status = Command::new("cargo")
            .args([
                "install",
                "bpf-linker",
                "--force",
                "--version",
                BPF_LINKER_VERSION,
                "--no-default-features",
                "--features",
                &format!("llvm-{LLVM_MAJOR}"),
            ])
            .env("LLVM_PREFIX", format!("/usr/lib/llvm-{LLVM_MAJOR}"))
            .status()
            .context("running cargo install bpf-linker")?;
        if !status.success() {
            bail!("cargo install bpf-linker failed ({status})");
        }
    }
    if !perfetto_ok {
        step("installing the Python packages perfetto and protobuf (pip)");
        sh(
            "python3",
            &[
                "-m",
                "pip",
                "install",
                "--quiet",
                "--disable-pip-version-check",
                "perfetto",
                "protobuf",
            ],
        )?;
    }
    if !duckdb_ok {
        step(&format!(
            "installing the Python package duckdb {DUCKDB_VERSION} (pip)"
        ));
        // Debian's python3 refuses pip without this (PEP 668); older pips ignore it.
        let status = Command::new("python3")
            .args([
                "-m",
                "pip",
                "install",
                "--quiet",
                "--disable-pip-version-check",
                "--root-user-action=ignore",
                &format!("duckdb=={DUCKDB_VERSION}"),
            ])
            .env("PIP_BREAK_SYSTEM_PACKAGES", "1")
            .status()
            .context("running pip")?;
        if !status.success() {
            bail!("pip install duckdb=={DUCKDB_VERSION} failed ({status})");
        }
    }
    if !tracefs_ok {
        step(&format!("mounting tracefs at {TRACEFS}"));
        sh("mount", &["-t", "tracefs", "nodev", TRACEFS])?;
    }
    Ok(())
}

/// Debian's prometheus and haproxy packages start their service where systemd runs (not
/// where a policy-rc.d forbids it): prometheus on :9090, haproxy with the package's config.
/// The tests start their own, so stop and disable it. Best effort: the tests never use the
/// packaged ports, configs or data directories either way.
fn stop_packaged_service(service: &str) {
    if Path::new("/run/systemd/system").is_dir() {
        step(&format!(
            "stopping and disabling the packaged {service} service (tests run their own)"
        ));
        let _ = Command::new("systemctl")
            .args(["disable", "--now", service])
            .status();
    } else if Path::new(&format!("/etc/init.d/{service}")).exists() {
        let _ = Command::new(format!("/etc/init.d/{service}"))
            .arg("stop")
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .status();
    }
}

/// The PyPI `duckdb` that tests/parquet.rs queries the Parquet export with.
const DUCKDB_VERSION: &str = "1.5.6";

/// Whether the system python3 imports `module`.
fn python_imports(module: &str) -> bool {
    Command::new("python3")
        .args(["-c", &format!("import {module}")])
        .stderr(std::process::Stdio::null())
        .status()
        .is_ok_and(|status| status.success())
}

pub(crate) fn step(what: &str) {
    eprintln!("xtask setup: {what}");
}

/// `apt-get install` without questions (debconf answers with defaults: iperf3 would ask
/// whether to start a daemon).
pub(crate) fn apt_install(packages: &[&str]) -> anyhow::Result<()> {
    sh("apt-get", &["update", "-qq"])?;
    let mut args = vec!["install", "-y", "-qq", "--no-install-recommends"];
    args.extend(packages);
    let status = Command::new("apt-get")
        .args(&args)
        .env("DEBIAN_FRONTEND", "noninteractive")
        .status()
        .context("running apt-get")?;
    if !status.success() {
        bail!("apt-get install {} failed ({status})", packages.join(" "));
    }
    Ok(())
}

pub(crate) fn dpkg_installed(package: &str) -> bool {
    output("dpkg-query", &["-W", "-f=${Status}", package])
        .is_ok_and(|status| status.contains("install ok installed"))
}

fn output(program: &str, args: &[&str]) -> anyhow::Result<String> {
    let out = Command::new(program)
        .args(args)
        .output()
        .with_context(|| format!("running {program}"))?;
    if !out.status.success() {
        bail!("{program} {} failed", args.join(" "));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

pub(crate) fn sh(program: &str, args: &[&str]) -> anyhow::Result<()> {
    let status = Command::new(program)
        .args(args)
        .status()
        .with_context(|| format!("running {program}"))?;
    if !status.success() {
        bail!("{program} {} failed ({status})", args.join(" "));
    }
    Ok(())
}
