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
        command.arg(format!("--config-file={}", directory.path().join("config.xml").display()));
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
        self.process.terminate(Duration::from_secs(10));
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
        assert!(status.is_success(), "clickhouse refused {statement:?}: {body}");
        body
    }
}

fn write_config(directory: &TempDir, http_port: u16, tcp_port: u16) {
    let root = directory.path().display();
    let config = format!(
        r#"<?xml version="1.0"?>
<yandex>
    <logger>
        <level>warning</level>
        <log>{root}/server.log</log>
        <errorlog>{root}/server.err.log</errorlog>
        <size>100M</size>
        <count>2</count>
    </logger>
    <listen_host>127.0.0.1</listen_host>
    <http_port>{http_port}</http_port>
    <tcp_port>{tcp_port}</tcp_port>
    <path>{root}/data/</path>
    <tmp_path>{root}/tmp/</tmp_path>
    <user_files_path>{root}/user_files/</user_files_path>
    <format_schema_path>{root}/format_schemas/</format_schema_path>
    <users_config>{root}/users.xml</users_config>
    <default_profile>default</default_profile>
    <default_database>default</default_database>
    <timezone>UTC</timezone>
    <mark_cache_size>268435456</mark_cache_size>
    <uncompressed_cache_size>268435456</uncompressed_cache_size>
    <max_concurrent_queries>100</max_concurrent_queries>
</yandex>
"#
    );
    let users = r#"<?xml version="1.0"?>
<yandex>
    <profiles>
        <default>
            <max_memory_usage>4000000000</max_memory_usage>
            <load_balancing>random</load_balancing>
        </default>
    </profiles>
    <users>
        <default>
            <password></password>
            <networks>
                <ip>127.0.0.1</ip>
                <ip>::1</ip>
            </networks>
            <profile>default</profile>
            <quota>default</quota>
        </default>
    </users>
    <quotas>
        <default>
            <interval>
                <duration>3600</duration>
                <queries>0</queries>
                <errors>0</errors>
                <result_rows>0</result_rows>
                <read_rows>0</read_rows>
                <execution_time>0</execution_time>
            </interval>
        </default>
    </quotas>
</yandex>
"#;
    std::fs::write(directory.path().join("config.xml"), config).expect("config.xml can be written");
    std::fs::write(directory.path().join("users.xml"), users).expect("users.xml can be written");
}
