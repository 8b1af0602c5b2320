//! The glob patterns of `${VAR#pat}`, `${VAR%pat}` and `${VAR/pat/rep}`, matched the way BuildKit
//! matches them.
//!
//! BuildKit turns the pattern into a Go regular expression (`*` → `.*` or `.*?`, `?` → `.`,
//! everything else literal; bracket expressions are *not* supported, `[` is an ordinary
//! character) and uses Go's leftmost-first matching. Two consequences are kept here on purpose:
//! `*` and `?` do not match a newline (Go's `.`), and `${VAR//pat/rep}` goes through Go's
//! `ReplaceAllString`, so `$0` and `${0}` in the replacement stand for the matched text and
//! `$$` for `$`. Pattern escapes always use `\`, whatever the lexer's escape character.
//!
//! Instead of a regex engine, the pattern is compiled to a tiny program run by a Pike VM that
//! keeps threads in priority order: that gives exactly the leftmost-first match in time
//! O(len(value) × len(pattern)), with no backtracking blow-up.

use super::error::PatternError;

/// One element of a parsed pattern.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Token {
    Literal(char),
    /// `?`: any one character but a newline.
    AnyChar,
    /// `*`: any run of characters without a newline.
    Star,
}

/// One instruction of the matching program.
#[derive(Debug, Clone, Copy)]
enum Inst {
    Char(char),
    Any,
    /// Try the first target, then (with lower priority) the second.
    Split(usize, usize),
    Jump(usize),
    Match,
}

/// A compiled pattern.
#[derive(Debug)]
pub(crate) struct Pattern {
    program: Vec<Inst>,
    /// Only match at the start of the text (`#` and `%`); otherwise search (`/`).
    anchored: bool,
}

/// Parses a pattern, following BuildKit's rules for `\`.
fn tokenize(pattern: &str) -> Result<Vec<Token>, PatternError> {
    // Go's text/scanner drops a byte-order mark at the very start.
    let pattern = pattern.strip_prefix('\u{feff}').unwrap_or(pattern);
    let mut tokens = Vec::with_capacity(pattern.len());
    let mut chars = pattern.chars().peekable();
    while let Some(c) = chars.next() {
        let token = match c {
            '*' => Token::Star,
            '?' => Token::AnyChar,
            '\\' => match chars.peek() {
                // `\}` and `\/` only protect the delimiters of `${...}`; the character that
                // follows is then an ordinary literal.
                Some('}' | '/') => continue,
                Some(&next) if matches!(next, '*' | '?' | '\\') => {
                    chars.next();
                    Token::Literal(next)
                }
                Some(&other) => return Err(PatternError::InvalidEscape(other)),
                None => return Err(PatternError::TrailingEscape),
            },
            other => Token::Literal(other),
        };
        tokens.push(token);
    }
    Ok(tokens)
}

impl Pattern {
    /// Compiles `pattern`; `greedy` chooses whether `*` prefers the longest or shortest run.
    pub(crate) fn compile(
        pattern: &str,
        greedy: bool,
        anchored: bool,
    ) -> Result<Self, PatternError> {
        let tokens = tokenize(pattern)?;
        let mut program = Vec::with_capacity(tokens.len() + 1);
        for token in tokens {
            match token {
                Token::Literal(c) => program.push(Inst::Char(c)),
                Token::AnyChar => program.push(Inst::Any),
                Token::Star => {
                    let split = program.len();
                    let (body, after) = (split + 1, split + 3);
                    program.push(if greedy {
                        Inst::Split(body, after)
                    } else {
                        Inst::Split(after, body)
                    });
                    program.push(Inst::Any);
                    program.push(Inst::Jump(split));
                }
            }
        }
        program.push(Inst::Match);
        Ok(Self { program, anchored })
    }

    /// The leftmost-first match in `text` starting at or after byte `from`, as `(start, end)`.
    pub(crate) fn find(&self, text: &str, from: usize, vm: &mut Vm) -> Option<(usize, usize)> {
        vm.reset(self.program.len());
        let mut matched = None;
        let mut pos = from;
        loop {
            if vm.current.threads.is_empty()
                && (matched.is_some() || (self.anchored && pos != from))
            {
                break;
            }
            if matched.is_none() && (!self.anchored || pos == from) {
                let (program, current) = (&self.program, &mut vm.current);
                current.add(program, 0, pos, &mut vm.stack);
            }
            let ch = text[pos..].chars().next();
            vm.next.clear();
            for &(pc, start) in &vm.current.threads {
                match self.program[pc] {
                    Inst::Match => {
                        // Leftmost-first: threads of lower priority are cut off.
                        matched = Some((start, pos));
                        break;
                    }
                    Inst::Char(c) if ch == Some(c) => {
                        vm.next.add(&self.program, pc + 1, start, &mut vm.stack)
                    }
                    Inst::Any if ch.is_some_and(|c| c != '\n') => {
                        vm.next.add(&self.program, pc + 1, start, &mut vm.stack)
                    }
                    _ => {}
                }
            }
            std::mem::swap(&mut vm.current, &mut vm.next);
            match ch {
                Some(c) => pos += c.len_utf8(),
                None => break,
            }
        }
        matched
    }
}

/// The thread lists of the matcher, kept to reuse their allocations between searches.
#[derive(Debug, Default)]
pub(crate) struct Vm {
    current: ThreadList,
    next: ThreadList,
    stack: Vec<usize>,
}

impl Vm {
    fn reset(&mut self, program_len: usize) {
        self.current.reset(program_len);
        self.next.reset(program_len);
    }
}

/// Threads in priority order, at most one per program counter.
#[derive(Debug, Default)]
struct ThreadList {
    /// `(program counter, start of the match)`.
    threads: Vec<(usize, usize)>,
    /// `seen[pc] == generation` when `pc` is already in this list.
    seen: Vec<u64>,
    generation: u64,
}

impl ThreadList {
    fn reset(&mut self, program_len: usize) {
        self.threads.clear();
        self.seen.clear();
        self.seen.resize(program_len, 0);
        self.generation = 1;
    }

    fn clear(&mut self) {
        self.threads.clear();
        self.generation += 1;
    }

    /// Adds the thread at `pc` and everything reachable from it without reading a character,
    /// in priority order. An explicit stack keeps long runs of `*` from exhausting the call stack.
    fn add(&mut self, program: &[Inst], pc: usize, start: usize, stack: &mut Vec<usize>) {
        stack.clear();
        stack.push(pc);
        while let Some(pc) = stack.pop() {
            if self.seen[pc] == self.generation {
                continue;
            }
            self.seen[pc] = self.generation;
            match program[pc] {
                Inst::Split(first, second) => {
                    stack.push(second);
                    stack.push(first);
                }
                Inst::Jump(target) => stack.push(target),
                Inst::Char(_) | Inst::Any | Inst::Match => self.threads.push((pc, start)),
            }
        }
    }
}

/// `${VAR#pat}` (`greedy` false) and `${VAR##pat}` (`greedy` true): removes the shortest or
/// longest prefix of `value` matching `pattern`.
pub(crate) fn trim_prefix(
    pattern: &str,
    value: &str,
    greedy: bool,
) -> Result<String, PatternError> {
    let compiled = Pattern::compile(pattern, greedy, true)?;
    Ok(match compiled.find(value, 0, &mut Vm::default()) {
        Some((_, end)) => value[end..].to_owned(),
        None => value.to_owned(),
    })
}

/// `${VAR%pat}` and `${VAR%%pat}`: removes the shortest or longest suffix of `value` matching
/// `pattern`. Like BuildKit, this reverses both the pattern and the value and trims a prefix.
pub(crate) fn trim_suffix(
    pattern: &str,
    value: &str,
    greedy: bool,
) -> Result<String, PatternError> {
    let reversed_value: String = value.chars().rev().collect();
    let trimmed = trim_prefix(&reverse_pattern(pattern), &reversed_value, greedy)?;
    Ok(trimmed.chars().rev().collect())
}

/// Reverses a pattern but keeps each `\x` escape pair in order (`a\*c` → `c\*a`).
fn reverse_pattern(pattern: &str) -> String {
    let mut units: Vec<&str> = Vec::with_capacity(pattern.len());
    let mut rest = pattern;
    while let Some(c) = rest.chars().next() {
        let mut len = c.len_utf8();
        if c == '\\'
            && let Some(next) = rest[len..].chars().next()
        {
            len += next.len_utf8();
        }
        units.push(&rest[..len]);
        rest = &rest[len..];
    }
    units.iter().rev().copied().collect()
}

/// `${VAR/pat/rep}` (`all` false) and `${VAR//pat/rep}` (`all` true).
pub(crate) fn replace(
    value: &str,
    pattern: &str,
    replacement: &str,
    all: bool,
) -> Result<String, PatternError> {
    let compiled = Pattern::compile(pattern, true, false)?;
    let mut vm = Vm::default();
    if !all {
        return Ok(match compiled.find(value, 0, &mut vm) {
            Some((start, end)) => {
                let mut out = String::with_capacity(value.len() + replacement.len());
                out.push_str(&value[..start]);
                out.push_str(replacement);
                out.push_str(&value[end..]);
                out
            }
            None => value.to_owned(),
        });
    }
    // Go's Regexp.ReplaceAllString: successive non-overlapping matches; an empty match right
    // after the previous match is not replaced; the search always advances.
    let mut out = String::with_capacity(value.len());
    let mut last_end = 0;
    let mut search = 0;
    while search <= value.len() {
        let Some((start, end)) = compiled.find(value, search, &mut vm) else {
            break;
        };
        out.push_str(&value[last_end..start]);
        if end > last_end || start == 0 {
            expand_template(&mut out, replacement, &value[start..end]);
        }
        last_end = end;
        let width = value[search..].chars().next().map_or(0, char::len_utf8);
        search = if search + width > end {
            search + width
        } else if search + 1 > end {
            search + 1
        } else {
            end
        };
    }
    out.push_str(&value[last_end..]);
    Ok(out)
}

/// Go's `Regexp.Expand` for a pattern without groups: `$$` is `$`, `$0`/`${0}` the match,
/// any other `$name`/`${name}` nothing, and a `$` that starts no name stays as it is.
fn expand_template(out: &mut String, template: &str, matched: &str) {
    let mut rest = template;
    while let Some(dollar) = rest.find('$') {
        out.push_str(&rest[..dollar]);
        rest = &rest[dollar + 1..];
        if let Some(after) = rest.strip_prefix('$') {
            out.push('$');
            rest = after;
            continue;
        }
        let (braced, body) = match rest.strip_prefix('{') {
            Some(body) => (true, body),
            None => (false, rest),
        };
        let name_len = body
            .char_indices()
            .find(|&(_, c)| !(c.is_alphanumeric() || c == '_'))
            .map_or(body.len(), |(i, _)| i);
        if name_len == 0 || (braced && !body[name_len..].starts_with('}')) {
            out.push('$');
            continue;
        }
        if body[..name_len] == *"0" {
            out.push_str(matched);
        }
        rest = &body[name_len + usize::from(braced)..];
    }
    out.push_str(rest);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn find(pattern: &str, greedy: bool, anchored: bool, text: &str) -> Option<(usize, usize)> {
        Pattern::compile(pattern, greedy, anchored)
            .unwrap()
            .find(text, 0, &mut Vm::default())
    }

    #[test]
    fn lazy_star_takes_the_shortest_run() {
        assert_eq!(find("*x", false, true, "axbx"), Some((0, 2)));
        assert_eq!(find("*x", true, true, "axbx"), Some((0, 4)));
        assert_eq!(find("*", false, true, "abc"), Some((0, 0)));
        assert_eq!(find("*", true, true, "abc"), Some((0, 3)));
    }

    #[test]
    fn leftmost_first_search() {
        assert_eq!(find("b*", true, false, "abcbd"), Some((1, 5)));
        assert_eq!(find("b?", true, false, "ab"), None);
        assert_eq!(find("", true, false, "ab"), Some((0, 0)));
        assert_eq!(find("x", true, true, "ax"), None);
    }

    #[test]
    fn wildcards_do_not_cross_newlines() {
        assert_eq!(find("*", true, true, "ab\ncd"), Some((0, 2)));
        assert_eq!(find("a?c", true, false, "a\nc"), None);
    }

    #[test]
    fn escapes_follow_buildkit() {
        assert_eq!(
            tokenize("\\*\\?\\\\").unwrap(),
            vec![
                Token::Literal('*'),
                Token::Literal('?'),
                Token::Literal('\\')
            ]
        );
        assert_eq!(
            tokenize("\\}\\/").unwrap(),
            vec![Token::Literal('}'), Token::Literal('/')]
        );
        assert_eq!(tokenize("[a]").unwrap()[0], Token::Literal('['));
        assert_eq!(tokenize("\\x"), Err(PatternError::InvalidEscape('x')));
        assert_eq!(tokenize("\\"), Err(PatternError::TrailingEscape));
        assert_eq!(tokenize("\\\\\\"), Err(PatternError::TrailingEscape));
    }

    #[test]
    fn reverse_pattern_keeps_escape_pairs() {
        assert_eq!(reverse_pattern("a\\*c"), "c\\*a");
        assert_eq!(reverse_pattern("\\\\\\ab"), "b\\a\\\\");
        assert_eq!(reverse_pattern("ab\\"), "\\ba");
        assert_eq!(reverse_pattern("👽\\🚀🖖"), "🖖\\🚀👽");
        assert_eq!(reverse_pattern("\\\\b"), "b\\\\");
    }

    #[test]
    fn trims() {
        assert_eq!(trim_prefix("*x*y", "xxyy", false).unwrap(), "y");
        assert_eq!(trim_prefix("*x", "xxyy", true).unwrap(), "yy");
        assert_eq!(trim_suffix("\\**\\*", "a***yy*", true).unwrap(), "a");
        assert_eq!(trim_suffix("y*", "xyxy", false).unwrap(), "xyx");
        assert_eq!(trim_suffix("y*", "xyxy", true).unwrap(), "x");
    }

    #[test]
    fn replace_all_follows_go() {
        assert_eq!(replace("xxyy", "", "ww", false).unwrap(), "wwxxyy");
        assert_eq!(replace("abc", "", "-", true).unwrap(), "-a-b-c-");
        assert_eq!(replace("aaa", "a*", "X", true).unwrap(), "X");
        assert_eq!(replace("baaac", "a*", "X", true).unwrap(), "bX");
        assert_eq!(replace("baaac", "*", "X", true).unwrap(), "X");
        assert_eq!(replace("banana", "a?", "_", true).unwrap(), "b__a");
        assert_eq!(replace("banana", "a?", "_", false).unwrap(), "b_ana");
        assert_eq!(replace("a\nb", "*", "x", true).unwrap(), "x\nx");
        assert_eq!(
            replace("abab", "b", "[$0$$${0}$1$x${y}]", true).unwrap(),
            "a[b$b]a[b$b]"
        );
        assert_eq!(replace("ab", "b", "$", true).unwrap(), "a$");
        assert_eq!(replace("ab", "b", "${0", true).unwrap(), "a${0");
        assert_eq!(replace("ab", "b", "$0", false).unwrap(), "a$0");
    }

    #[test]
    fn many_stars_do_not_blow_up() {
        let pattern = "*".repeat(20_000) + "z";
        let value = "a".repeat(2_000);
        assert_eq!(trim_prefix(&pattern, &value, false).unwrap(), value);
    }
}
