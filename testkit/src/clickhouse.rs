//! A clickhouse-server (Debian's 18.16 or any later release) on spare ports.
use std::process::Command;
use std::time::Duration;

use tempfile::TempDir;

use crate::process::{require_program, spare_port, wait_until, ChildProcess};

const INSTALL: &str = "apt-get install -y clickhouse-server clickhouse-client";
const SERVER_BINARY: &str = "/usr/sbin/clickhouse-server";

/// A ClickHouse server with its own config, data and logs in a temporary directory.
#[derive(Debug)]
pub struct ClickHouseServer {
    process: ChildProcess,
    http_port: u16,
    directory: TempDir,
}

impl ClickHouseServer {
    pub async fn start() -> Self {
        require_program(SERVER_BINARY, INSTALL);
        let directory = tempfile::tempdir().expect("temporary directory");
        let http_port = spare_port();
        let tcp_port = spare_port();
        write_config(&directory, http_port, tcp_port);
        let process = Self::spawn(&directory);
        let server = Self {
            process,
            http_port,
            directory,
        };
        server.wait_ready().await;
        server
    }

    fn spawn(directory: &TempDir) -> ChildProcess {
        let mut command = Command::new(SERVER_BINARY);
        command.arg(format!(
            "--config-file={}",
            directory.path().join("config.xml").display()
        ));
        ChildProcess::spawn("clickhouse-server", command, directory.path())
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

    /// Starts the server again after [`ClickHouseServer::stop`].
    pub async fn resume(&mut self) {
        self.process = Self::spawn(&self.directory);
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
