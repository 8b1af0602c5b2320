//! Dockerfile front end for rbuild.
//!
//! Text goes through three layers, each testable alone:
//! - [`ast`]: the raw parse tree (keyword, flags, arguments, heredocs, line range),
//!   printable in BuildKit's `result` format with [`ast::Ast::dump`];
//! - [`instructions`]: one typed struct per instruction, grouped into build stages;
//! - [`shell`]: BuildKit's word expansion (`$VAR`, `${VAR:-w}`, `${VAR#pat}`, ...).

pub mod ast;
mod error;
pub mod instructions;
pub mod shell;

pub use error::{ErrorKind, ParseError};
