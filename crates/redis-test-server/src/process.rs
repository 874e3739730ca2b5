//! Child processes: temporary directories, log tails, signals and the watchdog that
//! kills a server whose test process died without cleaning up.

use super::*;

pub(crate) static DIR_COUNTER: AtomicU64 = AtomicU64::new(0);

/// Creates a fresh, unique directory under the system temp dir.
pub(crate) fn make_temp_dir(prefix: &str) -> PathBuf {
    make_temp_dir_in(&std::env::temp_dir(), prefix)
}

/// Creates a fresh, unique directory under `base`.
pub(crate) fn make_temp_dir_in(base: &Path, prefix: &str) -> PathBuf {
    loop {
        let n = DIR_COUNTER.fetch_add(1, Ordering::Relaxed);
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0);
        let dir = base.join(format!("{prefix}-{}-{n}-{nanos}", std::process::id()));
        match fs::create_dir(&dir) {
            Ok(()) => return dir,
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => continue,
            Err(e) => panic!(
                "redis-test-server: cannot create temp dir {}: {e}",
                dir.display()
            ),
        }
    }
}

/// Last `lines` lines of the file from byte `from` on.
pub(crate) fn log_tail(path: &Path, from: u64, lines: usize) -> String {
    let mut text = String::new();
    if let Ok(mut f) = File::open(path) {
        let _ = f.seek(SeekFrom::Start(from));
        let mut bytes = Vec::new();
        let _ = f.read_to_end(&mut bytes);
        text = String::from_utf8_lossy(&bytes).into_owned();
    }
    let all: Vec<&str> = text.lines().collect();
    let start = all.len().saturating_sub(lines);
    all[start..].join("\n")
}

/// Whether a process with this pid exists and is not a zombie (Linux `/proc`,
/// falling back to `kill -0` elsewhere).
pub fn process_alive(pid: u32) -> bool {
    if Path::new("/proc/self/stat").exists() {
        let Ok(stat) = fs::read_to_string(format!("/proc/{pid}/stat")) else {
            return false;
        };
        // Format: "pid (comm) STATE ..."; comm may contain spaces or parens.
        let state = stat
            .rfind(')')
            .and_then(|i| stat[i + 1..].trim_start().chars().next());
        return !matches!(state, Some('Z' | 'X' | 'x') | None);
    }
    Command::new("kill")
        .args(["-0", &pid.to_string()])
        .stderr(Stdio::null())
        .status()
        .map(|s| s.success())
        .unwrap_or(false)
}

pub(crate) fn send_signal(pid: u32, signal: &str) {
    let status = Command::new("kill")
        .arg(format!("-{signal}"))
        .arg(pid.to_string())
        .status()
        .unwrap_or_else(|e| panic!("redis-test-server: cannot run `kill -{signal} {pid}`: {e}"));
    assert!(
        status.success(),
        "redis-test-server: `kill -{signal} {pid}` failed ({status})"
    );
}

/// Spawns the `sh` watchdog that SIGKILLs `pid` and removes `dir` once its
/// stdin reaches EOF, i.e. once every holder of the write end (only this
/// process: Rust opens pipes close-on-exec) is gone. Best effort.
pub(crate) fn spawn_watchdog(pid: u32, dir: &Path) -> Option<Child> {
    Command::new("sh")
        .arg("-c")
        .arg(r#"read -r line; kill -9 "$1" 2>/dev/null; rm -rf "$2""#)
        .arg("redis-test-server-watchdog")
        .arg(pid.to_string())
        .arg(dir)
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .ok()
}

/// Kills a child with SIGKILL (works on stopped processes too) and reaps it.
pub(crate) fn kill_and_reap(child: &mut Child) {
    let _ = child.kill();
    let _ = child.wait();
}
