//! seccomp: `linux.seccomp` compiled to a classic BPF program and installed by init.
//!
//! No libseccomp: the program is built here (syscall names → numbers come from the
//! `syscalls` crate's tables), so the runtime links no C library and starts no faster
//! or slower whatever the profile. Layout of the program:
//!
//! ```text
//!   ld arch; jeq AUDIT_ARCH_1 → section 1; jeq AUDIT_ARCH_2 → section 2; …; ret KILL_PROCESS
//! section: ld nr; [x86_64/x32 split on the x32 bit]
//!          jeq nr_a → rules of a (conditional ones in spec order, then the unconditional
//!                     one, else the default); jeq nr_b → …; ret default
//! ```
//!
//! Semantics follow runc's (libseccomp) where the spec is silent: unknown syscall names
//! are skipped, rules whose action equals the default action are dropped, a rule naming
//! one argument index twice becomes one rule per condition (OR), conditions of one rule
//! are ANDed, a syscall from an architecture not listed kills the process.
//! Architectures that cannot run on this host (mips on x86_64, …) are ignored: the kernel
//! never reports them here.
//!
//! Syscalls newer than the profile get ENOSYS, as with runc: unless the default action
//! lets calls through anyway (ALLOW, LOG, TRACE), each table's section starts with
//! `jgt highest_named_nr → ret ERRNO(ENOSYS)`, the highest number being that of the
//! highest syscall any rule names (whatever its action). A profile written before a call
//! existed cannot have meant to forbid it, and ENOSYS is what makes libc fall back to the
//! older call (clone3 → clone, faccessat2 → faccessat) instead of failing with EPERM.
//! Unlike runc 1.1.5, which builds that check only for the architectures listed (none at
//! all when the list is empty), the native table always gets it, as newer runc does.
//!
//! Where init installs it: right before execve (after signals are reset and fds closed),
//! so the filter only has to let execve itself through — as runc does; with
//! startContainer hooks, before them, so that they run filtered as they do with runc. Without
//! no_new_privs, installing needs CAP_SYS_ADMIN, so then (again as runc) it is installed
//! before capabilities are dropped, and must allow what init still does afterwards.
//!
//! SCMP_ACT_NOTIFY (seccomp user notification): the rule returns SECCOMP_RET_USER_NOTIF
//! and the filter is installed with SECCOMP_FILTER_FLAG_NEW_LISTENER (TSYNC dropped: the
//! kernel refuses the pair without TSYNC_ESRCH, and our processes are single-threaded).
//! `create`/`exec` connect to `listenerPath` before cloning anything; right after
//! installing, the filtered process sends one message on that socket: the notify fd
//! (SCM_RIGHTS) with runc's containerProcessState JSON (`listener_message`), which the
//! main process wrote and passed over a channel, as only it knows the host pid. Both
//! fds are then closed. The listener (an agent) answers with SECCOMP_IOCTL_NOTIF_*.

use oci_spec::runtime::{
    Arch, LinuxSeccomp, LinuxSeccompAction as Act, LinuxSeccompArg, LinuxSeccompFilterFlag as Flag,
    LinuxSeccompOperator as Op,
};
use std::collections::HashMap;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::sync::OnceLock;

const AUDIT_ARCH_X86_64: u32 = 0xc000_003e;
const AUDIT_ARCH_I386: u32 = 0x4000_0003;
const AUDIT_ARCH_AARCH64: u32 = 0xc000_00b7;
const AUDIT_ARCH_ARM: u32 = 0x4000_0028;
const X32_SYSCALL_BIT: u32 = 0x4000_0000;

const RET_KILL_THREAD: u32 = 0x0000_0000;
const RET_KILL_PROCESS: u32 = 0x8000_0000;
const RET_TRAP: u32 = 0x0003_0000;
const RET_ERRNO: u32 = 0x0005_0000;
const RET_USER_NOTIF: u32 = 0x7fc0_0000;
const RET_TRACE: u32 = 0x7ff0_0000;
const RET_LOG: u32 = 0x7ffc_0000;
const RET_ALLOW: u32 = 0x7fff_0000;

const SECCOMP_SET_MODE_FILTER: libc::c_long = 1;
const FLAG_TSYNC: u32 = 1;
const FLAG_LOG: u32 = 2;
const FLAG_SPEC_ALLOW: u32 = 4;
const FLAG_NEW_LISTENER: u32 = 8;
const FLAG_TSYNC_ESRCH: u32 = 16;
const FLAG_WAIT_KILLABLE_RECV: u32 = 32;

// Classic BPF opcodes.
const LD_W_ABS: u16 = 0x20;
const JMP_JA: u16 = 0x05;
const JMP_JEQ_K: u16 = 0x15;
const JMP_JGT_K: u16 = 0x25;
const JMP_JGE_K: u16 = 0x35;
const ALU_AND_K: u16 = 0x54;
const RET_K: u16 = 0x06;
/// The kernel's BPF_MAXINSNS.
const MAX_INSNS: usize = 4096;

/// Offsets into `struct seccomp_data`.
const OFF_NR: u32 = 0;
const OFF_ARCH: u32 = 4;
const OFF_ARGS: u32 = 16;

/// What this implementation handles, for `features` (runtime-spec features.md).
pub struct SeccompFeatures {
    pub actions: &'static [&'static str],
    pub operators: &'static [&'static str],
    pub archs: &'static [&'static str],
    pub known_flags: &'static [&'static str],
    pub supported_flags: &'static [&'static str],
}

pub const SECCOMP_FEATURES: SeccompFeatures = SeccompFeatures {
    actions: &[
        "SCMP_ACT_ALLOW",
        "SCMP_ACT_ERRNO",
        "SCMP_ACT_KILL",
        "SCMP_ACT_KILL_PROCESS",
        "SCMP_ACT_KILL_THREAD",
        "SCMP_ACT_LOG",
        "SCMP_ACT_NOTIFY",
        "SCMP_ACT_TRACE",
        "SCMP_ACT_TRAP",
    ],
    operators: &[
        "SCMP_CMP_EQ",
        "SCMP_CMP_GE",
        "SCMP_CMP_GT",
        "SCMP_CMP_LE",
        "SCMP_CMP_LT",
        "SCMP_CMP_MASKED_EQ",
        "SCMP_CMP_NE",
    ],
    archs: &[
        "SCMP_ARCH_AARCH64",
        "SCMP_ARCH_ARM",
        "SCMP_ARCH_X32",
        "SCMP_ARCH_X86",
        "SCMP_ARCH_X86_64",
    ],
    known_flags: &[
        "SECCOMP_FILTER_FLAG_TSYNC",
        "SECCOMP_FILTER_FLAG_SPEC_ALLOW",
        "SECCOMP_FILTER_FLAG_LOG",
        "SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV",
    ],
    supported_flags: &[
        "SECCOMP_FILTER_FLAG_TSYNC",
        "SECCOMP_FILTER_FLAG_SPEC_ALLOW",
        "SECCOMP_FILTER_FLAG_LOG",
        "SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV",
    ],
};

/// The syscall tables we have; each maps to the audit arch the kernel reports.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Table {
    X86_64,
    X32,
    X86,
    Aarch64,
    Arm,
}

impl Table {
    fn audit_arch(self) -> u32 {
        match self {
            Table::X86_64 | Table::X32 => AUDIT_ARCH_X86_64,
            Table::X86 => AUDIT_ARCH_I386,
            Table::Aarch64 => AUDIT_ARCH_AARCH64,
            Table::Arm => AUDIT_ARCH_ARM,
        }
    }

    /// 32-bit ABIs: arguments are compared on their low word only.
    fn is_32bit(self) -> bool {
        matches!(self, Table::X86 | Table::Arm)
    }

    fn nr(self, name: &str) -> Option<u32> {
        let t = names_of(self);
        t.binary_search_by(|(n, _)| (*n).cmp(name))
            .ok()
            .map(|i| t[i].1)
    }
}

/// Every name of one table with its number, sorted by name. Compiling a profile looks each
/// name up once per table (thousands of lookups for a default profile, twice per `create`:
/// once to validate, once in init); the `syscalls` crate's `from_str` is a linear match,
/// which made those lookups most of the compile time. Built once per process.
fn names_of(table: Table) -> &'static [(&'static str, u32)] {
    macro_rules! all {
        ($t:ty) => {{
            let mut v = Vec::new();
            let mut s = Some(<$t>::first());
            while let Some(x) = s {
                v.push((x.name(), x.id() as u32));
                s = x.next();
            }
            v
        }};
    }
    static TABLES: [OnceLock<Vec<(&'static str, u32)>>; 5] = [const { OnceLock::new() }; 5];
    TABLES[table as usize].get_or_init(|| {
        let mut v = match table {
            Table::X86_64 => all!(syscalls::x86_64::Sysno),
            Table::X32 => all!(syscalls::x86_64::Sysno)
                .into_iter()
                .map(|(n, nr)| (n, x32_only(n).unwrap_or(nr) | X32_SYSCALL_BIT))
                .collect(),
            Table::X86 => all!(syscalls::x86::Sysno),
            Table::Aarch64 => all!(syscalls::aarch64::Sysno),
            Table::Arm => all!(syscalls::arm::Sysno),
        };
        v.sort_unstable();
        v
    })
}

/// x32 has its own numbers (512…) for the calls whose arguments differ from x86_64's.
fn x32_only(name: &str) -> Option<u32> {
    const X32: &[&str] = &[
        "rt_sigaction",
        "rt_sigreturn",
        "ioctl",
        "readv",
        "writev",
        "recvfrom",
        "sendmsg",
        "recvmsg",
        "execve",
        "ptrace",
        "rt_sigpending",
        "rt_sigtimedwait",
        "rt_sigqueueinfo",
        "sigaltstack",
        "timer_create",
        "mq_notify",
        "kexec_load",
        "waitid",
        "set_robust_list",
        "get_robust_list",
        "vmsplice",
        "move_pages",
        "preadv",
        "pwritev",
        "rt_tgsigqueueinfo",
        "recvmmsg",
        "sendmmsg",
        "process_vm_readv",
        "process_vm_writev",
        "setsockopt",
        "getsockopt",
        "io_setup",
        "io_submit",
        "execveat",
        "preadv2",
        "pwritev2",
    ];
    X32.iter().position(|n| *n == name).map(|i| 512 + i as u32)
}

/// Which spec architectures can run on this host, as tables; `None` for the others.
fn table_for(arch: Arch) -> Result<Option<Table>, SeccompError> {
    let native = native_table()?;
    let t = match arch {
        Arch::ScmpArchNative => native,
        Arch::ScmpArchX86_64 => Table::X86_64,
        Arch::ScmpArchX86 => Table::X86,
        Arch::ScmpArchX32 => Table::X32,
        Arch::ScmpArchAarch64 => Table::Aarch64,
        Arch::ScmpArchArm => Table::Arm,
        _ => return Ok(None),
    };
    let runnable = match native {
        Table::X86_64 => matches!(t, Table::X86_64 | Table::X86 | Table::X32),
        Table::Aarch64 => matches!(t, Table::Aarch64 | Table::Arm),
        other => t == other,
    };
    Ok(runnable.then_some(t))
}

fn native_table() -> Result<Table, SeccompError> {
    if cfg!(target_arch = "x86_64") {
        Ok(Table::X86_64)
    } else if cfg!(target_arch = "aarch64") {
        Ok(Table::Aarch64)
    } else {
        Err(SeccompError::NoTableForHost(std::env::consts::ARCH))
    }
}

fn action(act: Act, errno_ret: Option<u32>) -> u32 {
    let data = |d: Option<u32>| d.unwrap_or(libc::EPERM as u32) & 0xffff;
    match act {
        Act::ScmpActKill | Act::ScmpActKillThread => RET_KILL_THREAD,
        Act::ScmpActKillProcess => RET_KILL_PROCESS,
        Act::ScmpActTrap => RET_TRAP,
        Act::ScmpActErrno => RET_ERRNO | data(errno_ret),
        Act::ScmpActTrace => RET_TRACE | data(errno_ret),
        Act::ScmpActLog => RET_LOG,
        Act::ScmpActAllow => RET_ALLOW,
        Act::ScmpActNotify => RET_USER_NOTIF,
    }
}

/// What `linux.seccomp` can be refused for; each names the part of the profile at fault.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SeccompError {
    #[error("seccomp: no syscall table for this host's architecture ({0})")]
    NoTableForHost(&'static str),
    #[error("seccomp: SCMP_ACT_NOTIFY cannot be the defaultAction")]
    NotifyAsDefault,
    #[error("seccomp: SCMP_ACT_NOTIFY needs linux.seccomp.listenerPath")]
    NotifyWithoutListener,
    #[error("seccomp: SCMP_ACT_NOTIFY cannot be used for the write syscall")]
    NotifyOnWrite,
    #[error("seccomp: argument index {index} of {names:?} is out of range (0-5)")]
    ArgumentIndex { index: usize, names: Vec<String> },
    #[error(
        "seccomp: the profile compiles to {0} BPF instructions, more than the kernel's {MAX_INSNS}"
    )]
    TooLong(usize),
    #[error("seccomp: a syscall rule has too many conditions")]
    TooManyConditions,
}

/// A compiled filter, ready for seccomp(2).
#[derive(Debug, Clone)]
pub struct Filter {
    insns: Vec<libc::sock_filter>,
    flags: u32,
}

/// Check `linux.seccomp` in the main process, before anything is made: everything that
/// compiling can reject is reported here as one line.
pub fn validate(s: &LinuxSeccomp) -> Result<(), SeccompError> {
    compile(s).map(drop)
}

/// Whether some rule of the profile is SCMP_ACT_NOTIFY (seccomp user notification).
pub fn uses_notify(s: &LinuxSeccomp) -> bool {
    s.syscalls()
        .as_deref()
        .unwrap_or_default()
        .iter()
        .any(|c| c.action() == Act::ScmpActNotify)
}

/// The message sent with the notify fd over `linux.seccomp.listenerPath`, shaped like
/// runc's containerProcessState: `state` is the OCI state JSON of the container (status
/// `creating` for init), `pid` the host pid of the filtered process.
pub fn listener_message(oci_version: &str, pid: i32, metadata: &str, state: &[u8]) -> String {
    let state: serde_json::Value = serde_json::from_slice(state).unwrap_or_default();
    serde_json::json!({
        "ociVersion": oci_version,
        "fds": ["seccompFd"],
        "pid": pid,
        "metadata": metadata,
        "state": state,
    })
    .to_string()
}

/// Compile `linux.seccomp`.
pub fn compile(s: &LinuxSeccomp) -> Result<Filter, SeccompError> {
    let default = action(s.default_action(), s.default_errno_ret());
    if s.default_action() == Act::ScmpActNotify {
        return Err(SeccompError::NotifyAsDefault);
    }
    let syscalls = s.syscalls().as_deref().unwrap_or_default();
    let notify = uses_notify(s);
    if notify && s.listener_path().is_none() {
        return Err(SeccompError::NotifyWithoutListener);
    }
    // As runc refuses it: the runtime itself writes (sync, errors, hook stdin) after the
    // filter is in place, and an agent that never answers would then hang the container.
    if syscalls
        .iter()
        .any(|c| c.action() == Act::ScmpActNotify && c.names().iter().any(|n| n == "write"))
    {
        return Err(SeccompError::NotifyOnWrite);
    }
    let enosys_stub = !matches!(
        s.default_action(),
        Act::ScmpActAllow | Act::ScmpActLog | Act::ScmpActTrace
    );
    let highest = |t: Table| -> Option<u32> {
        let names = syscalls.iter().flat_map(|c| c.names().iter());
        enosys_stub
            .then(|| names.filter_map(|n| t.nr(n)).max())
            .flatten()
    };
    let mut flags = 0;
    for f in s.flags().as_deref().unwrap_or_default() {
        flags |= match f {
            Flag::SeccompFilterFlagTsync => FLAG_TSYNC,
            Flag::SeccompFilterFlagLog => FLAG_LOG,
            Flag::SeccompFilterFlagSpecAllow => FLAG_SPEC_ALLOW,
            Flag::SeccompFilterFlagWaitKillableRecv => FLAG_WAIT_KILLABLE_RECV,
        };
    }
    if notify {
        // seccomp(2) hands back the notify fd. The kernel refuses NEW_LISTENER with TSYNC
        // unless TSYNC_ESRCH is set too; init and tenants are single-threaded, so TSYNC
        // has nothing to synchronise and is simply left out.
        flags = (flags & !(FLAG_TSYNC | FLAG_TSYNC_ESRCH)) | FLAG_NEW_LISTENER;
    }

    // The tables to build, in a stable order, without duplicates.
    let mut tables: Vec<Table> = Vec::new();
    let archs = s.architectures().as_deref().unwrap_or_default();
    if archs.is_empty() {
        tables.push(native_table()?);
    }
    for a in archs {
        if let Some(t) = table_for(*a)? {
            if !tables.contains(&t) {
                tables.push(t);
            }
        }
    }
    if tables.is_empty() {
        // Only foreign architectures: nothing here could run, yet the native one must
        // not go unfiltered.
        tables.push(native_table()?);
    }

    // Rules: (names, action value, conditions); default-action rules dropped.
    let mut rules: Vec<(&[String], u32, Vec<LinuxSeccompArg>)> = Vec::new();
    for call in syscalls {
        let act = action(call.action(), call.errno_ret());
        if act == default {
            continue;
        }
        let args = call.args().as_deref().unwrap_or_default();
        for a in args {
            if a.index() > 5 {
                return Err(SeccompError::ArgumentIndex {
                    index: a.index(),
                    names: call.names().to_vec(),
                });
            }
        }
        let mut seen = [0u8; 6];
        args.iter().for_each(|a| seen[a.index()] += 1);
        if seen.iter().any(|&n| n > 1) {
            for a in args {
                rules.push((call.names(), act, vec![*a]));
            }
        } else {
            rules.push((call.names(), act, args.to_vec()));
        }
    }

    let mut sections: Vec<(u32, Vec<libc::sock_filter>)> = Vec::new();
    for audit in dedup(tables.iter().map(|t| t.audit_arch())) {
        let here: Vec<Table> = tables
            .iter()
            .copied()
            .filter(|t| t.audit_arch() == audit)
            .collect();
        let mut sec = vec![stmt(LD_W_ABS, OFF_NR)];
        let x86_64 = here.contains(&Table::X86_64);
        let x32 = here.contains(&Table::X32);
        if audit == AUDIT_ARCH_X86_64 {
            match (x86_64, x32) {
                (true, true) => {
                    let x32_part = table_body(Table::X32, &rules, default, highest(Table::X32))?;
                    // nr < X32 bit: skip the x32 part (long jump over it).
                    sec.push(jump(JMP_JGE_K, X32_SYSCALL_BIT, 1, 0));
                    sec.push(stmt(JMP_JA, x32_part.len() as u32));
                    sec.extend(x32_part);
                    sec.extend(table_body(
                        Table::X86_64,
                        &rules,
                        default,
                        highest(Table::X86_64),
                    )?);
                }
                (true, false) => {
                    sec.push(jump(JMP_JGE_K, X32_SYSCALL_BIT, 0, 1));
                    sec.push(stmt(RET_K, RET_KILL_PROCESS));
                    sec.extend(table_body(
                        Table::X86_64,
                        &rules,
                        default,
                        highest(Table::X86_64),
                    )?);
                }
                (false, _) => {
                    sec.push(jump(JMP_JGE_K, X32_SYSCALL_BIT, 1, 0));
                    sec.push(stmt(RET_K, RET_KILL_PROCESS));
                    sec.extend(table_body(
                        Table::X32,
                        &rules,
                        default,
                        highest(Table::X32),
                    )?);
                }
            }
        } else {
            sec.extend(table_body(here[0], &rules, default, highest(here[0]))?);
        }
        sections.push((audit, sec));
    }

    // Dispatch on the architecture: 2 instructions per section, then "bad arch".
    let mut insns = vec![stmt(LD_W_ABS, OFF_ARCH)];
    let n = sections.len();
    let mut offset_after_dispatch = 0u32; // from the end of the dispatch block
    let mut starts = Vec::new();
    for (_, sec) in &sections {
        starts.push(offset_after_dispatch);
        offset_after_dispatch += sec.len() as u32;
    }
    for (i, (audit, _)) in sections.iter().enumerate() {
        insns.push(jump(JMP_JEQ_K, *audit, 0, 1));
        // From after this `ja` to the end of the dispatch block (the bad-arch ret).
        let rest = 2 * (n - i - 1) as u32 + 1;
        insns.push(stmt(JMP_JA, rest + starts[i]));
    }
    insns.push(stmt(RET_K, RET_KILL_PROCESS));
    for (_, sec) in sections {
        insns.extend(sec);
    }
    if insns.len() > MAX_INSNS {
        return Err(SeccompError::TooLong(insns.len()));
    }
    Ok(Filter { insns, flags })
}

fn dedup(it: impl Iterator<Item = u32>) -> Vec<u32> {
    let mut v = Vec::new();
    for x in it {
        if !v.contains(&x) {
            v.push(x);
        }
    }
    v
}

fn stmt(code: u16, k: u32) -> libc::sock_filter {
    libc::sock_filter {
        code,
        jt: 0,
        jf: 0,
        k,
    }
}

fn jump(code: u16, k: u32, jt: u8, jf: u8) -> libc::sock_filter {
    libc::sock_filter { code, jt, jf, k }
}

/// The per-syscall checks of one table, ending in `ret default`. Expects the syscall
/// number in the accumulator. Numbers above `enosys_above` get ENOSYS (see the module doc).
fn table_body(
    table: Table,
    rules: &[(&[String], u32, Vec<LinuxSeccompArg>)],
    default: u32,
    enosys_above: Option<u32>,
) -> Result<Vec<libc::sock_filter>, SeccompError> {
    // Group the rules by syscall number, keeping first-seen order.
    let mut groups: Vec<(u32, Vec<usize>)> = Vec::new();
    let mut group_of: HashMap<u32, usize> = HashMap::new();
    for (i, (names, _, _)) in rules.iter().enumerate() {
        for name in names.iter() {
            // Unknown names are skipped, as runc does (profiles list calls of newer kernels).
            let Some(nr) = table.nr(name) else { continue };
            match group_of.get(&nr) {
                Some(&g) => {
                    let v = &mut groups[g].1;
                    if v.last() != Some(&i) {
                        v.push(i)
                    }
                }
                None => {
                    group_of.insert(nr, groups.len());
                    groups.push((nr, vec![i]));
                }
            }
        }
    }
    let mut out = Vec::new();
    if let Some(highest) = enosys_above {
        out.push(jump(JMP_JGT_K, highest, 0, 1));
        out.push(stmt(RET_K, RET_ERRNO | libc::ENOSYS as u32));
    }
    for (nr, idx) in groups {
        let mut body = Vec::new();
        // Conditional rules in spec order, then the first unconditional one.
        for &i in idx.iter().filter(|&&i| !rules[i].2.is_empty()) {
            body.extend(rule_block(table, &rules[i].2, rules[i].1)?);
        }
        match idx.iter().find(|&&i| rules[i].2.is_empty()) {
            Some(&i) => body.push(stmt(RET_K, rules[i].1)),
            None => body.push(stmt(RET_K, default)),
        }
        // The body always ends in a ret; the accumulator still holds nr when it is skipped.
        if body.len() <= 255 {
            out.push(jump(JMP_JEQ_K, nr, 0, body.len() as u8));
        } else {
            out.push(jump(JMP_JEQ_K, nr, 1, 0));
            out.push(stmt(JMP_JA, body.len() as u32));
        }
        out.extend(body);
    }
    out.push(stmt(RET_K, default));
    Ok(out)
}

/// Where a conditional jump goes, before offsets are known.
#[derive(Clone, Copy)]
enum To {
    Next,
    /// The condition holds: the first instruction after this condition's code.
    Match,
    /// The rule does not apply: the instruction after the rule's `ret`.
    Fail,
}

struct Pseudo {
    code: u16,
    k: u32,
    jt: To,
    jf: To,
}

fn p(code: u16, k: u32, jt: To, jf: To) -> Pseudo {
    Pseudo { code, k, jt, jf }
}

/// `if all conditions hold: ret action`, falling through otherwise.
fn rule_block(
    table: Table,
    conds: &[LinuxSeccompArg],
    act: u32,
) -> Result<Vec<libc::sock_filter>, SeccompError> {
    // Each condition as pseudo instructions, with the index where it ends.
    let mut code: Vec<Pseudo> = Vec::new();
    let mut ends: Vec<(usize, usize)> = Vec::new(); // (start, end) per condition
    for c in conds {
        let start = code.len();
        code.extend(condition(table, c)?);
        ends.push((start, code.len()));
    }
    // Fail lands after the ret: on the next rule (which loads its own argument) or on
    // the group's final ret.
    let fail_at = code.len() + 1;
    let mut out = Vec::with_capacity(code.len() + 2);
    for (i, ins) in code.iter().enumerate() {
        let end = ends
            .iter()
            .find(|(s, e)| i >= *s && i < *e)
            .map(|(_, e)| *e)
            .expect("instruction belongs to a condition");
        let off = |t: To| -> Result<u8, SeccompError> {
            let target = match t {
                To::Next => i + 1,
                To::Match => end,
                To::Fail => fail_at,
            };
            u8::try_from(target - i - 1).map_err(|_| SeccompError::TooManyConditions)
        };
        out.push(jump(ins.code, ins.k, off(ins.jt)?, off(ins.jf)?));
    }
    out.push(stmt(RET_K, act));
    Ok(out)
}

fn condition(table: Table, c: &LinuxSeccompArg) -> Result<Vec<Pseudo>, SeccompError> {
    use To::*;
    let base = OFF_ARGS + 8 * c.index() as u32;
    let (lo_off, hi_off) = if cfg!(target_endian = "little") {
        (base, base + 4)
    } else {
        (base + 4, base)
    };
    let (v, v2) = (c.value(), c.value_two().unwrap_or(0));
    let (vhi, vlo) = ((v >> 32) as u32, v as u32);
    let (v2hi, v2lo) = ((v2 >> 32) as u32, v2 as u32);
    let ld = |off| p(LD_W_ABS, off, Next, Next);
    let mut out = Vec::new();
    // The high word (skipped on 32-bit ABIs, whose arguments are 32 bits wide).
    if !table.is_32bit() {
        out.push(ld(hi_off));
        match c.op() {
            Op::ScmpCmpEq => out.push(p(JMP_JEQ_K, vhi, Next, Fail)),
            Op::ScmpCmpNe => out.push(p(JMP_JEQ_K, vhi, Next, Match)),
            Op::ScmpCmpGt | Op::ScmpCmpGe => {
                out.push(p(JMP_JGT_K, vhi, Match, Next));
                out.push(p(JMP_JEQ_K, vhi, Next, Fail));
            }
            Op::ScmpCmpLt | Op::ScmpCmpLe => {
                out.push(p(JMP_JGT_K, vhi, Fail, Next));
                out.push(p(JMP_JEQ_K, vhi, Next, Match));
            }
            Op::ScmpCmpMaskedEq => {
                out.push(p(ALU_AND_K, vhi, Next, Next));
                out.push(p(JMP_JEQ_K, v2hi, Next, Fail));
            }
        }
    }
    out.push(ld(lo_off));
    match c.op() {
        Op::ScmpCmpEq => out.push(p(JMP_JEQ_K, vlo, Match, Fail)),
        Op::ScmpCmpNe => out.push(p(JMP_JEQ_K, vlo, Fail, Match)),
        Op::ScmpCmpGt => out.push(p(JMP_JGT_K, vlo, Match, Fail)),
        Op::ScmpCmpGe => out.push(p(JMP_JGE_K, vlo, Match, Fail)),
        Op::ScmpCmpLt => out.push(p(JMP_JGE_K, vlo, Fail, Match)),
        Op::ScmpCmpLe => out.push(p(JMP_JGT_K, vlo, Fail, Match)),
        Op::ScmpCmpMaskedEq => {
            out.push(p(ALU_AND_K, vlo, Next, Next));
            out.push(p(JMP_JEQ_K, v2lo, Match, Fail));
        }
    }
    Ok(out)
}

impl Filter {
    /// seccomp(SECCOMP_SET_MODE_FILTER): from now on this process is filtered. With
    /// NEW_LISTENER the kernel returns the notify fd, which is returned here.
    pub fn install(&self) -> io::Result<Option<OwnedFd>> {
        let prog = libc::sock_fprog {
            len: self.insns.len() as u16,
            filter: self.insns.as_ptr() as *mut libc::sock_filter,
        };
        let r = unsafe {
            libc::syscall(
                libc::SYS_seccomp,
                SECCOMP_SET_MODE_FILTER,
                self.flags as libc::c_long,
                &prog as *const libc::sock_fprog,
            )
        };
        if r < 0 {
            let e = io::Error::last_os_error();
            return Err(io::Error::new(
                e.kind(),
                format!("installing the seccomp filter: {e}"),
            ));
        }
        Ok(
            (self.flags & FLAG_NEW_LISTENER != 0)
                .then(|| unsafe { OwnedFd::from_raw_fd(r as i32) }),
        )
    }
}

/// Where the notify fd goes: the connected `listenerPath` socket and the JSON that goes
/// with the fd (prepared by the main process, which knows our host pid and the state).
pub struct Listener<'a> {
    pub socket: &'a OwnedFd,
    pub message: Vec<u8>,
}

/// A filter waiting in init for its moment (see the module doc).
#[derive(Default)]
pub struct Pending<'a>(Option<(Filter, Option<Listener<'a>>)>);

impl<'a> Pending<'a> {
    /// Compile the spec's filter; install it at once when there is no no_new_privs
    /// (it needs CAP_SYS_ADMIN then, which init is about to drop).
    pub fn prepare(
        seccomp: Option<&LinuxSeccomp>,
        no_new_privs: bool,
        listener: Option<Listener<'a>>,
    ) -> Result<Pending<'a>, crate::process::SetupError> {
        use crate::process::SetupError;
        let Some(s) = seccomp else {
            return Ok(Pending(None));
        };
        let filter = compile(s).map_err(|e| SetupError::msg(e.to_string()))?;
        let pending = Pending(Some((filter, listener)));
        if no_new_privs {
            return Ok(pending);
        }
        pending
            .install()
            .map_err(|e| SetupError::msg(e.to_string()))?;
        Ok(Pending(None))
    }

    /// Install a filter still pending (right before execve); with SCMP_ACT_NOTIFY rules,
    /// send the notify fd and the prepared JSON over the listener socket (one sendmsg,
    /// SCM_RIGHTS), then close both here.
    pub fn install(&self) -> io::Result<()> {
        let Some((filter, listener)) = &self.0 else {
            return Ok(());
        };
        let Some(notify_fd) = filter.install()? else {
            return Ok(());
        };
        let Some(l) = listener else {
            return Err(io::Error::other(
                "seccomp: SCMP_ACT_NOTIFY without a listener socket",
            ));
        };
        crate::console::send_fd_named(l.socket, &notify_fd, &l.message).map_err(|e| {
            io::Error::new(
                e.kind(),
                format!("sending the seccomp notify fd to listenerPath: {e}"),
            )
        })?;
        drop(notify_fd);
        // The socket is borrowed from the config (never dropped: this process ends in
        // execve or _exit); close the descriptor itself so the container cannot use it.
        unsafe { libc::close(l.socket.as_raw_fd()) };
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A classic-BPF interpreter for the instructions we emit, over a seccomp_data.
    fn run(f: &Filter, arch: u32, nr: u32, args: [u64; 6]) -> u32 {
        let word = |off: u32| -> u32 {
            match off {
                0 => nr,
                4 => arch,
                o if (16..64).contains(&o) => {
                    let a = args[((o - 16) / 8) as usize];
                    if (o - 16) % 8 == 0 {
                        a as u32
                    } else {
                        (a >> 32) as u32
                    }
                }
                o => panic!("load from offset {o}"),
            }
        };
        let (mut pc, mut acc) = (0usize, 0u32);
        loop {
            let i = f.insns[pc];
            pc += 1;
            let cond = |c: bool| if c { i.jt as usize } else { i.jf as usize };
            match i.code {
                LD_W_ABS => acc = word(i.k),
                ALU_AND_K => acc &= i.k,
                JMP_JA => pc += i.k as usize,
                JMP_JEQ_K => pc += cond(acc == i.k),
                JMP_JGT_K => pc += cond(acc > i.k),
                JMP_JGE_K => pc += cond(acc >= i.k),
                RET_K => return i.k,
                c => panic!("unexpected opcode {c:#x}"),
            }
        }
    }

    fn filter(json: serde_json::Value) -> Filter {
        compile(&serde_json::from_value(json).unwrap()).unwrap()
    }

    const X64: u32 = AUDIT_ARCH_X86_64;
    const MKDIR: u32 = 83;
    const UNAME: u32 = 63;
    const PERSONALITY: u32 = 135;

    #[test]
    fn blocks_by_name_with_errno_and_allows_the_rest() {
        let f = filter(serde_json::json!({
            "defaultAction": "SCMP_ACT_ALLOW",
            "syscalls": [
                {"names": ["mkdir", "no_such_call"], "action": "SCMP_ACT_ERRNO"},
                {"names": ["uname"], "action": "SCMP_ACT_ERRNO", "errnoRet": 38}
            ]
        }));
        assert_eq!(run(&f, X64, MKDIR, [0; 6]), RET_ERRNO | 1);
        assert_eq!(run(&f, X64, UNAME, [0; 6]), RET_ERRNO | 38);
        assert_eq!(run(&f, X64, 0, [0; 6]), RET_ALLOW);
        // Not listed: i386 and x32 calls are killed.
        assert_eq!(run(&f, AUDIT_ARCH_I386, 0, [0; 6]), RET_KILL_PROCESS);
        assert_eq!(run(&f, X64, X32_SYSCALL_BIT | 1, [0; 6]), RET_KILL_PROCESS);
    }

    #[test]
    fn every_operator_on_64_bit_arguments() {
        let big = 0x1_0000_0005u64;
        let cases = [
            (
                "SCMP_CMP_EQ",
                big,
                0u64,
                vec![(big, true), (5, false), (big + 1, false)],
            ),
            (
                "SCMP_CMP_NE",
                big,
                0,
                vec![(big, false), (5, true), (0, true)],
            ),
            (
                "SCMP_CMP_LT",
                big,
                0,
                vec![
                    (big - 1, true),
                    (big, false),
                    (5, true),
                    (1 << 33, false),
                    (big + 1, false),
                ],
            ),
            (
                "SCMP_CMP_LE",
                big,
                0,
                vec![(big, true), (big + 1, false), (6, true), (1 << 33, false)],
            ),
            (
                "SCMP_CMP_GT",
                big,
                0,
                vec![(big, false), (big + 1, true), (1 << 33, true), (6, false)],
            ),
            (
                "SCMP_CMP_GE",
                big,
                0,
                vec![
                    (big, true),
                    (big - 1, false),
                    (1 << 33, true),
                    (u64::MAX, true),
                ],
            ),
            (
                "SCMP_CMP_MASKED_EQ",
                0xff00_0000_00f0,
                0x1200_0000_0030,
                vec![
                    (0x12ab_0000_0031, true),
                    (0x1300_0000_0030, false),
                    (0x1200_0000_0020, false),
                ],
            ),
        ];
        for (op, v, v2, probes) in cases {
            let f = filter(serde_json::json!({
                "defaultAction": "SCMP_ACT_ALLOW",
                "syscalls": [{"names": ["personality"], "action": "SCMP_ACT_ERRNO",
                              "args": [{"index": 2, "value": v, "valueTwo": v2, "op": op}]}]
            }));
            for (arg, hit) in probes {
                let got = run(&f, X64, PERSONALITY, [7, 7, arg, 7, 7, 7]);
                let want = if hit { RET_ERRNO | 1 } else { RET_ALLOW };
                assert_eq!(got, want, "{op} {v:#x} against {arg:#x}");
            }
        }
    }

    #[test]
    fn conditions_and_within_a_rule_or_across_rules_and_repeated_index() {
        let f = filter(serde_json::json!({
            "defaultAction": "SCMP_ACT_ERRNO",
            "syscalls": [
                {"names": ["personality"], "action": "SCMP_ACT_ALLOW",
                 "args": [{"index": 0, "value": 8, "op": "SCMP_CMP_EQ"}]},
                {"names": ["personality"], "action": "SCMP_ACT_ALLOW",
                 "args": [{"index": 0, "value": 1, "op": "SCMP_CMP_EQ"},
                          {"index": 1, "value": 2, "op": "SCMP_CMP_EQ"}]},
                {"names": ["uname"], "action": "SCMP_ACT_LOG",
                 "args": [{"index": 0, "value": 3, "op": "SCMP_CMP_EQ"},
                          {"index": 0, "value": 4, "op": "SCMP_CMP_EQ"}]},
                {"names": ["mkdir"], "action": "SCMP_ACT_ERRNO"}
            ]
        }));
        let r = |nr, a0, a1| run(&f, X64, nr, [a0, a1, 0, 0, 0, 0]);
        assert_eq!(r(PERSONALITY, 8, 0), RET_ALLOW);
        assert_eq!(r(PERSONALITY, 1, 2), RET_ALLOW);
        assert_eq!(r(PERSONALITY, 1, 3), RET_ERRNO | 1);
        assert_eq!(r(UNAME, 3, 0), RET_LOG);
        assert_eq!(r(UNAME, 4, 0), RET_LOG);
        assert_eq!(r(UNAME, 5, 0), RET_ERRNO | 1);
        // Same as the default: dropped, so still the default.
        assert_eq!(r(MKDIR, 0, 0), RET_ERRNO | 1);
    }

    #[test]
    fn conditional_rules_win_over_the_catch_all() {
        let f = filter(serde_json::json!({
            "defaultAction": "SCMP_ACT_ALLOW",
            "syscalls": [
                {"names": ["personality"], "action": "SCMP_ACT_KILL_PROCESS"},
                {"names": ["personality"], "action": "SCMP_ACT_TRACE", "errnoRet": 9,
                 "args": [{"index": 0, "value": 0, "op": "SCMP_CMP_EQ"}]}
            ]
        }));
        assert_eq!(run(&f, X64, PERSONALITY, [0; 6]), RET_TRACE | 9);
        assert_eq!(
            run(&f, X64, PERSONALITY, [1, 0, 0, 0, 0, 0]),
            RET_KILL_PROCESS
        );
    }

    #[test]
    fn multiple_architectures() {
        let f = filter(serde_json::json!({
            "defaultAction": "SCMP_ACT_ALLOW",
            "architectures": ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32", "SCMP_ARCH_MIPS"],
            "syscalls": [{"names": ["mkdir", "ioctl"], "action": "SCMP_ACT_KILL"}]
        }));
        assert_eq!(run(&f, X64, MKDIR, [0; 6]), RET_KILL_THREAD);
        assert_eq!(run(&f, X64, 16, [0; 6]), RET_KILL_THREAD); // ioctl
        assert_eq!(run(&f, AUDIT_ARCH_I386, 39, [0; 6]), RET_KILL_THREAD); // i386 mkdir
        assert_eq!(run(&f, AUDIT_ARCH_I386, 83, [0; 6]), RET_ALLOW);
        assert_eq!(
            run(&f, X64, X32_SYSCALL_BIT | MKDIR, [0; 6]),
            RET_KILL_THREAD
        );
        assert_eq!(run(&f, X64, X32_SYSCALL_BIT | 514, [0; 6]), RET_KILL_THREAD); // x32 ioctl
        assert_eq!(run(&f, X64, X32_SYSCALL_BIT | 1, [0; 6]), RET_ALLOW);
        assert_eq!(run(&f, AUDIT_ARCH_AARCH64, 1, [0; 6]), RET_KILL_PROCESS);
    }

    #[test]
    fn long_bodies_and_big_profiles_use_long_jumps() {
        // 200 conditional rules on one syscall: a body far beyond 255 instructions.
        let rules: Vec<_> = (0..200)
            .map(|i| {
                serde_json::json!({"names": ["personality"], "action": "SCMP_ACT_LOG",
                "args": [{"index": 0, "value": i, "op": "SCMP_CMP_EQ"}]})
            })
            .chain([serde_json::json!({"names": ["mkdir"], "action": "SCMP_ACT_TRAP"})])
            .collect();
        let f = filter(serde_json::json!({"defaultAction": "SCMP_ACT_ALLOW", "syscalls": rules}));
        assert!(f.insns.len() > 1000);
        assert_eq!(run(&f, X64, PERSONALITY, [199, 0, 0, 0, 0, 0]), RET_LOG);
        assert_eq!(run(&f, X64, PERSONALITY, [200, 0, 0, 0, 0, 0]), RET_ALLOW);
        assert_eq!(run(&f, X64, MKDIR, [0; 6]), RET_TRAP);
        assert_eq!(run(&f, X64, UNAME, [0; 6]), RET_ALLOW);
    }

    #[test]
    fn notify_rules_ask_for_a_listener_and_drop_tsync() {
        let f = filter(serde_json::json!({
            "defaultAction": "SCMP_ACT_ALLOW",
            "listenerPath": "/run/agent.sock",
            "flags": ["SECCOMP_FILTER_FLAG_TSYNC", "SECCOMP_FILTER_FLAG_LOG"],
            "syscalls": [{"names": ["mkdir"], "action": "SCMP_ACT_NOTIFY"}]
        }));
        assert_eq!(run(&f, X64, MKDIR, [0; 6]), RET_USER_NOTIF);
        assert_eq!(run(&f, X64, UNAME, [0; 6]), RET_ALLOW);
        assert_eq!(f.flags, FLAG_NEW_LISTENER | FLAG_LOG);
        // Without NOTIFY rules: no listener, TSYNC kept.
        let f = filter(serde_json::json!({
            "defaultAction": "SCMP_ACT_ALLOW", "listenerPath": "/run/agent.sock",
            "flags": ["SECCOMP_FILTER_FLAG_TSYNC"]
        }));
        assert_eq!(f.flags, FLAG_TSYNC);
        let m = listener_message("1.2.0", 42, "meta", br#"{"id":"c1","status":"creating"}"#);
        let m: serde_json::Value = serde_json::from_str(&m).unwrap();
        assert_eq!(
            m,
            serde_json::json!({"ociVersion": "1.2.0", "fds": ["seccompFd"], "pid": 42,
                "metadata": "meta", "state": {"id": "c1", "status": "creating"}})
        );
    }

    #[test]
    fn calls_above_the_profile_get_enosys_unless_the_default_lets_them_through() {
        const ENOSYS: u32 = RET_ERRNO | libc::ENOSYS as u32;
        for archs in [
            serde_json::json!([]),
            serde_json::json!(["SCMP_ARCH_X86_64"]),
        ] {
            let f = filter(serde_json::json!({
                "defaultAction": "SCMP_ACT_ERRNO", "architectures": archs,
                "syscalls": [{"names": ["read", "mkdir", "not_a_call"], "action": "SCMP_ACT_ALLOW"},
                             {"names": ["personality"], "action": "SCMP_ACT_ERRNO"}]
            }));
            assert_eq!(run(&f, X64, MKDIR, [0; 6]), RET_ALLOW);
            // A hole below the highest named call keeps the default action.
            assert_eq!(run(&f, X64, UNAME, [0; 6]), RET_ERRNO | 1);
            // Above personality (135, named, even with the default action): ENOSYS.
            assert_eq!(run(&f, X64, PERSONALITY, [0; 6]), RET_ERRNO | 1);
            assert_eq!(run(&f, X64, PERSONALITY + 1, [0; 6]), ENOSYS);
            assert_eq!(run(&f, X64, 460, [0; 6]), ENOSYS);
            assert_eq!(run(&f, X64, X32_SYSCALL_BIT | 1, [0; 6]), RET_KILL_PROCESS);
        }
        // x86_64 and x32 each against their own highest number.
        let f = filter(serde_json::json!({
            "defaultAction": "SCMP_ACT_KILL_PROCESS",
            "architectures": ["SCMP_ARCH_X86_64", "SCMP_ARCH_X32", "SCMP_ARCH_X86"],
            "syscalls": [{"names": ["mkdir", "ioctl"], "action": "SCMP_ACT_ALLOW"}]
        }));
        assert_eq!(run(&f, X64, MKDIR + 1, [0; 6]), ENOSYS);
        assert_eq!(run(&f, X64, 17, [0; 6]), RET_KILL_PROCESS);
        // x32 ioctl is 514: x32 mkdir (83) is below it, 515 above.
        assert_eq!(run(&f, X64, X32_SYSCALL_BIT | 515, [0; 6]), ENOSYS);
        assert_eq!(run(&f, X64, X32_SYSCALL_BIT | 84, [0; 6]), RET_KILL_PROCESS);
        assert_eq!(run(&f, AUDIT_ARCH_I386, 55, [0; 6]), ENOSYS); // above i386 ioctl (54)
        assert_eq!(run(&f, AUDIT_ARCH_I386, 39, [0; 6]), RET_ALLOW); // i386 mkdir
        for (default, want) in [
            ("SCMP_ACT_ALLOW", RET_ALLOW),
            ("SCMP_ACT_LOG", RET_LOG),
            ("SCMP_ACT_TRACE", RET_TRACE | 1),
        ] {
            let f = filter(serde_json::json!({
                "defaultAction": default,
                "syscalls": [{"names": ["mkdir"], "action": "SCMP_ACT_KILL"}]
            }));
            assert_eq!(run(&f, X64, 460, [0; 6]), want, "{default}");
        }
    }

    #[test]
    fn bad_profiles_are_one_line_errors() {
        let bad = |json: serde_json::Value, needle: &str| {
            let s: LinuxSeccomp = serde_json::from_value(json).unwrap();
            let e = validate(&s).unwrap_err().to_string();
            assert!(e.contains(needle) && !e.contains('\n'), "{e}");
        };
        bad(
            serde_json::json!({"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"names": ["read"],
                "action": "SCMP_ACT_ERRNO", "args": [{"index": 6, "value": 1, "op": "SCMP_CMP_EQ"}]}]}),
            "index 6",
        );
        bad(
            serde_json::json!({"defaultAction": "SCMP_ACT_NOTIFY"}),
            "defaultAction",
        );
        bad(
            serde_json::json!({"defaultAction": "SCMP_ACT_ALLOW",
                "syscalls": [{"names": ["mkdir"], "action": "SCMP_ACT_NOTIFY"}]}),
            "needs linux.seccomp.listenerPath",
        );
        bad(
            serde_json::json!({"defaultAction": "SCMP_ACT_ALLOW", "listenerPath": "/run/a.sock",
                "syscalls": [{"names": ["mkdir", "write"], "action": "SCMP_ACT_NOTIFY",
                              "args": [{"index": 0, "value": 9, "op": "SCMP_CMP_EQ"}]}]}),
            "cannot be used for the write syscall",
        );
        assert!(serde_json::from_value::<LinuxSeccomp>(
            serde_json::json!({"defaultAction": "SCMP_ACT_BOGUS"})
        )
        .is_err());
    }
}
