//! What every test file shares: moto's EC2 emulator on a free port of 127.0.0.1, and the
//! adapter pointed at it.
//!
//! moto is installed by `cargo xtask moto` into `<workspace>/target/moto-venv`; the
//! environment variable `DAMM_MOTO_SERVER` names another `moto_server` executable.

#![allow(dead_code)] // each test file uses its own part

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use damm_adapter_aws::Aws;
use damm_provider::config::AdapterConfig;
use damm_provider::testkit::checks;

/// The fake credentials moto is given (it accepts any unless told to check them).
pub(crate) const ACCESS_KEY_ID: &str = "AKIDMOTOTESTING";
pub(crate) const SECRET_ACCESS_KEY: &str = "moto-secret-never-shown-0123456789";
/// One of the AMIs moto serves in every region.
pub(crate) const AMI: &str = "ami-12c6146b";

/// A running `moto_server`, killed when dropped.
pub(crate) struct Moto {
    child: Child,
    address: SocketAddr,
}

impl Moto {
    /// Starts moto on a free port and waits until it answers.
    pub(crate) fn start() -> Moto {
        Moto::start_with(&[])
    }

    /// Starts moto with extra environment variables (such as
    /// `INITIAL_NO_AUTH_ACTION_COUNT=0`, which makes it check credentials).
    pub(crate) fn start_with(env: &[(&str, &str)]) -> Moto {
        let server = server_path();
        // Ask the kernel for a free port, then hand it to moto.
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port on 127.0.0.1")
            .port();
        let mut child = Command::new(&server)
            .args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| {
                panic!(
                    "cannot start {}: {e}; run `cargo xtask moto` to install moto",
                    server.display()
                )
            });
        let address = SocketAddr::from(([127, 0, 0, 1], port));
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Ok(Some(status)) = child.try_wait() {
                panic!("moto_server exited at start ({status}): is port {port} taken?");
            }
            if TcpStream::connect_timeout(&address, Duration::from_millis(200)).is_ok() {
                break;
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                panic!("moto_server did not answer on {address} within a minute");
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        Moto { child, address }
    }

    /// The endpoint URL the adapter is configured with.
    pub(crate) fn url(&self) -> String {
        format!("http://{}", self.address)
    }
}

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `DAMM_MOTO_SERVER`, else the executable `cargo xtask moto` installs; panics with the
/// way to install it when there is none, so a missing emulator fails the test run.
fn server_path() -> PathBuf {
    if let Some(path) = std::env::var_os("DAMM_MOTO_SERVER") {
        return PathBuf::from(path);
    }
    let workspace = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .expect("the workspace root");
    let path = workspace.join("target/moto-venv/bin/moto_server");
    assert!(
        path.exists(),
        "moto is not installed ({} is missing): run `cargo xtask moto` (or set DAMM_MOTO_SERVER \
         to a moto_server executable)",
        path.display()
    );
    path
}

/// The adapter for `fleet`, pointed at `moto`, with `extra` settings over the defaults.
pub(crate) fn adapter(moto: &Moto, fleet: &str, extra: &[(&str, &str)]) -> Aws {
    Aws::from_config(&config(moto, fleet, extra)).expect("the adapter builds")
}

/// The adapter configuration for `fleet` against `moto`.
pub(crate) fn config(moto: &Moto, fleet: &str, extra: &[(&str, &str)]) -> AdapterConfig {
    let mut env: Vec<(String, String)> = vec![
        ("DAMM_AWS_ENDPOINT_URL".to_owned(), moto.url()),
        (
            "DAMM_AWS_ACCESS_KEY_ID".to_owned(),
            ACCESS_KEY_ID.to_owned(),
        ),
        (
            "DAMM_AWS_SECRET_ACCESS_KEY".to_owned(),
            SECRET_ACCESS_KEY.to_owned(),
        ),
        ("DAMM_AWS_AMI".to_owned(), AMI.to_owned()),
        ("DAMM_AWS_REQUEST_TIMEOUT_MS".to_owned(), "5000".to_owned()),
    ];
    for (key, value) in extra {
        env.retain(|(k, _)| k != key);
        env.push(((*key).to_owned(), (*value).to_owned()));
    }
    AdapterConfig::new(checks::fleet(fleet), "aws").with_env(env)
}
