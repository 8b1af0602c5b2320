//! Bounded concurrency: run one task per item, at most `limit` at a time, stopping at the
//! first error (the remaining tasks are aborted, dropping their uncommitted writers).

use std::future::Future;
use std::sync::Arc;

use tokio::sync::Semaphore;
use tokio::task::JoinSet;

use crate::error::{RegistryError, Result};

/// Run `f(item)` for every item on the runtime, `limit` at once; results in completion order.
pub(crate) async fn run_bounded<I, T, F, Fut>(items: Vec<I>, limit: usize, f: F) -> Result<Vec<T>>
where
    I: Send + 'static,
    T: Send + 'static,
    F: Fn(I) -> Fut,
    Fut: Future<Output = Result<T>> + Send + 'static,
{
    let permits = Arc::new(Semaphore::new(limit.max(1)));
    let mut set = JoinSet::new();
    for item in items {
        let fut = f(item);
        let permits = Arc::clone(&permits);
        set.spawn(async move {
            let _permit = permits
                .acquire_owned()
                .await
                .map_err(|e| RegistryError::Config(format!("task limiter closed: {e}")))?;
            fut.await
        });
    }
    let mut out = Vec::new();
    while let Some(joined) = set.join_next().await {
        match joined {
            Ok(Ok(v)) => out.push(v),
            Ok(Err(e)) => return Err(e),
            Err(e) => return Err(RegistryError::Config(format!("transfer task failed: {e}"))),
        }
    }
    Ok(out)
}
