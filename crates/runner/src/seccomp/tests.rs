use super::*;
use oci_spec::runtime::ProcessBuilder;

/// A classic-BPF interpreter for the instructions the compiler emits.
fn run(prog: &[libc::sock_filter], arch: u32, nr: u32, args: [u64; 6]) -> u32 {
    let mut data = Vec::new();
    data.extend(nr.to_le_bytes());
    data.extend(arch.to_le_bytes());
    data.extend(0u64.to_le_bytes());
    for a in args {
        data.extend(a.to_le_bytes());
    }
    let (mut pc, mut acc) = (0usize, 0u32);
    loop {
        let i = prog[pc];
        pc += 1;
        match i.code {
            LD_W_ABS => {
                acc = u32::from_le_bytes(data[i.k as usize..i.k as usize + 4].try_into().unwrap())
            }
            AND => acc &= i.k,
            RET => return i.k,
            JEQ | JGT | JGE => {
                let t = match i.code {
                    JEQ => acc == i.k,
                    JGT => acc > i.k,
                    _ => acc >= i.k,
                };
                pc += usize::from(if t { i.jt } else { i.jf });
            }
            c => panic!("unexpected opcode {c:#x}"),
        }
    }
}

const X86_64: u32 = 0xc000_003e;
const EPERM: u32 = 0x0005_0001;

fn nr(name: &str) -> u32 {
    syscall_number(name).unwrap()
}

fn docker_program(caps: &Capabilities) -> Vec<libc::sock_filter> {
    let p = ProcessBuilder::default().build().unwrap();
    compile(&docker_default(caps).unwrap(), &p).unwrap()
}

#[test]
fn docker_default_allows_ordinary_calls_and_denies_privileged_ones() {
    let prog = docker_program(&caps::docker_default());
    let call = |name: &str, args: [u64; 6]| run(&prog, X86_64, nr(name), args);
    assert_eq!(call("read", [0; 6]), RET_ALLOW);
    assert_eq!(call("execve", [0; 6]), RET_ALLOW);
    assert_eq!(
        call("chroot", [0; 6]),
        RET_ALLOW,
        "CAP_SYS_CHROOT is in docker's set"
    );
    assert_eq!(call("mount", [0; 6]), EPERM);
    assert_eq!(call("unshare", [0; 6]), EPERM);
    assert_eq!(call("kexec_load", [0; 6]), EPERM);
    assert_eq!(
        call("clone3", [0; 6]),
        0x0005_0000 | 38,
        "clone3 gets ENOSYS so libc falls back to clone"
    );
    // clone without namespace flags is fine; with CLONE_NEWUSER it is not.
    assert_eq!(
        call("clone", [libc::SIGCHLD as u64, 0, 0, 0, 0, 0]),
        RET_ALLOW
    );
    assert_eq!(
        call("clone", [libc::CLONE_NEWUSER as u64, 0, 0, 0, 0, 0]),
        EPERM
    );
    // socket: anything but AF_VSOCK (40).
    assert_eq!(
        call("socket", [libc::AF_INET as u64, 0, 0, 0, 0, 0]),
        RET_ALLOW
    );
    assert_eq!(call("socket", [40, 0, 0, 0, 0, 0]), EPERM);
    assert_eq!(
        call("socket", [40 | 1 << 32, 0, 0, 0, 0, 0]),
        RET_ALLOW,
        "NE compares all 64 bits"
    );
    // personality: only the listed values.
    assert_eq!(call("personality", [0xffff_ffff, 0, 0, 0, 0, 0]), RET_ALLOW);
    assert_eq!(call("personality", [0x0040_0000, 0, 0, 0, 0, 0]), EPERM);
    // Other architectures and x32 numbers get the default action.
    assert_eq!(run(&prog, 0x4000_0003, 3, [0; 6]), EPERM);
    assert_eq!(run(&prog, X86_64, 0x4000_0000 | nr("read"), [0; 6]), EPERM);
}

#[test]
fn capabilities_widen_the_profile_like_docker() {
    let mut set = caps::docker_default();
    set.insert(caps::parse("SYS_ADMIN").unwrap());
    let prog = docker_program(&set);
    assert_eq!(run(&prog, X86_64, nr("mount"), [0; 6]), RET_ALLOW);
    assert_eq!(
        run(
            &prog,
            X86_64,
            nr("clone"),
            [libc::CLONE_NEWUSER as u64, 0, 0, 0, 0, 0]
        ),
        RET_ALLOW
    );
    assert_eq!(run(&prog, X86_64, nr("clone3"), [0; 6]), RET_ALLOW);
}

#[test]
fn ordering_operators_compare_64_bit_values() {
    use LinuxSeccompOperator as O;
    let p = ProcessBuilder::default().build().unwrap();
    let deny = |op| {
        let s = LinuxSeccompBuilder::default()
            .default_action(LinuxSeccompAction::ScmpActAllow)
            .syscalls(vec![rule(
                "write",
                LinuxSeccompAction::ScmpActErrno,
                Some((2, 0x1_0000_0005, op)),
            )])
            .build()
            .unwrap();
        compile(&s, &p).unwrap()
    };
    let cases = [
        (
            O::ScmpCmpGe,
            [0x1_0000_0005u64, 0x1_0000_0006, 0x2_0000_0000],
            [0x1_0000_0004u64, 5, 0],
        ),
        (
            O::ScmpCmpGt,
            [0x1_0000_0006, 0x2_0000_0000, u64::MAX],
            [0x1_0000_0005, 0x1_0000_0004, 7],
        ),
        (
            O::ScmpCmpLt,
            [0x1_0000_0004, 5, 0],
            [0x1_0000_0005, 0x1_0000_0006, 0x2_0000_0000],
        ),
        (
            O::ScmpCmpLe,
            [0x1_0000_0005, 0x1_0000_0004, 7],
            [0x1_0000_0006, 0x2_0000_0000, u64::MAX],
        ),
        (
            O::ScmpCmpEq,
            [0x1_0000_0005, 0x1_0000_0005, 0x1_0000_0005],
            [5, 0x1_0000_0004, 0],
        ),
    ];
    for (op, denied, allowed) in cases {
        let prog = deny(op);
        for v in denied {
            assert_eq!(
                run(&prog, X86_64, nr("write"), [0, 0, v, 0, 0, 0]),
                EPERM,
                "{op:?} {v:#x}"
            );
        }
        for v in allowed {
            assert_eq!(
                run(&prog, X86_64, nr("write"), [0, 0, v, 0, 0, 0]),
                RET_ALLOW,
                "{op:?} {v:#x}"
            );
        }
    }
}

#[test]
fn bad_profiles_are_reported() {
    let e = profile(
        "{\"defaultAction\": \"SCMP_ACT_NOPE\"}",
        &caps::docker_default(),
    )
    .unwrap_err();
    assert!(e.to_string().starts_with("seccomp profile:"), "{e}");
    let e = profile(
        "{\"defaultAction\":\"SCMP_ACT_ERRNO\",\"syscalls\":[{\"names\":[\"x\"],\"action\":\"SCMP_ACT_ALLOW\",\"includes\":{\"caps\":[\"CAP_NOPE\"]}}]}",
        &caps::docker_default(),
    )
    .unwrap_err();
    assert!(e.to_string().contains("CAP_NOPE"), "{e}");
}
