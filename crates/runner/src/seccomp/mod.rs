//! Seccomp: docker's default profile (embedded JSON, docker's schema with capability,
//! architecture and kernel conditions), reduced to an OCI [`LinuxSeccomp`] for a container's
//! capability set, then compiled to a classic BPF program for x86_64.
//!
//! The compiler checks the architecture (anything but native x86_64, including x32 numbers,
//! gets the default action), then for each system call with rules tests its number and, in
//! rule order, the rule's argument conditions (64-bit comparisons on two 32-bit halves); the
//! first rule that matches decides, otherwise the default action.

mod table;

use std::collections::BTreeMap;

use nix::libc;
use oci_spec::runtime::{
    Capabilities, LinuxSeccomp, LinuxSeccompAction, LinuxSeccompArg, LinuxSeccompArgBuilder,
    LinuxSeccompBuilder, LinuxSeccompOperator, LinuxSyscall, LinuxSyscallBuilder, Process,
};
use serde::Deserialize;

use crate::caps;
use crate::error::Error;

/// Docker's default profile, in docker's JSON schema.
pub const DOCKER_DEFAULT_JSON: &str = include_str!("default.json");

#[derive(Debug, Deserialize, Default)]
#[serde(rename_all = "camelCase")]
struct Condition {
    #[serde(default)]
    caps: Vec<String>,
    #[serde(default)]
    arches: Vec<String>,
    #[serde(default)]
    min_kernel: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Rule {
    #[serde(default)]
    names: Vec<String>,
    #[serde(default)]
    name: Option<String>,
    action: LinuxSeccompAction,
    #[serde(default)]
    errno_ret: Option<u32>,
    #[serde(default)]
    args: Option<Vec<LinuxSeccompArg>>,
    #[serde(default)]
    includes: Condition,
    #[serde(default)]
    excludes: Condition,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Profile {
    default_action: LinuxSeccompAction,
    #[serde(default)]
    default_errno_ret: Option<u32>,
    #[serde(default)]
    syscalls: Vec<Rule>,
}

/// This machine's architecture in docker's profile vocabulary.
const ARCH: &str = if cfg!(target_arch = "x86_64") {
    "amd64"
} else {
    std::env::consts::ARCH
};

fn kernel_at_least(min: &str) -> bool {
    let parse = |s: &str| -> Vec<u32> {
        s.split(['.', '-'])
            .take(2)
            .filter_map(|p| p.parse().ok())
            .collect()
    };
    let release = nix::sys::utsname::uname()
        .map(|u| u.release().to_string_lossy().into_owned())
        .unwrap_or_default();
    parse(&release) >= parse(min)
}

fn applies(rule: &Rule, caps: &Capabilities) -> Result<bool, Error> {
    let has = |name: &String| -> Result<bool, Error> { Ok(caps.contains(&caps::parse(name)?)) };
    for c in &rule.includes.caps {
        if !has(c)? {
            return Ok(false);
        }
    }
    if !rule.includes.arches.is_empty() && !rule.includes.arches.iter().any(|a| a == ARCH) {
        return Ok(false);
    }
    if let Some(min) = &rule.includes.min_kernel
        && !kernel_at_least(min)
    {
        return Ok(false);
    }
    for c in &rule.excludes.caps {
        if has(c)? {
            return Ok(false);
        }
    }
    Ok(!rule.excludes.arches.iter().any(|a| a == ARCH))
}

/// Read a profile in docker's schema (OCI profiles are a subset) for a container with
/// `capabilities` in its bounding set.
pub fn profile(json: &str, capabilities: &Capabilities) -> Result<LinuxSeccomp, Error> {
    let p: Profile = serde_json::from_str(json).map_err(|e| Error::Seccomp(e.to_string()))?;
    let bad = |e: oci_spec::OciSpecError| Error::Seccomp(e.to_string());
    let mut syscalls = Vec::new();
    for rule in &p.syscalls {
        if !applies(rule, capabilities)? {
            continue;
        }
        let mut names = rule.names.clone();
        names.extend(rule.name.clone());
        let mut b = LinuxSyscallBuilder::default()
            .names(names)
            .action(rule.action);
        if let Some(e) = rule.errno_ret {
            b = b.errno_ret(e);
        }
        if let Some(a) = &rule.args {
            b = b.args(a.clone());
        }
        syscalls.push(b.build().map_err(bad)?);
    }
    let mut b = LinuxSeccompBuilder::default()
        .default_action(p.default_action)
        .syscalls(syscalls);
    if let Some(e) = p.default_errno_ret {
        b = b.default_errno_ret(e);
    }
    b.build().map_err(bad)
}

/// Docker's default profile for a container with these capabilities.
pub fn docker_default(capabilities: &Capabilities) -> Result<LinuxSeccomp, Error> {
    profile(DOCKER_DEFAULT_JSON, capabilities)
}

/// The number of a system call on this architecture.
pub fn syscall_number(name: &str) -> Option<u32> {
    table::X86_64
        .iter()
        .find(|(n, _)| *n == name)
        .map(|(_, nr)| *nr)
}

const RET_ALLOW: u32 = 0x7fff_0000;

fn action_value(action: LinuxSeccompAction, errno: Option<u32>) -> Result<u32, Error> {
    use LinuxSeccompAction as A;
    Ok(match action {
        A::ScmpActAllow => RET_ALLOW,
        A::ScmpActErrno => 0x0005_0000 | (errno.unwrap_or(libc::EPERM as u32) & 0xffff),
        A::ScmpActKill | A::ScmpActKillThread => 0,
        A::ScmpActKillProcess => 0x8000_0000,
        A::ScmpActTrap => 0x0003_0000,
        A::ScmpActTrace => 0x7ff0_0000 | (errno.unwrap_or(libc::EPERM as u32) & 0xffff),
        A::ScmpActLog => 0x7ffc_0000,
        A::ScmpActNotify => return Err(Error::Seccomp("SCMP_ACT_NOTIFY is not supported".into())),
    })
}

/// A small assembler: jumps name labels, resolved into classic BPF's 8-bit offsets.
#[derive(Default)]
struct Asm {
    code: Vec<(u16, u32, Option<usize>, Option<usize>)>,
    labels: Vec<usize>,
}

const LD_W_ABS: u16 = (libc::BPF_LD | libc::BPF_W | libc::BPF_ABS) as u16;
const JEQ: u16 = (libc::BPF_JMP | libc::BPF_JEQ | libc::BPF_K) as u16;
const JGT: u16 = (libc::BPF_JMP | libc::BPF_JGT | libc::BPF_K) as u16;
const JGE: u16 = (libc::BPF_JMP | libc::BPF_JGE | libc::BPF_K) as u16;
const AND: u16 = (libc::BPF_ALU | libc::BPF_AND | libc::BPF_K) as u16;
const RET: u16 = (libc::BPF_RET | libc::BPF_K) as u16;

impl Asm {
    fn label(&mut self) -> usize {
        self.labels.push(usize::MAX);
        self.labels.len() - 1
    }
    fn bind(&mut self, l: usize) {
        self.labels[l] = self.code.len();
    }
    fn op(&mut self, code: u16, k: u32) {
        self.code.push((code, k, None, None));
    }
    /// Conditional jump: `None` falls through.
    fn jump(&mut self, code: u16, k: u32, jt: Option<usize>, jf: Option<usize>) {
        self.code.push((code, k, jt, jf));
    }
    fn finish(self) -> Result<Vec<libc::sock_filter>, Error> {
        let mut out = Vec::with_capacity(self.code.len());
        for (i, (code, k, jt, jf)) in self.code.iter().enumerate() {
            let off = |l: &Option<usize>| -> Result<u8, Error> {
                let Some(l) = l else { return Ok(0) };
                let target = self.labels[*l];
                u8::try_from(target - i - 1)
                    .map_err(|_| Error::Seccomp("a rule is too long for a BPF jump".into()))
            };
            out.push(libc::sock_filter {
                code: *code,
                jt: off(jt)?,
                jf: off(jf)?,
                k: *k,
            });
        }
        if out.len() > 4096 {
            return Err(Error::Seccomp(format!(
                "{} BPF instructions, over the kernel's 4096",
                out.len()
            )));
        }
        Ok(out)
    }
}

fn arg_offsets(index: usize) -> Result<(u32, u32), Error> {
    if index > 5 {
        return Err(Error::Seccomp(format!("argument index {index} is over 5")));
    }
    let lo = 16 + 8 * index as u32;
    Ok((lo, lo + 4))
}

/// Emit one 64-bit argument condition: falls through when it holds, jumps to `fail` if not.
fn condition(asm: &mut Asm, arg: &LinuxSeccompArg, fail: usize) -> Result<(), Error> {
    use LinuxSeccompOperator as O;
    let (lo, hi) = arg_offsets(arg.index())?;
    let v = arg.value();
    let (vlo, vhi) = (v as u32, (v >> 32) as u32);
    let pass = asm.label();
    match arg.op() {
        O::ScmpCmpEq => {
            asm.op(LD_W_ABS, hi);
            asm.jump(JEQ, vhi, None, Some(fail));
            asm.op(LD_W_ABS, lo);
            asm.jump(JEQ, vlo, None, Some(fail));
        }
        O::ScmpCmpNe => {
            asm.op(LD_W_ABS, hi);
            asm.jump(JEQ, vhi, None, Some(pass));
            asm.op(LD_W_ABS, lo);
            asm.jump(JEQ, vlo, Some(fail), None);
        }
        O::ScmpCmpMaskedEq => {
            let want = arg.value_two().unwrap_or(0);
            asm.op(LD_W_ABS, hi);
            asm.op(AND, vhi);
            asm.jump(JEQ, (want >> 32) as u32, None, Some(fail));
            asm.op(LD_W_ABS, lo);
            asm.op(AND, vlo);
            asm.jump(JEQ, want as u32, None, Some(fail));
        }
        op @ (O::ScmpCmpGe | O::ScmpCmpGt | O::ScmpCmpLt | O::ScmpCmpLe) => {
            // a >= v  ⇔  hi > vhi, or hi == vhi and lo >= vlo (and so on).
            let (low_jump, negate) = match op {
                O::ScmpCmpGe => (JGE, false),
                O::ScmpCmpGt => (JGT, false),
                O::ScmpCmpLt => (JGE, true),
                _ => (JGT, true),
            };
            let (yes, no) = if negate { (fail, pass) } else { (pass, fail) };
            asm.op(LD_W_ABS, hi);
            asm.jump(JGT, vhi, Some(yes), None);
            asm.jump(JEQ, vhi, None, Some(no));
            asm.op(LD_W_ABS, lo);
            asm.jump(low_jump, vlo, Some(yes), Some(no));
        }
    }
    asm.bind(pass);
    Ok(())
}

/// Compile a spec's seccomp section to BPF. `process` is accepted for future per-process
/// conditions; unknown system call names are skipped, as libseccomp does for other arches.
pub fn compile(seccomp: &LinuxSeccomp, process: &Process) -> Result<Vec<libc::sock_filter>, Error> {
    let _ = process;
    if !cfg!(target_arch = "x86_64") {
        return Err(Error::Seccomp(format!(
            "no system call table for {}",
            std::env::consts::ARCH
        )));
    }
    let default = action_value(seccomp.default_action(), seccomp.default_errno_ret())?;
    // Rules per system call number, in profile order.
    let mut by_nr: BTreeMap<u32, Vec<&LinuxSyscall>> = BTreeMap::new();
    for rule in seccomp.syscalls().iter().flatten() {
        for name in rule.names() {
            if let Some(nr) = syscall_number(name) {
                by_nr.entry(nr).or_default().push(rule);
            }
        }
    }
    let mut asm = Asm::default();
    const AUDIT_ARCH_X86_64: u32 = 0xc000_003e;
    let (native, not_x32) = (asm.label(), asm.label());
    asm.op(LD_W_ABS, 4);
    asm.jump(JEQ, AUDIT_ARCH_X86_64, Some(native), None);
    asm.op(RET, default);
    asm.bind(native);
    asm.op(LD_W_ABS, 0);
    asm.jump(JGE, 0x4000_0000, None, Some(not_x32));
    asm.op(RET, default);
    asm.bind(not_x32);
    for (nr, rules) in &by_nr {
        let next = asm.label();
        asm.jump(JEQ, *nr, None, Some(next));
        for rule in rules {
            let ret = action_value(rule.action(), rule.errno_ret())?;
            let args = rule.args().clone().unwrap_or_default();
            if ret == default {
                continue;
            }
            let fail = asm.label();
            for a in &args {
                condition(&mut asm, a, fail)?;
            }
            asm.op(RET, ret);
            asm.bind(fail);
            if args.is_empty() {
                break;
            }
            // Conditions clobbered the accumulator; reload the number for the next rule.
            asm.op(LD_W_ABS, 0);
        }
        asm.op(RET, default);
        asm.bind(next);
    }
    asm.op(RET, default);
    asm.finish()
}

/// Build a rule with one argument condition (for tests and callers composing profiles).
pub fn rule(
    name: &str,
    action: LinuxSeccompAction,
    arg: Option<(usize, u64, LinuxSeccompOperator)>,
) -> LinuxSyscall {
    let mut b = LinuxSyscallBuilder::default()
        .names(vec![name.to_owned()])
        .action(action);
    if let Some((index, value, op)) = arg {
        b = b.args(vec![
            LinuxSeccompArgBuilder::default()
                .index(index)
                .value(value)
                .op(op)
                .build()
                .expect("arg"),
        ]);
    }
    b.build().expect("rule")
}

#[cfg(test)]
mod tests;
