//! A redis-server on a spare port, with its data in a temporary directory.
use std::process::Command;
use std::time::Duration;

use tempfile::TempDir;

use crate::process::{require_program, spare_port, wait_until, ChildProcess};

const INSTALL: &str = "apt-get install -y redis-server";

#[derive(Debug)]
pub struct RedisServer {
    process: ChildProcess,
    port: u16,
    _directory: TempDir,
}

impl RedisServer {
    /// The server's process id (for the benchmark's CPU accounting).
    pub fn pid(&self) -> u32 {
        self.process.id()
    }

    pub async fn start() -> Self {
        require_program("redis-server", INSTALL);
        let directory = tempfile::tempdir().expect("temporary directory");
        let port = spare_port();
        let mut command = Command::new("redis-server");
        command
            .arg("--port")
            .arg(port.to_string())
            .arg("--bind")
            .arg("127.0.0.1")
            .arg("--dir")
            .arg(directory.path())
            .arg("--save")
            .arg("")
            .arg("--appendonly")
            .arg("no");
        let process = ChildProcess::spawn("redis-server", command, directory.path());
        wait_until("redis-server", Duration::from_secs(10), || async move {
            tokio::net::TcpStream::connect(("127.0.0.1", port))
                .await
                .is_ok()
        })
        .await;
        Self {
            process,
            port,
            _directory: directory,
        }
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/", self.port)
    }
}
