//! Builds the kernel programs (reaper-trace-ebpf) for the BPF target with the nightly
//! toolchain, and puts the object in OUT_DIR for `include_bytes_aligned!`. Then checks the
//! object: no program may call `memset`, `memcpy`, `memmove`, `memcmp` or `bcmp`. LLVM emits
//! those calls for large or unaligned struct copies and zeroing, and links in byte loops that
//! the verifier walks byte by byte: that is what made the programs too large for Linux 7.1+.
//! And every program, map and global userspace looks up by name (`reaper_trace_common::program`,
//! `map`, `OFFSETS_GLOBAL`) must be in the object, so a name that changed on one side only
//! fails the build, not a run.
use object::{Object, ObjectSection, ObjectSymbol, RelocationTarget, SymbolKind};
use reaper_trace_common::{OFFSETS_GLOBAL, map, program};

const BYTE_LOOPS: [&str; 5] = ["memset", "memcpy", "memmove", "memcmp", "bcmp"];

fn main() -> anyhow::Result<()> {
    let manifest_dir = std::env::var("CARGO_MANIFEST_DIR")?;
    let ebpf_dir = std::path::Path::new(&manifest_dir)
        .parent()
        .ok_or_else(|| anyhow::anyhow!("reaper-trace has no parent directory"))?
        .join("reaper-trace-ebpf");
    let root_dir = ebpf_dir
        .to_str()
        .ok_or_else(|| anyhow::anyhow!("non-UTF-8 path {}", ebpf_dir.display()))?;
    aya_build::build_ebpf(
        [aya_build::Package {
            name: "reaper-trace-ebpf",
            root_dir,
            ..Default::default()
        }],
        aya_build::Toolchain::Custom("nightly"),
    )?;
    let object_path = std::path::Path::new(&std::env::var("OUT_DIR")?).join("reaper-trace");
    let data = std::fs::read(&object_path)?;
    check_no_byte_loops(&data)?;
    check_names(&data)
}

/// Fails unless every name userspace looks up is in the object: each program a function in a
/// program's section, each map a symbol in the `maps` section, the offsets table a global.
fn check_names(data: &[u8]) -> anyhow::Result<()> {
    let file = object::File::parse(data)?;
    let mut programs = Vec::new();
    let mut maps = Vec::new();
    let mut globals = Vec::new();
    for symbol in file.symbols() {
        let (Ok(name), Some(index)) = (symbol.name(), symbol.section_index()) else {
            continue;
        };
        let section = file.section_by_index(index)?;
        match (symbol.kind(), section.name()?) {
            (SymbolKind::Text, ".text") => {}
            (SymbolKind::Text, _) => programs.push(name),
            (_, "maps") => maps.push(name),
            (SymbolKind::Data, _) => globals.push(name),
            _ => {}
        }
    }
    let mut missing: Vec<String> = Vec::new();
    missing.extend(
        program::ALL
            .iter()
            .filter(|n| !programs.contains(n))
            .map(|n| format!("program {n}")),
    );
    missing.extend(
        map::ALL
            .iter()
            .filter(|n| !maps.contains(n))
            .map(|n| format!("map {n}")),
    );
    if !globals.contains(&OFFSETS_GLOBAL) {
        missing.push(format!("global {OFFSETS_GLOBAL}"));
    }
    if !missing.is_empty() {
        anyhow::bail!(
            "the kernel object lacks names that userspace looks up (reaper_trace_common::program \
             and ::map, and the kernel crate's items, must agree): {}",
            missing.join(", ")
        );
    }
    Ok(())
}

/// Fails on any call from a program to one of `BYTE_LOOPS`.
fn check_no_byte_loops(data: &[u8]) -> anyhow::Result<()> {
    let file = object::File::parse(data)?;
    let mut found = Vec::new();
    for section in file.sections() {
        for (offset, reloc) in section.relocations() {
            let RelocationTarget::Symbol(index) = reloc.target() else {
                continue;
            };
            let name = file.symbol_by_index(index)?.name()?;
            if BYTE_LOOPS.contains(&name) {
                found.push(format!(
                    "{} calls {name} at instruction {}",
                    section.name()?,
                    offset / 8
                ));
            }
        }
    }
    if !found.is_empty() {
        anyhow::bail!(
            "the kernel programs call byte loops the verifier walks byte by byte (zero or copy \
             large fields with `zero()` or field by field instead): {}",
            found.join("; ")
        );
    }
    Ok(())
}
