//! The cache key contract. A step's key is the sha256 of a canonical JSON document holding
//! the parent's key, the expanded instruction, everything the step can see (environment and
//! build args, shell, user, working directory, platform) and, for steps that read files, the
//! digests of exactly those files' content and metadata — never their times or inode numbers,
//! so a fresh clone or a `touch` still hits. Keys are pinned by tests: a change here must bump
//! [`CACHE_KEY_VERSION`].

use std::os::unix::fs::{MetadataExt, PermissionsExt};

use rbuild_oci::Digest;
use rbuild_parser::instructions::Instruction;
use serde_json::json;

use crate::checksum::DigestCache;
use crate::context::{EntryKind, Selection};
use crate::error::BuildError;

/// The version of the derivation; part of every key.
pub const CACHE_KEY_VERSION: &str = "rbuild-cache-key/v1";

/// What a stage starts from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BaseIdentity {
    /// `FROM scratch`.
    Scratch,
    /// An image, identified by its config digest (its image ID).
    Image(Digest),
    /// An earlier stage, identified by the key of its last step.
    Stage(Digest),
}

/// The key a stage's first step chains from.
pub fn base_key(base: &BaseIdentity, platform: &str) -> Digest {
    let base = match base {
        BaseIdentity::Scratch => json!("scratch"),
        BaseIdentity::Image(d) => json!({ "image": d.to_string() }),
        BaseIdentity::Stage(d) => json!({ "stage": d.to_string() }),
    };
    digest_of(&json!({ "v": CACHE_KEY_VERSION, "base": base, "platform": platform }))
}

/// Everything that determines a step's result.
#[derive(Debug, Clone)]
pub struct StepInputs<'a> {
    /// The previous step's key (or the base key).
    pub parent: &'a Digest,
    /// The instruction after ARG/ENV expansion.
    pub instruction: &'a Instruction,
    /// Variables the step can see (ENV and declared ARGs with their values), any order.
    pub env: &'a [(String, String)],
    /// The stage's SHELL.
    pub shell: &'a [String],
    /// The stage's USER.
    pub user: &'a str,
    /// The stage's WORKDIR.
    pub workdir: &'a str,
    /// Digest of the files the step reads (COPY/ADD selection), if any.
    pub content: Option<&'a Digest>,
    /// Keys or image IDs of other inputs (`--from` stage, bind-mount sources), in order.
    pub inputs: &'a [Digest],
}

/// The cache key of a step.
pub fn step_key(s: &StepInputs<'_>) -> Digest {
    let mut env: Vec<&(String, String)> = s.env.iter().collect();
    env.sort();
    let env: Vec<String> = env.iter().map(|(k, v)| format!("{k}={v}")).collect();
    let doc = json!({
        "v": CACHE_KEY_VERSION,
        "parent": s.parent.to_string(),
        "instruction": serde_json::to_value(s.instruction).expect("instructions serialize"),
        "env": env,
        "shell": s.shell,
        "user": s.user,
        "workdir": s.workdir,
        "content": s.content.map(|d| d.to_string()),
        "inputs": s.inputs.iter().map(|d| d.to_string()).collect::<Vec<_>>(),
    });
    digest_of(&doc)
}

/// Digest of a COPY/ADD selection: for every entry its destination path, type, permission
/// bits, size and content digest (or link target). Times, inodes and owners are left out.
pub fn selection_digest(
    selection: &Selection,
    cache: &mut DigestCache,
) -> Result<Digest, BuildError> {
    let mut lines = Vec::with_capacity(selection.entries.len() + 1);
    lines.push(format!("dest_is_dir={}", selection.dest_is_dir));
    for e in &selection.entries {
        let meta =
            std::fs::symlink_metadata(&e.path).map_err(|err| BuildError::io(&e.path, err))?;
        let mode = meta.permissions().mode() & 0o7777;
        let what = match e.kind {
            EntryKind::Dir => "dir".to_string(),
            EntryKind::File => {
                // A regular file's lstat is its stat; only a followed link needs a second one.
                let meta = if meta.file_type().is_file() {
                    meta
                } else {
                    std::fs::metadata(&e.path).map_err(|err| BuildError::io(&e.path, err))?
                };
                format!("file {} {}", meta.size(), cache.digest(&e.path, &meta)?)
            }
            EntryKind::Symlink => {
                let target =
                    std::fs::read_link(&e.path).map_err(|err| BuildError::io(&e.path, err))?;
                format!("link {}", target.display())
            }
        };
        lines.push(format!("{}\t{mode:o}\t{what}", e.dest_path));
    }
    Ok(Digest::sha256_of(lines.join("\n").as_bytes()))
}

fn digest_of(doc: &serde_json::Value) -> Digest {
    // serde_json's maps are sorted by key, so this serialization is canonical.
    Digest::sha256_of(serde_json::to_string(doc).expect("json").as_bytes())
}

#[cfg(test)]
mod tests {
    use rbuild_parser::instructions::{CommandLine, Run, Workdir};

    use super::*;

    fn run(cmd: &str) -> Instruction {
        Instruction::Run(Run {
            command: CommandLine::Shell(cmd.into()),
            heredocs: vec![],
            mounts: vec![],
            mount_specs: vec![],
            network: None,
            security: None,
        })
    }

    fn key(parent: &Digest, ins: &Instruction, env: &[(String, String)]) -> Digest {
        let shell = ["/bin/sh".to_string(), "-c".to_string()];
        step_key(&StepInputs {
            parent,
            instruction: ins,
            env,
            shell: &shell,
            user: "",
            workdir: "/",
            content: None,
            inputs: &[],
        })
    }

    /// Pinned values: if this test fails, the derivation changed — bump CACHE_KEY_VERSION
    /// deliberately and update the pins.
    #[test]
    fn keys_are_pinned() {
        let base = base_key(&BaseIdentity::Scratch, "linux/amd64");
        assert_eq!(
            base.to_string(),
            "sha256:88cd4a10280b699e0c8cb1e813ef3839fe19c92b0f9e1a74af0cbdf0c3bdce0e"
        );
        let k = key(&base, &run("echo hi"), &[("A".into(), "1".into())]);
        assert_eq!(
            k.to_string(),
            "sha256:c2c652008910312812596b00a5768805417323639815f3a5503032d3c9e59a9e"
        );
    }

    #[test]
    fn keys_depend_on_what_matters_only() {
        let base = base_key(&BaseIdentity::Scratch, "linux/amd64");
        let a = key(
            &base,
            &run("echo hi"),
            &[("A".into(), "1".into()), ("B".into(), "2".into())],
        );
        let reordered = key(
            &base,
            &run("echo hi"),
            &[("B".into(), "2".into()), ("A".into(), "1".into())],
        );
        assert_eq!(a, reordered, "env order must not matter");
        assert_ne!(
            a,
            key(
                &base,
                &run("echo ho"),
                &[("A".into(), "1".into()), ("B".into(), "2".into())]
            )
        );
        assert_ne!(a, key(&base, &run("echo hi"), &[("A".into(), "1".into())]));
        let other_base = base_key(&BaseIdentity::Scratch, "linux/arm64");
        assert_ne!(
            a,
            key(
                &other_base,
                &run("echo hi"),
                &[("A".into(), "1".into()), ("B".into(), "2".into())]
            )
        );
        let wd = Instruction::Workdir(Workdir { path: "/x".into() });
        assert_ne!(key(&base, &wd, &[]), key(&base, &run("/x"), &[]));
    }

    #[test]
    fn selection_digest_ignores_times_but_not_content() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("a"), b"one").unwrap();
        let ctx = crate::context::BuildContext::open(dir.path(), None).unwrap();
        let sel = ctx
            .select("COPY", &["a".to_string()], "/a", &[], false)
            .unwrap();
        let mut cache = DigestCache::in_memory();
        let d1 = selection_digest(&sel, &mut cache).unwrap();
        let f = std::fs::File::options()
            .write(true)
            .open(dir.path().join("a"))
            .unwrap();
        f.set_modified(std::time::SystemTime::UNIX_EPOCH).unwrap();
        assert_eq!(
            selection_digest(&sel, &mut cache).unwrap(),
            d1,
            "touch must not change the digest"
        );
        std::fs::write(dir.path().join("a"), b"two").unwrap();
        assert_ne!(selection_digest(&sel, &mut cache).unwrap(), d1);
        std::fs::set_permissions(dir.path().join("a"), std::fs::Permissions::from_mode(0o600))
            .unwrap();
        let d3 = selection_digest(&sel, &mut cache).unwrap();
        std::fs::set_permissions(dir.path().join("a"), std::fs::Permissions::from_mode(0o644))
            .unwrap();
        assert_ne!(
            selection_digest(&sel, &mut cache).unwrap(),
            d3,
            "mode is part of the digest"
        );
    }
}
