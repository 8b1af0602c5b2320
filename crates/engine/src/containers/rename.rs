//! `rename`: a container takes a new name, on its record and on its network endpoints (the
//! name other containers resolve it by), as docker's does.

use rbuild_runner::lifecycle::Container;

use crate::Engine;
use crate::error::{EngineError, Result};
use crate::events::{Event, EventType};

impl Engine {
    /// Rename `c` to `new` (a leading `/` is dropped). Fails with a conflict if another
    /// container has the name, and with a bad parameter if it is the current name or breaks
    /// docker's rule. Sends a `rename` event with docker's `oldName` attribute.
    pub fn rename_container(&self, c: &mut Container, new: &str) -> Result<()> {
        let new = new.trim_start_matches('/');
        if new.is_empty() {
            return Err(EngineError::InvalidParameter(
                "Neither old nor new names may be empty".into(),
            ));
        }
        let old = c.name().to_owned();
        if new == old {
            return Err(EngineError::InvalidParameter(
                "Renaming a container with the same name as its current name".into(),
            ));
        }
        c.rename(new)?;
        if c.record.is_bridged() {
            let id = c.id().to_owned();
            self.networks().update(|st| {
                for e in st.endpoints.iter_mut().filter(|e| e.container == id) {
                    e.name = new.to_owned();
                }
                Ok(())
            })?;
        }
        self.emit(Event::now(
            EventType::Container,
            "rename",
            c.id(),
            [("name", new.to_owned()), ("oldName", format!("/{old}"))],
        ));
        Ok(())
    }
}
