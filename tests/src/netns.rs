//! The one harness of the network namespace tests: hosts (namespaces) joined by switches
//! (bridges, each in a namespace of its own) and point-to-point links (veth pairs) with
//! addresses, routes, forwarding and nftables rules; userspace WireGuard (`wireguard-go`)
//! interfaces and DAMM's agents on them; commands and helper processes run inside the hosts.
//! Everything is removed on drop, panics included.
//!
//! [`Topology`] declares a lab's hosts and links up front and builds it; [`Lab`] then adds
//! interfaces and processes as a test goes, and takes hosts down. A censor test puts a router
//! host with nftables rules between a client and the internet, a mesh test puts every
//! gateway on one switch, a multi-hop test chains links:
//!
//! ```no_run
//! use damm_tests::netns::Topology;
//!
//! # fn main() -> anyhow::Result<()> {
//! let lab = Topology::new()
//!     .node("gw", "172.30.0.11/24")
//!     .node("censor", "172.30.0.2/24")
//!     .link("cl", "10.0.0.2/30", "censor", "10.0.0.1/30")
//!     .router("censor")
//!     .route("cl", "default", "10.0.0.1")
//!     .route("gw", "10.0.0.0/30", "172.30.0.2")
//!     .nft("censor", "table inet censor { chain forward { type filter hook forward priority 0; meta l4proto udp drop; } }")
//!     .build("dmc1")?;
//! lab.exec(&lab.ns("cl"), "ping", &["-c1", "-W1", "172.30.0.11"])?;
//! # Ok(()) }
//! ```
//!
//! Addresses exist only inside the lab's namespaces: the test process has none on the lab's
//! networks and reaches them through ports of 127.0.0.1 that [`Lab::forward`] relays from a
//! host of the lab.
//!
//! Needs root, `/dev/net/tun`, `ip` (iproute2), `wireguard-go`, `wg` and `nft` (Debian:
//! `iproute2 wireguard-go wireguard-tools nftables`; `cargo xtask ci` installs them).

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::io::{BufRead as _, BufReader, Write as _};
use std::net::{Ipv4Addr, SocketAddr, TcpListener};
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail, ensure};
use damm_agent::Host;
use damm_agent::agent::{GatewayAgent, GatewayInterfaces};
use damm_agent::wg::WgControl;
use damm_catalog::PrivateKey;

/// The switch [`Lab::node`] plugs hosts into.
pub const INTERNET: &str = "net";

/// The helper binary every lab runs inside its hosts (see `src/bin/damm-netns-udp.rs`).
const HELPER: &str = "damm-netns-udp";

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

/// Whether test `name` must skip because the lab cannot run here, said loudly. Under CI (`CI`
/// set) only a run without root may skip: any other reason fails the test.
pub fn skip(name: &str) -> bool {
    let Some(why) = unavailable() else {
        return false;
    };
    let in_ci = std::env::var_os("CI").is_some();
    assert!(
        !(in_ci && why != "not root"),
        "{name} must run in CI as root, but: {why}"
    );
    eprintln!(
        "\n!!! SKIPPING {name}: {why} (needs root, /dev/net/tun, wireguard-go, wg, nft) !!!\n"
    );
    true
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

/// Polls `done` every 20 ms until it holds (`true`) or `timeout` has passed (`false`).
pub fn wait_until(timeout: Duration, mut done: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    loop {
        if done() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The helper binary: where cargo (or nextest) says, else beside the test binary
/// (`target/<profile>/deps/<test>-<hash>` → `target/<profile>/damm-netns-udp`; cargo builds a
/// package's binaries before its integration tests).
pub(crate) fn helper() -> anyhow::Result<PathBuf> {
    if let Some(path) = std::env::var_os(format!("CARGO_BIN_EXE_{HELPER}")) {
        return Ok(path.into());
    }
    let exe = std::env::current_exe().context("locating the test binary")?;
    exe.ancestors()
        .skip(1)
        .take(2)
        .map(|dir| dir.join(HELPER))
        .find(|path| path.is_file())
        .with_context(|| {
            format!(
                "no `{HELPER}` beside {} (cargo build -p damm-tests --bin {HELPER})",
                exe.display()
            )
        })
}

/// Lines a spawned process printed, each with the instant it arrived.
pub type LineLog = Arc<Mutex<Vec<(Instant, String)>>>;

/// The lab's hosts, switches, links, routes and rules, declared up front; [`Topology::build`]
/// makes them, in the order declared. Hosts are made when first named.
#[derive(Debug, Clone, Default)]
pub struct Topology {
    steps: Vec<Step>,
}

#[derive(Debug, Clone)]
enum Step {
    Host(String),
    Switch(String),
    Attach {
        switch: String,
        host: String,
        address: String,
    },
    Link {
        a: String,
        a_address: String,
        b: String,
        b_address: String,
    },
    Router(String),
    Route {
        host: String,
        destination: String,
        via: String,
    },
    Nft {
        host: String,
        ruleset: String,
    },
}

impl Topology {
    /// An empty topology.
    pub fn new() -> Self {
        Self::default()
    }

    /// A host with nothing but loopback.
    pub fn host(mut self, name: &str) -> Self {
        self.steps.push(Step::Host(name.to_owned()));
        self
    }

    /// A switch: a bridge, in a namespace of its own.
    pub fn switch(mut self, name: &str) -> Self {
        self.steps.push(Step::Switch(name.to_owned()));
        self
    }

    /// Host `host` plugged into switch `switch` with `address` (CIDR).
    pub fn attach(mut self, switch: &str, host: &str, address: &str) -> Self {
        self.steps.push(Step::Attach {
            switch: switch.to_owned(),
            host: host.to_owned(),
            address: address.to_owned(),
        });
        self
    }

    /// Host `name` on the internet (switch [`INTERNET`]) with `address` (CIDR).
    pub fn node(self, name: &str, address: &str) -> Self {
        self.attach(INTERNET, name, address)
    }

    /// A point-to-point link between hosts `a` and `b`, with an address (CIDR) at each end.
    pub fn link(mut self, a: &str, a_address: &str, b: &str, b_address: &str) -> Self {
        self.steps.push(Step::Link {
            a: a.to_owned(),
            a_address: a_address.to_owned(),
            b: b.to_owned(),
            b_address: b_address.to_owned(),
        });
        self
    }

    /// Host `host` forwards IPv4 between its interfaces.
    pub fn router(mut self, host: &str) -> Self {
        self.steps.push(Step::Router(host.to_owned()));
        self
    }

    /// A route on host `host` to `destination` (CIDR or `default`) through `via`.
    pub fn route(mut self, host: &str, destination: &str, via: &str) -> Self {
        self.steps.push(Step::Route {
            host: host.to_owned(),
            destination: destination.to_owned(),
            via: via.to_owned(),
        });
        self
    }

    /// An nftables ruleset (`nft -f` syntax) loaded on host `host`.
    pub fn nft(mut self, host: &str, ruleset: &str) -> Self {
        self.steps.push(Step::Nft {
            host: host.to_owned(),
            ruleset: ruleset.to_owned(),
        });
        self
    }

    /// Builds the lab, its names starting with `prefix` (see [`Lab::new`]).
    pub fn build(self, prefix: &str) -> anyhow::Result<Lab> {
        let mut lab = Lab::new(prefix)?;
        for step in self.steps {
            match step {
                Step::Host(name) => {
                    lab.host(&name)?;
                }
                Step::Switch(name) => {
                    lab.switch(&name)?;
                }
                Step::Attach {
                    switch,
                    host,
                    address,
                } => {
                    let ns = lab.host(&host)?;
                    lab.attach(&switch, &ns, &address)?;
                }
                Step::Link {
                    a,
                    a_address,
                    b,
                    b_address,
                } => {
                    let (a, b) = (lab.host(&a)?, lab.host(&b)?);
                    lab.link(&a, &a_address, &b, &b_address)?;
                }
                Step::Router(host) => lab.router(&lab.ns(&host))?,
                Step::Route {
                    host,
                    destination,
                    via,
                } => lab.route(&lab.ns(&host), &destination, &via)?,
                Step::Nft { host, ruleset } => lab.nft(&lab.ns(&host), &ruleset)?,
            }
        }
        Ok(lab)
    }
}

/// A set of namespaces and processes, torn down on drop. Hosts are named by their namespace
/// (what [`Lab::host`], [`Lab::node`] and [`Lab::ns`] return), switches by their short name.
#[derive(Debug)]
pub struct Lab {
    prefix: String,
    /// Every namespace of the lab, hosts and switches, in creation order.
    namespaces: Vec<String>,
    switches: BTreeSet<String>,
    /// The next free `ethN` of each host.
    next_eth: BTreeMap<String, u32>,
    processes: Vec<(String, Child)>,
    /// Processes of the lab outside its namespaces (the dialling ends of
    /// [`Lab::expose`]), killed on drop.
    strays: Vec<u32>,
    sockets: Vec<String>,
}

impl Lab {
    /// An empty lab whose names start with `prefix` (keep it short: interface names are at
    /// most 15 characters). Namespaces and sockets left by a killed earlier run with the same
    /// prefix are removed first.
    pub fn new(prefix: &str) -> anyhow::Result<Self> {
        let lab = Self {
            prefix: prefix.to_owned(),
            namespaces: Vec::new(),
            switches: BTreeSet::new(),
            next_eth: BTreeMap::new(),
            processes: Vec::new(),
            strays: Vec::new(),
            sockets: Vec::new(),
        };
        lab.sweep();
        Ok(lab)
    }

    /// The name prefix.
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// The namespace of host or switch `name`: `PREFIX-NAME`.
    pub fn ns(&self, name: &str) -> String {
        format!("{}-{name}", self.prefix)
    }

    fn add_namespace(&mut self, ns: &str) -> anyhow::Result<()> {
        sh("ip", &["netns", "add", ns])?;
        self.namespaces.push(ns.to_owned());
        sh("ip", &["-n", ns, "link", "set", "lo", "up"])?;
        Ok(())
    }

    /// Host `name` (namespace `PREFIX-NAME`, loopback up), made if it is not there yet;
    /// returns its namespace.
    pub fn host(&mut self, name: &str) -> anyhow::Result<String> {
        let ns = self.ns(name);
        if !self.namespaces.contains(&ns) {
            self.add_namespace(&ns)?;
        }
        Ok(ns)
    }

    /// Switch `name`: bridge `br0` in namespace `PREFIX-NAME`, made if it is not there yet;
    /// returns its namespace.
    pub fn switch(&mut self, name: &str) -> anyhow::Result<String> {
        let ns = self.host(name)?;
        if self.switches.insert(ns.clone()) {
            sh("ip", &["-n", &ns, "link", "add", "br0", "type", "bridge"])?;
            sh("ip", &["-n", &ns, "link", "set", "br0", "up"])?;
        }
        Ok(ns)
    }

    /// The next `ethN` of namespace `ns`.
    fn next_eth(&mut self, ns: &str) -> String {
        let n = self.next_eth.entry(ns.to_owned()).or_default();
        *n += 1;
        format!("eth{}", *n - 1)
    }

    /// A veth pair, `a_if` in `a` and `b_if` in `b`, both up.
    fn veth(a: &str, a_if: &str, b: &str, b_if: &str) -> anyhow::Result<()> {
        ensure!(
            a_if.len() <= 15 && b_if.len() <= 15,
            "interface names `{a_if}`, `{b_if}`: at most 15 characters"
        );
        sh(
            "ip",
            &[
                "-n", a, "link", "add", a_if, "type", "veth", "peer", "name", b_if, "netns", b,
            ],
        )?;
        sh("ip", &["-n", a, "link", "set", a_if, "up"])?;
        sh("ip", &["-n", b, "link", "set", b_if, "up"])?;
        Ok(())
    }

    fn address(ns: &str, iface: &str, address: &str) -> anyhow::Result<()> {
        sh("ip", &["-n", ns, "address", "add", address, "dev", iface])?;
        Ok(())
    }

    /// Plugs host namespace `ns` into switch `switch` (made if needed) with `address` (CIDR)
    /// on its next `ethN`; returns that interface.
    pub fn attach(&mut self, switch: &str, ns: &str, address: &str) -> anyhow::Result<String> {
        let bridge = self.switch(switch)?;
        let iface = self.next_eth(ns);
        let port = format!("v-{}", ns.strip_prefix(&self.ns("")).unwrap_or(ns));
        Self::veth(&bridge, &port, ns, &iface)?;
        sh(
            "ip",
            &["-n", &bridge, "link", "set", &port, "master", "br0"],
        )?;
        Self::address(ns, &iface, address)?;
        Ok(iface)
    }

    /// Host `name` on the internet (switch [`INTERNET`]) with `address` (CIDR) on `eth0`;
    /// returns its namespace.
    pub fn node(&mut self, name: &str, address: &str) -> anyhow::Result<String> {
        let ns = self.host(name)?;
        self.attach(INTERNET, &ns, address)?;
        Ok(ns)
    }

    /// A point-to-point link between host namespaces `a` and `b`, on the next `ethN` of each
    /// with an address (CIDR); returns the two interfaces.
    pub fn link(
        &mut self,
        a: &str,
        a_address: &str,
        b: &str,
        b_address: &str,
    ) -> anyhow::Result<(String, String)> {
        let (a_if, b_if) = (self.next_eth(a), self.next_eth(b));
        Self::veth(a, &a_if, b, &b_if)?;
        Self::address(a, &a_if, a_address)?;
        Self::address(b, &b_if, b_address)?;
        Ok((a_if, b_if))
    }

    /// Namespace `ns` forwards IPv4 between its interfaces.
    pub fn router(&self, ns: &str) -> anyhow::Result<()> {
        // /proc/sys/net is the namespace's own inside `ip netns exec`.
        self.exec(ns, "sh", &["-c", "echo 1 > /proc/sys/net/ipv4/ip_forward"])?;
        Ok(())
    }

    /// A route in namespace `ns` to `destination` (CIDR or `default`) through `via`.
    pub fn route(&self, ns: &str, destination: &str, via: &str) -> anyhow::Result<()> {
        sh(
            "ip",
            &["-n", ns, "route", "replace", destination, "via", via],
        )?;
        Ok(())
    }

    /// Loads an nftables ruleset (`nft -f` syntax) in namespace `ns`.
    pub fn nft(&self, ns: &str, ruleset: &str) -> anyhow::Result<()> {
        let mut child = Command::new("ip")
            .args(["netns", "exec", ns, "nft", "-f", "-"])
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .context("starting nft")?;
        child
            .stdin
            .take()
            .context("no stdin")?
            .write_all(ruleset.as_bytes())?;
        let out = child.wait_with_output()?;
        ensure!(
            out.status.success(),
            "nft in {ns} refused the ruleset: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        );
        Ok(())
    }

    /// Runs `program args...` inside namespace `ns` to completion; its stdout.
    pub fn exec(&self, ns: &str, program: &str, args: &[&str]) -> anyhow::Result<String> {
        let mut all = vec!["netns", "exec", ns, program];
        all.extend_from_slice(args);
        sh("ip", &all)
    }

    /// Starts `wireguard-go` for interface `PREFIX-NAME` inside `ns`, waits for its UAPI
    /// socket and returns the interface's name.
    pub fn wireguard(&mut self, ns: &str, name: &str) -> anyhow::Result<String> {
        let iface = self.ns(name);
        ensure!(
            iface.len() <= 15,
            "interface name `{iface}` is over 15 characters"
        );
        let socket = format!("/var/run/wireguard/{iface}.sock");
        let _ = std::fs::remove_file(&socket);
        let child = Command::new("ip")
            .args(["netns", "exec", ns, "wireguard-go", "-f", &iface])
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
        ensure!(
            wait_until(Duration::from_secs(10), || Path::new(&socket).exists()),
            "wireguard-go made no socket {socket}"
        );
        Ok(iface)
    }

    /// A gateway agent in `ns` driving its interfaces through wireguard-control's userspace
    /// API: `PREFIX-NAME`, and for an ingress (`backbone`) `PREFIX-NAMEb`, both started here.
    pub fn gateway(
        &mut self,
        ns: &str,
        name: &str,
        backbone: bool,
        key: PrivateKey,
    ) -> anyhow::Result<GatewayAgent> {
        let main = self.wireguard(ns, name)?;
        let backbone = if backbone {
            Some(self.wireguard(ns, &format!("{name}b"))?)
        } else {
            None
        };
        Ok(GatewayAgent::new(
            Host::netns(ns),
            Box::new(WgControl::userspace()),
            key,
            GatewayInterfaces { main, backbone },
        ))
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

    /// Starts the helper binary inside `ns` with `args`.
    fn spawn_helper(&mut self, ns: &str, args: &[&str]) -> anyhow::Result<LineLog> {
        let helper = helper()?;
        self.spawn(ns, &helper.to_string_lossy(), args)
    }

    /// A UDP echo server on `listen` inside `ns`: each datagram comes back as
    /// `<payload> <source address seen>`.
    pub fn echo(&mut self, ns: &str, listen: SocketAddr) -> anyhow::Result<()> {
        self.spawn_helper(ns, &["echo", &listen.to_string()])?;
        Ok(())
    }

    /// An HTTP server on `listen` inside `ns` answering `200 ok` to everything: a host's
    /// heartbeat.
    pub fn heartbeat(&mut self, ns: &str, listen: SocketAddr) -> anyhow::Result<()> {
        self.spawn_helper(ns, &["http", &listen.to_string()])?;
        Ok(())
    }

    /// An HTTP server on `listen` inside `ns` serving the files of `dir` (`GET /NAME`; 404
    /// for anything else): an artifact server.
    pub fn files(&mut self, ns: &str, listen: SocketAddr, dir: &Path) -> anyhow::Result<()> {
        self.spawn_helper(ns, &["files", &listen.to_string(), &dir.to_string_lossy()])?;
        Ok(())
    }

    /// A UDP probe from `ns` to an [`Lab::echo`] server at `target`, one datagram every
    /// `every`.
    pub fn probe(
        &mut self,
        ns: &str,
        target: SocketAddr,
        every: Duration,
    ) -> anyhow::Result<Probe> {
        let interval = every.as_millis().to_string();
        let log = self.spawn_helper(ns, &["probe", &target.to_string(), &interval])?;
        Ok(Probe { log })
    }

    /// A port of 127.0.0.1 in the test's own namespace whose TCP connections are made again
    /// from `ns` to `target`: how code running in the test (an orchestrator probing
    /// heartbeats) reaches the lab without an address of its own on the lab's networks.
    /// Connections fail as `target` does (its host gone, its port closed).
    pub fn forward(&mut self, ns: &str, target: SocketAddr) -> anyhow::Result<SocketAddr> {
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))?;
        let local = listener.local_addr()?;
        // The listening socket stays in this namespace, where it was made; the helper in
        // `ns` accepts on it (its stdin) and dials `target` from there.
        let child = Command::new("ip")
            .args(["netns", "exec", ns])
            .arg(helper()?)
            .args(["forward", &target.to_string()])
            .stdin(Stdio::from(OwnedFd::from(listener)))
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .with_context(|| format!("starting the forwarder to {target} in {ns}"))?;
        self.processes.push((ns.to_owned(), child));
        Ok(local)
    }

    /// A listener on `listen` inside `ns` whose TCP connections are made again to `local`, a
    /// port of 127.0.0.1 in the test's own namespace: how hosts of the lab (gateways
    /// fetching their configs) reach a server the test runs. The reverse of
    /// [`Lab::forward`].
    pub fn expose(
        &mut self,
        ns: &str,
        listen: SocketAddr,
        local: SocketAddr,
    ) -> anyhow::Result<()> {
        let own = format!("/proc/{}/ns/net", std::process::id());
        let log = self.spawn_helper(
            ns,
            &["reverse", &listen.to_string(), &own, &local.to_string()],
        )?;
        let mut pid = None;
        let said = wait_until(Duration::from_secs(10), || {
            let lines = log.lock().unwrap_or_else(|e| e.into_inner());
            pid = lines
                .iter()
                .find_map(|(_, l)| l.strip_prefix("pid ")?.parse::<u32>().ok());
            pid.is_some()
        });
        ensure!(
            said,
            "the reverse relay {ns} {listen} → {local} did not start"
        );
        self.strays.extend(pid);
        Ok(())
    }

    /// Host `name` on the internet with public address `ip` alone (`/32`, every other
    /// address on-link through `eth0`), as a cloud machine or a home router sees the
    /// internet; returns its namespace. Such hosts reach each other whatever their
    /// addresses, so simulated providers' addresses from any range can share the switch.
    pub fn public_host(&mut self, name: &str, ip: Ipv4Addr) -> anyhow::Result<String> {
        let ns = self.host(name)?;
        let iface = self.attach(INTERNET, &ns, &format!("{ip}/32"))?;
        sh(
            "ip",
            &["-n", &ns, "route", "replace", "default", "dev", &iface],
        )?;
        Ok(ns)
    }

    /// Takes a namespace down hard, as a provider outage would: its processes (the lab's
    /// and any they left behind, daemons included) are killed and the namespace (with its
    /// veth and interfaces) deleted.
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
        kill_all_in(ns);
        let _ = sh("ip", &["netns", "del", ns]);
        self.namespaces.retain(|n| n != ns);
    }

    /// Deletes namespaces and sockets of an earlier run with this prefix.
    fn sweep(&self) {
        let mine = self.ns("");
        if let Ok(list) = sh("ip", &["netns", "list"]) {
            for name in list.lines().filter_map(|l| l.split_whitespace().next()) {
                if name.starts_with(&mine) {
                    kill_all_in(name);
                    let _ = sh("ip", &["netns", "del", name]);
                }
            }
        }
        if let Ok(dir) = std::fs::read_dir("/var/run/wireguard") {
            for entry in dir.flatten() {
                if entry.file_name().to_string_lossy().starts_with(&mine) {
                    let _ = std::fs::remove_file(entry.path());
                }
            }
        }
    }
}

/// SIGKILLs every process left in namespace `ns` (a deleted namespace lives on while a
/// process holds it).
fn kill_all_in(ns: &str) {
    if let Ok(pids) = sh("ip", &["netns", "pids", ns]) {
        for pid in pids.split_whitespace() {
            let _ = Command::new("kill").args(["-KILL", pid]).status();
        }
    }
}

/// SIGTERM (wireguard-go removes its socket), then SIGKILL after a second.
fn stop(child: &mut Child) {
    let _ = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
    if !wait_until(Duration::from_secs(1), || {
        matches!(child.try_wait(), Ok(Some(_)))
    }) {
        let _ = child.kill();
        let _ = child.wait();
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        self.teardown();
    }
}

impl Lab {
    /// Removes everything the lab made, as dropping it does; the lab is empty afterwards.
    pub fn teardown(&mut self) {
        for (_, child) in &mut self.processes {
            stop(child);
        }
        self.processes.clear();
        for pid in std::mem::take(&mut self.strays) {
            let _ = Command::new("kill")
                .args(["-KILL", &pid.to_string()])
                .status();
        }
        for ns in std::mem::take(&mut self.namespaces).iter().rev() {
            kill_all_in(ns);
            let _ = sh("ip", &["netns", "del", ns]);
        }
        self.switches.clear();
        self.next_eth.clear();
        for socket in std::mem::take(&mut self.sockets) {
            let _ = std::fs::remove_file(socket);
        }
    }
}

/// An echo a probe got back: when it arrived, the probe's sequence number, and the source
/// address the destination saw (an egress's, through a tunnel).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Echo {
    /// When the echo arrived.
    pub at: Instant,
    /// The probe's sequence number.
    pub seq: u64,
    /// The source address the destination saw.
    pub source: String,
}

/// A running [`Lab::probe`]: the echoes it got back.
#[derive(Debug, Clone)]
pub struct Probe {
    log: LineLog,
}

impl Probe {
    /// Echoes that arrived at or after `since`, in arrival order.
    pub fn echoes(&self, since: Instant) -> Vec<Echo> {
        self.log
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .filter(|(at, _)| *at >= since)
            .filter_map(|(at, line)| {
                let (seq, source) = line.split_once(' ')?;
                Some(Echo {
                    at: *at,
                    seq: seq.parse().ok()?,
                    source: source.to_owned(),
                })
            })
            .collect()
    }

    /// The first echo since `since` that `matches`, waiting up to `timeout` for it.
    pub fn wait_for(
        &self,
        since: Instant,
        timeout: Duration,
        matches: impl Fn(&Echo) -> bool,
    ) -> Option<Echo> {
        let mut found = None;
        wait_until(timeout, || {
            found = self.echoes(since).into_iter().find(&matches);
            found.is_some()
        });
        found
    }

    /// The gap an outage at `down_at` left, waiting up to `timeout` for echoes to resume:
    /// the last echo since `since` that arrived by 100 ms after `down_at` (still in flight
    /// when it went down) and the first from 200 ms after.
    pub fn outage(
        &self,
        since: Instant,
        down_at: Instant,
        timeout: Duration,
    ) -> anyhow::Result<Outage> {
        let first = self
            .wait_for(down_at + Duration::from_millis(200), timeout, |_| true)
            .with_context(|| format!("traffic did not resume within {timeout:?}"))?;
        let last = self
            .echoes(since)
            .into_iter()
            .rfind(|echo| echo.at <= down_at + Duration::from_millis(100))
            .context("no echo before the outage")?;
        Ok(Outage { last, first })
    }
}

/// The echoes either side of an outage.
#[derive(Debug, Clone)]
pub struct Outage {
    /// The last echo before it.
    pub last: Echo,
    /// The first echo after it.
    pub first: Echo,
}

impl Outage {
    /// From the last echo before to the first after.
    pub fn duration(&self) -> Duration {
        self.first.at - self.last.at
    }

    /// Probes sent in between that never came back.
    pub fn lost(&self) -> u64 {
        self.first.seq.saturating_sub(self.last.seq + 1)
    }
}

impl fmt::Display for Outage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{:.0} ms (last echo seq {} → first echo seq {}, {} probes lost)",
            self.duration().as_secs_f64() * 1000.0,
            self.last.seq,
            self.first.seq,
            self.lost()
        )
    }
}

/// The public key and tunnel address (CIDR, empty when it has none) of WireGuard interface
/// `iface` in `ns`: a client's identity, which a failover must not change.
pub fn wg_identity(ns: &str, iface: &str) -> anyhow::Result<(String, String)> {
    let key = sh(
        "ip",
        &["netns", "exec", ns, "wg", "show", iface, "public-key"],
    )?;
    let address = sh(
        "ip",
        &["-n", ns, "-4", "-o", "address", "show", "dev", iface],
    )?;
    let address = address.split_whitespace().nth(3).unwrap_or("").to_owned();
    Ok((key.trim().to_owned(), address))
}

/// The public keys of the peers of WireGuard interface `iface` in `ns`, one a line.
pub fn wg_peers(ns: &str, iface: &str) -> anyhow::Result<String> {
    let peers = sh("ip", &["netns", "exec", ns, "wg", "show", iface, "peers"])?;
    Ok(peers.trim().to_owned())
}

/// Whether an HTTP GET of `path` at `addr` answers 200.
pub fn http_ok(addr: SocketAddr, path: &str) -> bool {
    use std::io::Read as _;
    let Ok(mut stream) = std::net::TcpStream::connect_timeout(&addr, Duration::from_secs(1)) else {
        return false;
    };
    let _ = stream.set_read_timeout(Some(Duration::from_secs(2)));
    let request = format!("GET {path} HTTP/1.1\r\nHost: lab\r\nConnection: close\r\n\r\n");
    let mut answer = String::new();
    stream.write_all(request.as_bytes()).is_ok()
        && stream.read_to_string(&mut answer).is_ok()
        && answer.starts_with("HTTP/1.1 200")
}
