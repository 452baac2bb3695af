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
//!
//! On a shared host the services behind the accept path (dispatcher, carriers,
//! analytics) may also yield the CPU to it: `background_niceness` raises their nice
//! value, so the gateway, nats-server and Redis run first when every core is busy and
//! a burst of delivery or recording work never holds up a 202. What waits is work
//! already stored in a queue; measured with `rns-bench --only paced` at 10,000
//! requests/s on 2 cores, accept p99 went from 23–34 to 11–12 ms (BENCHMARKS.md).
use serde::Deserialize;

/// `[runtime]` settings, read by every service.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(default)]
pub struct RuntimeSettings {
    /// Async worker threads; 0 = one per core.
    pub worker_threads: usize,
    /// The nice value the background services (dispatcher, carriers, analytics) run
    /// at, 0–19: higher yields more CPU to the accept path; 0 on a host of their own.
    pub background_niceness: i32,
}

/// Runs the calling thread, and every thread it starts afterwards, at nice value
/// `niceness` (0–19; a process may always lower its own priority). Call it before
/// the runtime is built, so that its workers and blocking pool inherit it.
pub fn lower_priority(niceness: i32) -> std::io::Result<()> {
    if !(0..=19).contains(&niceness) {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            format!("[runtime] background_niceness must be 0 to 19, not {niceness}"),
        ));
    }
    // On Linux the nice value is a thread's; new threads inherit their creator's.
    rustix::process::setpriority_process(None, niceness).map_err(std::io::Error::from)
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
        let one = build(&RuntimeSettings {
            worker_threads: 1,
            ..RuntimeSettings::default()
        })
        .expect("a runtime");
        assert_eq!(one.metrics().num_workers(), 1);
        assert_eq!(
            one.handle().runtime_flavor(),
            tokio::runtime::RuntimeFlavor::CurrentThread,
            "one worker is the thread that blocks on the runtime"
        );
        let three = build(&RuntimeSettings {
            worker_threads: 3,
            ..RuntimeSettings::default()
        })
        .expect("a runtime");
        assert_eq!(three.metrics().num_workers(), 3);
        let cores = std::thread::available_parallelism().map_or(1, usize::from);
        let default = build(&RuntimeSettings::default()).expect("a runtime");
        assert_eq!(default.metrics().num_workers(), cores);
    }

    #[test]
    fn a_lowered_priority_holds_for_the_runtime_built_after_it() {
        // In a thread of its own: the test harness's threads keep their priority.
        let (own, worker) = std::thread::spawn(|| {
            lower_priority(7).expect("a thread may lower its priority");
            let runtime = build(&RuntimeSettings {
                worker_threads: 2,
                ..RuntimeSettings::default()
            })
            .expect("a runtime");
            // Spawned from outside the runtime: it runs on a worker thread.
            let task = runtime
                .spawn(async { rustix::process::getpriority_process(None).expect("its priority") });
            let worker = runtime.block_on(task).expect("the task ran");
            (
                rustix::process::getpriority_process(None).expect("its priority"),
                worker,
            )
        })
        .join()
        .expect("the thread ran");
        assert_eq!(own, 7);
        assert_eq!(
            worker, 7,
            "a worker started after it inherits the nice value"
        );
        assert!(lower_priority(20).is_err());
        assert!(
            lower_priority(-1).is_err(),
            "raising priority is not this setting's"
        );
    }

    #[test]
    fn a_runtime_runs_work_with_one_worker() {
        let runtime = build(&RuntimeSettings {
            worker_threads: 1,
            ..RuntimeSettings::default()
        })
        .expect("a runtime");
        let answer = runtime.block_on(async {
            let spawned = tokio::spawn(async { 6 * 7 });
            let blocking = tokio::task::spawn_blocking(|| 1);
            spawned.await.expect("spawned") + blocking.await.expect("blocking")
        });
        assert_eq!(answer, 43);
    }
}
