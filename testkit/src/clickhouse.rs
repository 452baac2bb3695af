//! ClickHouse on a spare port: Debian's clickhouse-server (18.16), or a current
//! release (26.x, PyPI `chdb-core` in-process behind `testkit/clickhouse/current.py`,
//! which speaks the part of the HTTP interface the `clickhouse` crate uses), so the
//! schema and every query are proven on both what runs here and what operators deploy.
use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use tempfile::TempDir;

use crate::process::{require_program, spare_port, wait_until, ChildProcess};

const INSTALL: &str = "apt-get install -y clickhouse-server clickhouse-client";
const SERVER_BINARY: &str = "/usr/sbin/clickhouse-server";
const CURRENT_INSTALL: &str = "python3 -m pip install chdb-core (./scripts/lib.sh does it)";

/// Which ClickHouse a fixture runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClickHouseRelease {
    /// Debian's clickhouse-server, 18.16: the oldest release RNS supports.
    Debian,
    /// ClickHouse 26.x in-process (PyPI `chdb-core`): what operators deploy today.
    Current,
}

/// A ClickHouse with its own config, data and logs in a temporary directory.
#[derive(Debug)]
pub struct ClickHouseServer {
    release: ClickHouseRelease,
    /// The nice value it runs at (and restarts at).
    niceness: i32,
    process: ChildProcess,
    http_port: u16,
    directory: TempDir,
}

impl ClickHouseServer {
    /// The server's process id (for the benchmark's CPU accounting).
    pub fn pid(&self) -> u32 {
        self.process.id()
    }

    /// Debian's clickhouse-server.
    pub async fn start() -> Self {
        Self::start_release(ClickHouseRelease::Debian).await
    }

    pub async fn start_release(release: ClickHouseRelease) -> Self {
        Self::start_release_at(release, 0).await
    }

    /// Debian's clickhouse-server at nice value `niceness`, yielding the CPU to the
    /// processes on the path being measured (the benchmark's shared host).
    pub async fn start_niced(niceness: i32) -> Self {
        Self::start_release_at(ClickHouseRelease::Debian, niceness).await
    }

    async fn start_release_at(release: ClickHouseRelease, niceness: i32) -> Self {
        let directory = tempfile::tempdir().expect("temporary directory");
        let http_port = spare_port();
        match release {
            ClickHouseRelease::Debian => {
                require_program(SERVER_BINARY, INSTALL);
                write_config(&directory, http_port, spare_port());
            }
            ClickHouseRelease::Current => require_chdb(),
        }
        let process = Self::spawn(release, &directory, http_port, niceness);
        let server = Self {
            release,
            niceness,
            process,
            http_port,
            directory,
        };
        server.wait_ready().await;
        server
    }

    pub fn release(&self) -> ClickHouseRelease {
        self.release
    }

    fn spawn(
        release: ClickHouseRelease,
        directory: &TempDir,
        http_port: u16,
        niceness: i32,
    ) -> ChildProcess {
        let at_niceness = |command: Command| match niceness {
            0 => command,
            niceness => crate::niced(&command, niceness),
        };
        match release {
            ClickHouseRelease::Debian => {
                let mut command = Command::new(SERVER_BINARY);
                command.arg(format!(
                    "--config-file={}",
                    directory.path().join("config.xml").display()
                ));
                ChildProcess::spawn("clickhouse-server", at_niceness(command), directory.path())
            }
            ClickHouseRelease::Current => {
                let data = directory.path().join("data");
                std::fs::create_dir_all(&data).expect("the data directory can be made");
                let mut command = Command::new("python3");
                command
                    .arg(current_script())
                    .arg(format!("--port={http_port}"))
                    .arg(format!("--path={}", data.display()));
                ChildProcess::spawn("clickhouse-current", at_niceness(command), directory.path())
            }
        }
    }

    async fn wait_ready(&self) {
        let url = self.url();
        wait_until("clickhouse-server", Duration::from_secs(30), || {
            let url = url.clone();
            async move {
                match reqwest::get(format!("{url}/?query=SELECT%201")).await {
                    Ok(response) => response.status().is_success(),
                    Err(_) => false,
                }
            }
        })
        .await;
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.http_port)
    }

    /// Stops the server (SIGTERM) and keeps its data for [`ClickHouseServer::resume`].
    pub fn stop(&mut self) {
        self.process.terminate(Duration::from_secs(3));
    }

    /// Freezes the server: connections stay open and nothing is answered.
    pub fn freeze(&self) {
        self.process.freeze();
    }

    /// Lets a frozen server answer again.
    pub fn thaw(&self) {
        self.process.thaw();
    }

    /// Starts the server again after [`ClickHouseServer::stop`].
    pub async fn resume(&mut self) {
        self.process = Self::spawn(self.release, &self.directory, self.http_port, self.niceness);
        self.wait_ready().await;
    }

    /// Runs one statement over HTTP and returns the body (tab-separated rows).
    pub async fn query(&self, statement: &str) -> String {
        let response = reqwest::Client::new()
            .post(self.url())
            .body(statement.to_owned())
            .send()
            .await
            .expect("clickhouse answers");
        let status = response.status();
        let body = response.text().await.expect("clickhouse body");
        assert!(
            status.is_success(),
            "clickhouse refused {statement:?}: {body}"
        );
        body
    }
}

/// `testkit/clickhouse/current.py` of this workspace.
fn current_script() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("clickhouse/current.py")
}

fn require_chdb() {
    let found = Command::new("python3")
        .args(["-c", "import chdb"])
        .output()
        .is_ok_and(|output| output.status.success());
    assert!(
        found,
        "a current ClickHouse (PyPI chdb-core) is needed: {CURRENT_INSTALL}"
    );
}

/// The development configuration of `deploy/clickhouse/`, with this server's paths and ports.
const CONFIG_TEMPLATE: &str = include_str!("../../deploy/clickhouse/config.xml.template");
const USERS: &str = include_str!("../../deploy/clickhouse/users.xml");

fn write_config(directory: &TempDir, http_port: u16, tcp_port: u16) {
    let config = CONFIG_TEMPLATE
        .replace("@ROOT@", &directory.path().display().to_string())
        .replace("@HTTP_PORT@", &http_port.to_string())
        .replace("@TCP_PORT@", &tcp_port.to_string());
    std::fs::write(directory.path().join("config.xml"), config).expect("config.xml can be written");
    std::fs::write(directory.path().join("users.xml"), USERS).expect("users.xml can be written");
}

/// Makes `async fn name(release: ClickHouseRelease)` a test on each release:
/// `name::debian_18_16` and `name::current` (a test binary with this needs tokio).
#[macro_export]
macro_rules! on_every_clickhouse_release {
    ($($test:ident),+ $(,)?) => {$(
        mod $test {
            #[tokio::test]
            async fn debian_18_16() {
                super::$test($crate::ClickHouseRelease::Debian).await
            }

            #[tokio::test]
            async fn current() {
                super::$test($crate::ClickHouseRelease::Current).await
            }
        }
    )+};
}
