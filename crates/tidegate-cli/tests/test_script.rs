//! `scripts/test`, the command that runs every check, on a machine it cannot provision:
//! it must say what to install instead of failing obscurely.

use std::path::{Path, PathBuf};
use std::process::Command;

/// A directory holding only the few commands the script needs before it checks for
/// Redis: no apt-get, no redis-server, no cargo (and no Chromium: `CHROMIUM` points
/// into it).
fn bare_path(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!(
        "tidegate-test-script-{name}-{}",
        std::process::id()
    ));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    for tool in ["bash", "dirname", "id", "cat"] {
        let found = ["/usr/bin", "/bin"]
            .iter()
            .map(|d| Path::new(d).join(tool))
            .find(|p| p.exists())
            .unwrap_or_else(|| panic!("{tool} not found"));
        std::os::unix::fs::symlink(found, dir.join(tool)).unwrap();
    }
    dir
}

#[test]
fn without_apt_get_and_redis_it_names_what_to_install_and_stops() {
    let bin = bare_path("no-apt");
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../scripts/test");
    let out = Command::new(bin.join("bash"))
        .arg(&script)
        .env_clear()
        .env("PATH", &bin)
        .env("CHROMIUM", bin.join("chromium"))
        .output()
        .unwrap();
    let _ = std::fs::remove_dir_all(&bin);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.starts_with(
            "scripts/test: missing redis-server redis-cli openssl python3 node npm chromium c++ (the tests start their own"
        ),
        "{stderr}"
    );
    assert!(
        stderr.contains("apt-get cannot install them here"),
        "{stderr}"
    );
    assert!(
        stderr.contains("brew install redis openssl python3 node"),
        "{stderr}"
    );
    assert!(
        stderr.contains(
            "sudo apt-get install redis-server redis-tools openssl python3-venv nodejs npm"
        ),
        "{stderr}"
    );
    assert!(
        stderr.contains("sudo dnf install redis openssl"),
        "{stderr}"
    );
    assert!(
        !String::from_utf8_lossy(&out.stdout).contains("== cargo"),
        "stopped before the checks"
    );
}
