//! Child processes that die with the fixture that owns them.
use std::net::TcpListener;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A port on 127.0.0.1 that was free a moment ago.
pub fn spare_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .map(|address| address.port())
        .expect("the loopback interface accepts a bind to port 0")
}

/// Fails the test unless `program` is on PATH, naming the command that installs it.
pub(crate) fn require_program(program: &str, install: &str) {
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

/// Polls `ready` every 50 ms until it returns true or `timeout` passes.
pub(crate) async fn wait_until<F, Fut>(what: &str, timeout: Duration, mut ready: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        if ready().await {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("{what} was not ready within {timeout:?}");
}
