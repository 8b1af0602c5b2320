//! Removing containers: one (`rm`, forced or not, with its anonymous volumes or not), or every
//! stopped one (`container prune`).

use rbuild_runner::lifecycle::{Container, monitor};

use super::stop::thaw_for_stop;
use crate::Engine;
use crate::error::{EngineError, Result};
use crate::events::{Event, EventType};

impl Engine {
    /// Remove `c`; a running one only with `force` (killed first). With `volumes`, its
    /// anonymous volumes go too. Sends a `destroy` event.
    pub fn remove_container(&self, c: &Container, force: bool, volumes: bool) -> Result<()> {
        let st = c.state()?;
        if st.status.is_active() {
            if !force {
                return Err(EngineError::Conflict(format!(
                    "cannot remove container \"/{}\": container is {}: stop the container before removing or force remove",
                    c.name(),
                    st.status.as_str()
                )));
            }
            thaw_for_stop(c);
            monitor::signal(c, nix::libc::SIGKILL, true)?;
            c.wait_monitor()?;
        }
        let _lock = c.lock()?;
        if c.monitor_running() {
            return Err(EngineError::Conflict(format!(
                "container {} was started again while being removed",
                c.name()
            )));
        }
        c.remove_in_background()?;
        if volumes {
            c.remove_anonymous_volumes()?;
        }
        self.emit(Event::now(
            EventType::Container,
            "destroy",
            c.id(),
            [("name", c.name().to_owned())],
        ));
        Ok(())
    }

    /// Remove every container that is not running; returns their IDs.
    pub fn prune_containers(&self) -> Result<Vec<String>> {
        let containers = self.containers();
        containers.sweep();
        let mut deleted = Vec::new();
        for c in containers.list()? {
            if c.state()?.status.is_active() {
                continue;
            }
            if self.remove_container(&c, false, false).is_ok() {
                deleted.push(c.id().to_owned());
            }
        }
        Ok(deleted)
    }
}
