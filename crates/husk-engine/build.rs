//! Builds the two small executables husk-engine embeds (include_bytes!, src/embedded.rs) and
//! writes into its store, so that every program linking the engine (husk, or an embedder)
//! carries them:
//!
//! - init/main.rs → husk-init, the PID 1 of `husk run --init`, bind-mounted into containers.
//!   Statically linked because the image it runs in may have no C library, or another glibc
//!   than the host's. Where static linking is impossible (no libc.a) husk still builds: the
//!   embedded init is empty and `--init` says why it is refused.
//! - pause/main.rs → husk-pause, the process of a pod's infra container (src/pod.rs), the
//!   only file of the image it runs in: statically linked, or empty (pods refused) when
//!   static linking is impossible.
//! - monitor/main.rs → husk-monitor, the per-container process of `husk run -d` (see
//!   src/monitor.rs). It runs on the host, so static linking is not needed to work, only to
//!   stay small (no shared C library mapped): without libc.a it is linked dynamically.
//!
//! The program itself is linked dynamically; crt-static is given to these rustc calls only (as
//! scripts/build-runtime.sh does for the release husk-runtime), so nothing else in the build
//! changes.

use std::path::{Path, PathBuf};
use std::process::Command;

/// rustc SRC -o OUT, optimised for size; Err(first line of rustc's complaint).
fn rustc(src: &str, name: &str, out: &Path, link_static: bool) -> Result<(), String> {
    let rustc = std::env::var_os("RUSTC").unwrap_or_else(|| "rustc".into());
    let target = std::env::var("TARGET").expect("TARGET");
    let mut c = Command::new(rustc);
    c.args([
        "--edition",
        "2021",
        "--crate-type",
        "bin",
        "--crate-name",
        name,
    ])
    .args(["--target", &target])
    .args([
        "-C",
        "opt-level=s",
        "-C",
        "panic=abort",
        "-C",
        "strip=symbols",
    ]);
    if link_static {
        c.args(["-C", "target-feature=+crt-static"]);
    }
    c.arg("-o").arg(out).arg(src);
    if let Some(linker) = std::env::var_os("RUSTC_LINKER") {
        c.arg("-C").arg({
            let mut a = std::ffi::OsString::from("linker=");
            a.push(linker);
            a
        });
    }
    match c.output() {
        Ok(o) if o.status.success() => Ok(()),
        Ok(o) => {
            let err = String::from_utf8_lossy(&o.stderr);
            Err(err
                .lines()
                .find(|l| !l.trim().is_empty())
                .unwrap_or("")
                .to_string())
        }
        Err(e) => Err(format!("rustc: {e}")),
    }
}

fn main() {
    println!("cargo:rerun-if-changed=init/main.rs");
    println!("cargo:rerun-if-changed=monitor/main.rs");
    println!("cargo:rerun-if-changed=pause/main.rs");
    println!("cargo:rerun-if-changed=monitor/attach.rs");
    println!("cargo:rerun-if-changed=build.rs");
    let out_dir = PathBuf::from(std::env::var_os("OUT_DIR").expect("OUT_DIR"));

    let init = out_dir.join("husk-init");
    if let Err(e) = rustc("init/main.rs", "husk_init", &init, true) {
        println!("cargo:warning=husk-init not built (husk run --init disabled): {e}");
        std::fs::write(&init, b"").expect("writing OUT_DIR/husk-init");
    }

    let pause = out_dir.join("husk-pause");
    if let Err(e) = rustc("pause/main.rs", "husk_pause", &pause, true) {
        println!("cargo:warning=husk-pause not built (husk pod disabled): {e}");
        std::fs::write(&pause, b"").expect("writing OUT_DIR/husk-pause");
    }

    let monitor = out_dir.join("husk-monitor");
    let built = rustc("monitor/main.rs", "husk_monitor", &monitor, true).or_else(|e| {
        println!("cargo:warning=husk-monitor linked dynamically (static linking failed: {e})");
        rustc("monitor/main.rs", "husk_monitor", &monitor, false)
    });
    if let Err(e) = built {
        println!("cargo:warning=husk-monitor not built (husk run -d disabled): {e}");
        std::fs::write(&monitor, b"").expect("writing OUT_DIR/husk-monitor");
    }
}
