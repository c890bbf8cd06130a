//! Compiles every `src/bpf/*.bpf.c` into a BPF object with clang and
//! generates its libbpf-rs skeleton into OUT_DIR (`<name>.skel.rs`).
//! Needs clang and the kernel UAPI headers (Debian: clang, linux-libc-dev).

use libbpf_cargo::SkeletonBuilder;
use std::{env, fs, path::PathBuf};

fn main() {
    let out = PathBuf::from(env::var_os("OUT_DIR").expect("cargo sets OUT_DIR"));
    let arch = env::var("CARGO_CFG_TARGET_ARCH").expect("cargo sets CARGO_CFG_TARGET_ARCH");
    // <linux/bpf.h> includes <asm/types.h>, which Debian keeps under the
    // multiarch directory; clang's BPF target does not search it by itself.
    let multiarch = format!("-I/usr/include/{arch}-linux-gnu");
    println!("cargo:rerun-if-changed=src/bpf");
    let mut sources: Vec<PathBuf> = fs::read_dir("src/bpf")
        .expect("src/bpf exists")
        .map(|e| e.expect("readable src/bpf entry").path())
        .filter(|p| p.to_string_lossy().ends_with(".bpf.c"))
        .collect();
    sources.sort();
    for src in sources {
        let file = src
            .file_name()
            .expect("a file")
            .to_string_lossy()
            .into_owned();
        let stem = file.trim_end_matches(".bpf.c");
        SkeletonBuilder::new()
            .source(&src)
            .clang_args(["-O2", "-g", "-Wall", "-Werror", multiarch.as_str()])
            .build_and_generate(out.join(format!("{stem}.skel.rs")))
            .unwrap_or_else(|e| panic!("building {}: {e:#}", src.display()));
    }
}
