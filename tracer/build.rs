//! Builds the eBPF programs (`tracer-ebpf`) with aya-build so the object is embedded in the
//! tracer binary. `AYA_BUILD_SKIP=1` skips it for lint-only runs and for the fuzz build
//! (its sanitizer flags must not reach the eBPF target); an empty object then stands in, and
//! loading it fails with a clear error.
use anyhow::{Context as _, anyhow};
use aya_build::{Package, Toolchain};

fn main() -> anyhow::Result<()> {
    if std::env::var_os("AYA_BUILD_SKIP").is_some() {
        let object = std::path::PathBuf::from(std::env::var("OUT_DIR")?).join("tracer-ebpf");
        if !object.exists() {
            std::fs::write(&object, []).context("writing the stand-in eBPF object")?;
        }
    }
    let metadata = cargo_metadata::MetadataCommand::new()
        .no_deps()
        .exec()
        .context("cargo metadata")?;
    let ebpf = metadata
        .packages
        .into_iter()
        .find(|package| package.name == "tracer-ebpf")
        .ok_or_else(|| anyhow!("tracer-ebpf package not found in the workspace"))?;
    let root_dir = ebpf
        .manifest_path
        .parent()
        .ok_or_else(|| anyhow!("tracer-ebpf manifest has no parent directory"))?;
    println!("cargo:rerun-if-changed=../tracer-common/src");
    aya_build::build_ebpf(
        [Package {
            name: ebpf.name.as_str(),
            root_dir: root_dir.as_str(),
            ..Default::default()
        }],
        Toolchain::default(),
    )
}
