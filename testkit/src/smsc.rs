//! An SMSC on spare ports, made by people who are not us: `testkit/smsc/smsc.js` on
//! node-smpp's server (npm `smpp`), or `testkit/smsc/smsc34.py` on smpp34's (PyPI, a
//! Rust core) — the protocol handling is the library's either way. Both are controlled
//! over the same HTTP routes (knobs, counters, the messages taken, dropping every bind).
use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use tempfile::TempDir;

use crate::process::{require_program, spare_port, wait_until, ChildProcess};

const NODE_INSTALL: &str =
    "apt-get install -y nodejs npm && npm ci --prefix testkit/smsc (./scripts/lib.sh does both)";
const SMPP34_INSTALL: &str = "python3 -m pip install smpp34==1.5.0 (./scripts/lib.sh does it)";

/// Which library's SMPP server the SMSC is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SmscImplementation {
    /// node-smpp (npm `smpp` 0.5): every knob of `smsc.js`.
    NodeSmpp,
    /// smpp34 (PyPI, Rust core): the knobs `smsc34.py` lists; it cannot refuse a bind
    /// or leave a submit unanswered.
    Smpp34,
}

/// The system id and password the SMSC takes.
pub const SMSC_SYSTEM_ID: &str = "rns";
pub const SMSC_PASSWORD: &str = "secret";

#[derive(Debug)]
pub struct SmscServer {
    process: ChildProcess,
    implementation: SmscImplementation,
    /// With TLS: the certificate authority's PEM file (the SMSC's own certificate is
    /// for IP 127.0.0.1, signed by it).
    tls_authority: Option<PathBuf>,
    smpp_port: u16,
    control_port: u16,
    http: reqwest::Client,
    directory: TempDir,
}

/// Where the SMSC script lives: `testkit/smsc` of this workspace.
fn script_directory() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("smsc")
}

/// The command that runs `implementation`'s SMSC script, once its library is there.
fn smsc_command(implementation: SmscImplementation) -> Command {
    let directory = script_directory();
    match implementation {
        SmscImplementation::NodeSmpp => {
            require_program("node", NODE_INSTALL);
            assert!(
                directory.join("node_modules/smpp").is_dir(),
                "node-smpp is not installed in {}; install it with: {NODE_INSTALL}",
                directory.display()
            );
            let mut command = Command::new("node");
            command.arg(directory.join("smsc.js"));
            command
        }
        SmscImplementation::Smpp34 => {
            require_program("python3", SMPP34_INSTALL);
            let installed = Command::new("python3")
                .args(["-c", "import smpp34"])
                .status()
                .is_ok_and(|status| status.success());
            assert!(
                installed,
                "smpp34 is not installed; install it with: {SMPP34_INSTALL}"
            );
            let mut command = Command::new("python3");
            command.arg(directory.join("smsc34.py"));
            command
        }
    }
}

impl SmscServer {
    /// The SMSC's process id (for the benchmark's CPU accounting).
    pub fn pid(&self) -> u32 {
        self.process.id()
    }

    /// node-smpp's SMSC.
    pub async fn start() -> Self {
        Self::start_with(SmscImplementation::NodeSmpp).await
    }

    pub async fn start_with(implementation: SmscImplementation) -> Self {
        Self::start_configured(implementation, false).await
    }

    /// node-smpp's SMSC serving SMPP over TLS, with a certificate its own certificate
    /// authority signed ([`Self::tls_authority`]).
    pub async fn start_tls() -> Self {
        Self::start_configured(SmscImplementation::NodeSmpp, true).await
    }

    async fn start_configured(implementation: SmscImplementation, tls: bool) -> Self {
        let directory = tempfile::tempdir().expect("temporary directory");
        let tls_authority = tls.then(|| make_certificates(directory.path()));
        let (smpp_port, control_port) = (spare_port(), spare_port());
        let process = Self::spawn(implementation, smpp_port, control_port, directory.path());
        let server = Self {
            process,
            implementation,
            tls_authority,
            smpp_port,
            control_port,
            http: reqwest::Client::new(),
            directory,
        };
        server.wait_listening().await;
        server
    }

    fn spawn(
        implementation: SmscImplementation,
        smpp_port: u16,
        control_port: u16,
        logs: &std::path::Path,
    ) -> ChildProcess {
        let mut command = smsc_command(implementation);
        if logs.join("smsc-key.pem").is_file() {
            command
                .arg("--tls-key")
                .arg(logs.join("smsc-key.pem"))
                .arg("--tls-cert")
                .arg(logs.join("smsc-cert.pem"));
        }
        command
            .arg("--smpp-port")
            .arg(smpp_port.to_string())
            .arg("--control-port")
            .arg(control_port.to_string())
            .arg("--system-id")
            .arg(SMSC_SYSTEM_ID)
            .arg("--password")
            .arg(SMSC_PASSWORD);
        ChildProcess::spawn("smsc", command, logs)
    }

    async fn wait_listening(&self) {
        let counts = self.control("/counts");
        let smpp_port = self.smpp_port;
        wait_until("the SMSC", Duration::from_secs(20), || async {
            let listening = tokio::net::TcpStream::connect(("127.0.0.1", smpp_port))
                .await
                .is_ok();
            listening && self.http.get(&counts).send().await.is_ok()
        })
        .await;
    }

    /// Kills the SMSC (SIGKILL: its sessions break, what it had not answered or
    /// reported is lost with it) and starts it again on the same ports, with fresh
    /// knobs and counters.
    pub async fn restart(&mut self) {
        self.process.kill();
        self.process = Self::spawn(
            self.implementation,
            self.smpp_port,
            self.control_port,
            self.directory.path(),
        );
        self.wait_listening().await;
    }

    /// The PEM file of the certificate authority that signed a TLS SMSC's certificate.
    pub fn tls_authority(&self) -> Option<&std::path::Path> {
        self.tls_authority.as_deref()
    }

    pub fn smpp_port(&self) -> u16 {
        self.smpp_port
    }

    fn control(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.control_port)
    }

    /// Merges `knobs` (JSON) into the SMSC's behaviour; see `smsc.js`.
    pub async fn set_knobs(&self, knobs: &str) {
        let response = self
            .http
            .put(self.control("/knobs"))
            .header("content-type", "application/json")
            .body(knobs.to_owned())
            .send()
            .await
            .expect("the SMSC answers");
        assert!(response.status().is_success(), "knobs refused: {knobs}");
    }

    /// Its counters, as JSON text.
    pub async fn counts(&self) -> String {
        self.get("/counts").await
    }

    /// Every part it took, as JSON text.
    pub async fn messages(&self) -> String {
        self.get("/messages").await
    }

    /// Closes every session at once, as an SMSC that drops its binds.
    pub async fn drop_sessions(&self) {
        self.http
            .post(self.control("/drop"))
            .send()
            .await
            .expect("the SMSC answers");
    }

    /// A handset's message (node-smpp's SMSC only): sent to a bound session as a
    /// `deliver_sm`; the `command_status` RNS answered it with.
    pub async fn mobile_originated(&self, from: &str, to: &str, text: &str) -> u64 {
        let body = serde_json::json!({"from": from, "to": to, "text": text});
        let answer: serde_json::Value = self
            .http
            .post(self.control("/mobile-originated"))
            .json(&body)
            .send()
            .await
            .expect("the SMSC answers")
            .json()
            .await
            .expect("the SMSC's answer is JSON");
        answer["command_status"]
            .as_u64()
            .unwrap_or_else(|| panic!("the SMSC did not deliver it: {answer}"))
    }

    async fn get(&self, path: &str) -> String {
        self.http
            .get(self.control(path))
            .send()
            .await
            .expect("the SMSC answers")
            .text()
            .await
            .expect("the SMSC's answer is text")
    }
}

/// A certificate authority and a certificate for IP 127.0.0.1 it signed, made with
/// `openssl` in `directory` (`ca.pem`, `smsc-key.pem`, `smsc-cert.pem`); the CA's path.
fn make_certificates(directory: &std::path::Path) -> PathBuf {
    require_program("openssl", "apt-get install -y openssl");
    let run = |arguments: &[&str]| {
        let status = Command::new("openssl")
            .args(arguments)
            .current_dir(directory)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .status()
            .expect("openssl runs");
        assert!(status.success(), "openssl {arguments:?} failed");
    };
    run(&[
        "req",
        "-x509",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-days",
        "2",
        "-subj",
        "/CN=RNS test CA",
        "-keyout",
        "ca-key.pem",
        "-out",
        "ca.pem",
        "-addext",
        "basicConstraints=critical,CA:TRUE",
        "-addext",
        "keyUsage=critical,keyCertSign",
    ]);
    run(&[
        "req",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-subj",
        "/CN=127.0.0.1",
        "-keyout",
        "smsc-key.pem",
        "-out",
        "smsc.csr",
    ]);
    std::fs::write(
        directory.join("smsc.ext"),
        "subjectAltName=IP:127.0.0.1\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n",
    )
    .expect("the extensions file can be written");
    run(&[
        "x509",
        "-req",
        "-in",
        "smsc.csr",
        "-CA",
        "ca.pem",
        "-CAkey",
        "ca-key.pem",
        "-CAcreateserial",
        "-days",
        "2",
        "-out",
        "smsc-cert.pem",
        "-extfile",
        "smsc.ext",
    ]);
    directory.join("ca.pem")
}
