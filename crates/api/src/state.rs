//! What the service keeps between calls: the engine, the exec instances made by
//! `POST /containers/{id}/exec` (docker keeps them in memory too), the open connections.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use hyper::StatusCode;
use rbuild_engine::{Engine, Exec, ExecOptions};

use crate::http::{ApiError, ApiResult};
use crate::server::Activity;

/// One exec instance: what to run, and once started, how it went.
#[derive(Debug, Clone)]
pub struct ExecEntry {
    /// The container's ID.
    pub container: String,
    /// The options it was created with.
    pub options: ExecOptions,
    /// The prepared process.
    pub exec: Exec,
    /// Attach standard input.
    pub stdin: bool,
    /// Started already.
    pub started: bool,
    /// Running now.
    pub running: bool,
    /// Its process ID once started.
    pub pid: i32,
    /// Its exit code once ended.
    pub exit_code: Option<i32>,
}

/// The service's state, shared by every connection.
pub struct Service {
    /// The engine every call goes to.
    pub engine: Engine,
    /// Exec instances by ID.
    pub execs: Mutex<HashMap<String, ExecEntry>>,
    /// Open connections, for the idle exit (hijacked streams count too).
    pub activity: Arc<Activity>,
}

impl Service {
    /// The state of a new service over `engine`.
    pub fn new(engine: Engine, activity: Arc<Activity>) -> Service {
        Service {
            engine,
            execs: Mutex::new(HashMap::new()),
            activity,
        }
    }

    /// Update exec `id` with `f`.
    pub fn with_exec<T>(&self, id: &str, f: impl FnOnce(&mut ExecEntry) -> T) -> ApiResult<T> {
        let mut execs = self.execs.lock().unwrap_or_else(|e| e.into_inner());
        let e = execs
            .get_mut(id)
            .ok_or_else(|| ApiError::not_found(format!("No such exec instance: {id}")))?;
        Ok(f(e))
    }
}

/// Run blocking engine work on tokio's blocking pool; a panic in it is a 500, never a hung
/// connection.
pub async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> ApiResult<T> + Send + 'static,
) -> ApiResult<T> {
    tokio::task::spawn_blocking(f).await.unwrap_or_else(|e| {
        Err(ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("internal error: {e}"),
        ))
    })
}
