//! The tokio runtime every RNS process runs on, sized by `[runtime]`.
//!
//! `worker_threads = 0` takes one worker per core (tokio's default): right for a
//! service with a host of its own. When every service shares one host with
//! nats-server, Redis and ClickHouse (`./scripts/up`, `rns.toml`), one worker each
//! does the same work for less CPU: measured on 2 cores with `./scripts/bench`, a
//! single request cost 200–206 µs over every process with one worker per service
//! against 215–220 µs with one per core, and 7,400–7,700 requests/s were delivered
//! against 6,800–7,000; and one worker that is the main thread itself (a
//! current-thread runtime) cost 122–125 µs against 149–156 with one worker beside it
//! (see BENCHMARKS.md). Blocking work (argon2 password hashes)
//! runs on tokio's blocking pool, not on the workers, so one worker is never held up.
use serde::Deserialize;

/// `[runtime]` settings, read by every service.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(default)]
pub struct RuntimeSettings {
    /// Async worker threads; 0 = one per core.
    pub worker_threads: usize,
}

/// A runtime with `settings.worker_threads` workers (one per core when 0), timers and
/// I/O enabled. One worker is the process's own thread (a current-thread runtime):
/// with a separate worker, the future the main thread blocks on and the tasks it
/// spawned woke each other across two threads, a context switch each time.
pub fn build(settings: &RuntimeSettings) -> std::io::Result<tokio::runtime::Runtime> {
    let mut builder = match settings.worker_threads {
        1 => tokio::runtime::Builder::new_current_thread(),
        0 => tokio::runtime::Builder::new_multi_thread(),
        workers => {
            let mut builder = tokio::runtime::Builder::new_multi_thread();
            builder.worker_threads(workers);
            builder
        }
    };
    builder.enable_all().build()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_runtime_has_the_workers_asked_for() {
        let one = build(&RuntimeSettings { worker_threads: 1 }).expect("a runtime");
        assert_eq!(one.metrics().num_workers(), 1);
        assert_eq!(
            one.handle().runtime_flavor(),
            tokio::runtime::RuntimeFlavor::CurrentThread,
            "one worker is the thread that blocks on the runtime"
        );
        let three = build(&RuntimeSettings { worker_threads: 3 }).expect("a runtime");
        assert_eq!(three.metrics().num_workers(), 3);
        let cores = std::thread::available_parallelism().map_or(1, usize::from);
        let default = build(&RuntimeSettings::default()).expect("a runtime");
        assert_eq!(default.metrics().num_workers(), cores);
    }

    #[test]
    fn a_runtime_runs_work_with_one_worker() {
        let runtime = build(&RuntimeSettings { worker_threads: 1 }).expect("a runtime");
        let answer = runtime.block_on(async {
            let spawned = tokio::spawn(async { 6 * 7 });
            let blocking = tokio::task::spawn_blocking(|| 1);
            spawned.await.expect("spawned") + blocking.await.expect("blocking")
        });
        assert_eq!(answer, 43);
    }
}
