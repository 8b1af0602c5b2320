//! The build context: a directory, its `.dockerignore`, and COPY/ADD source resolution with
//! Docker's rules: sources are relative to the context root, never leave it, may use
//! wildcards (`*`, `?`, `[…]`, never crossing `/`), a directory source copies its contents,
//! and paths excluded by `.dockerignore` do not exist for the build.

use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::error::BuildError;
use crate::ignore::{Matcher, clean, find_ignore_file};

/// A build context directory with its ignore rules.
#[derive(Debug, Clone)]
pub struct BuildContext {
    root: PathBuf,
    ignore: Matcher,
    ignore_file: Option<PathBuf>,
}

/// What kind of file a context entry is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum EntryKind {
    /// A directory.
    Dir,
    /// A regular file.
    File,
    /// A symbolic link (copied as a link).
    Symlink,
}

/// One file a COPY/ADD will write.
#[derive(Debug, Clone)]
pub struct SourceEntry {
    /// Absolute path on disk.
    pub path: PathBuf,
    /// Path relative to the context root (slash-separated).
    pub context_path: String,
    /// Path relative to the destination (slash-separated; the base name for a single file).
    pub dest_path: String,
    /// File type.
    pub kind: EntryKind,
    /// `path`'s `lstat`, taken when the entry was selected (`None`: taken when needed). The
    /// cache key and the copy use this one stat, so a walk stats each file once.
    pub meta: Option<std::fs::Metadata>,
}

/// The sources of one COPY/ADD, resolved.
#[derive(Debug, Clone)]
pub struct Selection {
    /// Every entry, sorted by destination path; directories precede their contents.
    pub entries: Vec<SourceEntry>,
    /// True when the destination must be treated as a directory (several sources, a
    /// directory source, a wildcard).
    pub dest_is_dir: bool,
}

impl BuildContext {
    /// Open a context directory; the ignore file is `<dockerfile>.dockerignore` beside the
    /// Dockerfile if present, else `<context>/.dockerignore`.
    pub fn open(root: &Path, dockerfile: Option<&Path>) -> Result<Self, BuildError> {
        let root = root.canonicalize().map_err(|e| BuildError::io(root, e))?;
        if !root.is_dir() {
            return Err(BuildError::io(
                &root,
                std::io::Error::other("build context is not a directory"),
            ));
        }
        let dockerfile = dockerfile
            .map(Path::to_path_buf)
            .unwrap_or_else(|| root.join("Dockerfile"));
        let (ignore, ignore_file) = match find_ignore_file(&root, &dockerfile)
            .map_err(|e| BuildError::io(&root, e))?
        {
            Some((file, text)) => {
                let m = Matcher::from_dockerignore(&text).map_err(|source| BuildError::Ignore {
                    file: file.clone(),
                    source,
                })?;
                (m, Some(file))
            }
            None => (Matcher::default(), None),
        };
        Ok(BuildContext {
            root,
            ignore,
            ignore_file,
        })
    }

    /// A directory read without ignore rules: another stage's or an image's filesystem
    /// (`COPY --from`).
    pub fn plain(root: &Path) -> Result<Self, BuildError> {
        let root = root.canonicalize().map_err(|e| BuildError::io(root, e))?;
        Ok(BuildContext {
            root,
            ignore: Matcher::default(),
            ignore_file: None,
        })
    }

    /// The context directory (canonical).
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The ignore file in use, if any.
    pub fn ignore_file(&self) -> Option<&Path> {
        self.ignore_file.as_deref()
    }

    /// Whether a context-relative path is excluded by `.dockerignore`.
    pub fn is_ignored(&self, context_path: &str) -> bool {
        self.ignore.is_ignored(context_path)
    }

    /// Resolve the sources of a COPY/ADD. `exclude` holds `--exclude` patterns (relative to
    /// the context); `parents` keeps each source's directories (`--parents`).
    pub fn select(
        &self,
        keyword: &str,
        sources: &[String],
        dest: &str,
        exclude: &[String],
        parents: bool,
    ) -> Result<Selection, BuildError> {
        let exclude = Matcher::new(exclude).map_err(|source| BuildError::Ignore {
            file: "--exclude".into(),
            source,
        })?;
        let mut entries = Vec::new();
        let mut dest_is_dir = dest.ends_with('/') || sources.len() > 1;
        for source in sources {
            let rel = context_relative(source)?;
            let matches = if has_wildcard(&rel) {
                dest_is_dir = true;
                let found = self.glob(&rel)?;
                if found.is_empty() {
                    return Err(BuildError::SourceNotFound {
                        path: source.clone(),
                        ignored: false,
                    });
                }
                found
            } else {
                let path = self.root.join(&rel);
                if path.symlink_metadata().is_err() {
                    return Err(BuildError::SourceNotFound {
                        path: source.clone(),
                        ignored: false,
                    });
                }
                if rel != "." && self.is_ignored(&rel) {
                    return Err(BuildError::SourceNotFound {
                        path: source.clone(),
                        ignored: true,
                    });
                }
                vec![rel]
            };
            for rel in matches {
                let path = self.resolve_in_context(&rel, source)?;
                let meta = path.metadata().map_err(|e| BuildError::io(&path, e))?;
                let base = if parents {
                    parent_prefix(&rel)
                } else {
                    String::new()
                };
                if meta.is_dir() {
                    dest_is_dir = true;
                    if parents && rel != "." {
                        entries.push(entry(
                            path.clone(),
                            rel.clone(),
                            join(&base, basename(&rel)),
                            EntryKind::Dir,
                            meta.clone(),
                        ));
                    }
                    let inner_base = if parents && rel != "." {
                        join(&base, basename(&rel))
                    } else {
                        String::new()
                    };
                    self.walk_dir(&path, &rel, &inner_base, &exclude, &mut entries)?;
                } else {
                    if exclude.is_ignored(&rel) {
                        continue;
                    }
                    let kind = if meta.is_file() {
                        EntryKind::File
                    } else {
                        EntryKind::Symlink
                    };
                    let dest_path = join(&base, basename(&rel));
                    entries.push(entry(path, rel, dest_path, kind, meta));
                }
            }
        }
        if dest_is_dir && sources.len() > 1 && !dest.ends_with('/') {
            return Err(BuildError::DestinationNotDirectory {
                keyword: keyword.to_string(),
            });
        }
        entries.sort_by(|a, b| a.dest_path.cmp(&b.dest_path));
        entries.dedup_by(|a, b| a.dest_path == b.dest_path);
        Ok(Selection {
            entries,
            dest_is_dir,
        })
    }

    /// Follow a source path's symlinks, refusing any that leave the context.
    fn resolve_in_context(&self, rel: &str, source: &str) -> Result<PathBuf, BuildError> {
        let path = self.root.join(rel);
        let real = path.canonicalize().map_err(|e| BuildError::io(&path, e))?;
        if !real.starts_with(&self.root) {
            return Err(BuildError::OutsideContext {
                path: source.to_string(),
            });
        }
        Ok(real)
    }

    fn walk_dir(
        &self,
        dir: &Path,
        rel: &str,
        base: &str,
        exclude: &Matcher,
        out: &mut Vec<SourceEntry>,
    ) -> Result<(), BuildError> {
        let walk = Walk {
            context: self,
            rel,
            base,
            exclude,
            skip_ignored_dirs: !self.ignore.has_exclusions() && !exclude.has_exclusions(),
        };
        // Ignored directories that may still hold re-included (`!pattern`) files: emitted
        // before the first such file so its parents exist with their own metadata.
        let mut pending: Vec<SourceEntry> = Vec::new();
        walk.level(dir, "", &mut pending, out)
    }

    /// Context paths matching a wildcard source, component by component, not ignored.
    fn glob(&self, pattern: &str) -> Result<Vec<String>, BuildError> {
        let mut current = vec![String::new()];
        for component in pattern.split('/') {
            let mut next = Vec::new();
            for prefix in &current {
                let dir = if prefix.is_empty() {
                    self.root.clone()
                } else {
                    self.root.join(prefix)
                };
                if !has_wildcard(component) {
                    let candidate = join(prefix, &unescape(component));
                    if self.root.join(&candidate).symlink_metadata().is_ok() {
                        next.push(candidate);
                    }
                    continue;
                }
                let Ok(read) = std::fs::read_dir(&dir) else {
                    continue;
                };
                let mut names: Vec<String> = read
                    .filter_map(|e| e.ok())
                    .map(|e| e.file_name().to_string_lossy().to_string())
                    .collect();
                names.sort();
                for name in names {
                    if glob_match(component, &name) {
                        next.push(join(prefix, &name));
                    }
                }
            }
            current = next;
        }
        Ok(current
            .into_iter()
            .filter(|p| !self.is_ignored(p))
            .collect())
    }
}

/// One directory source's walk: depth first, each directory's entries sorted by name, every
/// entry stat'ed relative to its directory's descriptor (`fstatat`), which spares the kernel
/// a path walk from the root per file.
struct Walk<'a> {
    context: &'a BuildContext,
    /// The source directory's context path (`.` for the root).
    rel: &'a str,
    /// What the destination paths start with.
    base: &'a str,
    exclude: &'a Matcher,
    /// No `!pattern` can re-include anything below an ignored directory.
    skip_ignored_dirs: bool,
}

impl Walk<'_> {
    /// Walk directory `path`, whose path below the source directory is `inner` ("" for the
    /// source directory itself).
    fn level(
        &self,
        path: &Path,
        inner: &str,
        pending: &mut Vec<SourceEntry>,
        out: &mut Vec<SourceEntry>,
    ) -> Result<(), BuildError> {
        // This level's entries are stat'ed while its directory is open, then it is closed
        // before descending, so a deep tree holds one descriptor at a time.
        let mut children = Vec::new();
        {
            let read = std::fs::read_dir(path).map_err(|e| BuildError::io(path, e))?;
            let mut items = Vec::new();
            for item in read {
                let item = item.map_err(|e| BuildError::io(path, e))?;
                items.push((item.file_name(), item));
            }
            items.sort_unstable_by(|a, b| a.0.cmp(&b.0));
            for (name, item) in items {
                let inner = join(inner, &name.to_string_lossy());
                let context_path = if self.rel == "." {
                    inner.clone()
                } else {
                    format!("{}/{inner}", self.rel)
                };
                let ignored = self.context.is_ignored(&context_path)
                    || self.exclude.is_ignored(&context_path);
                let is_dir = item.file_type().is_ok_and(|t| t.is_dir());
                if ignored && (!is_dir || self.skip_ignored_dirs) {
                    continue;
                }
                let meta = item
                    .metadata()
                    .map_err(|e| BuildError::io(item.path(), e))?;
                let kind = if meta.is_dir() {
                    EntryKind::Dir
                } else if meta.file_type().is_symlink() {
                    EntryKind::Symlink
                } else {
                    EntryKind::File
                };
                // A directory's path below the source is kept to walk it.
                let is_dir = kind == EntryKind::Dir;
                let (dest_path, below) = match (self.base.is_empty(), is_dir) {
                    (true, false) => (inner, None),
                    (true, true) => (inner.clone(), Some(inner)),
                    (false, _) => (join(self.base, &inner), is_dir.then_some(inner)),
                };
                let e = entry(item.path(), context_path, dest_path, kind, meta);
                children.push((e, ignored, below));
            }
        }
        for (e, ignored, below) in children {
            pending.retain(|p| e.context_path.starts_with(&format!("{}/", p.context_path)));
            if ignored {
                // A directory only (see above), kept in case a `!pattern` re-includes below.
                if let Some(below) = below {
                    let dir = e.path.clone();
                    pending.push(e);
                    self.level(&dir, &below, pending, out)?;
                }
                continue;
            }
            out.append(pending);
            match below {
                Some(below) => {
                    let dir = e.path.clone();
                    out.push(e);
                    self.level(&dir, &below, pending, out)?;
                }
                None => out.push(e),
            }
        }
        Ok(())
    }
}

fn entry(
    path: PathBuf,
    context_path: String,
    dest_path: String,
    kind: EntryKind,
    meta: std::fs::Metadata,
) -> SourceEntry {
    SourceEntry {
        path,
        context_path,
        dest_path,
        kind,
        meta: Some(meta),
    }
}

fn join(a: &str, b: &str) -> String {
    match (a.is_empty(), b.is_empty()) {
        (true, _) => b.to_string(),
        (_, true) => a.to_string(),
        _ => format!("{a}/{b}"),
    }
}

fn basename(rel: &str) -> &str {
    rel.rsplit('/').next().unwrap_or(rel)
}

fn parent_prefix(rel: &str) -> String {
    match rel.rfind('/') {
        Some(i) => rel[..i].to_string(),
        None => String::new(),
    }
}

/// A source as a clean path relative to the context root; `..` out of it is refused.
fn context_relative(source: &str) -> Result<String, BuildError> {
    let cleaned = clean(source.trim_start_matches('/'));
    if cleaned == ".." || cleaned.starts_with("../") {
        return Err(BuildError::OutsideContext {
            path: source.to_string(),
        });
    }
    Ok(cleaned)
}

/// True when a path has unescaped `*`, `?` or `[`.
pub fn has_wildcard(s: &str) -> bool {
    let mut escaped = false;
    for c in s.chars() {
        match c {
            _ if escaped => escaped = false,
            '\\' => escaped = true,
            '*' | '?' | '[' => return true,
            _ => {}
        }
    }
    false
}

fn unescape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        if c == '\\' {
            out.extend(chars.next());
        } else {
            out.push(c);
        }
    }
    out
}

/// Go's `filepath.Match` for one path component (no `/` inside `name`).
pub fn glob_match(pattern: &str, name: &str) -> bool {
    let p: Vec<char> = pattern.chars().collect();
    let n: Vec<char> = name.chars().collect();
    match_from(&p, &n)
}

fn match_from(p: &[char], n: &[char]) -> bool {
    let (mut pi, mut ni) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while ni < n.len() {
        if pi < p.len() {
            match p[pi] {
                '*' => {
                    star = Some((pi, ni));
                    pi += 1;
                    continue;
                }
                '?' => {
                    pi += 1;
                    ni += 1;
                    continue;
                }
                '[' => {
                    if let Some((ok, len)) = class_match(&p[pi..], n[ni])
                        && ok
                    {
                        pi += len;
                        ni += 1;
                        continue;
                    }
                }
                '\\' if pi + 1 < p.len() && p[pi + 1] == n[ni] => {
                    pi += 2;
                    ni += 1;
                    continue;
                }
                c if c == n[ni] => {
                    pi += 1;
                    ni += 1;
                    continue;
                }
                _ => {}
            }
        }
        match star {
            Some((sp, sn)) => {
                pi = sp + 1;
                ni = sn + 1;
                star = Some((sp, sn + 1));
            }
            None => return false,
        }
    }
    p[pi..].iter().all(|&c| c == '*')
}

/// Match `c` against the class at the start of `p` (`[abc]`, `[^a-z]`); returns (matched, class length).
fn class_match(p: &[char], c: char) -> Option<(bool, usize)> {
    let mut i = 1;
    let negate = p.get(i) == Some(&'^');
    if negate {
        i += 1;
    }
    let mut matched = false;
    let mut first = true;
    while i < p.len() {
        if p[i] == ']' && !first {
            return Some((matched != negate, i + 1));
        }
        first = false;
        let mut lo = p[i];
        if lo == '\\' {
            i += 1;
            lo = *p.get(i)?;
        }
        let mut hi = lo;
        if p.get(i + 1) == Some(&'-') && p.get(i + 2).is_some_and(|&h| h != ']') {
            hi = p[i + 2];
            if hi == '\\' {
                hi = *p.get(i + 3)?;
                i += 1;
            }
            i += 2;
        }
        if lo <= c && c <= hi {
            matched = true;
        }
        i += 1;
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn context(files: &[&str], ignore: Option<&str>) -> (tempfile::TempDir, BuildContext) {
        let dir = tempfile::tempdir().unwrap();
        for f in files {
            let path = dir.path().join(f);
            if f.ends_with('/') {
                std::fs::create_dir_all(&path).unwrap();
            } else {
                std::fs::create_dir_all(path.parent().unwrap()).unwrap();
                std::fs::write(&path, f.as_bytes()).unwrap();
            }
        }
        if let Some(text) = ignore {
            std::fs::write(dir.path().join(".dockerignore"), text).unwrap();
        }
        let ctx = BuildContext::open(dir.path(), None).unwrap();
        (dir, ctx)
    }

    fn dests(sel: &Selection) -> Vec<&str> {
        sel.entries.iter().map(|e| e.dest_path.as_str()).collect()
    }

    fn strings(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn globs_like_filepath_match() {
        assert!(glob_match("*.go", "main.go"));
        assert!(!glob_match("*.go", "main.rs"));
        assert!(glob_match("a?c", "abc"));
        assert!(glob_match("[a-c]x", "bx"));
        assert!(!glob_match("[^a-c]x", "bx"));
        assert!(glob_match("\\*", "*"));
        assert!(!glob_match("\\*", "a"));
        assert!(glob_match("*", ""));
        assert!(glob_match("a*b*c", "aXbYbZc"));
    }

    #[test]
    fn directory_source_copies_contents() {
        let (_d, ctx) = context(&["src/a.txt", "src/sub/b.txt", "other"], None);
        let sel = ctx
            .select("COPY", &strings(&["src"]), "/app", &[], false)
            .unwrap();
        assert!(sel.dest_is_dir);
        assert_eq!(dests(&sel), ["a.txt", "sub", "sub/b.txt"]);
        let sel = ctx
            .select("COPY", &strings(&["src/sub"]), "/app", &[], true)
            .unwrap();
        assert_eq!(dests(&sel), ["src/sub", "src/sub/b.txt"]);
    }

    #[test]
    fn single_file_and_wildcards() {
        let (_d, ctx) = context(&["a.txt", "b.txt", "c.md", "dir/d.txt"], None);
        let sel = ctx
            .select("COPY", &strings(&["a.txt"]), "/x", &[], false)
            .unwrap();
        assert!(!sel.dest_is_dir);
        assert_eq!(dests(&sel), ["a.txt"]);
        let sel = ctx
            .select("COPY", &strings(&["*.txt"]), "/x/", &[], false)
            .unwrap();
        assert_eq!(dests(&sel), ["a.txt", "b.txt"]);
        let sel = ctx
            .select("COPY", &strings(&["*/*.txt"]), "/x/", &[], false)
            .unwrap();
        assert_eq!(dests(&sel), ["d.txt"]);
        let sel = ctx
            .select(
                "COPY",
                &strings(&["*.txt"]),
                "/x/",
                &strings(&["b.*"]),
                false,
            )
            .unwrap();
        assert_eq!(dests(&sel), ["a.txt"]);
    }

    #[test]
    fn dockerignore_hides_files() {
        let (_d, ctx) = context(
            &["keep.txt", "secret.key", "logs/a.log", "logs/keep.log"],
            Some("*.key\nlogs\n!logs/keep.log\n"),
        );
        let sel = ctx
            .select("COPY", &strings(&["."]), "/", &[], false)
            .unwrap();
        assert_eq!(
            dests(&sel),
            [".dockerignore", "keep.txt", "logs", "logs/keep.log"]
        );
        let err = ctx
            .select("COPY", &strings(&["secret.key"]), "/", &[], false)
            .unwrap_err();
        assert!(
            matches!(err, BuildError::SourceNotFound { ignored: true, .. }),
            "{err}"
        );
        assert!(err.to_string().contains("excluded by .dockerignore"));
    }

    #[test]
    fn refuses_paths_outside_the_context() {
        let (d, ctx) = context(&["a"], None);
        assert!(matches!(
            ctx.select("COPY", &strings(&["../etc/passwd"]), "/", &[], false),
            Err(BuildError::OutsideContext { .. })
        ));
        std::os::unix::fs::symlink("/etc", d.path().join("escape")).unwrap();
        assert!(matches!(
            ctx.select("COPY", &strings(&["escape"]), "/", &[], false),
            Err(BuildError::OutsideContext { .. })
        ));
        // An absolute source is relative to the context root.
        let sel = ctx
            .select("COPY", &strings(&["/a"]), "/b", &[], false)
            .unwrap();
        assert_eq!(dests(&sel), ["a"]);
    }

    #[test]
    fn missing_sources_and_destinations() {
        let (_d, ctx) = context(&["a", "b"], None);
        assert!(matches!(
            ctx.select("COPY", &strings(&["nope"]), "/", &[], false),
            Err(BuildError::SourceNotFound { ignored: false, .. })
        ));
        assert!(matches!(
            ctx.select("COPY", &strings(&["*.nope"]), "/", &[], false),
            Err(BuildError::SourceNotFound { .. })
        ));
        let err = ctx
            .select("COPY", &strings(&["a", "b"]), "/dest", &[], false)
            .unwrap_err();
        assert!(matches!(err, BuildError::DestinationNotDirectory { .. }));
    }
}
