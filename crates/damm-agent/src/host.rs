//! Running `ip`, `nft` and `wg` on the host, or inside a network namespace.

use std::io::Write as _;
use std::process::{Command, Stdio};

use crate::AgentError;

/// Where commands run: this network namespace, or a named one (`ip netns exec NAME ...`), which
/// is how tests drive gateways living in namespaces from one process.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Host {
    netns: Option<String>,
}

impl Host {
    /// The current network namespace.
    pub fn local() -> Self {
        Self { netns: None }
    }

    /// The named network namespace (`/var/run/netns/NAME`).
    pub fn netns(name: impl Into<String>) -> Self {
        Self {
            netns: Some(name.into()),
        }
    }

    /// The namespace name, if any.
    pub fn netns_name(&self) -> Option<&str> {
        self.netns.as_deref()
    }

    /// A [`Command`] for `program args...` in this host's namespace.
    pub fn command(&self, program: &str, args: &[&str]) -> Command {
        match &self.netns {
            None => {
                let mut c = Command::new(program);
                c.args(args);
                c
            }
            Some(ns) => {
                let mut c = Command::new("ip");
                c.args(["netns", "exec", ns, program]).args(args);
                c
            }
        }
    }

    /// Runs the command, returning its stdout; a non-zero exit is an error carrying stderr.
    pub fn run(&self, program: &str, args: &[&str]) -> Result<String, AgentError> {
        self.run_with_stdin(program, args, None)
    }

    /// Runs the command with `stdin` written to its standard input.
    pub fn run_with_stdin(
        &self,
        program: &str,
        args: &[&str],
        stdin: Option<&[u8]>,
    ) -> Result<String, AgentError> {
        let shown = format!("{program} {}", args.join(" "));
        let mut command = self.command(program, args);
        command
            .stdin(if stdin.is_some() {
                Stdio::piped()
            } else {
                Stdio::null()
            })
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = command.spawn().map_err(|source| AgentError::Spawn {
            command: shown.clone(),
            source,
        })?;
        if let (Some(input), Some(mut pipe)) = (stdin, child.stdin.take()) {
            pipe.write_all(input).map_err(|source| AgentError::Spawn {
                command: shown.clone(),
                source,
            })?;
        }
        let output = child
            .wait_with_output()
            .map_err(|source| AgentError::Spawn {
                command: shown.clone(),
                source,
            })?;
        if !output.status.success() {
            return Err(AgentError::Command {
                command: shown,
                status: output.status.to_string(),
                stderr: String::from_utf8_lossy(&output.stderr).trim().to_owned(),
            });
        }
        Ok(String::from_utf8_lossy(&output.stdout).into_owned())
    }
}

/// How a gateway's WireGuard interface came to be there (see [`Host::ensure_wireguard`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WireguardLink {
    /// It was there already (made by the unit's `ExecStartPre`, or by hand).
    Existing,
    /// Made now, in the kernel (`ip link add NAME type wireguard`).
    Kernel,
    /// Made now, in userspace (`wireguard-go NAME`): the host's kernel has no WireGuard
    /// (containers, some VPS kernels).
    Userspace,
}

impl Host {
    /// Makes WireGuard interface `iface` if it is not there: in the kernel where it can,
    /// else with `wireguard-go` (which runs on as a daemon; the `wg` tool and the agent
    /// find it by its UAPI socket). Fails when neither works.
    pub fn ensure_wireguard(&self, iface: &str) -> Result<WireguardLink, AgentError> {
        if self.run("ip", &["link", "show", "dev", iface]).is_ok() {
            return Ok(WireguardLink::Existing);
        }
        let kernel = match self.run("ip", &["link", "add", iface, "type", "wireguard"]) {
            Ok(_) => return Ok(WireguardLink::Kernel),
            Err(e) => e,
        };
        let shown = format!("wireguard-go {iface}");
        // It forks into the background and exits once the interface is up; its output
        // stays out of our pipes (a daemon holding them would never close them).
        let status = self
            .command("wireguard-go", &[iface])
            // The userspace fallback is chosen on purpose: silence its kernel-module banner.
            .env("WG_I_PREFER_BUGGY_USERSPACE_TO_POLISHED_KMOD", "1")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .map_err(|source| AgentError::Spawn {
                command: shown.clone(),
                source,
            })?;
        if !status.success() {
            return Err(AgentError::WireGuard {
                interface: iface.to_owned(),
                reason: format!(
                    "cannot make it: the kernel refused ({kernel}) and `{shown}` failed ({status})"
                ),
            });
        }
        Ok(WireguardLink::Userspace)
    }
}
