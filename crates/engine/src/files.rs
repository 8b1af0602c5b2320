//! Files the engine writes for users (archives, OCI layouts), never seen half-written.

use std::path::Path;

use crate::error::{EngineError, Result, ResultExt};

/// Write `dest` through a temporary file in its directory, renamed over it only once `write`
/// succeeded: a reader never sees it half-written, and a failure leaves nothing behind. The
/// directory must exist. A `dest` that exists and is not a regular file (`/dev/null`, a FIFO,
/// `/dev/stdout`) is written in place, as docker writes `-o`: renaming over it would replace
/// the device or pipe with a file.
pub(crate) fn write_atomic<E: Into<EngineError>>(
    dest: &Path,
    write: impl FnOnce(&mut std::fs::File) -> std::result::Result<(), E>,
) -> Result<()> {
    if std::fs::metadata(dest).is_ok_and(|m| !m.is_file() && !m.is_dir()) {
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .open(dest)
            .with_context(|| format!("opening {}", dest.display()))?;
        return write(&mut f).with_context(|| format!("writing {}", dest.display()));
    }
    let dir = dest
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let mut tmp = tempfile::NamedTempFile::new_in(dir)
        .with_context(|| format!("creating a temporary file in {}", dir.display()))?;
    write(tmp.as_file_mut()).with_context(|| format!("writing {}", dest.display()))?;
    tmp.persist(dest)
        .with_context(|| format!("writing {}", dest.display()))?;
    Ok(())
}
