//! The cache key contract. A step's key is the sha256 of a canonical JSON document holding
//! the parent's key, the expanded instruction, everything the step can see (environment and
//! build args, shell, user, working directory, platform) and, for steps that read files, the
//! digests of exactly those files' content and metadata — never their times or inode numbers,
//! so a fresh clone or a `touch` still hits. Keys are pinned by tests: a change here must bump
//! [`CACHE_KEY_VERSION`].

use std::fmt::Write as _;
use std::os::unix::fs::{MetadataExt, PermissionsExt};

use rbuild_oci::{Algorithm, Digest, Hasher};
use rbuild_parser::instructions::Instruction;
use serde_json::json;

use crate::checksum::DigestCache;
use crate::context::{EntryKind, Selection, SourceEntry};
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
    key_of_document(s.parent, step_document(s))
}

/// The document a step's key is the digest of, without its parent: what a cache record keeps
/// so that a later miss can name the input that changed (see [`first_difference`]).
pub fn step_document(s: &StepInputs<'_>) -> serde_json::Value {
    let mut env: Vec<&(String, String)> = s.env.iter().collect();
    env.sort();
    let env: Vec<String> = env.iter().map(|(k, v)| format!("{k}={v}")).collect();
    json!({
        "v": CACHE_KEY_VERSION,
        "instruction": serde_json::to_value(s.instruction).expect("instructions serialize"),
        "env": env,
        "shell": s.shell,
        "user": s.user,
        "workdir": s.workdir,
        "content": s.content.map(|d| d.to_string()),
        "inputs": s.inputs.iter().map(|d| d.to_string()).collect::<Vec<_>>(),
    })
}

/// The key of a step document (from [`step_document`]) under `parent`: equal to
/// [`step_key`] of the same inputs.
pub fn key_of_document(parent: &Digest, mut doc: serde_json::Value) -> Digest {
    if let Some(map) = doc.as_object_mut() {
        map.insert("parent".into(), json!(parent.to_string()));
    }
    digest_of(&doc)
}

/// The first input in which step document `now` differs from `then` (both from
/// [`step_document`]), as a short phrase: `ARG VERSION changed`, `COPY src/app.py changed`.
/// `files_*` are the steps' per-file lines ([`selection_files`]), `args` the names of the
/// build args among the variables (the rest are ENV). `None` when they do not differ.
pub fn first_difference(
    now: &serde_json::Value,
    then: &serde_json::Value,
    files_now: &std::collections::BTreeMap<String, String>,
    files_then: &std::collections::BTreeMap<String, String>,
    args: &[String],
) -> Option<String> {
    let field = |doc: &serde_json::Value, k: &str| doc.get(k).cloned().unwrap_or_default();
    if field(now, "v") != field(then, "v") {
        return Some("the cache key version changed".into());
    }
    // Instructions serialize tagged: `{"instruction": "COPY", ...}`.
    let keyword = now
        .get("instruction")
        .and_then(|i| i.get("instruction"))
        .and_then(|k| k.as_str())
        .unwrap_or("step")
        .to_string();
    if field(now, "instruction") != field(then, "instruction") {
        return Some(format!("the {keyword} instruction changed"));
    }
    if field(now, "env") != field(then, "env") {
        let vars = |doc: &serde_json::Value| -> std::collections::BTreeMap<String, String> {
            field(doc, "env")
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|v| {
                    v.as_str()?
                        .split_once('=')
                        .map(|(k, v)| (k.into(), v.into()))
                })
                .collect()
        };
        let (a, b) = (vars(now), vars(then));
        let name = a
            .keys()
            .chain(b.keys())
            .filter(|k| a.get(*k) != b.get(*k))
            .min()
            .cloned()
            .unwrap_or_default();
        let kind = if args.contains(&name) { "ARG" } else { "ENV" };
        let what = match (a.contains_key(&name), b.contains_key(&name)) {
            (true, false) => "added",
            (false, true) => "removed",
            _ => "changed",
        };
        return Some(format!("{kind} {name} {what}"));
    }
    for (k, phrase) in [
        ("shell", "SHELL changed"),
        ("user", "USER changed"),
        ("workdir", "WORKDIR changed"),
    ] {
        if field(now, k) != field(then, k) {
            return Some(phrase.into());
        }
    }
    if field(now, "content") != field(then, "content") {
        let changed = files_now
            .keys()
            .chain(files_then.keys())
            .filter(|k| files_now.get(*k) != files_then.get(*k))
            .min();
        return Some(match changed {
            Some(path) => {
                let what = match (files_now.contains_key(path), files_then.contains_key(path)) {
                    (true, false) => "added",
                    (false, true) => "removed",
                    _ => "changed",
                };
                format!("{keyword} {path} {what}")
            }
            None => format!("{keyword} sources changed"),
        });
    }
    if field(now, "inputs") != field(then, "inputs") {
        return Some(match keyword.as_str() {
            "RUN" => "a RUN --mount source changed".into(),
            _ => format!("{keyword} --from source changed"),
        });
    }
    None
}

/// Digest of a COPY/ADD selection: for every entry its destination path, type, permission
/// bits, size and content digest (or link target). Times, inodes and owners are left out.
pub fn selection_digest(
    selection: &Selection,
    cache: &mut DigestCache,
) -> Result<Digest, BuildError> {
    Ok(selection_files(selection, cache)?.0)
}

/// Hash the selection's regular files the cache lacks first, in parallel when worth it
/// ([`DigestCache::prefetch`]), so the digests asked for one by one next are found.
pub(crate) fn prefetch_selection(
    selection: &Selection,
    cache: &mut DigestCache,
) -> Result<(), BuildError> {
    let regular: Vec<(&std::path::Path, &std::fs::Metadata)> = selection
        .entries
        .iter()
        .filter_map(|e| match (&e.kind, &e.meta) {
            (EntryKind::File, Some(m)) if m.file_type().is_file() => Some((e.path.as_path(), m)),
            _ => None,
        })
        .collect();
    if regular.len() > 1 {
        cache.prefetch(&regular)?;
    }
    Ok(())
}

/// Most files a cache record lists by name (to explain a miss); a larger selection is
/// recorded by its digest only.
pub const EXPLAINED_FILES: usize = 2000;

/// [`selection_digest`], and each entry's line (mode and content) by its path in the
/// context, for explanations (empty beyond [`EXPLAINED_FILES`] entries).
pub fn selection_files(
    selection: &Selection,
    cache: &mut DigestCache,
) -> Result<(Digest, std::collections::BTreeMap<String, String>), BuildError> {
    prefetch_selection(selection, cache)?;
    let mut files = std::collections::BTreeMap::new();
    let explained = selection.entries.len() <= EXPLAINED_FILES;
    // The digest is of the entries' lines joined by newlines, hashed as they are made.
    let mut hasher = Hasher::new(Algorithm::Sha256);
    hasher.update(format!("dest_is_dir={}", selection.dest_is_dir).as_bytes());
    for e in &selection.entries {
        let meta = entry_lstat(e)?;
        let meta = meta.as_ref();
        let mode = meta.permissions().mode() & 0o7777;
        // "MODE WHAT" is the file's line for explanations; the digest's line is
        // "DEST\tMODE\tWHAT". One string serves both.
        let mut line = format!("{mode:o} ");
        let what_at = line.len();
        match e.kind {
            EntryKind::Dir => line.push_str("dir"),
            EntryKind::File => {
                let (digest, size) = file_digest(e, meta, cache)?;
                write!(line, "file {size} {digest}").expect("writing to a string");
            }
            EntryKind::Symlink => {
                let target =
                    std::fs::read_link(&e.path).map_err(|err| BuildError::io(&e.path, err))?;
                write!(line, "link {}", target.display()).expect("writing to a string");
            }
        }
        hasher.update(b"\n");
        hasher.update(e.dest_path.as_bytes());
        hasher.update(b"\t");
        hasher.update(&line.as_bytes()[..what_at - 1]);
        hasher.update(b"\t");
        hasher.update(&line.as_bytes()[what_at..]);
        if explained {
            files.insert(e.context_path.clone(), line);
        }
    }
    Ok((hasher.finish(), files))
}

/// The content digest of each entry of `selection` that is a regular file (`None` for the
/// others), in the selection's order: what [`selection_files`] hashed, asked again of `cache`.
pub fn selection_digests(
    selection: &Selection,
    cache: &mut DigestCache,
) -> Result<Vec<Option<Digest>>, BuildError> {
    let mut out = Vec::with_capacity(selection.entries.len());
    for e in &selection.entries {
        out.push(match e.kind {
            EntryKind::File => Some(file_digest(e, entry_lstat(e)?.as_ref(), cache)?.0),
            _ => None,
        });
    }
    Ok(out)
}

/// A selected entry's lstat: the one the context walk took, else one taken now.
fn entry_lstat(e: &SourceEntry) -> Result<std::borrow::Cow<'_, std::fs::Metadata>, BuildError> {
    match &e.meta {
        Some(m) => Ok(std::borrow::Cow::Borrowed(m)),
        None => std::fs::symlink_metadata(&e.path)
            .map(std::borrow::Cow::Owned)
            .map_err(|err| BuildError::io(&e.path, err)),
    }
}

/// A selected regular file's content digest and size, given its `lstat`: a followed link's
/// are its target's.
fn file_digest(
    e: &SourceEntry,
    lstat: &std::fs::Metadata,
    cache: &mut DigestCache,
) -> Result<(Digest, u64), BuildError> {
    // A regular file's lstat is its stat; only a followed link needs a second one.
    let followed;
    let meta = if lstat.file_type().is_file() {
        lstat
    } else {
        followed = std::fs::metadata(&e.path).map_err(|err| BuildError::io(&e.path, err))?;
        &followed
    };
    Ok((cache.digest(&e.path, meta)?, meta.size()))
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

    /// Two copies of one context, made at different times in different places (new inodes,
    /// paths, mtimes and ctimes), as two machines or two fresh clones have it: every key of
    /// a COPY of them is the same, so a cache exported from one hits on the other.
    #[test]
    fn keys_do_not_depend_on_where_or_when_the_context_was_made() {
        let make = |root: &std::path::Path, mtime: u64| {
            std::fs::create_dir_all(root.join("src/pkg")).unwrap();
            std::fs::write(root.join("src/app.py"), b"print('hi')\n").unwrap();
            std::fs::write(root.join("src/pkg/mod.py"), b"x = 1\n").unwrap();
            std::os::unix::fs::symlink("app.py", root.join("src/link")).unwrap();
            std::fs::write(root.join("README"), b"readme\n").unwrap();
            for f in ["src/app.py", "src/pkg/mod.py", "README"] {
                let file = std::fs::File::options()
                    .write(true)
                    .open(root.join(f))
                    .unwrap();
                let t = std::time::UNIX_EPOCH + std::time::Duration::from_secs(mtime);
                file.set_modified(t).unwrap();
            }
        };
        let one = tempfile::tempdir().unwrap();
        make(&one.path().join("checkout"), 1_000_000);
        // The second copy: elsewhere, later, with other inodes (and a persisted digest cache
        // that knows the first copy, as a store that built it has).
        let other = tempfile::tempdir().unwrap();
        let two = other.path().join("deeper/clone");
        make(&two, 1_700_000_000);
        let keys = |root: &std::path::Path, cache: &mut DigestCache| {
            let ctx = crate::context::BuildContext::open(root, None).unwrap();
            let base = base_key(
                &BaseIdentity::Image(Digest::sha256_of(b"config")),
                "linux/amd64",
            );
            let mut out = vec![base.clone()];
            let mut parent = base;
            for (src, dest) in [
                ("src", "/app/"),
                ("README", "/README"),
                ("src/*.py", "/py/"),
            ] {
                let sel = ctx
                    .select("COPY", &[src.to_string()], dest, &[], false)
                    .unwrap();
                let (content, files) = selection_files(&sel, cache).unwrap();
                assert!(!files.is_empty());
                let ins = Instruction::Copy(rbuild_parser::instructions::Copy {
                    sources: vec![src.into()],
                    dest: dest.into(),
                    from: None,
                    chown: None,
                    chmod: None,
                    link: false,
                    parents: false,
                    exclude: vec![],
                    heredocs: vec![],
                });
                let shell = ["/bin/sh".to_string(), "-c".to_string()];
                parent = step_key(&StepInputs {
                    parent: &parent,
                    instruction: &ins,
                    env: &[("PATH".into(), "/bin".into())],
                    shell: &shell,
                    user: "",
                    workdir: "/",
                    content: Some(&content),
                    inputs: &[],
                });
                out.push(content);
                out.push(parent.clone());
            }
            out
        };
        let digests = one.path().join("digests.jsonl");
        let mut cache = DigestCache::load(&digests);
        let first = keys(&one.path().join("checkout"), &mut cache);
        cache.save().unwrap();
        let mut cache = DigestCache::load(&digests);
        let second = keys(&two, &mut cache);
        assert_eq!(first, second);
        assert_eq!(cache.files_hashed(), 3, "the new copy's files were read");
        // …while a changed byte does change them.
        std::fs::write(two.join("src/pkg/mod.py"), b"x = 2\n").unwrap();
        assert_ne!(keys(&two, &mut DigestCache::in_memory()), first);
    }

    #[test]
    fn explanations_name_the_input() {
        let base = base_key(&BaseIdentity::Scratch, "linux/amd64");
        let doc = |cmd: &str, env: &[(String, String)]| {
            let shell = ["/bin/sh".to_string(), "-c".to_string()];
            let ins = run(cmd);
            let s = StepInputs {
                parent: &base,
                instruction: &ins,
                env,
                shell: &shell,
                user: "",
                workdir: "/",
                content: None,
                inputs: &[],
            };
            assert_eq!(key_of_document(&base, step_document(&s)), step_key(&s));
            step_document(&s)
        };
        let none = std::collections::BTreeMap::new();
        let args = ["VERSION".to_string()];
        let v1 = doc("make", &[("VERSION".into(), "1".into())]);
        let v2 = doc("make", &[("VERSION".into(), "2".into())]);
        assert_eq!(
            first_difference(&v2, &v1, &none, &none, &args).as_deref(),
            Some("ARG VERSION changed")
        );
        let e = doc(
            "make",
            &[("VERSION".into(), "1".into()), ("X".into(), "y".into())],
        );
        assert_eq!(
            first_difference(&e, &v1, &none, &none, &args).as_deref(),
            Some("ENV X added")
        );
        let other = doc("make all", &[("VERSION".into(), "1".into())]);
        assert_eq!(
            first_difference(&other, &v1, &none, &none, &args).as_deref(),
            Some("the RUN instruction changed")
        );
        assert_eq!(first_difference(&v1, &v1, &none, &none, &args), None);
    }

    #[test]
    fn selection_digest_ignores_times_but_not_content() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("a"), b"one").unwrap();
        let ctx = crate::context::BuildContext::open(dir.path(), None).unwrap();
        let mut cache = DigestCache::in_memory();
        // A selection holds the stat taken when it was made: select again after each change.
        let mut digest = || {
            let sel = ctx
                .select("COPY", &["a".to_string()], "/a", &[], false)
                .unwrap();
            selection_digest(&sel, &mut cache).unwrap()
        };
        let d1 = digest();
        let f = std::fs::File::options()
            .write(true)
            .open(dir.path().join("a"))
            .unwrap();
        f.set_modified(std::time::SystemTime::UNIX_EPOCH).unwrap();
        assert_eq!(digest(), d1, "touch must not change the digest");
        std::fs::write(dir.path().join("a"), b"two").unwrap();
        assert_ne!(digest(), d1);
        std::fs::set_permissions(dir.path().join("a"), std::fs::Permissions::from_mode(0o600))
            .unwrap();
        let d3 = digest();
        std::fs::set_permissions(dir.path().join("a"), std::fs::Permissions::from_mode(0o644))
            .unwrap();
        assert_ne!(digest(), d3, "mode is part of the digest");
    }
}
