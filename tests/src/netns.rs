//! Network namespace labs for data plane tests: namespaces on a shared L2 "internet" (a bridge
//! in its own namespace), userspace WireGuard (`wireguard-go`) interfaces inside them, and
//! helper processes. Everything is removed on drop, panics included.
//!
//! Needs root, `/dev/net/tun`, `ip` (iproute2), `wireguard-go`, `wg` and `nft` (Debian:
//! `iproute2 wireguard-go wireguard-tools nftables`; `cargo xtask ci` installs them).

use std::io::{BufRead as _, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};

/// Why the lab cannot run here, or `None` when it can.
pub fn unavailable() -> Option<String> {
    // `id -u` rather than libc: this crate has no unsafe code.
    let uid = Command::new("id")
        .arg("-u")
        .output()
        .ok()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned());
    if uid.as_deref() != Some("0") {
        return Some("not root".into());
    }
    if !Path::new("/dev/net/tun").exists() {
        return Some("/dev/net/tun is missing".into());
    }
    for tool in ["ip", "wireguard-go", "wg", "nft"] {
        let found = Command::new("sh")
            .args(["-c", &format!("command -v {tool}")])
            .stdout(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        if !found {
            return Some(format!("`{tool}` is not installed"));
        }
    }
    None
}

/// Runs a command, failing with its stderr.
pub fn sh(program: &str, args: &[&str]) -> anyhow::Result<String> {
    let out = Command::new(program)
        .args(args)
        .output()
        .with_context(|| format!("running {program}"))?;
    if !out.status.success() {
        bail!(
            "`{program} {}` failed: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// Lines a spawned process printed, each with the instant it arrived.
pub type LineLog = Arc<Mutex<Vec<(Instant, String)>>>;

/// A set of namespaces and processes, torn down on drop.
#[derive(Debug)]
pub struct Lab {
    prefix: String,
    bridge_ns: String,
    namespaces: Vec<String>,
    processes: Vec<(String, Child)>,
    sockets: Vec<String>,
    /// Links in the test's own namespace (the uplink), deleted on drop.
    links: Vec<String>,
}

impl Lab {
    /// A lab whose names start with `prefix` (keep it short: interface names are at most 15
    /// characters). Creates the "internet": a bridge `br0` in namespace `PREFIX-net`.
    pub fn new(prefix: &str) -> anyhow::Result<Self> {
        let mut lab = Self {
            prefix: prefix.to_owned(),
            bridge_ns: format!("{prefix}-net"),
            namespaces: Vec::new(),
            processes: Vec::new(),
            sockets: Vec::new(),
            links: Vec::new(),
        };
        // Leftovers of a killed earlier run with the same prefix.
        lab.sweep();
        let ns = lab.bridge_ns.clone();
        lab.add_namespace(&ns)?;
        sh("ip", &["-n", &ns, "link", "add", "br0", "type", "bridge"])?;
        sh("ip", &["-n", &ns, "link", "set", "br0", "up"])?;
        Ok(lab)
    }

    /// The name prefix.
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    fn add_namespace(&mut self, name: &str) -> anyhow::Result<()> {
        sh("ip", &["netns", "add", name])?;
        self.namespaces.push(name.to_owned());
        sh("ip", &["-n", name, "link", "set", "lo", "up"])?;
        Ok(())
    }

    /// A namespace `PREFIX-NAME` plugged into the bridge with `eth0` = `address` (CIDR);
    /// returns its full name.
    pub fn node(&mut self, name: &str, address: &str) -> anyhow::Result<String> {
        let ns = format!("{}-{name}", self.prefix);
        self.add_namespace(&ns)?;
        let port = format!("v-{name}");
        sh(
            "ip",
            &[
                "-n",
                &self.bridge_ns,
                "link",
                "add",
                &port,
                "type",
                "veth",
                "peer",
                "name",
                "eth0",
                "netns",
                &ns,
            ],
        )?;
        sh(
            "ip",
            &[
                "-n",
                &self.bridge_ns,
                "link",
                "set",
                &port,
                "master",
                "br0",
                "up",
            ],
        )?;
        sh("ip", &["-n", &ns, "address", "add", address, "dev", "eth0"])?;
        sh("ip", &["-n", &ns, "link", "set", "eth0", "up"])?;
        Ok(ns)
    }

    /// Plugs the test process's own namespace into the bridge with `address` (CIDR) on a veth
    /// `PREFIX-up`, so code running in the test (an orchestrator probing heartbeats) reaches
    /// the lab's nodes. The link goes away with the lab.
    pub fn uplink(&mut self, address: &str) -> anyhow::Result<String> {
        let link = format!("{}-up", self.prefix);
        anyhow::ensure!(
            link.len() <= 15,
            "interface name `{link}` is over 15 characters"
        );
        sh(
            "ip",
            &[
                "link",
                "add",
                &link,
                "type",
                "veth",
                "peer",
                "name",
                "up0",
                "netns",
                &self.bridge_ns,
            ],
        )?;
        self.links.push(link.clone());
        sh(
            "ip",
            &[
                "-n",
                &self.bridge_ns,
                "link",
                "set",
                "up0",
                "master",
                "br0",
                "up",
            ],
        )?;
        sh("ip", &["address", "add", address, "dev", &link])?;
        sh("ip", &["link", "set", &link, "up"])?;
        Ok(link)
    }

    /// Starts `wireguard-go` for interface `iface` inside `ns` and waits for its UAPI socket.
    pub fn wireguard(&mut self, ns: &str, iface: &str) -> anyhow::Result<()> {
        anyhow::ensure!(
            iface.len() <= 15,
            "interface name `{iface}` is over 15 characters"
        );
        let socket = format!("/var/run/wireguard/{iface}.sock");
        let _ = std::fs::remove_file(&socket);
        let child = Command::new("ip")
            .args(["netns", "exec", ns, "wireguard-go", "-f", iface])
            .env("WG_I_PREFER_BUGGY_USERSPACE_TO_POLISHED_KMOD", "1")
            .env("LOG_LEVEL", "error")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            // Its "the kernel has WireGuard" banner would repeat for every interface.
            .stderr(Stdio::null())
            .spawn()
            .context("starting wireguard-go")?;
        self.processes.push((ns.to_owned(), child));
        self.sockets.push(socket.clone());
        let deadline = Instant::now() + Duration::from_secs(10);
        while !Path::new(&socket).exists() {
            anyhow::ensure!(
                Instant::now() < deadline,
                "wireguard-go made no socket {socket}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        Ok(())
    }

    /// Starts `program args...` inside `ns`, its stdout read line by line into the returned
    /// log with the instant each line arrived.
    pub fn spawn(&mut self, ns: &str, program: &str, args: &[&str]) -> anyhow::Result<LineLog> {
        let mut child = Command::new("ip")
            .args(["netns", "exec", ns, program])
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .with_context(|| format!("starting {program} in {ns}"))?;
        let log = Arc::new(Mutex::new(Vec::new()));
        let stdout = child.stdout.take().context("no stdout")?;
        let sink = Arc::clone(&log);
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                sink.lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .push((Instant::now(), line));
            }
        });
        self.processes.push((ns.to_owned(), child));
        Ok(log)
    }

    /// Takes a namespace down hard, as a provider outage would: its processes are killed and
    /// the namespace (with its veth and interfaces) deleted.
    pub fn destroy(&mut self, ns: &str) {
        let mut kept = Vec::new();
        for (owner, mut child) in std::mem::take(&mut self.processes) {
            if owner == ns {
                stop(&mut child);
            } else {
                kept.push((owner, child));
            }
        }
        self.processes = kept;
        let _ = sh("ip", &["netns", "del", ns]);
        self.namespaces.retain(|n| n != ns);
    }

    /// Deletes namespaces and sockets of an earlier run with this prefix.
    fn sweep(&self) {
        if let Ok(list) = sh("ip", &["netns", "list"]) {
            for name in list.lines().filter_map(|l| l.split_whitespace().next()) {
                if name.starts_with(&format!("{}-", self.prefix)) {
                    let _ = sh("ip", &["netns", "del", name]);
                }
            }
        }
        let _ = sh("ip", &["link", "del", &format!("{}-up", self.prefix)]);
        if let Ok(dir) = std::fs::read_dir("/var/run/wireguard") {
            for entry in dir.flatten() {
                let name = entry.file_name().to_string_lossy().into_owned();
                if name.starts_with(&format!("{}-", self.prefix)) {
                    let _ = std::fs::remove_file(entry.path());
                }
            }
        }
    }
}

/// SIGTERM (wireguard-go removes its socket), then SIGKILL after a second.
fn stop(child: &mut Child) {
    let _ = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
    let deadline = Instant::now() + Duration::from_secs(1);
    while Instant::now() < deadline {
        if let Ok(Some(_)) = child.try_wait() {
            return;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let _ = child.kill();
    let _ = child.wait();
}

impl Drop for Lab {
    fn drop(&mut self) {
        for (_, child) in &mut self.processes {
            stop(child);
        }
        for ns in self.namespaces.iter().rev() {
            let _ = sh("ip", &["netns", "del", ns]);
        }
        for socket in &self.sockets {
            let _ = std::fs::remove_file(socket);
        }
        for link in &self.links {
            // Usually gone already with its peer in the bridge namespace.
            let _ = sh("ip", &["link", "del", link]);
        }
    }
}
