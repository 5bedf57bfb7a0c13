//! The full-fleet lab: the simulator's machines boot for real. Every machine a simulated
//! provider creates becomes a host of a [`Lab`] with the machine's public address, and runs
//! its user-data there with `damm_sim::machine::boot` (cloud-init's `write_files` and
//! `runcmd`, then the units it starts). A gateway the orchestrator creates thus downloads
//! the `damm` binary from the fleet's artifact URL, checks its SHA-256, installs
//! `damm-agent.service` and runs the agent, which fetches its signed config and configures
//! WireGuard. A deleted machine's host is torn down.
//!
//! The lab's internet is one switch: machines, and the hosts a test adds with
//! [`Lab::public_host`] (the orchestrator's vantage point, clients, destinations), each
//! with one `/32` address, all others on-link.
//!
//! ```no_run
//! use damm_tests::bootlab::BootLab;
//!
//! # fn main() -> anyhow::Result<()> {
//! let fleet = BootLab::new("dbl1")?;
//! let config = damm_sim::SimConfig {
//!     boot: Some(fleet.hook()),
//!     ..damm_sim::SimConfig::default()
//! };
//! // ... start the simulator with `config` and the orchestrator against it ...
//! for machine in fleet.machines() {
//!     println!("{} {} booted {:?} ago", machine.ns, machine.ipv4, machine.booted_at.elapsed());
//! }
//! # Ok(()) }
//! ```

use std::collections::BTreeMap;
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Instant;

use anyhow::Context as _;
use damm_sim::Provider;
use damm_sim::boot::{Boot, BootHook, Machine};

use crate::netns::{Lab, LineLog, helper, sh};

/// A booted machine.
#[derive(Debug, Clone)]
pub struct Booted {
    /// The provider that made it.
    pub provider: Provider,
    /// Its id there.
    pub id: String,
    /// Its name (the node's name: it holds the node key).
    pub name: String,
    /// Its namespace.
    pub ns: String,
    /// Its public address.
    pub ipv4: Ipv4Addr,
    /// When the simulator created it.
    pub booted_at: Instant,
    /// What its init printed: `[boot] ...` and each unit's output as `[unit] ...`.
    pub log: LineLog,
}

impl Booted {
    /// The lines of its log holding `text`, with when each arrived.
    pub fn lines_with(&self, text: &str) -> Vec<(Instant, String)> {
        self.log
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .filter(|(_, line)| line.contains(text))
            .cloned()
            .collect()
    }

    /// Its whole log, one line per line.
    pub fn transcript(&self) -> String {
        let lines = self.log.lock().unwrap_or_else(|e| e.into_inner());
        lines
            .iter()
            .map(|(_, line)| line.as_str())
            .collect::<Vec<_>>()
            .join("\n")
    }
}

enum Event {
    Boot(Machine, Instant),
    Halt(Provider, String),
}

struct Inner {
    lab: Mutex<Lab>,
    root: PathBuf,
    machines: Mutex<BTreeMap<(Provider, String), Booted>>,
    errors: Mutex<Vec<String>>,
    /// Numbers machine hosts (`m0`, `m1`, ...), never twice.
    next: std::sync::atomic::AtomicUsize,
}

/// The lab and the simulator's hook into it.
pub struct BootLab {
    inner: Arc<Inner>,
    events: mpsc::Sender<Event>,
    _root: tempfile::TempDir,
}

impl BootLab {
    /// A lab whose names start with `prefix` (see [`Lab::new`]), with nothing booted yet.
    pub fn new(prefix: &str) -> anyhow::Result<BootLab> {
        let root = tempfile::Builder::new().prefix("damm-bootlab").tempdir()?;
        let inner = Arc::new(Inner {
            lab: Mutex::new(Lab::new(prefix)?),
            root: root.path().to_owned(),
            machines: Mutex::default(),
            errors: Mutex::default(),
            next: Default::default(),
        });
        // One worker, so that a machine's halt never overtakes its boot.
        let (events, queue) = mpsc::channel();
        let worker = Arc::clone(&inner);
        std::thread::spawn(move || {
            for event in queue {
                let outcome = match event {
                    Event::Boot(machine, at) => worker.boot(machine, at),
                    Event::Halt(provider, id) => {
                        worker.halt(provider, &id);
                        Ok(())
                    }
                };
                if let Err(e) = outcome {
                    eprintln!("bootlab: {e:#}");
                    lock(&worker.errors).push(format!("{e:#}"));
                }
            }
        });
        Ok(BootLab {
            inner,
            events,
            _root: root,
        })
    }

    /// The hook for [`damm_sim::SimConfig::boot`].
    pub fn hook(&self) -> BootHook {
        BootHook(Arc::new(Hook(Mutex::new(self.events.clone()))))
    }

    /// The lab, to add hosts and processes to (machines are added by the hook).
    pub fn lab(&self) -> MutexGuard<'_, Lab> {
        lock(&self.inner.lab)
    }

    /// The machines running now.
    pub fn machines(&self) -> Vec<Booted> {
        lock(&self.inner.machines).values().cloned().collect()
    }

    /// The machine whose name holds `text` (node names hold the node key).
    pub fn machine_named(&self, text: &str) -> Option<Booted> {
        self.machines().into_iter().find(|m| m.name.contains(text))
    }

    /// What went wrong booting or halting machines so far.
    pub fn errors(&self) -> Vec<String> {
        lock(&self.inner.errors).clone()
    }

    /// A directory the lab removes on drop.
    pub fn scratch(&self) -> &Path {
        &self.inner.root
    }
}

impl Drop for BootLab {
    fn drop(&mut self) {
        // Machines go with the lab, even while the simulator (holding the hook) lives on.
        lock(&self.inner.machines).clear();
        lock(&self.inner.lab).teardown();
    }
}

impl Inner {
    fn boot(&self, machine: Machine, at: Instant) -> anyhow::Result<()> {
        let Some(ipv4) = machine.ipv4 else {
            anyhow::bail!(
                "{} {}: no IPv4 address to boot on",
                machine.provider,
                machine.id
            );
        };
        let mut lab = lock(&self.lab);
        let n = self.next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let ns = lab.public_host(&format!("m{n}"), ipv4)?;
        let log = match &machine.user_data {
            Some(user_data) => {
                let root = self.root.join(&ns);
                std::fs::create_dir_all(&root)?;
                let file = root.join("user-data");
                write_private(&file, user_data)?;
                let helper = helper()?;
                let (helper, root, file, pid) = (
                    helper.to_string_lossy().into_owned(),
                    root.to_string_lossy().into_owned(),
                    file.to_string_lossy().into_owned(),
                    std::process::id().to_string(),
                );
                lab.spawn(
                    &ns,
                    "unshare",
                    &[
                        "--mount",
                        "--propagation",
                        "private",
                        &helper,
                        "boot",
                        &root,
                        &file,
                        &pid,
                    ],
                )
                .with_context(|| format!("booting {} {}", machine.provider, machine.id))?
            }
            None => LineLog::default(),
        };
        lock(&self.machines).insert(
            (machine.provider, machine.id.clone()),
            Booted {
                provider: machine.provider,
                id: machine.id,
                name: machine.name,
                ns,
                ipv4,
                booted_at: at,
                log,
            },
        );
        Ok(())
    }

    fn halt(&self, provider: Provider, id: &str) {
        let gone = lock(&self.machines).remove(&(provider, id.to_owned()));
        if let Some(machine) = gone {
            lock(&self.lab).destroy(&machine.ns);
        }
    }
}

fn write_private(path: &Path, text: &str) -> anyhow::Result<()> {
    use std::io::Write as _;
    use std::os::unix::fs::OpenOptionsExt as _;
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .with_context(|| format!("writing {}", path.display()))?;
    file.write_all(text.as_bytes())?;
    Ok(())
}

struct Hook(Mutex<mpsc::Sender<Event>>);

impl Boot for Hook {
    fn boot(&self, machine: Machine) {
        let _ = lock(&self.0).send(Event::Boot(machine, Instant::now()));
    }

    fn halt(&self, provider: Provider, id: &str) {
        let _ = lock(&self.0).send(Event::Halt(provider, id.to_owned()));
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// The `damm` binary this build made (beside the test binary, as cargo lays them out:
/// `cargo nextest run --workspace` and `cargo build` build it), and its SHA-256: the
/// artifact a bootstrapped gateway installs.
pub fn damm_binary() -> anyhow::Result<(PathBuf, String)> {
    let exe = std::env::current_exe().context("locating the test binary")?;
    let path = exe
        .ancestors()
        .skip(1)
        .take(2)
        .map(|dir| dir.join("damm"))
        .find(|path| path.is_file())
        .with_context(|| {
            format!(
                "no `damm` binary beside {} (cargo build -p damm-orchestrator --bin damm)",
                exe.display()
            )
        })?;
    let sum = sh("sha256sum", &[&path.to_string_lossy()])?;
    let sha = sum
        .split_whitespace()
        .next()
        .context("sha256sum printed nothing")?
        .to_owned();
    Ok((path, sha))
}
