//! Builds init/main.rs — the PID 1 of `husk run --init` — as a statically linked
//! executable, which husk embeds (include_bytes!) and bind-mounts into containers.
//!
//! Static because the image it runs in may have no C library, or another glibc than the
//! host's; husk itself is linked dynamically. crt-static is given to this one rustc call
//! only (as scripts/build-runtime.sh does for the release husk-runtime), so nothing else
//! in the build changes. Where static linking is impossible (no libc.a) husk still
//! builds: the embedded init is empty and `--init` says why it is refused.

use std::path::PathBuf;
use std::process::Command;

fn main() {
    println!("cargo:rerun-if-changed=init/main.rs");
    println!("cargo:rerun-if-changed=build.rs");
    let out = PathBuf::from(std::env::var_os("OUT_DIR").expect("OUT_DIR")).join("husk-init");
    let rustc = std::env::var_os("RUSTC").unwrap_or_else(|| "rustc".into());
    let target = std::env::var("TARGET").expect("TARGET");
    let mut c = Command::new(rustc);
    c.args([
        "--edition",
        "2021",
        "--crate-type",
        "bin",
        "--crate-name",
        "husk_init",
    ])
    .args(["--target", &target])
    .args([
        "-C",
        "opt-level=s",
        "-C",
        "panic=abort",
        "-C",
        "strip=symbols",
    ])
    .args(["-C", "target-feature=+crt-static"])
    .arg("-o")
    .arg(&out)
    .arg("init/main.rs");
    if let Some(linker) = std::env::var_os("RUSTC_LINKER") {
        c.arg("-C").arg({
            let mut a = std::ffi::OsString::from("linker=");
            a.push(linker);
            a
        });
    }
    let ok = match c.output() {
        Ok(o) if o.status.success() => true,
        Ok(o) => {
            let err = String::from_utf8_lossy(&o.stderr);
            let first = err.lines().find(|l| !l.trim().is_empty()).unwrap_or("");
            println!("cargo:warning=husk-init not built (husk run --init disabled): {first}");
            false
        }
        Err(e) => {
            println!("cargo:warning=husk-init not built (husk run --init disabled): rustc: {e}");
            false
        }
    };
    if !ok {
        std::fs::write(&out, b"").expect("writing OUT_DIR/husk-init");
    }
}
