//! Pure, filesystem-free checks of a spec and of an exec process: what `create` and `exec`
//! reject before anything is made, as functions of the parsed JSON alone. Used by the fuzz
//! targets in `fuzz/` (config.json, process.json, seccomp profiles); nothing here touches
//! the host beyond what the checks themselves read (`NamespacePlan` tests that a namespace
//! path exists).

use crate::lsm::LsmError;
use crate::process::extras::parse_cpu_list;
use crate::process::namespaces::NamespacePlan;
use crate::rootfs::options::{propagation_flag, MountOptions};
use crate::seccomp::SeccompError;
use oci_spec::runtime::{LinuxCapabilities, LinuxSeccomp, PosixRlimit, Process, Spec};
use std::path::PathBuf;

/// What `create` or `exec` refuses in a config.json or process.json, naming the field.
#[derive(Debug, thiserror::Error)]
pub enum InvalidSpec {
    #[error("unsupported ociVersion {0:?} (this runtime implements 1.x)")]
    Version(String),
    #[error("root.path is missing")]
    NoRoot,
    #[error("process is missing")]
    NoProcess,
    #[error("linux is missing: this runtime runs Linux containers")]
    NoLinux,
    #[error("process.args must not be empty")]
    NoArgs,
    #[error("process.cwd {0:?} must be an absolute path")]
    RelativeCwd(PathBuf),
    #[error("process.execCPUAffinity: {0}")]
    CpuAffinity(String),
    #[error("process.terminal is true but no console socket was given")]
    TerminalWithoutConsole,
    #[error("process.{0} is set but no LSM is active on this host")]
    LabelWithoutLsm(&'static str),
    #[error(transparent)]
    Seccomp(#[from] SeccompError),
    #[error(transparent)]
    Lsm(#[from] LsmError),
    #[error(transparent)]
    Namespaces(Box<crate::Error>),
}

/// Everything `create` checks about a config.json except that the rootfs exists: version,
/// root, process, linux, namespaces, seccomp (compiled for this host), LSM labels (against
/// a host with no active LSM), and the conversions init does later — mount options,
/// rootfsPropagation, rlimits, capability names, execCPUAffinity, device cgroup rules.
pub fn validate_spec(spec: &Spec) -> Result<(), InvalidSpec> {
    if !spec.version().starts_with("1.") {
        return Err(InvalidSpec::Version(spec.version().clone()));
    }
    if spec.root().is_none() {
        return Err(InvalidSpec::NoRoot);
    }
    let Some(process) = spec.process() else {
        return Err(InvalidSpec::NoProcess);
    };
    check_process(process)?;
    let Some(linux) = spec.linux() else {
        return Err(InvalidSpec::NoLinux);
    };
    if let Some(s) = linux.seccomp() {
        crate::seccomp::validate(s)?;
    }
    NamespacePlan::from_spec(spec).map_err(|e| InvalidSpec::Namespaces(Box::new(e)))?;
    crate::lsm::check(&crate::lsm::Labels::from_spec(spec), &[])?;
    for m in spec.mounts().as_deref().unwrap_or_default() {
        let o = MountOptions::parse(m.options().as_deref().unwrap_or_default());
        let _ = o.bind_remount_flags();
    }
    if let Some(p) = linux.rootfs_propagation() {
        let _ = propagation_flag(p);
    }
    let _ = crate::rootfs::devices::cgroup_rules(linux.resources().as_ref());
    Ok(())
}

/// The checks `exec --process FILE` makes of the process (without a console socket and on
/// a host with no active LSM), and the conversions the tenant applies before execve.
pub fn validate_process(p: &Process) -> Result<(), InvalidSpec> {
    check_process(p)?;
    if p.terminal().unwrap_or(false) {
        return Err(InvalidSpec::TerminalWithoutConsole);
    }
    for (what, set) in [
        ("apparmorProfile", p.apparmor_profile().is_some()),
        ("selinuxLabel", p.selinux_label().is_some()),
    ] {
        if set {
            return Err(InvalidSpec::LabelWithoutLsm(what));
        }
    }
    Ok(())
}

/// Common to config.json's process and an exec process.
fn check_process(p: &Process) -> Result<(), InvalidSpec> {
    if p.args().as_ref().is_none_or(|a| a.is_empty()) {
        return Err(InvalidSpec::NoArgs);
    }
    if !p.cwd().is_absolute() {
        return Err(InvalidSpec::RelativeCwd(p.cwd().clone()));
    }
    rlimits(p.rlimits().as_deref().unwrap_or_default());
    if let Some(c) = p.capabilities() {
        capabilities(c);
    }
    if let Some(a) = p.exec_cpu_affinity() {
        let v = serde_json::to_value(a).unwrap_or_default();
        for which in ["initial", "final"] {
            if let Some(list) = v[which].as_str() {
                parse_cpu_list(list).map_err(InvalidSpec::CpuAffinity)?;
            }
        }
    }
    Ok(())
}

fn rlimits(limits: &[PosixRlimit]) {
    for l in limits {
        let _ = crate::identity::resource_of(l.typ());
        let _ = serde_json::to_value(l.typ());
    }
}

/// The capability names init converts (unknown ones are skipped there, as runc does).
fn capabilities(c: &LinuxCapabilities) -> usize {
    [
        c.bounding(),
        c.effective(),
        c.permitted(),
        c.inheritable(),
        c.ambient(),
    ]
    .into_iter()
    .flatten()
    .flatten()
    .filter_map(|cap| format!("CAP_{cap}").parse::<caps::Capability>().ok())
    .count()
}

/// One classic-BPF instruction of a compiled seccomp filter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BpfInsn {
    pub code: u16,
    pub jt: u8,
    pub jf: u8,
    pub k: u32,
}

/// Compile `linux.seccomp` for this host and return the program, for checking it.
pub fn seccomp_program(s: &LinuxSeccomp) -> Result<Vec<BpfInsn>, SeccompError> {
    let filter = crate::seccomp::compile(s)?;
    // The compiled filter keeps its instructions private; its Debug form lists them
    // (`sock_filter { code: 32, jt: 0, jf: 0, k: 4 }`), which is read back here so this
    // module needs nothing from seccomp.rs beyond `compile`.
    Ok(parse_debug_insns(&format!("{filter:?}"))
        .expect("a compiled filter's Debug form lists its instructions"))
}

fn parse_debug_insns(text: &str) -> Result<Vec<BpfInsn>, String> {
    let mut out = Vec::new();
    for part in text.split("sock_filter").skip(1) {
        let field = |name: &str| -> Result<u32, String> {
            let at = part
                .find(&format!("{name}: "))
                .ok_or_else(|| format!("no {name} in {part:?}"))?;
            let rest = &part[at + name.len() + 2..];
            let end = rest
                .find(|c: char| !c.is_ascii_digit())
                .unwrap_or(rest.len());
            rest[..end]
                .parse()
                .map_err(|_| format!("bad {name} in {part:?}"))
        };
        let small = |name: &str| -> Result<u8, String> {
            u8::try_from(field(name)?).map_err(|_| format!("{name} > 255"))
        };
        out.push(BpfInsn {
            code: u16::try_from(field("code")?).map_err(|_| "code > 65535".to_string())?,
            jt: small("jt")?,
            jf: small("jf")?,
            k: field("k")?,
        });
    }
    if out.is_empty() {
        return Err(format!("no instructions in {text:?}"));
    }
    Ok(out)
}

/// The kernel's basic checks of a classic-BPF seccomp program (bpf_check_classic plus
/// seccomp_check_filter, for the instruction classes husk emits): 1..=4096 instructions,
/// only known opcodes, every jump lands inside the program, loads read aligned offsets of
/// struct seccomp_data, and the last instruction returns.
pub fn check_bpf(prog: &[BpfInsn]) -> Result<(), String> {
    const BPF_MAXINSNS: usize = 4096;
    const SECCOMP_DATA_SIZE: u32 = 64;
    let n = prog.len();
    if n == 0 || n > BPF_MAXINSNS {
        return Err(format!("program length {n} is outside 1..={BPF_MAXINSNS}"));
    }
    for (pc, i) in prog.iter().enumerate() {
        let left = (n - pc - 1) as u64; // instructions after this one
        match i.code {
            // ld w abs
            0x20 => {
                if i.k >= SECCOMP_DATA_SIZE || i.k % 4 != 0 {
                    return Err(format!("{pc}: load of offset {} out of seccomp_data", i.k));
                }
            }
            // ret k
            0x06 => {}
            // alu and/or/add/sub/rsh/lsh k
            0x54 | 0x44 | 0x04 | 0x14 | 0x74 | 0x64 => {}
            // ja
            0x05 => {
                if u64::from(i.k) >= left {
                    return Err(format!("{pc}: ja +{} leaves the program ({n})", i.k));
                }
            }
            // jeq, jgt, jge, jset with k
            0x15 | 0x25 | 0x35 | 0x45 => {
                if u64::from(i.jt) >= left || u64::from(i.jf) >= left {
                    return Err(format!(
                        "{pc}: jump jt={} jf={} leaves the program ({n})",
                        i.jt, i.jf
                    ));
                }
            }
            c => return Err(format!("{pc}: opcode {c:#x} is not allowed in seccomp")),
        }
    }
    if prog[n - 1].code != 0x06 {
        return Err("the last instruction is not a return".into());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_style_spec_passes() {
        let spec: Spec = serde_json::from_value(serde_json::json!({
            "ociVersion": "1.0.2",
            "root": {"path": "rootfs"},
            "process": {"args": ["sh"], "cwd": "/", "user": {"uid": 0, "gid": 0}},
            "mounts": [{"destination": "/proc", "type": "proc", "options": ["nosuid", "rslave"]}],
            "linux": {"namespaces": [{"type": "mount"}, {"type": "pid"}],
                      "seccomp": {"defaultAction": "SCMP_ACT_ALLOW",
                                  "syscalls": [{"names": ["mkdir"], "action": "SCMP_ACT_ERRNO"}]}}
        }))
        .unwrap();
        validate_spec(&spec).unwrap();
        let s = spec.linux().as_ref().unwrap().seccomp().as_ref().unwrap();
        let prog = seccomp_program(s).unwrap();
        check_bpf(&prog).unwrap();
        assert_eq!(
            prog[0],
            BpfInsn {
                code: 0x20,
                jt: 0,
                jf: 0,
                k: 4
            }
        );
    }

    #[test]
    fn process_checks() {
        let p: Process = serde_json::from_value(
            serde_json::json!({"args": ["true"], "cwd": "rel", "user": {"uid": 0, "gid": 0}}),
        )
        .unwrap();
        assert!(matches!(
            validate_process(&p).unwrap_err(),
            InvalidSpec::RelativeCwd(_)
        ));
    }

    #[test]
    fn verifier_catches_bad_jumps() {
        let ret = BpfInsn {
            code: 0x06,
            jt: 0,
            jf: 0,
            k: 0,
        };
        let jeq = BpfInsn {
            code: 0x15,
            jt: 1,
            jf: 0,
            k: 0,
        };
        assert!(check_bpf(&[jeq, ret]).is_err());
        assert!(check_bpf(&[jeq, ret, ret]).is_ok());
        assert!(check_bpf(&[]).is_err());
    }
}
