//! Device rules → a BPF_PROG_TYPE_CGROUP_DEVICE program, assembled by hand.
//!
//! The program gets `struct bpf_cgroup_dev_ctx { u32 access_type; u32 major; u32 minor; }`
//! where `access_type = (access << 16) | type` (type 1 = block, 2 = char; access bits
//! 1 = mknod, 2 = read, 4 = write) and returns 1 to allow, 0 to deny.
//!
//! Semantics: the spec's rules are ordered and a later rule overrides an earlier one, so the
//! program tests the rules last to first and the first match decides. No match = deny.
//! An allow rule matches when every requested access bit is in the rule; a deny rule
//! matches when any requested bit is in it.

use crate::v1::devices::DeviceRule;

/// One eBPF instruction (struct bpf_insn).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Insn {
    pub code: u8,
    pub dst: u8,
    pub src: u8,
    pub off: i16,
    pub imm: i32,
}

impl Insn {
    /// The 8 bytes the kernel expects (little-endian x86_64/aarch64 layout).
    pub fn to_bytes(self) -> [u8; 8] {
        let mut b = [0u8; 8];
        b[0] = self.code;
        b[1] = (self.src << 4) | (self.dst & 0x0f);
        b[2..4].copy_from_slice(&self.off.to_le_bytes());
        b[4..8].copy_from_slice(&self.imm.to_le_bytes());
        b
    }
}

// opcode pieces (linux/bpf_common.h, linux/bpf.h)
const BPF_LDX: u8 = 0x01;
const BPF_ALU: u8 = 0x04;
const BPF_JMP: u8 = 0x05;
const BPF_ALU64: u8 = 0x07;
const BPF_W: u8 = 0x00;
const BPF_MEM: u8 = 0x60;
const BPF_K: u8 = 0x00;
const BPF_X: u8 = 0x08;
const BPF_AND: u8 = 0x50;
const BPF_RSH: u8 = 0x70;
const BPF_MOV: u8 = 0xb0;
const BPF_JEQ: u8 = 0x10;
const BPF_JNE: u8 = 0x50;
const BPF_EXIT: u8 = 0x90;

/// Access bits of bpf_cgroup_dev_ctx.
pub const ACC_MKNOD: i32 = 1;
pub const ACC_READ: i32 = 2;
pub const ACC_WRITE: i32 = 4;
/// Device types of bpf_cgroup_dev_ctx.
pub const DEV_BLOCK: i32 = 1;
pub const DEV_CHAR: i32 = 2;

fn ldx_w(dst: u8, src: u8, off: i16) -> Insn {
    Insn {
        code: BPF_LDX | BPF_MEM | BPF_W,
        dst,
        src,
        off,
        imm: 0,
    }
}
fn mov32_reg(dst: u8, src: u8) -> Insn {
    Insn {
        code: BPF_ALU | BPF_MOV | BPF_X,
        dst,
        src,
        off: 0,
        imm: 0,
    }
}
fn and32_imm(dst: u8, imm: i32) -> Insn {
    Insn {
        code: BPF_ALU | BPF_AND | BPF_K,
        dst,
        src: 0,
        off: 0,
        imm,
    }
}
fn rsh32_imm(dst: u8, imm: i32) -> Insn {
    Insn {
        code: BPF_ALU | BPF_RSH | BPF_K,
        dst,
        src: 0,
        off: 0,
        imm,
    }
}
fn mov64_imm(dst: u8, imm: i32) -> Insn {
    Insn {
        code: BPF_ALU64 | BPF_MOV | BPF_K,
        dst,
        src: 0,
        off: 0,
        imm,
    }
}
/// Jump forward by `off` unless `dst == imm` (off patched later).
fn jne_imm(dst: u8, imm: i32) -> Insn {
    Insn {
        code: BPF_JMP | BPF_JNE | BPF_K,
        dst,
        src: 0,
        off: 0,
        imm,
    }
}
fn jeq_imm(dst: u8, imm: i32) -> Insn {
    Insn {
        code: BPF_JMP | BPF_JEQ | BPF_K,
        dst,
        src: 0,
        off: 0,
        imm,
    }
}
fn exit() -> Insn {
    Insn {
        code: BPF_JMP | BPF_EXIT,
        dst: 0,
        src: 0,
        off: 0,
        imm: 0,
    }
}

// register use: r1 ctx, r3 type, r4 access, r5 major, r6 minor, r7 scratch, r0 result
const R0: u8 = 0;
const R1: u8 = 1;
const R2: u8 = 2;
const R3: u8 = 3;
const R4: u8 = 4;
const R5: u8 = 5;
const R6: u8 = 6;
const R7: u8 = 7;

fn access_bits(access: &str) -> i32 {
    access.chars().fold(0, |a, c| {
        a | match c {
            'm' => ACC_MKNOD,
            'r' => ACC_READ,
            'w' => ACC_WRITE,
            _ => 0,
        }
    })
}

/// The instructions testing one rule; every conditional jump skips to the end of the block.
fn rule_block(r: &DeviceRule) -> Vec<Insn> {
    let mut b = Vec::new();
    match r.typ {
        'b' => b.push(jne_imm(R3, DEV_BLOCK)),
        'c' => b.push(jne_imm(R3, DEV_CHAR)),
        _ => {}
    }
    if let Some(m) = r.major {
        b.push(jne_imm(R5, m as i32));
    }
    if let Some(m) = r.minor {
        b.push(jne_imm(R6, m as i32));
    }
    let acc = access_bits(&r.access);
    if acc != ACC_MKNOD | ACC_READ | ACC_WRITE {
        b.push(mov32_reg(R7, R4));
        if r.allow {
            // requested bits outside the rule → the rule does not cover the request
            b.push(and32_imm(R7, !acc & 7));
            b.push(jne_imm(R7, 0));
        } else {
            // none of the requested bits is denied → not this rule
            b.push(and32_imm(R7, acc));
            b.push(jeq_imm(R7, 0));
        }
    }
    b.push(mov64_imm(R0, r.allow as i32));
    b.push(exit());
    let n = b.len();
    for (i, insn) in b.iter_mut().enumerate() {
        if insn.code & 0x07 == BPF_JMP && insn.code != BPF_JMP | BPF_EXIT {
            insn.off = (n - 1 - i) as i16;
        }
    }
    b
}

/// Build the program for `rules` (already normalized).
pub fn build_program(rules: &[DeviceRule]) -> Vec<Insn> {
    let mut p = vec![
        ldx_w(R2, R1, 0),
        mov32_reg(R3, R2),
        and32_imm(R3, 0xffff),
        mov32_reg(R4, R2),
        rsh32_imm(R4, 16),
        ldx_w(R5, R1, 4),
        ldx_w(R6, R1, 8),
    ];
    for r in rules.iter().rev() {
        p.extend(rule_block(r));
        if r.is_everything() {
            // an unconditional rule decides everything: the rules before it and the
            // default are unreachable, and the verifier rejects unreachable code
            return p;
        }
    }
    p.push(mov64_imm(R0, 0));
    p.push(exit());
    p
}

/// Run the program on one request, as the kernel would (for tests and debugging).
pub fn interpret(prog: &[Insn], dev_type: i32, access: i32, major: u32, minor: u32) -> u64 {
    let ctx = [((access << 16) | dev_type) as u32, major, minor];
    let mut r = [0u64; 11];
    let mut pc = 0usize;
    while pc < prog.len() {
        let i = prog[pc];
        let (d, s) = (i.dst as usize, i.src as usize);
        pc += 1;
        match i.code {
            c if c == BPF_LDX | BPF_MEM | BPF_W => r[d] = ctx[(i.off / 4) as usize] as u64,
            c if c == BPF_ALU | BPF_MOV | BPF_X => r[d] = r[s] as u32 as u64,
            c if c == BPF_ALU | BPF_AND | BPF_K => r[d] = (r[d] as u32 & i.imm as u32) as u64,
            c if c == BPF_ALU | BPF_RSH | BPF_K => r[d] = ((r[d] as u32) >> i.imm) as u64,
            c if c == BPF_ALU64 | BPF_MOV | BPF_K => r[d] = i.imm as i64 as u64,
            c if c == BPF_JMP | BPF_JNE | BPF_K => {
                if r[d] != i.imm as i64 as u64 {
                    pc += i.off as usize;
                }
            }
            c if c == BPF_JMP | BPF_JEQ | BPF_K => {
                if r[d] == i.imm as i64 as u64 {
                    pc += i.off as usize;
                }
            }
            c if c == BPF_JMP | BPF_EXIT => return r[0],
            c => panic!("interpreter does not know opcode {c:#x}"),
        }
    }
    panic!("program fell off the end")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::v1::devices::normalize;
    use oci_spec::runtime::LinuxDeviceCgroup;

    fn prog(json: &str) -> Vec<Insn> {
        let rules: Vec<LinuxDeviceCgroup> = serde_json::from_str(json).unwrap();
        build_program(&normalize(&rules).unwrap())
    }

    const RW: i32 = ACC_READ | ACC_WRITE;

    #[test]
    fn encodes_instructions() {
        assert_eq!(ldx_w(R2, R1, 4).to_bytes(), [0x61, 0x12, 4, 0, 0, 0, 0, 0]);
        assert_eq!(mov64_imm(R0, 1).to_bytes(), [0xb7, 0x00, 0, 0, 1, 0, 0, 0]);
        assert_eq!(exit().to_bytes(), [0x95, 0, 0, 0, 0, 0, 0, 0]);
        let mut j = jne_imm(R5, 136);
        j.off = 3;
        assert_eq!(j.to_bytes(), [0x55, 0x05, 3, 0, 136, 0, 0, 0]);
    }

    #[test]
    fn empty_list_denies() {
        let p = prog("[]");
        assert_eq!(interpret(&p, DEV_CHAR, ACC_READ, 1, 3), 0);
    }

    #[test]
    fn default_deny_with_allowlist() {
        let p = prog(
            r#"[{"allow":false,"access":"rwm"},
                {"allow":true,"type":"c","major":1,"minor":3,"access":"rwm"},
                {"allow":true,"type":"c","major":136,"access":"rw"},
                {"allow":true,"type":"b","major":8,"minor":0,"access":"r"}]"#,
        );
        assert_eq!(interpret(&p, DEV_CHAR, RW, 1, 3), 1, "/dev/null");
        assert_eq!(interpret(&p, DEV_CHAR, ACC_MKNOD, 1, 3), 1);
        assert_eq!(interpret(&p, DEV_CHAR, RW, 1, 5), 0, "/dev/zero not listed");
        assert_eq!(interpret(&p, DEV_BLOCK, RW, 1, 3), 0, "type matters");
        assert_eq!(interpret(&p, DEV_CHAR, RW, 136, 7), 1, "pty wildcard minor");
        assert_eq!(
            interpret(&p, DEV_CHAR, ACC_MKNOD, 136, 7),
            0,
            "no mknod for pty"
        );
        assert_eq!(interpret(&p, DEV_BLOCK, ACC_READ, 8, 0), 1);
        assert_eq!(interpret(&p, DEV_BLOCK, RW, 8, 0), 0, "write not allowed");
    }

    #[test]
    fn later_rules_win() {
        let p = prog(
            r#"[{"allow":true,"access":"rwm"},
                {"allow":false,"type":"c","major":1,"minor":5,"access":"rwm"},
                {"allow":false,"type":"c","major":1,"minor":9,"access":"w"}]"#,
        );
        assert_eq!(interpret(&p, DEV_CHAR, RW, 1, 3), 1);
        assert_eq!(interpret(&p, DEV_CHAR, ACC_READ, 1, 5), 0);
        assert_eq!(
            interpret(&p, DEV_CHAR, ACC_READ, 1, 9),
            1,
            "read of 1:9 still allowed"
        );
        assert_eq!(interpret(&p, DEV_CHAR, RW, 1, 9), 0, "write of 1:9 denied");

        let p = prog(
            r#"[{"allow":false,"type":"c","major":1,"minor":5},
                {"allow":true,"access":"rwm"}]"#,
        );
        assert_eq!(
            interpret(&p, DEV_CHAR, RW, 1, 5),
            1,
            "a later allow-all overrides"
        );
        // nothing after an unconditional rule is emitted
        assert_eq!(p.len(), 7 + 2);
    }
}
