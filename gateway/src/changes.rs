//! Changes run to their end, whether or not their caller waits for the answer.
//!
//! hyper drops a request's future when its caller hangs up (hyperium/hyper#2728), at
//! whatever `.await` the handler stands. A read loses nothing by that; a change can:
//! a send cut after its points were reserved and before its publish failed never
//! returned them, a schedule cut between its record and its publish is listed but
//! never fires. So every request that may change something (any method but GET, HEAD
//! and OPTIONS) is handled in a task of its own, which the caller's hang-up does not
//! cancel; the answer is only not read. [`ChangeTasks`] tracks them, and the gateway
//! waits for those still running before it shuts down ([`crate::run`]).
use axum::extract::{Request, State};
use axum::http::Method;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use tokio_util::task::TaskTracker;

use crate::error::ApiError;
use crate::AppState;

/// The tasks of changes being handled; cheap to clone.
#[derive(Debug, Clone, Default)]
pub struct ChangeTasks(TaskTracker);

impl ChangeTasks {
    /// Waits for every change task, those of callers who hung up included; no new
    /// change is taken afterwards.
    pub async fn finish(&self) {
        self.0.close();
        self.0.wait().await;
    }
}

/// Whether a request with `method` may change something.
fn may_change(method: &Method) -> bool {
    !matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS)
}

/// Middleware: a change is handled in a task of its own (see the module's
/// documentation); a panic in it goes on here as if the handler had run here.
pub async fn run_to_end(State(state): State<AppState>, request: Request, next: Next) -> Response {
    if !may_change(request.method()) {
        return next.run(request).await;
    }
    let tasks = &state.changes().0;
    if tasks.is_closed() {
        return ApiError::unavailable("the gateway", "it is shutting down").into_response();
    }
    match tasks.spawn(next.run(request)).await {
        Ok(response) => response,
        Err(error) if error.is_panic() => std::panic::resume_unwind(error.into_panic()),
        Err(error) => ApiError::unavailable("the gateway", error).into_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_reads_are_left_to_their_caller() {
        for method in [Method::GET, Method::HEAD, Method::OPTIONS] {
            assert!(!may_change(&method), "{method}");
        }
        for method in [Method::POST, Method::PUT, Method::PATCH, Method::DELETE] {
            assert!(may_change(&method), "{method}");
        }
    }
}
