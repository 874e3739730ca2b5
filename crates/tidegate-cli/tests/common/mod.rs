//! Test helpers shared by the CLI's integration tests.
#![allow(dead_code)] // each test binary uses its own part

pub mod serve;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::thread;

use serde_json::Value;

/// Starts `cmd` with `stdin` written to its standard input (then closed) and its
/// output captured.
pub fn spawn_with_stdin(cmd: &mut Command, stdin: &str) -> Child {
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(stdin.as_bytes())
        .unwrap();
    child
}

/// A loopback HTTP endpoint that answers the first `fail_first` requests with `503` and
/// the rest with `200`, keeping the JSON bodies it receives.
pub struct Hook {
    /// `http://127.0.0.1:PORT/hook`.
    pub url: String,
    /// Bodies answered `200`.
    pub accepted: Arc<Mutex<Vec<Value>>>,
    /// Every body received, answered or not.
    pub received: Arc<Mutex<Vec<Value>>>,
}

impl Hook {
    /// Listens on a free loopback port, answering from a thread.
    pub fn start(fail_first: usize) -> Hook {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}/hook", listener.local_addr().unwrap());
        let accepted = Arc::new(Mutex::new(Vec::new()));
        let received = Arc::new(Mutex::new(Vec::new()));
        let (ok, all) = (Arc::clone(&accepted), Arc::clone(&received));
        thread::spawn(move || {
            for (n, stream) in listener.incoming().enumerate() {
                let Ok(mut stream) = stream else { continue };
                let mut reader = BufReader::new(stream.try_clone().unwrap());
                let mut length = 0;
                loop {
                    let mut line = String::new();
                    if reader.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
                        break;
                    }
                    if let Some((k, v)) = line.split_once(':')
                        && k.eq_ignore_ascii_case("content-length")
                    {
                        length = v.trim().parse().unwrap();
                    }
                }
                let mut body = vec![0; length];
                reader.read_exact(&mut body).unwrap();
                let body: Value = serde_json::from_slice(&body).unwrap();
                all.lock().unwrap().push(body.clone());
                let status = if n < fail_first {
                    "503 Service Unavailable"
                } else {
                    ok.lock().unwrap().push(body);
                    "200 OK"
                };
                let _ = write!(
                    stream,
                    "HTTP/1.1 {status}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
                );
            }
        });
        Hook {
            url,
            accepted,
            received,
        }
    }
}
