//! Child processes that die with the fixture that owns them.
use std::net::TcpListener;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// `command` run at nice value `niceness` (through coreutils' `nice`): for processes
/// that stand in for other hosts, or yield the CPU to the path being measured. Its
/// environment changes and working directory are kept.
pub fn niced(command: &Command, niceness: i32) -> Command {
    let mut niced = Command::new("nice");
    niced
        .arg("-n")
        .arg(niceness.to_string())
        .arg(command.get_program())
        .args(command.get_args());
    for (name, value) in command.get_envs() {
        match value {
            Some(value) => niced.env(name, value),
            None => niced.env_remove(name),
        };
    }
    if let Some(directory) = command.get_current_dir() {
        niced.current_dir(directory);
    }
    niced
}

/// A port on 127.0.0.1 that is free now and that no other test process was given in
/// the last ten minutes.
///
/// Ports come from below the kernel's ephemeral range, so no outgoing connection (of
/// this or any other test) can take one between now and the moment a server binds it:
/// a port picked with a bind to port 0 can, and a service then never comes up. A claim
/// file per port under the temporary directory keeps concurrent test processes from
/// choosing the same one.
pub fn spare_port() -> u16 {
    const FIRST: u32 = 10_000;
    const CLAIM_LIFETIME: Duration = Duration::from_secs(600);
    let last = ephemeral_range_start().saturating_sub(1).max(FIRST + 1_000);
    let claims = std::env::temp_dir().join("rns-test-ports");
    std::fs::create_dir_all(&claims).expect("the temporary directory is writable");
    for _ in 0..10_000 {
        let port = u16::try_from(FIRST + next_random() % (last - FIRST))
            .expect("ports below the ephemeral range fit in 16 bits");
        let claim = claims.join(port.to_string());
        let fresh = std::fs::metadata(&claim)
            .and_then(|metadata| metadata.modified())
            .map(|modified| modified.elapsed().unwrap_or_default() < CLAIM_LIFETIME)
            .unwrap_or(false);
        if fresh {
            continue;
        }
        let _ = std::fs::remove_file(&claim);
        let claimed = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&claim)
            .is_ok();
        if claimed && TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
    panic!("no spare port below the ephemeral range after 10,000 tries")
}

/// The first port the kernel hands out to outgoing connections (32768 by default).
fn ephemeral_range_start() -> u32 {
    std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|range| range.split_whitespace().next()?.parse().ok())
        .unwrap_or(32_768)
}

/// A xorshift generator seeded by the process id and the clock: different in every
/// test process, which is all port picking needs.
fn next_random() -> u32 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static STATE: AtomicU64 = AtomicU64::new(0);
    let mut state = STATE.load(Ordering::Relaxed);
    if state == 0 {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default()
            .as_nanos() as u64;
        state = nanos ^ (u64::from(std::process::id()) << 32) | 1;
    }
    state ^= state << 13;
    state ^= state >> 7;
    state ^= state << 17;
    STATE.store(state, Ordering::Relaxed);
    (state >> 32) as u32
}

/// Fails the test unless `program` is on PATH, naming the command that installs it.
pub fn require_program(program: &str, install: &str) {
    let found = std::env::var_os("PATH")
        .map(|paths| {
            std::env::split_paths(&paths).any(|directory| directory.join(program).is_file())
        })
        .unwrap_or(false);
    assert!(
        found || Path::new(program).is_file(),
        "{program} is not installed; install it with: {install}"
    );
}

/// A running child process, killed (SIGKILL) on drop unless stopped before.
#[derive(Debug)]
pub struct ChildProcess {
    name: String,
    child: Option<Child>,
}

impl ChildProcess {
    /// Spawns `command` with its output appended to `<log_directory>/<name>.log`.
    pub fn spawn(name: &str, mut command: Command, log_directory: &Path) -> Self {
        let log_path = log_directory.join(format!("{name}.log"));
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log_path)
            .expect("log file can be created");
        let child = command
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log file handle can be cloned"))
            .stderr(log)
            .spawn()
            .unwrap_or_else(|error| panic!("cannot start {name}: {error}"));
        Self {
            name: name.to_owned(),
            child: Some(child),
        }
    }

    pub fn id(&self) -> u32 {
        self.child.as_ref().map(|child| child.id()).unwrap_or(0)
    }

    /// Whether the process is still running.
    pub fn is_running(&mut self) -> bool {
        match self.child.as_mut() {
            Some(child) => matches!(child.try_wait(), Ok(None)),
            None => false,
        }
    }

    /// SIGKILL, as a crash would.
    /// Freezes the process (SIGSTOP): it holds its connections but answers nothing,
    /// as a hung server does, until [`ChildProcess::thaw`].
    pub fn freeze(&self) {
        self.signal("-STOP");
    }

    /// Lets a frozen process run again (SIGCONT).
    pub fn thaw(&self) {
        self.signal("-CONT");
    }

    fn signal(&self, signal: &str) {
        let status = Command::new("kill")
            .arg(signal)
            .arg(self.id().to_string())
            .status()
            .expect("kill runs");
        assert!(status.success(), "kill {signal} {} failed", self.name);
    }

    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// SIGTERM, then waits up to `grace` for the exit; SIGKILL after that. Returns
    /// whether the process exited within the grace period.
    pub fn terminate(&mut self, grace: Duration) -> bool {
        let Some(mut child) = self.child.take() else {
            return true;
        };
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(child.id().to_string())
            .status();
        let deadline = Instant::now() + grace;
        while Instant::now() < deadline {
            if let Ok(Some(_)) = child.try_wait() {
                return true;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        eprintln!(
            "{} did not exit within {grace:?} of SIGTERM; killing it",
            self.name
        );
        let _ = child.kill();
        let _ = child.wait();
        false
    }
}

impl Drop for ChildProcess {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Polls `ready` every 50 ms until it returns true, and returns how long that took;
/// panics naming `what` once `timeout` passes. Tests wait on a condition with this,
/// never with a fixed sleep.
pub async fn wait_until<F, Fut>(what: &str, timeout: Duration, mut ready: F) -> Duration
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let started = Instant::now();
    let deadline = started + timeout;
    while Instant::now() < deadline {
        if ready().await {
            return started.elapsed();
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("{what} was not ready within {timeout:?}");
}

#[cfg(test)]
mod niced_tests {
    use super::*;

    #[test]
    fn a_niced_command_runs_at_that_nice_value_with_its_environment() {
        let mut command = Command::new("sh");
        command
            .args(["-c", "echo \"$(nice) $RNS_NICED_TEST\""])
            .env("RNS_NICED_TEST", "kept");
        let output = niced(&command, 7).output().expect("nice runs sh");
        assert!(output.status.success());
        assert_eq!(String::from_utf8_lossy(&output.stdout).trim(), "7 kept");
    }
}
