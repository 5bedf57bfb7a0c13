//! Interop with the stock `minisign` tool (Debian package `minisign`, which `cargo xtask ci`
//! installs): it must accept what we sign, and we must accept what it signs.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use damm_catalog::{PublicKey, SignatureAlgorithm, sign_catalog, verify, verify_signature};

use crate::common::{key, now, sample};

/// The `minisign` binary, or `None` after explaining why the test is skipped. In CI (env `CI`
/// set) as root, where `cargo xtask ci` installs it, a missing binary fails the test.
fn minisign() -> Option<PathBuf> {
    let found = std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|dir| dir.join("minisign"))
            .find(|candidate| candidate.is_file())
    });
    if found.is_none() {
        if std::env::var_os("CI").is_some() && running_as_root() {
            panic!(
                "minisign is not installed: `cargo xtask ci` installs it from Debian's packages \
                 (xtask/src/tools.rs) before the tests; run it, or `apt-get install minisign`"
            );
        }
        eprintln!(
            "\n!!!!! SKIPPED: minisign interop test, `minisign` is not on PATH.\n\
             !!!!! `cargo xtask ci` installs it (Debian package `minisign`).\n"
        );
    }
    found
}

/// Whether the tests run as root (the owner of `/proc/self` is the effective user).
fn running_as_root() -> bool {
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt as _;
        std::fs::metadata("/proc/self").is_ok_and(|m| m.uid() == 0)
    }
    #[cfg(not(unix))]
    {
        false
    }
}

fn run(cmd: &mut Command) -> Output {
    let output = cmd.output().expect("minisign runs");
    eprintln!(
        "{cmd:?}\n  status {}\n  stdout {}\n  stderr {}",
        output.status,
        String::from_utf8_lossy(&output.stdout).trim(),
        String::from_utf8_lossy(&output.stderr).trim()
    );
    output
}

fn write(dir: &Path, name: &str, contents: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, contents).unwrap();
    path
}

#[test]
fn stock_minisign_accepts_our_signature() {
    let Some(minisign) = minisign() else { return };
    let dir = tempfile::tempdir().unwrap();
    let signed = sign_catalog(&sample(), &key()).unwrap();
    let catalog = write(dir.path(), "catalog.json", &signed.json);
    let sig = write(dir.path(), "catalog.json.minisig", &signed.signature);
    let public = write(dir.path(), "damm.pub", &key().public_key().to_minisign());

    // `minisign -Vm catalog.json -x catalog.json.minisig -p damm.pub`.
    let verify = || {
        run(Command::new(&minisign)
            .arg("-Vm")
            .arg(&catalog)
            .arg("-x")
            .arg(&sig)
            .arg("-p")
            .arg(&public))
    };
    let ok = verify();
    assert!(ok.status.success(), "minisign refused our signature");
    let stdout = String::from_utf8_lossy(&ok.stdout);
    assert!(
        stdout.contains("Trusted comment: damm-catalog/1 fleet:demo version:42"),
        "{stdout}"
    );
    // `-H` insists on the prehashed algorithm: ours is.
    let prehashed = run(Command::new(&minisign)
        .args(["-V", "-H", "-m"])
        .arg(&catalog)
        .arg("-P")
        .arg(key().public_key().to_base64()));
    assert!(prehashed.status.success());

    // And it refuses a tampered catalog, so the check above means something.
    std::fs::write(
        &catalog,
        signed.json.replace("\"version\": 42", "\"version\": 43"),
    )
    .unwrap();
    let tampered = verify();
    assert!(
        !tampered.status.success(),
        "minisign accepted a tampered catalog"
    );
}

#[test]
fn we_accept_stock_minisign_signatures() {
    let Some(minisign) = minisign() else { return };
    let dir = tempfile::tempdir().unwrap();
    let public = dir.path().join("op.pub");
    let secret = dir.path().join("op.key");
    let generated = run(Command::new(&minisign)
        .args(["-G", "-W", "-p"])
        .arg(&public)
        .arg("-s")
        .arg(&secret));
    assert!(generated.status.success());
    let public_key = PublicKey::from_minisign(&std::fs::read_to_string(&public).unwrap()).unwrap();

    let json = sample().to_json().unwrap();
    let catalog = write(dir.path(), "catalog.json", &json);
    for (legacy, algorithm) in [
        (false, SignatureAlgorithm::Prehashed),
        (true, SignatureAlgorithm::Legacy),
    ] {
        let mut cmd = Command::new(&minisign);
        cmd.arg("-S");
        if legacy {
            cmd.arg("-l");
        }
        cmd.arg("-s")
            .arg(&secret)
            .arg("-m")
            .arg(&catalog)
            .args(["-t", "damm-catalog/1 fleet:demo version:42 by hand"]);
        assert!(run(&mut cmd).status.success());
        let sig = std::fs::read_to_string(dir.path().join("catalog.json.minisig")).unwrap();
        let verified =
            verify_signature(json.as_bytes(), &sig, std::slice::from_ref(&public_key)).unwrap();
        assert_eq!(verified.algorithm, algorithm);
        assert_eq!(
            verified.trusted_comment,
            "damm-catalog/1 fleet:demo version:42 by hand"
        );
        let accepted = verify(
            json.as_bytes(),
            &sig,
            std::slice::from_ref(&public_key),
            Some(42),
            now(),
        )
        .unwrap();
        assert_eq!(accepted, sample());
        // Not with our key, and not over other bytes.
        assert!(verify(json.as_bytes(), &sig, &[key().public_key()], None, now()).is_err());
        assert!(verify_signature(b"other", &sig, std::slice::from_ref(&public_key)).is_err());
    }
}
