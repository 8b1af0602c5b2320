//! Building several platforms at once: which stages (and stage prefixes) do not depend on
//! the target platform and are built once for all of them, and the platform each stage is
//! built for.

use std::sync::{Arc, OnceLock};

use rbuild_oci::Platform;
use rbuild_parser::instructions::Instruction;

use super::{Shared, StageResult, stage};
use crate::error::BuildError;

/// A shared stage's (or stage prefix's) result: the stage, or its error as text.
pub(crate) type SharedStage = OnceLock<Result<Arc<StageResult>, String>>;

impl Shared<'_> {
    /// Stage `index`: built here, or, when it does not depend on the target platform, taken
    /// from (or built once for) every platform's build.
    pub(super) fn stage(&self, index: usize) -> Result<Arc<StageResult>, BuildError> {
        let key = if self.multi {
            self.memo_key(index)?
        } else {
            None
        };
        let Some(key) = key else {
            return stage::build_stage(self, index).map(Arc::new);
        };
        let cell = self.memo_cell(key);
        let mut own_error = None;
        let result = cell.get_or_init(|| match stage::build_stage(self, index) {
            Ok(r) => Ok(Arc::new(r)),
            Err(e) => {
                let text = e.to_string();
                own_error = Some(e);
                Err(text)
            }
        });
        if let Some(e) = own_error {
            return Err(e);
        }
        result
            .clone()
            .map_err(|reason| BuildError::SharedStageFailed {
                stage: self.dockerfile.stages[index]
                    .name
                    .clone()
                    .unwrap_or_else(|| format!("stage-{index}")),
                reason,
            })
    }

    /// What identifies stage `index`'s result across the platforms' builds, or `None` when
    /// it depends on the target platform: its platform is the target (no `FROM --platform`,
    /// nor a base stage with one), it declares a `TARGET*` arg, or it needs a stage that
    /// depends on the target.
    pub(super) fn memo_key(&self, index: usize) -> Result<Option<String>, BuildError> {
        let stage = &self.dockerfile.stages[index];
        let from = self.meta.expand_from(&stage.from)?;
        if !self.fixed_platform(index)? {
            return Ok(None);
        }
        let platform = self.stage_platform(index)?;
        let reads_target = stage.instructions.iter().any(|i| match &i.instruction {
            Instruction::Arg(a) => a.args.iter().any(|d| d.name.starts_with("TARGET")),
            _ => false,
        });
        if reads_target {
            return Ok(None);
        }
        let mut key = format!("{index}|{platform}|{}", from.image);
        for &d in &self.graph.deps[index] {
            match self.memo_key(d)? {
                Some(k) => key.push_str(&format!("|({k})")),
                None => return Ok(None),
            }
        }
        Ok(Some(key))
    }

    /// Whether stage `index`'s platform is fixed by a `FROM --platform`, not the target (see
    /// [`Shared::stage_platform`]).
    fn fixed_platform(&self, index: usize) -> Result<bool, BuildError> {
        if let crate::graph::Source::Stage(j) = self.graph.bases[index] {
            return self.fixed_platform(j);
        }
        let from = self.meta.expand_from(&self.dockerfile.stages[index].from)?;
        Ok(from.platform.is_some())
    }

    /// For a stage whose platform is fixed but which declares a `TARGET*` arg (the
    /// cross-compiling pattern: `FROM --platform=$BUILDPLATFORM …`, `RUN go mod download`,
    /// `ARG TARGETARCH`, `RUN GOARCH=$TARGETARCH go build`): what identifies the steps before
    /// that `ARG` across the platforms' builds, and how many instructions they are. `None`
    /// when there is no such prefix with a step in it, or the stage needs a stage that
    /// depends on the target.
    pub(crate) fn prefix_key(&self, index: usize) -> Result<Option<(String, usize)>, BuildError> {
        if !self.multi || !self.fixed_platform(index)? || self.memo_key(index)?.is_some() {
            return Ok(None);
        }
        let stage = &self.dockerfile.stages[index];
        let Some(n) = stage
            .instructions
            .iter()
            .position(|i| match &i.instruction {
                Instruction::Arg(a) => a.args.iter().any(|d| d.name.starts_with("TARGET")),
                _ => false,
            })
        else {
            return Ok(None);
        };
        let has_step = stage.instructions[..n].iter().any(|i| {
            matches!(
                i.instruction,
                Instruction::Run(_)
                    | Instruction::Copy(_)
                    | Instruction::Add(_)
                    | Instruction::Workdir(_)
            )
        });
        if !has_step {
            return Ok(None);
        }
        let from = self.meta.expand_from(&stage.from)?;
        let mut key = format!(
            "prefix|{index}|{}|{}|{n}",
            self.stage_platform(index)?,
            from.image
        );
        for &d in &self.graph.deps[index] {
            match self.memo_key(d)? {
                Some(k) => key.push_str(&format!("|({k})")),
                None => return Ok(None),
            }
        }
        Ok(Some((key, n)))
    }

    /// For a `FROM scratch` stage built for the target platform: its leading COPY/ADD steps
    /// that read only the context or stages shared by every platform (with ENV, LABEL and
    /// WORKDIR among them), which make the same layers whatever the target. What identifies
    /// them across the platforms' builds, and how many instructions they are; `None` when
    /// there is no such step. They are built once, with platform-neutral cache keys (the
    /// steps after them key on the platform again, see `stage::build_stage`).
    pub(crate) fn scratch_prefix_key(
        &self,
        index: usize,
    ) -> Result<Option<(String, usize)>, BuildError> {
        if !self.multi
            || self.graph.bases[index] != crate::graph::Source::Scratch
            || self.fixed_platform(index)?
        {
            return Ok(None);
        }
        let stage = &self.dockerfile.stages[index];
        let mut key = format!("scratch-prefix|{index}");
        let mut n = 0;
        let mut steps = 0;
        for located in &stage.instructions {
            match &located.instruction {
                Instruction::Copy(c) => {
                    if let Some(from) = &c.from {
                        // A stage that is itself shared (an image or a stage built per
                        // platform would differ; a variable is not looked into).
                        if from.contains('$') {
                            break;
                        }
                        let source = crate::graph::resolve(self.dockerfile, index, from, false)?;
                        let crate::graph::Source::Stage(j) = source else {
                            break;
                        };
                        match self.memo_key(j)? {
                            Some(k) => key.push_str(&format!("|({k})")),
                            None => break,
                        }
                    }
                    steps += 1;
                }
                Instruction::Add(_) | Instruction::Workdir(_) => steps += 1,
                Instruction::Env(_) | Instruction::Label(_) => {}
                _ => break,
            }
            n += 1;
        }
        // Trailing config instructions stay with the platform's own steps.
        while n > 0
            && matches!(
                stage.instructions[n - 1].instruction,
                Instruction::Env(_) | Instruction::Label(_)
            )
        {
            n -= 1;
        }
        if steps == 0 {
            return Ok(None);
        }
        Ok(Some((format!("{key}|{n}"), n)))
    }

    /// The cell of the shared result `key` (made on first use).
    pub(crate) fn memo_cell(&self, key: String) -> Arc<SharedStage> {
        Arc::clone(self.memo.lock().expect("memo").entry(key).or_default())
    }

    /// The platform stage `index` is built for: a stage based on another has that stage's
    /// (as BuildKit's dockerfile2llb), else its `FROM --platform`, else the target.
    pub(crate) fn stage_platform(&self, index: usize) -> Result<String, BuildError> {
        if let crate::graph::Source::Stage(j) = self.graph.bases[index] {
            return self.stage_platform(j);
        }
        let from = self.meta.expand_from(&self.dockerfile.stages[index].from)?;
        match from.platform {
            Some(p) => normalize_platform(&p),
            None => Ok(self.platform.clone()),
        }
    }

    /// The key-platform of a stage built for `platform`: the platform plus anything else
    /// every key must depend on.
    pub(crate) fn key_platform(&self, platform: &str) -> String {
        let mut key = platform.to_string();
        if let Some(sde) = self.opts.source_date_epoch {
            key.push_str(&format!(";source-date-epoch={sde}"));
        }
        key
    }
}

/// A `FROM --platform` value, normalized as BuildKit does.
fn normalize_platform(p: &str) -> Result<String, BuildError> {
    Platform::parse_normalized(p)
        .map(|p| p.to_string())
        .map_err(|_| BuildError::BadPlatform(p.to_string()))
}
