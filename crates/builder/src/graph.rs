//! The stage graph: what each stage depends on (its `FROM`, `COPY --from`, `RUN --mount
//! from=`), which stages a `--target` needs, and which of those can run at the same time.

use std::collections::BTreeSet;

use rbuild_parser::instructions::{Dockerfile, Instruction, MetaScope, StageScope};

use crate::error::BuildError;

/// Where a stage (or a `--from`) gets its content.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    /// `scratch`: empty.
    Scratch,
    /// An earlier stage, by index.
    Stage(usize),
    /// An image reference (store, or registry).
    Image(String),
}

/// Stages and their dependencies.
#[derive(Debug, Clone)]
pub struct StageGraph {
    /// For each stage: its base.
    pub bases: Vec<Source>,
    /// For each stage: the stages it needs (base and `--from` references).
    pub deps: Vec<BTreeSet<usize>>,
    /// For each stage: images it reads with `--from` (not stages).
    pub image_refs: Vec<BTreeSet<String>>,
}

impl StageGraph {
    /// Build the graph; `meta` expands `FROM` lines, each stage's ARGs expand `--from` values.
    pub fn new(df: &Dockerfile, meta: &MetaScope) -> Result<Self, BuildError> {
        let no_args = Default::default();
        let mut bases = Vec::with_capacity(df.stages.len());
        let mut deps = vec![BTreeSet::new(); df.stages.len()];
        let mut image_refs = vec![BTreeSet::new(); df.stages.len()];
        for (i, stage) in df.stages.iter().enumerate() {
            let from = meta.expand_from(&stage.from)?;
            let base = resolve(df, i, &from.image, true)?;
            if let Source::Stage(j) = base {
                deps[i].insert(j);
            }
            bases.push(base);
            let mut scope = StageScope::new(df, meta, &no_args, Vec::new());
            for ins in &stage.instructions {
                let expanded = scope.expand(ins)?;
                let refs: Vec<String> = match &expanded {
                    Instruction::Copy(c) => c.from.iter().cloned().collect(),
                    Instruction::Run(r) => r.mounts.iter().filter_map(|m| m.from.clone()).collect(),
                    _ => Vec::new(),
                };
                for r in refs {
                    match resolve(df, i, &r, false)? {
                        Source::Stage(j) => {
                            deps[i].insert(j);
                        }
                        Source::Image(name) => {
                            image_refs[i].insert(name);
                        }
                        Source::Scratch => {}
                    }
                }
                scope.apply(&expanded);
            }
        }
        Ok(StageGraph {
            bases,
            deps,
            image_refs,
        })
    }

    /// The stages `target` needs, itself included, in dependency order.
    pub fn needed(&self, target: usize) -> Vec<usize> {
        let mut seen = BTreeSet::new();
        let mut stack = vec![target];
        while let Some(s) = stack.pop() {
            if seen.insert(s) {
                stack.extend(self.deps[s].iter().copied());
            }
        }
        seen.into_iter().collect()
    }

    /// The needed stages in batches: every stage of a batch depends only on earlier batches,
    /// so a batch's stages can be built in parallel.
    pub fn batches(&self, target: usize) -> Vec<Vec<usize>> {
        let needed = self.needed(target);
        let mut done: BTreeSet<usize> = BTreeSet::new();
        let mut out = Vec::new();
        while done.len() < needed.len() {
            let batch: Vec<usize> = needed
                .iter()
                .copied()
                .filter(|s| !done.contains(s) && self.deps[*s].iter().all(|d| done.contains(d)))
                .collect();
            done.extend(batch.iter().copied());
            out.push(batch);
        }
        out
    }
}

/// A `FROM`/`--from` value as a stage (by name or, for `--from`, by index), `scratch`, or an image.
pub(crate) fn resolve(
    df: &Dockerfile,
    current: usize,
    name: &str,
    is_from: bool,
) -> Result<Source, BuildError> {
    let lower = name.to_ascii_lowercase();
    if lower.is_empty() {
        let reason =
            "the value is empty (an ARG used in it may not be declared in this stage)".to_string();
        return Err(BuildError::BadStageReference {
            reference: name.to_string(),
            reason,
        });
    }
    if is_from && lower == "scratch" {
        return Ok(Source::Scratch);
    }
    if let Some(j) = df
        .stages
        .iter()
        .position(|s| s.name.as_deref() == Some(lower.as_str()))
    {
        if j >= current {
            let reason = if j == current {
                "a stage cannot refer to itself"
            } else {
                "refers to a later stage"
            };
            return Err(BuildError::BadStageReference {
                reference: name.to_string(),
                reason: reason.into(),
            });
        }
        return Ok(Source::Stage(j));
    }
    if !is_from && let Ok(index) = name.parse::<usize>() {
        if index >= current {
            let reason = format!("index {index} refers to the current or a later stage");
            return Err(BuildError::BadStageReference {
                reference: name.to_string(),
                reason,
            });
        }
        return Ok(Source::Stage(index));
    }
    Ok(Source::Image(name.to_string()))
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use rbuild_parser::instructions::{Platforms, parse_dockerfile};

    use super::*;

    fn graph(text: &str) -> Result<StageGraph, BuildError> {
        let df = parse_dockerfile(text).unwrap();
        let meta = MetaScope::resolve(&df, &BTreeMap::new(), &Platforms::host()).unwrap();
        StageGraph::new(&df, &meta)
    }

    #[test]
    fn dependencies_and_batches() {
        let g = graph(
            "ARG B=base\nFROM busybox AS base\nFROM scratch AS a\nARG B\nCOPY --from=${B} / /\n\
             FROM busybox AS b\nRUN --mount=type=bind,from=0,target=/x true\n\
             FROM a AS final\nCOPY --from=b /x /y\nCOPY --from=alpine:3 /z /z\nFROM busybox AS unused\n",
        )
        .unwrap();
        assert_eq!(g.bases[1], Source::Scratch);
        assert_eq!(g.bases[3], Source::Stage(1));
        assert_eq!(g.bases[0], Source::Image("busybox".into()));
        assert_eq!(g.needed(3), [0, 1, 2, 3]);
        assert_eq!(g.batches(3), [vec![0], vec![1, 2], vec![3]]);
        assert!(g.image_refs[3].contains("alpine:3"));
        assert_eq!(g.needed(4), [4]);
    }

    #[test]
    fn bad_references() {
        let err = graph("FROM busybox AS a\nCOPY --from=a / /\n").unwrap_err();
        assert!(err.to_string().contains("cannot refer to itself"), "{err}");
        let err = graph("FROM busybox AS a\nCOPY --from=1 / /\nFROM busybox AS b\n").unwrap_err();
        assert!(
            err.to_string().contains("current or a later stage"),
            "{err}"
        );
        let err =
            graph("ARG S=a\nFROM busybox AS a\nFROM busybox\nCOPY --from=$S / /\n").unwrap_err();
        assert!(err.to_string().contains("value is empty"), "{err}");
        let err = graph("FROM b\nFROM busybox AS b\n").unwrap_err();
        assert!(err.to_string().contains("later stage"), "{err}");
    }
}
