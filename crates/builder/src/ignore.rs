//! `.dockerignore` files and their pattern matching, with the exact semantics of
//! moby's `ignorefile` and `patternmatcher` packages (what docker and BuildKit use):
//! patterns are cleaned like Go's `filepath.Clean`, a leading `/` is dropped, `!` re-includes,
//! the last matching pattern wins, `*` and `?` never cross `/`, `**` crosses any number of
//! directories, and a path is excluded when it or any of its parent directories matches.

use std::path::Path;

use regex::Regex;

/// Why a `.dockerignore` pattern was rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PatternError {
    /// A lone `!`.
    #[error("illegal exclusion pattern: \"!\"")]
    LoneExclamation,
    /// The pattern does not compile (e.g. an unclosed `[`).
    #[error("invalid pattern {pattern:?}: {reason}")]
    Invalid {
        /// The pattern as cleaned.
        pattern: String,
        /// What is wrong.
        reason: String,
    },
}

/// Read `.dockerignore` text into patterns (comments and blank lines dropped, cleaned,
/// `!` kept as a prefix), like moby's `ignorefile.ReadAll`.
pub fn read_patterns(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let line = if i == 0 {
            line.strip_prefix('\u{feff}').unwrap_or(line)
        } else {
            line
        };
        if line.starts_with('#') {
            continue;
        }
        let mut pattern = line.trim();
        if pattern.is_empty() {
            continue;
        }
        let invert = pattern.starts_with('!');
        if invert {
            pattern = pattern[1..].trim();
        }
        let mut cleaned = String::new();
        if !pattern.is_empty() {
            cleaned = clean(pattern);
            if cleaned.len() > 1 && cleaned.starts_with('/') {
                cleaned.remove(0);
            }
        }
        out.push(if invert {
            format!("!{cleaned}")
        } else {
            cleaned
        });
    }
    out
}

/// Go's `path.Clean` for slash-separated paths.
pub fn clean(path: &str) -> String {
    if path.is_empty() {
        return ".".into();
    }
    let rooted = path.starts_with('/');
    let mut parts: Vec<&str> = Vec::new();
    for part in path.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                if parts.last().is_some_and(|p| *p != "..") {
                    parts.pop();
                } else if !rooted {
                    parts.push("..");
                }
            }
            p => parts.push(p),
        }
    }
    let joined = parts.join("/");
    match (rooted, joined.is_empty()) {
        (true, _) => format!("/{joined}"),
        (false, true) => ".".into(),
        (false, false) => joined,
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum MatchType {
    Exact,
    Prefix,
    Suffix,
    Regexp,
}

#[derive(Debug, Clone)]
struct Pattern {
    cleaned: String,
    exclusion: bool,
    kind: MatchType,
    regex: Option<Regex>,
}

impl Pattern {
    fn new(raw: &str) -> Result<Option<Self>, PatternError> {
        let trimmed = raw.trim();
        if trimmed.is_empty() {
            return Ok(None);
        }
        let mut p = clean(trimmed);
        let mut exclusion = false;
        if let Some(rest) = p.strip_prefix('!') {
            if rest.is_empty() {
                return Err(PatternError::LoneExclamation);
            }
            exclusion = true;
            p = rest.to_string();
        }
        let (kind, regex_src) = compile(&p);
        let regex = match kind {
            MatchType::Regexp => {
                Some(Regex::new(&regex_src).map_err(|e| PatternError::Invalid {
                    pattern: p.clone(),
                    reason: e.to_string(),
                })?)
            }
            _ => None,
        };
        Ok(Some(Pattern {
            cleaned: p,
            exclusion,
            kind,
            regex,
        }))
    }

    fn matches(&self, path: &str) -> bool {
        match self.kind {
            MatchType::Exact => path == self.cleaned,
            MatchType::Prefix => path.starts_with(&self.cleaned[..self.cleaned.len() - 2]),
            MatchType::Suffix => {
                let suffix = &self.cleaned[2..];
                path.ends_with(suffix) || (suffix.starts_with('/') && path == &suffix[1..])
            }
            MatchType::Regexp => self.regex.as_ref().is_some_and(|r| r.is_match(path)),
        }
    }
}

/// Translate a cleaned pattern to a regex source and a match type (patternmatcher's `compile`).
fn compile(pattern: &str) -> (MatchType, String) {
    let mut re = String::from("^");
    let mut kind = MatchType::Exact;
    let mut chars = pattern.chars().peekable();
    let mut i = 0;
    while let Some(ch) = chars.next() {
        match ch {
            '*' if chars.peek() == Some(&'*') => {
                chars.next();
                if chars.peek() == Some(&'/') {
                    chars.next();
                }
                if chars.peek().is_none() {
                    if kind == MatchType::Exact {
                        kind = MatchType::Prefix;
                    } else {
                        re.push_str(".*");
                        kind = MatchType::Regexp;
                    }
                } else {
                    re.push_str("(.*/)?");
                    kind = MatchType::Regexp;
                }
                if i == 0 {
                    kind = MatchType::Suffix;
                }
            }
            '*' => {
                re.push_str("[^/]*");
                kind = MatchType::Regexp;
            }
            '?' => {
                re.push_str("[^/]");
                kind = MatchType::Regexp;
            }
            '.' | '$' | '+' | '(' | ')' | '{' | '}' | '|' => {
                re.push('\\');
                re.push(ch);
            }
            '\\' => {
                // An escape means the text differs from the pattern: compare by regex.
                kind = MatchType::Regexp;
                match chars.next() {
                    Some(n) => {
                        re.push('\\');
                        re.push(n);
                    }
                    None => re.push_str("\\\\"),
                }
            }
            '[' | ']' => {
                re.push(ch);
                kind = MatchType::Regexp;
            }
            c => re.push(c),
        }
        i += 1;
    }
    re.push('$');
    (kind, re)
}

/// A compiled list of `.dockerignore` patterns.
#[derive(Debug, Clone, Default)]
pub struct Matcher {
    patterns: Vec<Pattern>,
}

impl Matcher {
    /// Compile patterns as read by [`read_patterns`].
    pub fn new<S: AsRef<str>>(patterns: &[S]) -> Result<Self, PatternError> {
        let mut out = Vec::with_capacity(patterns.len());
        for p in patterns {
            if let Some(p) = Pattern::new(p.as_ref())? {
                out.push(p);
            }
        }
        Ok(Matcher { patterns: out })
    }

    /// Compile the patterns of a `.dockerignore` text.
    pub fn from_dockerignore(text: &str) -> Result<Self, PatternError> {
        Self::new(&read_patterns(text))
    }

    /// True when there are no patterns.
    pub fn is_empty(&self) -> bool {
        self.patterns.is_empty()
    }

    /// True when some `!` pattern exists (an excluded directory may then still hold included files).
    pub fn has_exclusions(&self) -> bool {
        self.patterns.iter().any(|p| p.exclusion)
    }

    /// Whether `path` (slash-separated, relative to the context) is ignored: the last pattern
    /// matching it or one of its parent directories decides.
    pub fn is_ignored(&self, path: &str) -> bool {
        let parent = match path.rfind('/') {
            Some(i) => &path[..i],
            None => ".",
        };
        let mut matched = false;
        for pattern in &self.patterns {
            if pattern.exclusion != matched {
                continue;
            }
            let mut hit = pattern.matches(path);
            if !hit && parent != "." {
                let mut end = 0;
                for segment in parent.split('/') {
                    end += segment.len();
                    if pattern.matches(&parent[..end]) {
                        hit = true;
                        break;
                    }
                    end += 1;
                }
            }
            if hit {
                matched = !pattern.exclusion;
            }
        }
        matched
    }
}

/// The ignore file for a Dockerfile: `<Dockerfile>.dockerignore` beside it takes precedence
/// over `.dockerignore` at the context root. Returns the file used, if any, and its text.
pub fn find_ignore_file(
    context: &Path,
    dockerfile: &Path,
) -> std::io::Result<Option<(std::path::PathBuf, String)>> {
    let mut candidates = Vec::new();
    if let Some(name) = dockerfile.file_name() {
        let mut specific = name.to_os_string();
        specific.push(".dockerignore");
        candidates.push(dockerfile.with_file_name(specific));
    }
    candidates.push(context.join(".dockerignore"));
    for path in candidates {
        match std::fs::read_to_string(&path) {
            Ok(text) => return Ok(Some((path, text))),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => return Err(e),
        }
    }
    Ok(None)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ignored(patterns: &[&str], path: &str) -> bool {
        Matcher::new(patterns).unwrap().is_ignored(path)
    }

    #[test]
    fn reads_like_ignorefile() {
        let text = "\u{feff}# comment\n\n  /foo/../bar/  \n!  keep \n*.md\n./x\n";
        assert_eq!(read_patterns(text), ["bar", "!keep", "*.md", "x"]);
    }

    #[test]
    fn clean_like_go() {
        assert_eq!(clean("a/./b/../c/"), "a/c");
        assert_eq!(clean("/../a"), "/a");
        assert_eq!(clean("../a/.."), "..");
        assert_eq!(clean(""), ".");
        assert_eq!(clean("//a//"), "/a");
    }

    // Cases from moby/patternmatcher's TestMatches table.
    #[test]
    fn patternmatcher_table() {
        let cases: &[(&str, &str, bool)] = &[
            ("**", "file", true),
            ("**", "file/", true),
            ("**/", "file", true),
            ("**/", "file/", true),
            ("**", "/", true),
            ("**/", "/", true),
            ("**", "dir/file", true),
            ("**/", "dir/file", true),
            ("**", "dir/file/", true),
            ("**/", "dir/file/", true),
            ("**/**", "dir/file", true),
            ("**/**", "dir/file/", true),
            ("dir/**", "dir/file", true),
            ("dir/**", "dir/file/", true),
            ("dir/**", "dir/dir2/file", true),
            ("dir/**", "dir/dir2/file/", true),
            ("**/dir", "dir", true),
            ("**/dir", "dir/file", true),
            ("**/dir2/*", "dir/dir2/file", true),
            ("**/dir2/*", "dir/dir2/file/", true),
            ("**/dir2/**", "dir/dir2/dir3/file", true),
            ("**/dir2/**", "dir/dir2/dir3/file/", true),
            ("**file", "file", true),
            ("**file", "dir/file", true),
            ("**/file", "dir/file", true),
            ("**file", "dir/dir/file", true),
            ("**/file", "dir/dir/file", true),
            ("**/file*", "dir/dir/file", true),
            ("**/file*", "dir/dir/file.txt", true),
            ("**/file*txt", "dir/dir/file.txt", true),
            ("**/file*.txt", "dir/dir/file.txt", true),
            ("**/file*.txt*", "dir/dir/file.txt", true),
            ("**/**/*.txt", "dir/dir/file.txt", true),
            ("**/**/*.txt2", "dir/dir/file.txt", false),
            ("**/*.txt", "file.txt", true),
            ("**/**/*.txt", "file.txt", true),
            ("a**/*.txt", "a/file.txt", true),
            ("a**/*.txt", "a/dir/file.txt", true),
            ("a**/*.txt", "a/dir/dir/file.txt", true),
            ("a/*.txt", "a/dir/file.txt", false),
            ("a/*.txt", "a/file.txt", true),
            ("a/*.txt**", "a/file.txt", true),
            ("a[b-d]e", "ae", false),
            ("a[b-d]e", "ace", true),
            ("a[b-d]e", "aae", false),
            ("a[^b-d]e", "aze", true),
            (".*", ".foo", true),
            (".*", "foo", false),
            ("abc.def", "abcdef", false),
            ("abc.def", "abc.def", true),
            ("abc.def", "abcZdef", false),
            ("abc?def", "abcZdef", true),
            ("abc?def", "abcdef", false),
            ("a\\\\", "a\\", true),
            ("**/foo/bar", "foo/bar", true),
            ("**/foo/bar", "dir/foo/bar", true),
            ("**/foo/bar", "dir/dir2/foo/bar", true),
            ("abc/**", "abc", false),
            ("abc/**", "abc/def", true),
            ("abc/**", "abc/def/ghi", true),
            ("**/.foo", ".foo", true),
            ("**/.foo", "bar.foo", false),
            ("a(b)c/def", "a(b)c/def", true),
            ("a(b)c/def", "a(b)c/xyz", false),
            ("a.|)$(}+{bc", "a.|)$(}+{bc", true),
        ];
        for (pattern, path, want) in cases {
            assert_eq!(
                ignored(&[pattern], path),
                *want,
                "pattern {pattern:?} path {path:?}"
            );
        }
    }

    #[test]
    fn exceptions_and_parents() {
        assert!(ignored(&["docs"], "docs/a/b.md"));
        assert!(!ignored(&["docs", "!docs/keep.md"], "docs/keep.md"));
        assert!(ignored(&["docs", "!docs/keep.md"], "docs/other.md"));
        assert!(ignored(&["*.md", "!README.md", "README*"], "README.md"));
        assert!(!ignored(
            &["**/*.log", "!important/*.log"],
            "important/a.log"
        ));
        assert!(ignored(
            &["**/*.log", "!important/*.log"],
            "x/important/a.log"
        ));
        let m = Matcher::from_dockerignore("/build\n").unwrap();
        assert!(!m.is_ignored("src/build") && m.is_ignored("build/out"));
        assert!(matches!(
            Matcher::new(&["!"]),
            Err(PatternError::LoneExclamation)
        ));
        assert!(matches!(
            Matcher::new(&["a[b"]),
            Err(PatternError::Invalid { .. })
        ));
    }

    #[test]
    fn dockerfile_specific_ignore_file_wins() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join(".dockerignore"), "a\n").unwrap();
        std::fs::create_dir(dir.path().join("sub")).unwrap();
        let df = dir.path().join("sub/app.Dockerfile");
        let (path, text) = find_ignore_file(dir.path(), &df).unwrap().unwrap();
        assert_eq!(
            (path, text.as_str()),
            (dir.path().join(".dockerignore"), "a\n")
        );
        std::fs::write(dir.path().join("sub/app.Dockerfile.dockerignore"), "b\n").unwrap();
        let (path, text) = find_ignore_file(dir.path(), &df).unwrap().unwrap();
        assert_eq!(
            (path, text.as_str()),
            (dir.path().join("sub/app.Dockerfile.dockerignore"), "b\n")
        );
    }
}
