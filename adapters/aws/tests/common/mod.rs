//! What every test file shares: moto's AWS emulator (EC2 and CloudFront) on a free port of
//! 127.0.0.1, the adapter pointed at it, and the adapter as the orchestrator drives it
//! across ticks ([`Ticking`]).
//!
//! moto is installed by `cargo xtask moto` into `<workspace>/target/moto-venv`; the
//! environment variable `DAMM_MOTO_SERVER` names another `moto_server` executable.

#![allow(dead_code)] // each test file uses its own part

use std::io::{Read as _, Write as _};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use damm_adapter_aws::Aws;
use damm_provider::config::AdapterConfig;
use damm_provider::testkit::checks;
use damm_provider::{
    CdnFront, Compute, Egress, Front, FrontRef, FrontSpec, HealthSignal, Ingress, Metrics, Node,
    NodeFilter, Provider, Region, Result, Target, async_trait,
};

/// The fake credentials moto is given (it accepts any unless told to check them).
pub(crate) const ACCESS_KEY_ID: &str = "AKIDMOTOTESTING";
pub(crate) const SECRET_ACCESS_KEY: &str = "moto-secret-never-shown-0123456789";
/// One of the AMIs moto serves in every region.
pub(crate) const AMI: &str = "ami-12c6146b";
/// The domain front origins are named under (`192-0-2-10.origin.example.net`); moto never
/// resolves it.
pub(crate) const FRONT_ORIGIN_DOMAIN: &str = "origin.example.net";

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

    /// Sets how moto moves a model's status on (its state manager, `/moto-api`): with
    /// `Some(n)` a CloudFront distribution stays `InProgress` until it was read `n` times,
    /// with `None` the default comes back (deployed once read). moto does not set a
    /// distribution back to `InProgress` when it is updated, as CloudFront does.
    pub(crate) fn distributions_deploy_after(&self, reads: Option<u32>) {
        let (path, body) = match reads {
            Some(n) => (
                "set-transition",
                format!(
                    r#"{{"model_name":"cloudfront::distribution","transition":{{"progression":"manual","times":{n}}}}}"#
                ),
            ),
            None => (
                "unset-transition",
                r#"{"model_name":"cloudfront::distribution"}"#.to_owned(),
            ),
        };
        let mut stream = TcpStream::connect(self.address).expect("moto answers");
        stream
            .set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        write!(
            stream,
            "POST /moto-api/state-manager/{path} HTTP/1.1\r\nHost: {}\r\n\
             Content-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            self.address,
            body.len()
        )
        .unwrap();
        let mut answer = String::new();
        stream.read_to_string(&mut answer).unwrap();
        assert!(
            answer.starts_with("HTTP/1.1 20") || answer.starts_with("HTTP/1.0 20"),
            "moto's state manager refused {path}: {answer}"
        );
    }

    /// A CloudFront client of its own, to look at and plant distributions behind the
    /// adapter's back.
    pub(crate) fn cloudfront(&self) -> aws_sdk_cloudfront::Client {
        let credentials = aws_sdk_cloudfront::config::Credentials::new(
            ACCESS_KEY_ID,
            SECRET_ACCESS_KEY,
            None,
            None,
            "moto-test",
        );
        let config = aws_sdk_cloudfront::Config::builder()
            .behavior_version(aws_sdk_cloudfront::config::BehaviorVersion::latest())
            .region(aws_sdk_cloudfront::config::Region::new("us-east-1"))
            .endpoint_url(self.url())
            .credentials_provider(credentials)
            .build();
        aws_sdk_cloudfront::Client::from_conf(config)
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
        (
            "DAMM_AWS_FRONT_ORIGIN_DOMAIN".to_owned(),
            FRONT_ORIGIN_DOMAIN.to_owned(),
        ),
        ("DAMM_AWS_REQUEST_TIMEOUT_MS".to_owned(), "5000".to_owned()),
    ];
    for (key, value) in extra {
        env.retain(|(k, _)| k != key);
        env.push(((*key).to_owned(), (*value).to_owned()));
    }
    AdapterConfig::new(checks::fleet(fleet), "aws").with_env(env)
}

/// The adapter as the orchestrator drives it: a retire that answers a temporary error is
/// called again on a later tick. CloudFront needs that (a distribution is disabled first
/// and deleted once that deployed); the shared conformance suite retires once and then
/// waits, so it runs on this wrapper, which calls again every `every` for up to
/// `patience`, as ticks would. Everything else goes straight to the adapter.
#[derive(Debug)]
pub(crate) struct Ticking {
    pub(crate) inner: Aws,
    pub(crate) every: Duration,
    pub(crate) patience: Duration,
}

impl Ticking {
    /// Ticks 100 ms apart for up to 20 s (moto).
    pub(crate) fn new(inner: Aws) -> Ticking {
        Ticking {
            inner,
            every: Duration::from_millis(100),
            patience: Duration::from_secs(20),
        }
    }

    fn fronts(&self) -> &dyn CdnFront {
        self.inner
            .cdn_front()
            .expect("the aws adapter has cdn_front")
    }
}

#[async_trait]
impl Provider for Ticking {
    fn id(&self) -> &str {
        self.inner.id()
    }
    fn region(&self, region: &Region) -> Option<String> {
        self.inner.region(region)
    }
    fn compute(&self) -> Option<&dyn Compute> {
        self.inner.compute()
    }
    fn ingress(&self) -> Option<&dyn Ingress> {
        self.inner.ingress()
    }
    fn egress(&self) -> Option<&dyn Egress> {
        self.inner.egress()
    }
    fn cdn_front(&self) -> Option<&dyn CdnFront> {
        self.inner.cdn_front().map(|_| self as &dyn CdnFront)
    }
    fn health_in_listing(&self) -> bool {
        self.inner.health_in_listing()
    }
    async fn list_nodes(&self, filter: &NodeFilter) -> Result<Vec<Node>> {
        self.inner.list_nodes(filter).await
    }
    async fn probe_health(&self, target: &Target) -> Result<HealthSignal> {
        self.inner.probe_health(target).await
    }
    async fn get_metrics(&self, target: &Target) -> Result<Metrics> {
        self.inner.get_metrics(target).await
    }
}

#[async_trait]
impl CdnFront for Ticking {
    async fn publish_front(&self, spec: &FrontSpec) -> Result<Front> {
        self.fronts().publish_front(spec).await
    }
    async fn repoint_front(&self, front: &FrontRef, origin: std::net::IpAddr) -> Result<Front> {
        self.fronts().repoint_front(front, origin).await
    }
    async fn retire_front(&self, front: &FrontRef) -> Result<()> {
        let started = Instant::now();
        loop {
            match self.fronts().retire_front(front).await {
                Err(e) if e.is_temporary() && started.elapsed() < self.patience => {
                    println!("retire_front {front}: {e}; again next tick");
                    tokio::time::sleep(self.every).await;
                }
                other => return other,
            }
        }
    }
    async fn list_fronts(&self) -> Result<Vec<Front>> {
        self.fronts().list_fronts().await
    }
}
