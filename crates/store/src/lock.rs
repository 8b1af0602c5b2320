//! Advisory file locks (`flock`) coordinating several rbuild processes on one store.

use std::fs::{File, OpenOptions};
use std::path::Path;

use nix::fcntl::{Flock, FlockArg};

use crate::error::{Result, StoreError};

/// A held lock; released when dropped (or when the process dies).
#[derive(Debug)]
pub struct Lock(#[allow(dead_code)] Flock<File>);

impl Lock {
    /// Block until `path` is locked exclusively.
    pub fn exclusive(path: &Path) -> Result<Lock> {
        Self::take(path, FlockArg::LockExclusive)
    }

    /// Block until `path` is locked shared.
    pub fn shared(path: &Path) -> Result<Lock> {
        Self::take(path, FlockArg::LockShared)
    }

    fn take(path: &Path, arg: FlockArg) -> Result<Lock> {
        let file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .read(true)
            .open(path)
            .map_err(|source| StoreError::Io {
                op: "opening lock",
                path: path.to_path_buf(),
                source,
            })?;
        Flock::lock(file, arg)
            .map(Lock)
            .map_err(|(_, e)| StoreError::Io {
                op: "locking",
                path: path.to_path_buf(),
                source: e.into(),
            })
    }
}
