//! Typed instructions, built from the raw tree (never the reverse), grouped into stages.
//!
//! ```
//! use rbuild_parser::instructions::{parse_dockerfile, Instruction, CommandLine};
//! let df = parse_dockerfile("ARG V=1\nFROM busybox:$V AS base\nRUN echo hi\n").unwrap();
//! assert_eq!(df.meta_args.len(), 1);
//! assert_eq!(df.stages[0].name.as_deref(), Some("base"));
//! match &df.stages[0].instructions[0].instruction {
//!     Instruction::Run(run) => assert_eq!(run.command, CommandLine::Shell("echo hi".into())),
//!     other => panic!("unexpected {other:?}"),
//! }
//! ```

mod convert;
mod duration;
mod expose;
mod flags;
mod mount;
mod scope;

use std::time::Duration;

use serde::{Serialize, Serializer};

pub use convert::{instruction_from_node, parse_dockerfile};
pub use duration::parse_go_duration;
pub use mount::{CacheSharing, Mount, MountType, parse_mount};
pub use scope::{MetaScope, PROXY_ARGS, Platforms, StageScope, unused_build_args};

use crate::ast::{Directives, Heredoc, Warning};

/// A whole Dockerfile, typed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Dockerfile {
    /// Parser directives.
    pub directives: Directives,
    /// `ARG`s before the first `FROM`: visible in `FROM` lines, and in a stage only when
    /// redeclared there.
    pub meta_args: Vec<Located<Arg>>,
    /// Build stages in source order.
    pub stages: Vec<Stage>,
    /// Parser warnings.
    pub warnings: Vec<Warning>,
}

impl Dockerfile {
    /// The stage with this name (case-insensitive) or decimal index.
    pub fn stage(&self, name_or_index: &str) -> Option<(usize, &Stage)> {
        let lower = name_or_index.to_ascii_lowercase();
        if let Some(found) = self
            .stages
            .iter()
            .enumerate()
            .find(|(_, s)| s.name.as_deref() == Some(&lower))
        {
            return Some(found);
        }
        let index: usize = name_or_index.parse().ok()?;
        self.stages.get(index).map(|s| (index, s))
    }
}

/// One build stage: a `FROM` and the instructions after it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Stage {
    /// `AS name`, lowercased.
    pub name: Option<String>,
    /// The `FROM` instruction (base image or earlier stage, unexpanded).
    pub from: Located<From>,
    /// Instructions after the `FROM`, in order.
    pub instructions: Vec<Located<Instruction>>,
}

/// A value with the line range of the instruction it came from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Located<T> {
    /// The instruction.
    #[serde(flatten)]
    pub instruction: T,
    /// First line (1-based).
    pub start_line: usize,
    /// Last line (1-based).
    pub end_line: usize,
    /// The logical source line.
    pub original: String,
}

/// Every Dockerfile instruction except `FROM` (which starts a [`Stage`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "instruction", rename_all = "UPPERCASE")]
pub enum Instruction {
    /// `RUN`
    Run(Run),
    /// `CMD`
    Cmd(Cmd),
    /// `LABEL`
    Label(Label),
    /// `MAINTAINER` (deprecated; becomes the image author)
    Maintainer(Maintainer),
    /// `EXPOSE`
    Expose(Expose),
    /// `ENV`
    Env(Env),
    /// `ADD`
    Add(Add),
    /// `COPY`
    Copy(Copy),
    /// `ENTRYPOINT`
    Entrypoint(Entrypoint),
    /// `VOLUME`
    Volume(Volume),
    /// `USER`
    User(User),
    /// `WORKDIR`
    Workdir(Workdir),
    /// `ARG`
    Arg(Arg),
    /// `ONBUILD`
    Onbuild(Onbuild),
    /// `STOPSIGNAL`
    Stopsignal(StopSignal),
    /// `HEALTHCHECK`
    Healthcheck(Healthcheck),
    /// `SHELL`
    Shell(Shell),
    /// `FROM` (only inside `ONBUILD` parsing errors and in stage headers)
    From(From),
}

impl Instruction {
    /// The instruction keyword, upper case.
    pub fn keyword(&self) -> &'static str {
        match self {
            Instruction::Run(_) => "RUN",
            Instruction::Cmd(_) => "CMD",
            Instruction::Label(_) => "LABEL",
            Instruction::Maintainer(_) => "MAINTAINER",
            Instruction::Expose(_) => "EXPOSE",
            Instruction::Env(_) => "ENV",
            Instruction::Add(_) => "ADD",
            Instruction::Copy(_) => "COPY",
            Instruction::Entrypoint(_) => "ENTRYPOINT",
            Instruction::Volume(_) => "VOLUME",
            Instruction::User(_) => "USER",
            Instruction::Workdir(_) => "WORKDIR",
            Instruction::Arg(_) => "ARG",
            Instruction::Onbuild(_) => "ONBUILD",
            Instruction::Stopsignal(_) => "STOPSIGNAL",
            Instruction::Healthcheck(_) => "HEALTHCHECK",
            Instruction::Shell(_) => "SHELL",
            Instruction::From(_) => "FROM",
        }
    }
}

/// A command in shell form (run through the stage's `SHELL`) or exec form (JSON array).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum CommandLine {
    /// `RUN echo hi`: one string for the shell.
    Shell(String),
    /// `RUN ["echo", "hi"]`: argv, no shell.
    Exec(Vec<String>),
}

/// `FROM [--platform=P] IMAGE [AS NAME]`
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct From {
    /// Base image reference, earlier stage name, or `scratch` (unexpanded).
    pub image: String,
    /// Stage name from `AS`, lowercased.
    pub name: Option<String>,
    /// `--platform` value (unexpanded).
    pub platform: Option<String>,
}

/// `RUN [--mount=…] [--network=…] [--security=…] COMMAND`
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Run {
    /// What to run.
    pub command: CommandLine,
    /// Heredoc bodies (`RUN <<EOF`).
    pub heredocs: Vec<Heredoc>,
    /// `--mount` flags.
    pub mounts: Vec<Mount>,
    /// `--mount` flag values as written, for expansion before use.
    pub mount_specs: Vec<String>,
    /// `--network=default|none|host`.
    pub network: Option<String>,
    /// `--security=sandbox|insecure`.
    pub security: Option<String>,
}

/// `CMD`
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Cmd {
    /// The default command.
    pub command: CommandLine,
}

/// `ENTRYPOINT`
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Entrypoint {
    /// The entrypoint.
    pub command: CommandLine,
}

/// `SHELL ["exe", "arg", …]`
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Shell {
    /// The shell argv used for shell-form commands.
    pub shell: Vec<String>,
}

/// A `KEY=VALUE` pair of ENV or LABEL (value still quoted and unexpanded).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct KeyValue {
    /// The name.
    pub key: String,
    /// The value as written.
    pub value: String,
}

/// `ENV K=V …` or `ENV K V`
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Env {
    /// Variables in order.
    pub vars: Vec<KeyValue>,
}

/// `LABEL K=V …`
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Label {
    /// Labels in order.
    pub labels: Vec<KeyValue>,
}

/// `MAINTAINER name`
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Maintainer {
    /// The author.
    pub name: String,
}

/// `EXPOSE port[/proto] …`
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Expose {
    /// Ports as written.
    pub ports: Vec<String>,
}

/// `COPY [--from] [--chown] [--chmod] [--link] [--parents] [--exclude] SRC… DEST`
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Copy {
    /// Sources (context paths or globs, or heredoc names).
    pub sources: Vec<String>,
    /// Destination.
    pub dest: String,
    /// `--from` stage, index or image.
    pub from: Option<String>,
    /// `--chown=user[:group]`.
    pub chown: Option<String>,
    /// `--chmod=mode`.
    pub chmod: Option<String>,
    /// `--link`.
    pub link: bool,
    /// `--parents`.
    pub parents: bool,
    /// `--exclude` patterns.
    pub exclude: Vec<String>,
    /// Heredoc sources (`COPY <<EOF /dest`).
    pub heredocs: Vec<Heredoc>,
}

/// `ADD [--chown] [--chmod] [--link] [--keep-git-dir] [--checksum] [--exclude] [--unpack] SRC… DEST`
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Add {
    /// Sources (context paths, globs, URLs, git refs, heredoc names).
    pub sources: Vec<String>,
    /// Destination.
    pub dest: String,
    /// `--chown=user[:group]`.
    pub chown: Option<String>,
    /// `--chmod=mode`.
    pub chmod: Option<String>,
    /// `--link`.
    pub link: bool,
    /// `--keep-git-dir`.
    pub keep_git_dir: bool,
    /// `--checksum=sha256:…` for URL sources.
    pub checksum: Option<String>,
    /// `--exclude` patterns.
    pub exclude: Vec<String>,
    /// `--unpack` (None: auto-extract local archives only).
    pub unpack: Option<bool>,
    /// Heredoc sources.
    pub heredocs: Vec<Heredoc>,
}

/// `VOLUME path …` or `VOLUME ["path", …]`
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Volume {
    /// Mount points.
    pub paths: Vec<String>,
}

/// `USER user[:group]`
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct User {
    /// The user spec.
    pub user: String,
}

/// `WORKDIR path`
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Workdir {
    /// The directory.
    pub path: String,
}

/// One `NAME[=default]` of an ARG.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ArgDef {
    /// Name.
    pub name: String,
    /// Default value as written (unexpanded), if any.
    pub default: Option<String>,
}

/// `ARG name[=default] …`
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Arg {
    /// Declared args in order.
    pub args: Vec<ArgDef>,
}

/// `ONBUILD INSTRUCTION`
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Onbuild {
    /// The trigger as written (what goes into the image config's `OnBuild`).
    pub expression: String,
    /// The trigger, typed.
    pub trigger: Box<Instruction>,
}

/// `STOPSIGNAL signal`
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct StopSignal {
    /// Signal name or number.
    pub signal: String,
}

/// `HEALTHCHECK NONE` or `HEALTHCHECK [options] CMD command`
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "type", rename_all = "UPPERCASE")]
pub enum Healthcheck {
    /// Disable any inherited healthcheck.
    None,
    /// Run a command to check health.
    Cmd {
        /// The check command.
        test: CommandLine,
        /// `--interval`.
        #[serde(serialize_with = "nanos")]
        interval: Option<Duration>,
        /// `--timeout`.
        #[serde(serialize_with = "nanos")]
        timeout: Option<Duration>,
        /// `--start-period`.
        #[serde(serialize_with = "nanos")]
        start_period: Option<Duration>,
        /// `--start-interval`.
        #[serde(serialize_with = "nanos")]
        start_interval: Option<Duration>,
        /// `--retries`.
        retries: Option<u32>,
    },
}

fn nanos<S: Serializer>(d: &Option<Duration>, s: S) -> Result<S::Ok, S::Error> {
    match d {
        Some(d) => s.serialize_some(&(d.as_nanos() as u64)),
        None => s.serialize_none(),
    }
}
