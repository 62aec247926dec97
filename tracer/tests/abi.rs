//! The kernel/user contract holds: every map, global and program name that
//! `tracer_common::abi` gives user space is a symbol of the built eBPF object, and every
//! program in the object is one user space attaches. No root needed: this reads the ELF.

use std::collections::BTreeSet;

use object::{Object, ObjectSection, ObjectSymbol, SymbolKind};
use tracer_common::abi;

/// The object `tracer` embeds (built by tracer/build.rs).
static EBPF_OBJECT: &[u8] = aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/tracer-ebpf"));

/// (section, symbol) of every global symbol of the object.
fn symbols() -> BTreeSet<(String, String)> {
    let file = object::File::parse(EBPF_OBJECT).expect("the eBPF object is an ELF file");
    file.symbols()
        .filter(|symbol| symbol.is_global() && symbol.kind() != SymbolKind::Unknown)
        .filter_map(|symbol| {
            let section = file.section_by_index(symbol.section_index()?).ok()?;
            Some((
                section.name().ok()?.to_owned(),
                symbol.name().ok()?.to_owned(),
            ))
        })
        .collect()
}

fn names_in(symbols: &BTreeSet<(String, String)>, section: &str) -> BTreeSet<String> {
    symbols
        .iter()
        .filter(|(sec, _)| sec == section)
        .map(|(_, name)| name.clone())
        .collect()
}

#[test]
fn every_map_user_space_uses_is_in_the_object() {
    let maps = names_in(&symbols(), "maps");
    for name in abi::MAP_NAMES {
        assert!(
            maps.contains(name),
            "map {name} missing; the object has {maps:?}"
        );
    }
}

#[test]
fn every_global_user_space_sets_is_in_the_object() {
    let rodata = names_in(&symbols(), ".rodata");
    for name in abi::GLOBAL_NAMES {
        assert!(
            rodata.contains(name),
            "global {name} missing; the object has {rodata:?}"
        );
    }
}

#[test]
fn programs_in_the_object_are_exactly_those_user_space_attaches() {
    let in_object = names_in(&symbols(), "tracepoint");
    let attached: BTreeSet<String> = abi::program_names().map(str::to_owned).collect();
    let missing: Vec<_> = attached.difference(&in_object).collect();
    let unattached: Vec<_> = in_object.difference(&attached).collect();
    assert!(
        missing.is_empty(),
        "no program in the eBPF object for {missing:?}"
    );
    assert!(
        unattached.is_empty(),
        "programs user space never attaches (add an EventKind or a TRACED_SYSCALLS row): {unattached:?}"
    );
}

#[test]
fn btf_tracepoint_programs_are_exactly_the_btf_forms_user_space_loads() {
    let symbols = symbols();
    let in_object: BTreeSet<String> = symbols
        .iter()
        .filter(|(section, _)| section.starts_with("tp_btf"))
        .map(|(_, name)| name.clone())
        .collect();
    let raw_syscalls = tracer_common::abi::RAW_SYSCALL_PROGRAMS;
    let forms: BTreeSet<String> = tracer_common::EventKind::ALL
        .iter()
        .filter_map(|kind| kind.btf_form())
        .map(|form| form.program.to_owned())
        .chain(
            raw_syscalls
                .iter()
                .map(|(program, _)| (*program).to_owned()),
        )
        .collect();
    assert_eq!(
        in_object, forms,
        "every tp_btf program is some EventKind's btf_form or a raw syscall program, and back"
    );
    for (program, tracepoint) in raw_syscalls {
        let section = format!("tp_btf/{tracepoint}");
        assert!(
            symbols.contains(&(section.clone(), program.to_owned())),
            "{program} in {section}"
        );
    }
    // Each is attached to its own kind's tracepoint: the section names it.
    for kind in tracer_common::EventKind::ALL {
        if let Some(form) = kind.btf_form() {
            let section = format!("tp_btf/{}", kind.name());
            assert!(
                symbols.contains(&(section.clone(), form.program.to_owned())),
                "{} should be in section {section}",
                form.program
            );
        }
    }
}
