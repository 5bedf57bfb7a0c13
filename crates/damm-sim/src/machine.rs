//! A simulated machine's first boot: what cloud-init and systemd do with a cloud VM's
//! user-data, done inside a network namespace so that a gateway the orchestrator created
//! on the simulator installs and starts its agent by itself (see [`crate::boot`]).
//!
//! [`boot`] is the machine's init. It runs in a mount namespace of its own (it refuses to
//! run in the host's) and gives the machine a private copy-on-write view of `/etc`,
//! `/usr/local`, `/var/lib` and `/root` (overlays whose upper layers live under the
//! machine's root directory), its own `/run/wireguard` and no view of the host's systemd
//! or D-Bus sockets. Then, as cloud-init would:
//!
//! 1. `write_files` (path, content, permissions);
//! 2. `packages`: not installed; the machine runs the host's programs, so each package's
//!    presence is only reported;
//! 3. `runcmd`, in order, a failing command not stopping the next (as cloud-init's runcmd
//!    script does). `systemctl` in list form is done here: `daemon-reload`, and `enable
//!    --now`/`start`, which starts the unit from `/etc/systemd/system`.
//!
//! A started unit runs as systemd would run it: `ConditionPathExists=`, the environment
//! from `EnvironmentFile=`, each `ExecStartPre=` (`-` ignores its failure), then
//! `ExecStart=`, restarted per `Restart=` after `RestartSec=`. Its output is printed as
//! `[unit] line`. Its sandboxing settings (`ProtectSystem=`, capabilities, system-call
//! filters) are not applied: the lab tests what the unit runs, not systemd's sandbox.
//!
//! Only the cloud-config keys above are known: any other key is refused with its line, so
//! a user-data change the lab does not carry out fails the lab instead of passing unseen.

use std::collections::BTreeMap;
use std::fmt;
use std::io::{BufRead as _, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use std::time::Duration;

use anyhow::{Context as _, anyhow, bail, ensure};
use serde::Deserialize;

/// The directories a machine sees a private copy of.
const PRIVATE_DIRS: &[&str] = &["/etc", "/usr/local", "/var/lib", "/root"];
/// Host sockets a machine must not reach (a `systemctl` there would act on the host).
const HIDDEN_DIRS: &[&str] = &["/run/systemd", "/run/dbus"];
/// Where units are installed.
const UNIT_DIR: &str = "/etc/systemd/system";
/// The search path systemd gives a unit's commands.
const UNIT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// The part of cloud-config the lab carries out.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CloudConfig {
    /// Packages to install.
    #[serde(default)]
    pub packages: Vec<String>,
    /// Files to write.
    #[serde(default)]
    pub write_files: Vec<WriteFile>,
    /// Commands to run, in order.
    #[serde(default)]
    pub runcmd: Vec<RunCmd>,
}

/// One `write_files` entry.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WriteFile {
    /// Absolute path.
    pub path: String,
    /// The file's text.
    pub content: String,
    /// Octal mode, e.g. `'0600'` (default 0644).
    #[serde(default)]
    pub permissions: Option<String>,
}

impl fmt::Debug for WriteFile {
    // Contents hold keys and credentials: only their size is shown.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WriteFile")
            .field("path", &self.path)
            .field("content", &format_args!("<{} bytes>", self.content.len()))
            .field("permissions", &self.permissions)
            .finish()
    }
}

/// One `runcmd` entry.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(untagged)]
pub enum RunCmd {
    /// A list: the program and its arguments, no shell.
    Argv(Vec<String>),
    /// A string, run with `sh -c`.
    Shell(String),
}

impl CloudConfig {
    /// Parses user-data, which must be a `#cloud-config` document.
    pub fn parse(text: &str) -> anyhow::Result<CloudConfig> {
        ensure!(
            text.lines().next().map(str::trim_end) == Some("#cloud-config"),
            "user-data: not a cloud-config document (its first line must be `#cloud-config`)"
        );
        serde_yaml_ng::from_str(text).map_err(|e| anyhow!("user-data: {e}"))
    }
}

/// What a unit does on failure.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Restart {
    /// Never restarted.
    No,
    /// Restarted when it exits with a failure.
    OnFailure,
    /// Restarted whenever it exits.
    Always,
}

/// A command line of a unit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExecLine {
    /// `-` prefix: its failure is ignored.
    pub ignore_failure: bool,
    /// The program and its arguments.
    pub argv: Vec<String>,
}

/// The parts of a systemd service unit the lab runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unit {
    /// Its file name (`damm-agent.service`).
    pub name: String,
    /// `ConditionPathExists=`: not started unless each exists.
    pub conditions: Vec<PathBuf>,
    /// `EnvironmentFile=`, each with whether it may be missing (`-`).
    pub environment_files: Vec<(PathBuf, bool)>,
    /// `ExecStartPre=`, in order.
    pub pre: Vec<ExecLine>,
    /// `ExecStart=`.
    pub start: ExecLine,
    /// `Restart=`.
    pub restart: Restart,
    /// `RestartSec=`.
    pub restart_sec: Duration,
}

impl Unit {
    /// Parses unit file `name` (`text`). Errors name the unit and the line.
    pub fn parse(name: &str, text: &str) -> anyhow::Result<Unit> {
        let mut section = String::new();
        let (mut conditions, mut environment_files, mut pre) = (Vec::new(), Vec::new(), Vec::new());
        let (mut start, mut restart, mut restart_sec) =
            (None, Restart::No, Duration::from_millis(100));
        let mut logical = String::new();
        for (n, raw) in text.lines().enumerate() {
            let line = n + 1;
            // A trailing backslash continues the line.
            if let Some(head) = raw.strip_suffix('\\') {
                logical.push_str(head);
                logical.push(' ');
                continue;
            }
            logical.push_str(raw);
            let entry = std::mem::take(&mut logical);
            let entry = entry.trim();
            if entry.is_empty() || entry.starts_with('#') || entry.starts_with(';') {
                continue;
            }
            if let Some(s) = entry.strip_prefix('[').and_then(|s| s.strip_suffix(']')) {
                section = s.to_owned();
                continue;
            }
            let at = || format!("{name}, line {line}");
            let (key, value) = entry
                .split_once('=')
                .with_context(|| format!("{}: `{entry}` is not KEY=VALUE", at()))?;
            let (key, value) = (key.trim(), value.trim());
            match (section.as_str(), key) {
                ("Unit", "ConditionPathExists") => conditions.push(PathBuf::from(value)),
                ("Service", "EnvironmentFile") => match value.strip_prefix('-') {
                    Some(path) => environment_files.push((PathBuf::from(path), true)),
                    None => environment_files.push((PathBuf::from(value), false)),
                },
                ("Service", "ExecStartPre") => {
                    pre.push(exec_line(value).with_context(|| format!("{}: ExecStartPre", at()))?)
                }
                ("Service", "ExecStart") => {
                    start = Some(exec_line(value).with_context(|| format!("{}: ExecStart", at()))?)
                }
                ("Service", "Restart") => {
                    restart = match value {
                        "no" => Restart::No,
                        "on-failure" => Restart::OnFailure,
                        "always" => Restart::Always,
                        other => bail!("{}: Restart={other} is not carried out by the lab", at()),
                    }
                }
                ("Service", "RestartSec") => {
                    restart_sec = humantime::parse_duration(value)
                        .or_else(|_| value.parse::<u64>().map(Duration::from_secs))
                        .map_err(|_| anyhow!("{}: RestartSec={value} is not a duration", at()))?
                }
                ("Service", "Type") if value != "simple" && value != "exec" => {
                    bail!("{}: Type={value} is not carried out by the lab", at())
                }
                // Descriptions, ordering, install targets and sandboxing: nothing to run.
                _ => {}
            }
        }
        let start = start.with_context(|| format!("{name}: no ExecStart="))?;
        Ok(Unit {
            name: name.to_owned(),
            conditions,
            environment_files,
            pre,
            start,
            restart,
            restart_sec,
        })
    }

    /// The environment its commands get: the unit search path, then its environment
    /// files (read at each start, as systemd does).
    pub fn environment(&self) -> anyhow::Result<BTreeMap<String, String>> {
        let mut env = BTreeMap::from([("PATH".to_owned(), UNIT_PATH.to_owned())]);
        for (path, optional) in &self.environment_files {
            match std::fs::read_to_string(path) {
                Ok(text) => env.extend(environment_file(&text)),
                Err(_) if *optional => {}
                Err(e) => bail!("{}: EnvironmentFile {}: {e}", self.name, path.display()),
            }
        }
        Ok(env)
    }
}

/// A unit command line: words split on whitespace, with single and double quotes; the
/// first word's `-` prefix ignores a failure, the `@`, `:`, `+` and `!` prefixes (argv[0],
/// no substitution, privileges) change nothing here.
fn exec_line(value: &str) -> anyhow::Result<ExecLine> {
    let mut words = Vec::new();
    let mut word: Option<String> = None;
    let mut quote: Option<char> = None;
    let mut chars = value.chars();
    while let Some(c) = chars.next() {
        match (quote, c) {
            (Some(q), c) if c == q => quote = None,
            (None, '"' | '\'') => {
                quote = Some(c);
                word.get_or_insert_default();
            }
            (_, '\\') => {
                let next = chars.next().context("a trailing backslash")?;
                word.get_or_insert_default().push(next);
            }
            (None, c) if c.is_whitespace() => words.extend(word.take()),
            (_, c) => word.get_or_insert_default().push(c),
        }
    }
    ensure!(quote.is_none(), "an unclosed quote in `{value}`");
    words.extend(word);
    let first = words.first_mut().context("an empty command line")?;
    let prefixes = first.len() - first.trim_start_matches(['-', '@', ':', '+', '!']).len();
    let ignore_failure = first[..prefixes].contains('-');
    first.drain(..prefixes);
    ensure!(!first.is_empty(), "no program in `{value}`");
    Ok(ExecLine {
        ignore_failure,
        argv: words,
    })
}

/// `KEY=VALUE` lines; blank lines and `#`/`;` comments skipped, one level of quotes removed.
fn environment_file(text: &str) -> Vec<(String, String)> {
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#') && !l.starts_with(';'))
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| {
            let v = v.trim();
            let unquoted = v
                .strip_prefix('"')
                .and_then(|v| v.strip_suffix('"'))
                .or_else(|| v.strip_prefix('\'').and_then(|v| v.strip_suffix('\'')))
                .unwrap_or(v);
            (k.trim().to_owned(), unquoted.to_owned())
        })
        .collect()
}

/// Boots a machine: its init, run as `ip netns exec NS unshare --mount --propagation
/// private <program> boot ROOT USER_DATA HOST_PID`, where HOST_PID is a process in the
/// host's mount namespace (the lab's). Returns only on an error before the units start;
/// then it supervises them until it is killed.
pub fn boot(root: &Path, user_data: &Path, host_pid: u32) -> anyhow::Result<()> {
    let text = std::fs::read_to_string(user_data)
        .with_context(|| format!("reading the user-data {}", user_data.display()))?;
    let config = CloudConfig::parse(&text)?;
    isolate(root, host_pid)?;
    say(&format!(
        "booting: {} files, {} packages, {} commands",
        config.write_files.len(),
        config.packages.len(),
        config.runcmd.len()
    ));
    for file in &config.write_files {
        write_file(file)?;
    }
    for package in &config.packages {
        say(&format!(
            "package {package}: the lab machine runs the host's programs"
        ));
    }
    let mut units = Vec::new();
    for (i, cmd) in config.runcmd.iter().enumerate() {
        match run_cmd(cmd, &mut units) {
            Ok(()) => say(&format!("runcmd {i}: ok")),
            Err(e) => say(&format!("runcmd {i} failed: {e:#}")),
        }
    }
    let supervisors: Vec<_> = units
        .into_iter()
        .map(|unit| std::thread::spawn(move || supervise(&unit)))
        .collect();
    for s in supervisors {
        let _ = s.join();
    }
    say("no unit left running");
    // A machine whose units all stopped stays up, as a VM would.
    loop {
        std::thread::park();
    }
}

/// Gives this process's mount namespace the machine's private directories. Refuses to run
/// in the host's mount namespace, where the overlays would cover the host's own `/etc`.
fn isolate(root: &Path, host_pid: u32) -> anyhow::Result<()> {
    let own = std::fs::read_link("/proc/self/ns/mnt").context("reading /proc/self/ns/mnt")?;
    let host_ns = format!("/proc/{host_pid}/ns/mnt");
    let host = std::fs::read_link(&host_ns).with_context(|| format!("reading {host_ns}"))?;
    ensure!(
        own != host,
        "refusing to boot a machine in the host's mount namespace: run it under `unshare --mount`"
    );
    for dir in PRIVATE_DIRS.iter().filter(|d| Path::new(d).is_dir()) {
        let name = dir.trim_start_matches('/').replace('/', "-");
        let (upper, work) = (
            root.join("upper").join(&name),
            root.join("work").join(&name),
        );
        std::fs::create_dir_all(&upper)?;
        std::fs::create_dir_all(&work)?;
        let options = format!(
            "lowerdir={dir},upperdir={},workdir={}",
            upper.display(),
            work.display()
        );
        mount(&["-t", "overlay", "overlay", "-o", &options, dir])?;
    }
    std::fs::create_dir_all("/run/wireguard")?;
    mount(&["-t", "tmpfs", "tmpfs", "/run/wireguard"])?;
    for dir in HIDDEN_DIRS.iter().filter(|d| Path::new(d).is_dir()) {
        mount(&["-t", "tmpfs", "tmpfs", dir])?;
    }
    Ok(())
}

fn mount(args: &[&str]) -> anyhow::Result<()> {
    let out = Command::new("mount")
        .args(args)
        .output()
        .context("running mount")?;
    ensure!(
        out.status.success(),
        "`mount {}` failed: {}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr).trim()
    );
    Ok(())
}

fn write_file(file: &WriteFile) -> anyhow::Result<()> {
    let path = Path::new(&file.path);
    ensure!(
        path.is_absolute()
            && PRIVATE_DIRS
                .iter()
                .any(|d| path.starts_with(d) && path != Path::new(d)),
        "write_files: {} is outside the machine's private directories ({})",
        file.path,
        PRIVATE_DIRS.join(", ")
    );
    let mode = match &file.permissions {
        Some(p) => u32::from_str_radix(p.trim_start_matches("0o"), 8).map_err(|_| {
            anyhow!(
                "write_files: {}: permissions `{p}` are not octal",
                file.path
            )
        })?,
        None => 0o644,
    };
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent)?;
    }
    std::fs::write(path, &file.content).with_context(|| format!("writing {}", file.path))?;
    use std::os::unix::fs::PermissionsExt as _;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))?;
    say(&format!("wrote {} ({mode:04o})", file.path));
    Ok(())
}

/// Runs one `runcmd` entry; `systemctl` in list form is done here, adding units to start.
fn run_cmd(cmd: &RunCmd, units: &mut Vec<Unit>) -> anyhow::Result<()> {
    let mut command = match cmd {
        RunCmd::Argv(argv)
            if argv
                .first()
                .is_some_and(|p| p.rsplit('/').next() == Some("systemctl")) =>
        {
            return systemctl(&argv[1..], units);
        }
        RunCmd::Argv(argv) => {
            let (program, args) = argv.split_first().context("an empty command")?;
            let mut c = Command::new(program);
            c.args(args);
            c
        }
        RunCmd::Shell(script) => {
            let mut c = Command::new("sh");
            c.args(["-c", script]);
            c
        }
    };
    let status = run_logged("runcmd", &mut command)?;
    ensure!(status.success(), "exited with {status}");
    Ok(())
}

/// The `systemctl` verbs a first boot uses.
fn systemctl(args: &[String], units: &mut Vec<Unit>) -> anyhow::Result<()> {
    let now = args.iter().any(|a| a == "--now");
    let mut words = args.iter().filter(|a| !a.starts_with('-'));
    let verb = words.next().context("systemctl: no verb")?;
    let start = match verb.as_str() {
        "daemon-reload" => return Ok(()),
        "enable" => now,
        "start" | "restart" => true,
        other => bail!("systemctl {other}: not carried out by the lab"),
    };
    for name in words {
        let name = if name.contains('.') {
            name.clone()
        } else {
            format!("{name}.service")
        };
        let path = Path::new(UNIT_DIR).join(&name);
        let text = std::fs::read_to_string(&path)
            .with_context(|| format!("systemctl {verb} {name}: {}", path.display()))?;
        let unit = Unit::parse(&name, &text)?;
        if start {
            units.push(unit);
        }
    }
    Ok(())
}

/// Runs `unit` until its restart policy lets it stop.
fn supervise(unit: &Unit) {
    let name = &unit.name;
    loop {
        if let Some(missing) = unit.conditions.iter().find(|p| !p.exists()) {
            say(&format!(
                "{name}: not started: {} is missing",
                missing.display()
            ));
            return;
        }
        let outcome = run_unit(unit);
        let failed = match &outcome {
            Ok(status) => {
                say(&format!("{name}: exited with {status}"));
                !status.success()
            }
            Err(e) => {
                say(&format!("{name}: failed: {e:#}"));
                true
            }
        };
        match unit.restart {
            Restart::Always => {}
            Restart::OnFailure if failed => {}
            _ => return,
        }
        std::thread::sleep(unit.restart_sec);
    }
}

fn run_unit(unit: &Unit) -> anyhow::Result<ExitStatus> {
    let env = unit.environment()?;
    let command = |line: &ExecLine| {
        let mut c = Command::new(&line.argv[0]);
        c.args(&line.argv[1..]).env_clear().envs(&env);
        c
    };
    for line in &unit.pre {
        let status = run_logged(&unit.name, &mut command(line))?;
        if !status.success() && !line.ignore_failure {
            bail!(
                "ExecStartPre `{}` exited with {status}",
                line.argv.join(" ")
            );
        }
    }
    say(&format!(
        "{}: started `{}`",
        unit.name,
        unit.start.argv.join(" ")
    ));
    run_logged(&unit.name, &mut command(&unit.start))
}

/// Runs a command to its end, its output printed line by line as `[tag] line`.
fn run_logged(tag: &str, command: &mut Command) -> anyhow::Result<ExitStatus> {
    let mut child = command
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .with_context(|| format!("starting {:?}", command.get_program()))?;
    let pipes: Vec<Box<dyn Read + Send>> = vec![
        Box::new(child.stdout.take().context("no stdout")?),
        Box::new(child.stderr.take().context("no stderr")?),
    ];
    let readers: Vec<_> = pipes
        .into_iter()
        .map(|pipe| {
            let tag = tag.to_owned();
            std::thread::spawn(move || {
                for line in BufReader::new(pipe).lines().map_while(Result::ok) {
                    println!("[{tag}] {line}");
                }
            })
        })
        .collect();
    let status = child.wait()?;
    // A daemon the command left behind may hold the pipes: do not wait for them.
    drop(readers);
    Ok(status)
}

fn say(line: &str) {
    println!("[boot] {line}");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_packaged_agent_unit_parses() {
        let text = include_str!("../../../packaging/damm-agent.service");
        let unit = Unit::parse("damm-agent.service", text).unwrap();
        assert_eq!(unit.conditions, [PathBuf::from("/etc/damm/agent.env")]);
        assert_eq!(
            unit.environment_files,
            [(PathBuf::from("/etc/damm/agent.env"), false)]
        );
        assert_eq!(unit.pre.len(), 2);
        assert!(unit.pre.iter().all(|l| l.ignore_failure));
        assert_eq!(
            unit.pre[0].argv,
            ["ip", "link", "add", "wg0", "type", "wireguard"]
        );
        assert_eq!(
            unit.start.argv,
            ["/usr/bin/damm", "agent", "--log-format", "json"]
        );
        assert!(!unit.start.ignore_failure);
        assert_eq!(unit.restart, Restart::Always);
        assert_eq!(unit.restart_sec, Duration::from_secs(5));
    }

    #[test]
    fn command_lines_split_like_systemd() {
        let line = exec_line(r#"-/bin/sh -c 'echo "a b"' "x y" z\ w"#).unwrap();
        assert!(line.ignore_failure);
        assert_eq!(line.argv, ["/bin/sh", "-c", "echo \"a b\"", "x y", "z w"]);
        assert!(!exec_line("@/bin/true arg0").unwrap().ignore_failure);
        for bad in ["", "-", "'unclosed", "trailing\\"] {
            assert!(exec_line(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn unit_errors_name_the_unit_and_line() {
        let e = Unit::parse(
            "x.service",
            "[Service]\nExecStart=/bin/true\nRestart=sometimes\n",
        )
        .unwrap_err();
        assert_eq!(
            e.to_string(),
            "x.service, line 3: Restart=sometimes is not carried out by the lab"
        );
        let e = Unit::parse(
            "x.service",
            "[Service]\nType=forking\nExecStart=/bin/true\n",
        )
        .unwrap_err();
        assert!(e.to_string().contains("line 2: Type=forking"), "{e}");
        let e = Unit::parse("x.service", "[Service]\nRestart=always\n").unwrap_err();
        assert_eq!(e.to_string(), "x.service: no ExecStart=");
    }

    #[test]
    fn environment_files_read_like_systemd() {
        let env = environment_file("# c\n; c\n\nA=1\nB = \"two words\"\nC='q'\nnot a pair\n");
        assert_eq!(
            env,
            [
                ("A".to_owned(), "1".to_owned()),
                ("B".to_owned(), "two words".to_owned()),
                ("C".to_owned(), "q".to_owned())
            ]
        );
    }

    #[test]
    fn cloud_config_keys_the_lab_does_not_carry_out_are_refused_with_their_line() {
        let config = CloudConfig::parse(
            "#cloud-config\npackages: [curl]\nwrite_files:\n  - path: /etc/x\n    content: |\n      hi\n    permissions: '0600'\nruncmd:\n  - [systemctl, daemon-reload]\n  - echo hi\n",
        )
        .unwrap();
        assert_eq!(config.packages, ["curl"]);
        assert_eq!(config.write_files[0].content, "hi\n");
        assert_eq!(
            config.runcmd,
            [
                RunCmd::Argv(vec!["systemctl".into(), "daemon-reload".into()]),
                RunCmd::Shell("echo hi".into())
            ]
        );
        assert!(!format!("{:?}", config.write_files[0]).contains("hi"));
        let e =
            CloudConfig::parse("#cloud-config\nruncmd: []\nbootcmd:\n  - reboot\n").unwrap_err();
        assert!(e.to_string().contains("unknown field `bootcmd`"), "{e}");
        assert!(e.to_string().contains("line 3"), "{e}");
        let e = CloudConfig::parse("#!/bin/sh\necho hi\n").unwrap_err();
        assert!(e.to_string().contains("#cloud-config"), "{e}");
    }
}
