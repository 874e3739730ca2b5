//! `tidegate probe` as a process against a real `tidegate serve`: its exit status (0 on
//! 2xx, 1 otherwise, 2 for a URL it cannot probe) and what it prints.

mod common;

use std::net::TcpListener;
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use common::serve::{Server, TempDir};

fn probe(args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_tidegate"));
    cmd.arg("probe").args(args).env_remove("TIDEGATE_LISTEN");
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.output().unwrap()
}

fn text(out: &Output) -> (String, String) {
    (
        String::from_utf8_lossy(&out.stdout).trim().to_string(),
        String::from_utf8_lossy(&out.stderr).trim().to_string(),
    )
}

#[test]
fn probe_exits_0_on_2xx_and_1_on_any_other_status() {
    let dir = TempDir::new();
    let server = Server::start(&[], &[], &dir.0);
    let url = format!("http://{}/healthz", server.addr);
    let out = probe(&[&url], &[]);
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    assert_eq!(text(&out).0, format!("{url}: 200 OK"));

    // A path alone goes to TIDEGATE_LISTEN's port on loopback.
    let port = server.addr.rsplit(':').next().unwrap();
    let listen = format!("0.0.0.0:{port}");
    let out = probe(&["/readyz"], &[("TIDEGATE_LISTEN", &listen)]);
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    assert_eq!(
        text(&out).0,
        format!("http://127.0.0.1:{port}/readyz: 200 OK")
    );

    let missing = format!("http://{}/no-such-route", server.addr);
    let out = probe(&[&missing], &[]);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    assert_eq!(
        text(&out).1,
        format!("tidegate probe: {missing} answered 404 Not Found, not a 2xx status")
    );
}

#[test]
fn probe_exits_1_when_nothing_listens_or_nothing_answers_in_time() {
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let url = format!("http://127.0.0.1:{port}/healthz");
    let out = probe(&[&url], &[]);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let (_, err) = text(&out);
    assert!(
        err.starts_with(&format!(
            "tidegate probe: {url}: cannot connect to 127.0.0.1:{port}: "
        )),
        "{err}"
    );

    // Listening, never answering: the probe gives up at --timeout.
    let silent = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/healthz", silent.local_addr().unwrap());
    let start = Instant::now();
    let out = probe(&["--timeout", "500ms", &url], &[]);
    let took = start.elapsed();
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    assert_eq!(
        text(&out).1,
        format!("tidegate probe: {url}: no answer within 500ms (--timeout)")
    );
    assert!(took < Duration::from_secs(10), "{took:?}");
}

#[test]
fn probe_exits_2_for_a_url_it_cannot_probe() {
    let out = probe(&["https://127.0.0.1:8443/healthz"], &[]);
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    assert!(text(&out).1.contains("https is not supported"), "{out:?}");
    let out = probe(&["/healthz"], &[("TIDEGATE_LISTEN", "8080")]);
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    assert!(
        text(&out)
            .1
            .contains("TIDEGATE_LISTEN=`8080` is not an address"),
        "{out:?}"
    );
    let out = probe(&["--timeout", "0s", "http://127.0.0.1:1/"], &[]);
    assert_eq!(out.status.code(), Some(2), "{out:?}");
}
