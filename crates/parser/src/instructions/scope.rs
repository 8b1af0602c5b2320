//! ARG/ENV scoping and word expansion, as Docker applies them while building.
//!
//! - ARGs before the first `FROM` (meta args) are visible only in `FROM` lines, unless a
//!   stage redeclares them (`ARG NAME` without a default then takes the global value).
//! - `--build-arg` values override ARG defaults; the builtin platform ARGs
//!   (`TARGETPLATFORM`, `BUILDARCH`, …) are in the global scope and must be redeclared to be
//!   seen in a stage; the proxy ARGs (`HTTP_PROXY` family) reach `RUN` without a declaration.
//! - ENV wins over an ARG of the same name; the values of one ENV instruction are expanded
//!   against the environment before it.
//!
//! ```
//! use std::collections::BTreeMap;
//! use rbuild_parser::instructions::{parse_dockerfile, Instruction, StageScope, MetaScope, Platforms};
//! let df = parse_dockerfile("ARG V=1\nFROM busybox:$V\nARG V\nENV A=$V B=x\nWORKDIR /w/$A\n").unwrap();
//! let build_args = BTreeMap::from([("V".to_string(), "2".to_string())]);
//! let meta = MetaScope::resolve(&df, &build_args, &Platforms::host()).unwrap();
//! assert_eq!(meta.expand_from(&df.stages[0].from).unwrap().image, "busybox:2");
//! let mut scope = StageScope::new(&df, &meta, &build_args, Vec::new());
//! for ins in &df.stages[0].instructions {
//!     let expanded = scope.expand(ins).unwrap();
//!     if let Instruction::Workdir(w) = &expanded { assert_eq!(w.path, "/w/2") }
//!     scope.apply(&expanded);
//! }
//! ```

use std::collections::{BTreeMap, BTreeSet};

use super::mount::parse_mount;
use super::{Arg, Dockerfile, From, Instruction, KeyValue, Located};
use crate::error::{ErrorKind, ParseError};
use crate::shell::{Lexer, ShellError, VarLookup};

/// ARGs that `--build-arg` may set without a declaration; they reach RUN steps only.
pub const PROXY_ARGS: &[&str] = &[
    "HTTP_PROXY",
    "http_proxy",
    "HTTPS_PROXY",
    "https_proxy",
    "FTP_PROXY",
    "ftp_proxy",
    "NO_PROXY",
    "no_proxy",
    "ALL_PROXY",
    "all_proxy",
];

/// The build and target platforms, source of the builtin platform ARGs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Platforms {
    /// The platform the build runs on, e.g. `linux/amd64`.
    pub build: String,
    /// The platform the image is for (`--platform`), e.g. `linux/arm64/v8`.
    pub target: String,
}

impl Platforms {
    /// Build and target both the host's platform.
    pub fn host() -> Self {
        let arch = match std::env::consts::ARCH {
            "x86_64" => "amd64",
            "aarch64" => "arm64",
            "x86" => "386",
            "powerpc64" => "ppc64le",
            other => other,
        };
        let host = format!("linux/{arch}");
        Platforms {
            build: host.clone(),
            target: host,
        }
    }

    /// `TARGETPLATFORM`, `TARGETOS`, `TARGETARCH`, `TARGETVARIANT` and the `BUILD*` four.
    pub fn builtin_args(&self) -> Vec<(String, String)> {
        let mut out = Vec::with_capacity(8);
        for (prefix, platform) in [("TARGET", &self.target), ("BUILD", &self.build)] {
            let mut parts = platform.splitn(3, '/');
            let os = parts.next().unwrap_or_default();
            let arch = parts.next().unwrap_or_default();
            let variant = parts.next().unwrap_or_default();
            out.push((format!("{prefix}PLATFORM"), platform.clone()));
            out.push((format!("{prefix}OS"), os.to_string()));
            out.push((format!("{prefix}ARCH"), arch.to_string()));
            out.push((format!("{prefix}VARIANT"), variant.to_string()));
        }
        out
    }
}

/// The global scope: meta ARG values (after `--build-arg`) plus the builtin platform ARGs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MetaScope {
    escape: char,
    values: Vec<(String, String)>,
    builtins: Vec<(String, String)>,
    declared: BTreeSet<String>,
}

impl MetaScope {
    /// Resolve the meta ARGs of `dockerfile` in order (a default may use earlier ones).
    pub fn resolve(
        dockerfile: &Dockerfile,
        build_args: &BTreeMap<String, String>,
        platforms: &Platforms,
    ) -> Result<Self, ParseError> {
        let lexer = Lexer::new(dockerfile.directives.escape_char());
        let builtins = platforms.builtin_args();
        let mut values: Vec<(String, String)> = Vec::new();
        let mut declared = BTreeSet::new();
        for arg in &dockerfile.meta_args {
            for def in &arg.instruction.args {
                declared.insert(def.name.clone());
                let value = match (build_args.get(&def.name), &def.default) {
                    (Some(v), _) => Some(v.clone()),
                    (None, Some(default)) => {
                        let scope = Layered(&values, &builtins);
                        Some(
                            lexer
                                .process_word(default, &scope)
                                .map_err(|e| located(e, arg))?,
                        )
                    }
                    (None, None) => builtins.lookup(&def.name).map(str::to_string),
                };
                if let Some(v) = value {
                    values.push((def.name.clone(), v));
                }
            }
        }
        Ok(MetaScope {
            escape: dockerfile.directives.escape_char(),
            values,
            builtins,
            declared,
        })
    }

    /// The value of a global name (meta ARG or builtin) for a stage that redeclares it.
    pub fn value(&self, name: &str) -> Option<&str> {
        self.values
            .lookup(name)
            .or_else(|| self.builtins.lookup(name))
    }

    /// A stage's `FROM` with its image and `--platform` expanded in the global scope.
    pub fn expand_from(&self, from: &Located<From>) -> Result<From, ParseError> {
        let lexer = Lexer::new(self.escape);
        let scope = Layered(&self.values, &self.builtins);
        let word = |w: &str| lexer.process_word(w, &scope).map_err(|e| located(e, from));
        let image = word(&from.instruction.image)?;
        if image.is_empty() {
            let kind = ErrorKind::InvalidInstruction {
                keyword: "FROM".into(),
                reason: format!("base name ({}) should not be blank", from.instruction.image),
            };
            return Err(ParseError {
                kind,
                line: from.start_line,
                column: 1,
                end_line: from.end_line,
            });
        }
        let platform = from.instruction.platform.as_deref().map(word).transpose()?;
        Ok(From {
            image,
            name: from.instruction.name.clone(),
            platform,
        })
    }
}

/// Lookup in `first`, then `second`.
struct Layered<'a>(&'a [(String, String)], &'a [(String, String)]);

impl VarLookup for Layered<'_> {
    fn lookup(&self, name: &str) -> Option<&str> {
        self.0.lookup(name).or_else(|| self.1.lookup(name))
    }
}

fn located<T>(err: ShellError, at: &Located<T>) -> ParseError {
    ParseError {
        kind: ErrorKind::Expansion(err.to_string()),
        line: at.start_line,
        column: 1,
        end_line: at.end_line,
    }
}

/// An expansion error and, when known, the word it happened in with the byte offset.
struct WordFailure {
    kind: ErrorKind,
    word: Option<(String, usize)>,
}

impl WordFailure {
    fn shell(err: ShellError, word: &str) -> Self {
        WordFailure {
            word: Some((word.to_string(), err.offset())),
            kind: ErrorKind::Expansion(err.to_string()),
        }
    }
}

/// The scope of one stage while its instructions are walked in order.
#[derive(Debug, Clone)]
pub struct StageScope<'a> {
    lexer: Lexer,
    meta: &'a MetaScope,
    build_args: &'a BTreeMap<String, String>,
    /// ENV in force: the base image's, then each ENV instruction's (last wins).
    env: Vec<(String, String)>,
    /// ARGs declared in this stage with a value.
    args: Vec<(String, String)>,
    /// Every ARG declared in this stage, valued or not, in first-declaration order.
    declared: Vec<String>,
    /// ARGs given a value after an ENV of the same name: BuildKit's build environment is
    /// "last assignment wins", so they override that ENV (for expansion and RUN, not in the
    /// image config) until the next ENV sets the name again.
    args_over_env: BTreeSet<String>,
    used_build_args: BTreeSet<String>,
}

impl<'a> StageScope<'a> {
    /// A scope starting from the base image's environment (`KEY=VALUE` pairs).
    pub fn new(
        dockerfile: &Dockerfile,
        meta: &'a MetaScope,
        build_args: &'a BTreeMap<String, String>,
        image_env: Vec<(String, String)>,
    ) -> Self {
        StageScope {
            lexer: Lexer::new(dockerfile.directives.escape_char()),
            meta,
            build_args,
            env: image_env,
            args: Vec::new(),
            declared: Vec::new(),
            args_over_env: BTreeSet::new(),
            used_build_args: BTreeSet::new(),
        }
    }

    /// Expand the words Docker expands in this instruction (ADD, COPY, ENV, EXPOSE, LABEL,
    /// STOPSIGNAL, USER, VOLUME, WORKDIR, ARG defaults, RUN `--mount`/`--network` values).
    /// Others are returned unchanged: RUN, CMD and ENTRYPOINT text is the shell's business.
    pub fn expand(&mut self, at: &Located<Instruction>) -> Result<Instruction, ParseError> {
        self.expand_instruction(&at.instruction).map_err(|failure| {
            // Point at the failing construct when the word can be found in the source line.
            let column = failure
                .word
                .as_ref()
                .and_then(|(word, offset)| {
                    at.original.find(word.as_str()).map(|start| start + offset)
                })
                .map_or(1, |byte| {
                    at.original[..byte.min(at.original.len())].chars().count() + 1
                });
            ParseError {
                kind: failure.kind,
                line: at.start_line,
                column,
                end_line: at.end_line,
            }
        })
    }

    fn expand_instruction(&mut self, ins: &Instruction) -> Result<Instruction, WordFailure> {
        let lexer = self.lexer;
        let build_env = self.build_env();
        let scope = Layered(&build_env, &[]);
        let word = |w: &str| {
            lexer
                .process_word(w, &scope)
                .map_err(|e| WordFailure::shell(e, w))
        };
        let opt = |w: &Option<String>| w.as_deref().map(word).transpose();
        let all = |ws: &[String]| ws.iter().map(|w| word(w)).collect::<Result<Vec<_>, _>>();
        let pairs = |kvs: &[KeyValue]| {
            kvs.iter()
                .map(|kv| {
                    Ok(KeyValue {
                        key: word(&kv.key)?,
                        value: word(&kv.value)?,
                    })
                })
                .collect::<Result<Vec<_>, WordFailure>>()
        };
        let mut out = ins.clone();
        match &mut out {
            Instruction::Copy(c) => {
                c.sources = all(&c.sources)?;
                c.dest = word(&c.dest)?;
                c.from = opt(&c.from)?;
                c.chown = opt(&c.chown)?;
                c.chmod = opt(&c.chmod)?;
                c.exclude = all(&c.exclude)?;
            }
            Instruction::Add(a) => {
                a.sources = all(&a.sources)?;
                a.dest = word(&a.dest)?;
                a.chown = opt(&a.chown)?;
                a.chmod = opt(&a.chmod)?;
                a.checksum = opt(&a.checksum)?;
                a.exclude = all(&a.exclude)?;
            }
            Instruction::Env(e) => e.vars = pairs(&e.vars)?,
            Instruction::Label(l) => l.labels = pairs(&l.labels)?,
            Instruction::Expose(e) => {
                let mut ports = Vec::new();
                for p in &e.ports {
                    ports.extend(
                        lexer
                            .process_words(p, &scope)
                            .map_err(|e| WordFailure::shell(e, p))?,
                    );
                }
                e.ports = ports;
            }
            Instruction::Stopsignal(s) => s.signal = word(&s.signal)?,
            Instruction::User(u) => u.user = word(&u.user)?,
            Instruction::Workdir(w) => w.path = word(&w.path)?,
            Instruction::Volume(v) => v.paths = all(&v.paths)?,
            Instruction::Arg(a) => {
                for def in &mut a.args {
                    def.default = opt(&def.default)?;
                }
            }
            Instruction::Run(r) => {
                r.network = opt(&r.network)?;
                r.mount_specs = all(&r.mount_specs)?;
                r.mounts = r
                    .mount_specs
                    .iter()
                    .map(|s| {
                        parse_mount(s).map_err(|reason| WordFailure {
                            kind: ErrorKind::InvalidFlag {
                                flag: "mount".into(),
                                reason,
                            },
                            word: None,
                        })
                    })
                    .collect::<Result<_, _>>()?;
            }
            Instruction::From(f) => {
                f.image = word(&f.image)?;
                f.platform = opt(&f.platform)?;
            }
            Instruction::Cmd(_)
            | Instruction::Entrypoint(_)
            | Instruction::Shell(_)
            | Instruction::Maintainer(_)
            | Instruction::Onbuild(_)
            | Instruction::Healthcheck(_) => {}
        }
        Ok(out)
    }

    /// Record the effect of an (expanded) instruction on the scope: ARG declares, ENV sets.
    pub fn apply(&mut self, ins: &Instruction) {
        match ins {
            Instruction::Arg(Arg { args }) => {
                for def in args {
                    let value = if let Some(v) = self.build_args.get(&def.name) {
                        self.used_build_args.insert(def.name.clone());
                        Some(v.clone())
                    } else if let Some(d) = &def.default {
                        Some(d.clone())
                    } else {
                        self.meta.value(&def.name).map(str::to_string)
                    };
                    if !self.declared.contains(&def.name) {
                        self.declared.push(def.name.clone());
                    }
                    self.args.retain(|(k, _)| k != &def.name);
                    if let Some(v) = value {
                        if self.env.iter().any(|(k, _)| k == &def.name) {
                            self.args_over_env.insert(def.name.clone());
                        }
                        self.args.push((def.name.clone(), v));
                    }
                }
            }
            Instruction::Env(e) => {
                for kv in &e.vars {
                    self.args_over_env.remove(&kv.key);
                    // Docker replaces a variable in place, keeping the config's order.
                    match self.env.iter_mut().find(|(k, _)| k == &kv.key) {
                        Some(slot) => slot.1 = kv.value.clone(),
                        None => self.env.push((kv.key.clone(), kv.value.clone())),
                    }
                }
            }
            _ => {}
        }
    }

    /// The ENV in force (what goes into the image config), in order.
    pub fn env(&self) -> &[(String, String)] {
        &self.env
    }

    /// The build environment words are expanded in: ENV (an ARG valued after an ENV of the
    /// same name wins over it, as in BuildKit), then ARGs no ENV names.
    fn build_env(&self) -> Vec<(String, String)> {
        let mut out: Vec<(String, String)> = self
            .env
            .iter()
            .map(|(k, v)| match self.args.iter().find(|(a, _)| a == k) {
                Some((_, arg)) if self.args_over_env.contains(k) => (k.clone(), arg.clone()),
                _ => (k.clone(), v.clone()),
            })
            .collect();
        for (k, v) in &self.args {
            if !out.iter().any(|(e, _)| e == k) {
                out.push((k.clone(), v.clone()));
            }
        }
        out
    }

    /// The environment of a RUN step: the build environment ([`Self::build_env`]), then
    /// proxy build args (which need no declaration).
    pub fn run_env(&self) -> Vec<(String, String)> {
        let mut out = self.build_env();
        for name in PROXY_ARGS {
            if let Some(v) = self.build_args.get(*name)
                && !out.iter().any(|(e, _)| e == name)
            {
                out.push((name.to_string(), v.clone()));
            }
        }
        out
    }

    /// The ARGs declared in this stage with their values (they key the build cache).
    pub fn args(&self) -> &[(String, String)] {
        &self.args
    }

    /// Every ARG declared in this stage so far, with its value in a RUN step's environment
    /// (ENV wins over ARG) or `""` when it has none: what BuildKit lists as `|N K=V …` before
    /// a RUN's `created_by`.
    pub fn declared_args(&self) -> Vec<(String, String)> {
        let env = self.run_env();
        self.declared
            .iter()
            .map(|name| {
                let value = env
                    .iter()
                    .find(|(k, _)| k == name)
                    .map_or(String::new(), |(_, v)| v.clone());
                (name.clone(), value)
            })
            .collect()
    }

    /// The names of `--build-arg`s this stage consumed so far.
    pub fn used_build_args(&self) -> &BTreeSet<String> {
        &self.used_build_args
    }
}

/// `--build-arg` names that no ARG of the Dockerfile declares (Docker warns about them);
/// proxy and builtin platform names are never reported.
pub fn unused_build_args(
    dockerfile: &Dockerfile,
    build_args: &BTreeMap<String, String>,
) -> Vec<String> {
    let mut declared: BTreeSet<&str> = BTreeSet::new();
    for arg in &dockerfile.meta_args {
        declared.extend(arg.instruction.args.iter().map(|d| d.name.as_str()));
    }
    for stage in &dockerfile.stages {
        for ins in &stage.instructions {
            if let Instruction::Arg(a) = &ins.instruction {
                declared.extend(a.args.iter().map(|d| d.name.as_str()));
            }
        }
    }
    let builtins = Platforms::host().builtin_args();
    build_args
        .keys()
        .filter(|k| !declared.contains(k.as_str()))
        .filter(|k| !PROXY_ARGS.contains(&k.as_str()) && !builtins.iter().any(|(b, _)| b == *k))
        .cloned()
        .collect()
}
