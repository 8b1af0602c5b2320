//! The raw parse tree: BuildKit's deliberately dumb `Node`.
//!
//! [`parse`] turns Dockerfile text into an [`Ast`]: parser directives, then one [`Node`] per
//! instruction with its lowercased keyword, `--flags`, arguments (split the way BuildKit splits
//! each instruction), heredoc bodies and line range. Nothing is validated beyond what BuildKit's
//! parser itself rejects; typed checks live in [`crate::instructions`].
//!
//! ```
//! let ast = rbuild_parser::ast::parse("FROM busybox AS base\nRUN echo hi\n").unwrap();
//! assert_eq!(ast.dump(), "(from \"busybox\" \"AS\" \"base\")\n(run \"echo hi\")\n");
//! assert_eq!(ast.children[1].start_line, 2);
//! ```

mod args;
mod directive;
mod heredoc;
mod lines;
mod quote;

pub use directive::Directives;
pub use lines::parse;
pub use quote::go_quote;

use serde::Serialize;

/// A parsed Dockerfile: directives and the instructions in source order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Ast {
    /// Parser directives found before the first instruction.
    pub directives: Directives,
    /// One node per top-level instruction.
    pub children: Vec<Node>,
    /// Non-fatal findings, such as empty continuation lines.
    pub warnings: Vec<Warning>,
}

impl Ast {
    /// The tree in the exact format of BuildKit's parser test `result` files:
    /// one `(keyword ["--flags"] "arg" …)` line per instruction.
    pub fn dump(&self) -> String {
        let mut out = String::new();
        for child in &self.children {
            out.push('(');
            out.push_str(&child.dump());
            out.push_str(")\n");
        }
        out
    }

    /// The escape character in force (`\` unless `# escape=` says otherwise).
    pub fn escape(&self) -> char {
        self.directives.escape_char()
    }
}

/// One instruction as written, before any typing.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Node {
    /// The instruction keyword, lowercased (`from`, `run`, …); unknown keywords are kept.
    pub keyword: String,
    /// Leading `--name[=value]` words, quotes removed and escapes applied.
    pub flags: Vec<String>,
    /// Arguments, split as BuildKit splits this instruction (see the crate docs).
    pub args: Vec<String>,
    /// The instruction nested in an `ONBUILD`.
    pub nested: Option<Box<Node>>,
    /// True when the arguments came from a JSON array (exec form).
    pub json: bool,
    /// Heredoc bodies declared on this instruction's line, in order.
    pub heredocs: Vec<Heredoc>,
    /// The logical line: continuation lines joined, comments inside them dropped.
    pub original: String,
    /// First physical line (1-based).
    pub start_line: usize,
    /// Last physical line (1-based), including heredoc bodies.
    pub end_line: usize,
}

impl Node {
    /// This node in BuildKit's dump format, without the surrounding parentheses.
    pub fn dump(&self) -> String {
        let mut out = self.keyword.clone();
        if !self.flags.is_empty() {
            let flags: Vec<String> = self.flags.iter().map(|f| go_quote(f)).collect();
            out.push_str(&format!(" [{}]", flags.join(" ")));
        }
        if let Some(nested) = &self.nested {
            out.push_str(&format!(" ({})", nested.dump()));
        }
        for arg in &self.args {
            out.push(' ');
            out.push_str(&go_quote(arg));
        }
        out.trim().to_string()
    }
}

/// A heredoc (`<<EOF` … `EOF`) attached to a RUN, COPY or ADD.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Heredoc {
    /// The terminator word, quotes removed.
    pub name: String,
    /// The body, each line followed by `\n`; for `<<-` leading tabs are still present.
    pub content: String,
    /// False when any part of the name was quoted: the body is then not expanded.
    pub expand: bool,
    /// True for `<<-`: leading tabs are stripped from the body and terminator.
    pub chomp: bool,
    /// The file descriptor before `<<` (`3<<EOF`), 0 when none is written.
    pub file_descriptor: u32,
}

impl Heredoc {
    /// The body as the instruction uses it: leading tabs removed from every line for `<<-`.
    pub fn body(&self) -> String {
        if !self.chomp {
            return self.content.clone();
        }
        self.content
            .split_inclusive('\n')
            .map(|l| l.trim_start_matches('\t'))
            .collect()
    }
}

/// A non-fatal finding of the parser.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Warning {
    /// First line of the instruction concerned.
    pub line: usize,
    /// What was found.
    pub message: String,
}
