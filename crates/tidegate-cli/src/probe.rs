//! `tidegate probe URL`: one plain HTTP/1.1 `GET` within a bounded time, exit 0 on a
//! 2xx answer. It is the health check of the container image, which has no curl.

use std::io::{self, Read, Write};
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr, TcpStream, ToSocketAddrs};
use std::process::ExitCode;
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use anyhow::{Result, bail};
use clap::Args;
use tidegate_server::env;

/// Where a path alone goes without `TIDEGATE_LISTEN`: `tidegate serve`'s default.
const DEFAULT_LOCAL: &str = "127.0.0.1:8080";

/// Longest status line read before the answer is called not HTTP.
const MAX_STATUS_LINE: usize = 8 * 1024;

/// Arguments of `tidegate probe`.
#[derive(Debug, Args)]
#[command(after_help = "\
Exit status: 0 when the answer is 2xx; 1 when it is not, or when the server cannot be \
reached or does not answer within --timeout (the reason goes to standard error); 2 for a \
URL it cannot probe.

Examples:
  tidegate probe http://127.0.0.1:8080/readyz
  tidegate probe /healthz    # this machine's `tidegate serve`, at TIDEGATE_LISTEN \
(the container image's HEALTHCHECK)")]
pub struct ProbeArgs {
    /// The URL to GET: `http://HOST[:PORT]/PATH` (plain HTTP, port 80 by default), or a
    /// path alone (`/healthz`) for the `tidegate serve` of this machine: the address of
    /// `TIDEGATE_LISTEN` (an unspecified address such as `0.0.0.0` is probed on
    /// loopback), else 127.0.0.1:8080.
    url: String,

    /// Longest the whole probe may take: resolving the host, connecting, sending the
    /// request and reading the status line (e.g. `2s`, `500ms`).
    #[arg(long, default_value = "2s", value_parser = crate::queue::duration)]
    timeout: Duration,
}

/// Runs `tidegate probe`.
pub fn run(args: &ProbeArgs) -> Result<ExitCode> {
    let url = full_url(&args.url, std::env::var(env::LISTEN).ok().as_deref())?;
    let target = Target::parse(&url)?;
    match probe(target, args.timeout) {
        Ok(status) if status.is_success() => {
            println!("{url}: {status}");
            Ok(ExitCode::SUCCESS)
        }
        Ok(status) => {
            eprintln!("tidegate probe: {url} answered {status}, not a 2xx status");
            Ok(ExitCode::FAILURE)
        }
        Err(reason) => {
            eprintln!("tidegate probe: {url}: {reason}");
            Ok(ExitCode::FAILURE)
        }
    }
}

/// The URL to probe: `arg` itself, or for a path alone the local server at `listen`
/// (the value of `TIDEGATE_LISTEN`), an unspecified address replaced by loopback.
fn full_url(arg: &str, listen: Option<&str>) -> Result<String> {
    let arg = arg.trim();
    if !arg.starts_with('/') {
        return Ok(arg.to_string());
    }
    let Some(text) = listen.map(str::trim).filter(|t| !t.is_empty()) else {
        return Ok(format!("http://{DEFAULT_LOCAL}{arg}"));
    };
    let mut addr: SocketAddr = text.parse().map_err(|_| {
        anyhow::anyhow!(
            "{}=`{text}` is not an address like 0.0.0.0:8080 (needed to probe the path `{arg}`)",
            env::LISTEN
        )
    })?;
    if addr.ip().is_unspecified() {
        addr.set_ip(match addr {
            SocketAddr::V4(_) => Ipv4Addr::LOCALHOST.into(),
            SocketAddr::V6(_) => Ipv6Addr::LOCALHOST.into(),
        });
    }
    Ok(format!("http://{addr}{arg}"))
}

/// Where a probe goes: the parts of an `http://` URL.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Target {
    /// The host as written, brackets kept around an IPv6 address (for `Host:`).
    host: String,
    port: u16,
    /// The path and query, starting with `/`.
    path: String,
}

impl Target {
    /// Parses `http://HOST[:PORT][/PATH][?QUERY]`; the error says what is wrong.
    fn parse(url: &str) -> Result<Target> {
        let url = url.trim();
        let Some(scheme_end) = url.find("://") else {
            bail!("`{url}` is not a URL like http://127.0.0.1:8080/healthz");
        };
        let scheme = &url[..scheme_end];
        if scheme.eq_ignore_ascii_case("https") {
            bail!(
                "`{url}`: https is not supported, the probe speaks plain HTTP (probe the server's http:// address)"
            );
        }
        if !scheme.eq_ignore_ascii_case("http") {
            bail!("`{url}`: the scheme must be http, not `{scheme}`");
        }
        let rest = &url[scheme_end + 3..];
        let rest = rest.split('#').next().unwrap_or("");
        let authority_end = rest.find(['/', '?']).unwrap_or(rest.len());
        let (authority, path) = rest.split_at(authority_end);
        if authority.contains('@') {
            bail!("`{url}`: user names and passwords in the URL are not supported");
        }
        let (host, port) =
            split_host_port(authority).map_err(|reason| anyhow::anyhow!("`{url}`: {reason}"))?;
        let path = match path {
            "" => "/".to_string(),
            p if p.starts_with('?') => format!("/{p}"),
            p => p.to_string(),
        };
        if path.chars().any(|c| c.is_whitespace() || c.is_control()) {
            bail!("`{url}`: the path must not contain spaces or control characters");
        }
        Ok(Target {
            host: host.to_string(),
            port,
            path,
        })
    }

    /// The host without the brackets of an IPv6 address, for resolving.
    fn bare_host(&self) -> &str {
        self.host
            .strip_prefix('[')
            .and_then(|h| h.strip_suffix(']'))
            .unwrap_or(&self.host)
    }
}

/// `HOST[:PORT]` (or `[V6][:PORT]`) into the host as written and the port (80 if absent).
fn split_host_port(authority: &str) -> Result<(&str, u16), String> {
    let (host, port) = if authority.starts_with('[') {
        let close = authority
            .find(']')
            .ok_or("an IPv6 address must end with `]`")?;
        let (host, after) = authority.split_at(close + 1);
        match after.strip_prefix(':') {
            Some(port) => (host, Some(port)),
            None if after.is_empty() => (host, None),
            None => return Err(format!("unexpected `{after}` after the host")),
        }
    } else {
        match authority.rsplit_once(':') {
            Some((host, port)) => (host, Some(port)),
            None => (authority, None),
        }
    };
    if host.is_empty() || host == "[]" {
        return Err("the host is missing".into());
    }
    let port = match port {
        None => 80,
        Some(text) => match text.parse::<u16>() {
            Ok(p) if p > 0 => p,
            _ => {
                return Err(format!(
                    "the port must be a number from 1 to 65535, not `{text}`"
                ));
            }
        },
    };
    Ok((host, port))
}

/// The status line of an answer.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Status {
    code: u16,
    reason: String,
}

impl Status {
    fn is_success(&self) -> bool {
        (200..300).contains(&self.code)
    }
}

impl std::fmt::Display for Status {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.reason.is_empty() {
            write!(f, "{}", self.code)
        } else {
            write!(f, "{} {}", self.code, self.reason)
        }
    }
}

/// GETs `target` and reads the answer's status line, all within `timeout` (the work runs
/// on a thread so that no step, not even a slow name lookup, can outlast it).
fn probe(target: Target, timeout: Duration) -> Result<Status, String> {
    let (tx, rx) = mpsc::channel();
    let deadline = Instant::now() + timeout;
    thread::spawn(move || {
        let _ = tx.send(get_status(&target, deadline, timeout));
    });
    match rx.recv_timeout(timeout) {
        Ok(result) => result,
        Err(_) => Err(no_answer(timeout)),
    }
}

fn no_answer(timeout: Duration) -> String {
    format!("no answer within {} (--timeout)", humanize(timeout))
}

/// `2s`, `500ms`: the timeout as it is usually written.
fn humanize(d: Duration) -> String {
    if d.subsec_millis() == 0 && d.as_secs() > 0 {
        format!("{}s", d.as_secs())
    } else {
        format!("{}ms", d.as_millis())
    }
}

/// The time left before `deadline`, or the timeout error once it has passed.
fn left(deadline: Instant, timeout: Duration) -> Result<Duration, String> {
    let d = deadline.saturating_duration_since(Instant::now());
    if d.is_zero() {
        Err(no_answer(timeout))
    } else {
        Ok(d)
    }
}

/// The request and the status line, each step bounded by what is left before
/// `deadline` (`timeout` after the start, named in errors).
fn get_status(target: &Target, deadline: Instant, timeout: Duration) -> Result<Status, String> {
    let addrs: Vec<SocketAddr> = (target.bare_host(), target.port)
        .to_socket_addrs()
        .map_err(|e| format!("cannot resolve {}: {e}", target.host))?
        .collect();
    let mut last = None;
    let mut stream = None;
    for addr in &addrs {
        match TcpStream::connect_timeout(addr, left(deadline, timeout)?) {
            Ok(s) => {
                stream = Some(s);
                break;
            }
            Err(e) => last = Some((addr, e)),
        }
    }
    let mut stream = match (stream, last) {
        (Some(s), _) => s,
        (None, Some((addr, e))) if e.kind() == io::ErrorKind::TimedOut => {
            return Err(format!("cannot connect to {addr}: {}", no_answer(timeout)));
        }
        (None, Some((addr, e))) => return Err(format!("cannot connect to {addr}: {e}")),
        (None, None) => return Err(format!("{} resolves to no address", target.host)),
    };
    let request = format!(
        "GET {} HTTP/1.1\r\nHost: {}:{}\r\nUser-Agent: tidegate-probe\r\nAccept: */*\r\nConnection: close\r\n\r\n",
        target.path, target.host, target.port
    );
    stream
        .set_write_timeout(Some(left(deadline, timeout)?))
        .map_err(|e| e.to_string())?;
    stream
        .write_all(request.as_bytes())
        .map_err(|e| io_reason("sending the request", e, timeout))?;
    let mut line = Vec::new();
    let mut buf = [0u8; 512];
    loop {
        stream
            .set_read_timeout(Some(left(deadline, timeout)?))
            .map_err(|e| e.to_string())?;
        let n = stream
            .read(&mut buf)
            .map_err(|e| io_reason("reading the answer", e, timeout))?;
        if n == 0 {
            return Err(if line.is_empty() {
                "the server closed the connection without answering".into()
            } else {
                format!("the answer ended inside its status line: {}", escape(&line))
            });
        }
        line.extend_from_slice(&buf[..n]);
        if let Some(end) = line.windows(2).position(|w| w == b"\r\n") {
            return parse_status(&line[..end]);
        }
        if line.len() > MAX_STATUS_LINE {
            return Err(format!("the answer is not HTTP: {}", escape(&line)));
        }
    }
}

fn io_reason(step: &str, e: io::Error, timeout: Duration) -> String {
    match e.kind() {
        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut => no_answer(timeout),
        _ => format!("{step}: {e}"),
    }
}

/// `HTTP/1.1 200 OK` into its code and reason.
fn parse_status(line: &[u8]) -> Result<Status, String> {
    let text = std::str::from_utf8(line)
        .map_err(|_| format!("the answer is not HTTP: {}", escape(line)))?;
    let mut parts = text.splitn(3, ' ');
    let version = parts.next().unwrap_or("");
    let code = parts.next().and_then(|c| c.parse::<u16>().ok());
    match code {
        Some(code) if version.starts_with("HTTP/") && (100..1000).contains(&code) => Ok(Status {
            code,
            reason: parts.next().unwrap_or("").trim().to_string(),
        }),
        _ => Err(format!("the answer is not HTTP: {}", escape(line))),
    }
}

/// At most 80 bytes of `bytes`, control characters escaped, for an error message.
fn escape(bytes: &[u8]) -> String {
    let shown = &bytes[..bytes.len().min(80)];
    let mut text: String = String::from_utf8_lossy(shown).escape_debug().collect();
    if bytes.len() > shown.len() {
        text.push_str("...");
    }
    format!("\"{text}\"")
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::BufRead;
    use std::net::TcpListener;

    fn target(url: &str) -> Target {
        Target::parse(url).unwrap()
    }

    #[test]
    fn urls_are_split_into_host_port_and_path() {
        assert_eq!(
            target("http://127.0.0.1:8080/healthz"),
            Target {
                host: "127.0.0.1".into(),
                port: 8080,
                path: "/healthz".into()
            }
        );
        let t = target("HTTP://example.com");
        assert_eq!(
            (t.host.as_str(), t.port, t.path.as_str()),
            ("example.com", 80, "/")
        );
        let t = target("http://[::1]:9000/readyz?x=1#frag");
        assert_eq!(
            (t.host.as_str(), t.port, t.path.as_str()),
            ("[::1]", 9000, "/readyz?x=1")
        );
        assert_eq!(t.bare_host(), "::1");
        assert_eq!(target("http://h:1?q").path, "/?q");
    }

    #[test]
    fn a_path_alone_probes_the_local_server_at_its_listen_address() {
        let url = |arg, listen| full_url(arg, listen).unwrap();
        assert_eq!(url("/healthz", None), "http://127.0.0.1:8080/healthz");
        assert_eq!(url("/healthz", Some("")), "http://127.0.0.1:8080/healthz");
        assert_eq!(
            url("/healthz", Some("0.0.0.0:9001")),
            "http://127.0.0.1:9001/healthz"
        );
        assert_eq!(
            url("/readyz", Some("[::]:9002")),
            "http://[::1]:9002/readyz"
        );
        assert_eq!(
            url("/healthz", Some("10.1.2.3:80")),
            "http://10.1.2.3:80/healthz"
        );
        assert_eq!(url("http://h:1/x", Some("0.0.0.0:9")), "http://h:1/x");
        let e = full_url("/healthz", Some("8080")).unwrap_err().to_string();
        assert_eq!(
            e,
            "TIDEGATE_LISTEN=`8080` is not an address like 0.0.0.0:8080 (needed to probe the path `/healthz`)"
        );
    }

    #[test]
    fn bad_urls_are_refused_with_the_reason() {
        let cases = [
            ("127.0.0.1:8080/healthz", "is not a URL like"),
            ("https://h/healthz", "https is not supported"),
            ("ftp://h/", "the scheme must be http"),
            ("http:///healthz", "the host is missing"),
            ("http://h:0/", "from 1 to 65535, not `0`"),
            ("http://h:http/", "not `http`"),
            ("http://h:99999/", "not `99999`"),
            ("http://[::1/", "must end with `]`"),
            ("http://u:p@h/", "user names and passwords"),
            ("http://h/a b", "spaces or control characters"),
        ];
        for (url, expected) in cases {
            let e = Target::parse(url).unwrap_err().to_string();
            assert!(e.contains(expected), "{url}: {e}");
        }
    }

    /// A loopback server that answers each connection with `answer` once it has read the
    /// request head; returns its port and the request lines it read.
    fn answering(answer: &'static [u8]) -> (u16, mpsc::Receiver<String>) {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let (tx, rx) = mpsc::channel();
        thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(mut stream) = stream else { continue };
                let mut reader = io::BufReader::new(stream.try_clone().unwrap());
                let mut head = String::new();
                loop {
                    let mut line = String::new();
                    if reader.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
                        break;
                    }
                    head.push_str(&line);
                }
                let _ = tx.send(head);
                let _ = stream.write_all(answer);
            }
        });
        (port, rx)
    }

    fn local(port: u16, path: &str) -> Target {
        target(&format!("http://127.0.0.1:{port}{path}"))
    }

    #[test]
    fn a_2xx_answer_is_a_success_and_the_request_is_a_plain_get() {
        let (port, heads) = answering(b"HTTP/1.1 204 No Content\r\nContent-Length: 0\r\n\r\n");
        let status = probe(local(port, "/healthz?deep=1"), Duration::from_secs(10)).unwrap();
        assert_eq!(
            status,
            Status {
                code: 204,
                reason: "No Content".into()
            }
        );
        assert!(status.is_success());
        let head = heads.recv().unwrap();
        assert!(
            head.starts_with("GET /healthz?deep=1 HTTP/1.1\r\n"),
            "{head}"
        );
        assert!(
            head.contains(&format!("Host: 127.0.0.1:{port}\r\n")),
            "{head}"
        );
        assert!(head.contains("Connection: close\r\n"), "{head}");
    }

    #[test]
    fn a_non_2xx_answer_is_reported_with_its_status() {
        let (port, _) = answering(b"HTTP/1.1 503 Service Unavailable\r\n\r\n");
        let status = probe(local(port, "/readyz"), Duration::from_secs(10)).unwrap();
        assert!(!status.is_success());
        assert_eq!(status.to_string(), "503 Service Unavailable");
        let (port, _) = answering(b"HTTP/1.1 301 Moved Permanently\r\nLocation: /x\r\n\r\n");
        assert!(
            !probe(local(port, "/"), Duration::from_secs(10))
                .unwrap()
                .is_success()
        );
    }

    #[test]
    fn an_answer_that_is_not_http_is_an_error() {
        let (port, _) = answering(b"+PONG\r\n");
        let e = probe(local(port, "/"), Duration::from_secs(10)).unwrap_err();
        assert_eq!(e, "the answer is not HTTP: \"+PONG\"");
        let (port, _) = answering(b"");
        let e = probe(local(port, "/"), Duration::from_secs(10)).unwrap_err();
        assert_eq!(e, "the server closed the connection without answering");
    }

    #[test]
    fn a_refused_connection_is_an_error_naming_the_address() {
        let port = {
            let l = TcpListener::bind("127.0.0.1:0").unwrap();
            l.local_addr().unwrap().port()
        };
        let e = probe(local(port, "/healthz"), Duration::from_secs(10)).unwrap_err();
        assert!(
            e.starts_with(&format!("cannot connect to 127.0.0.1:{port}: "))
                && e.contains("refused"),
            "{e}"
        );
    }

    #[test]
    fn a_server_that_never_answers_times_out_within_the_bound() {
        // Accepts (the kernel's backlog does) but never reads or answers.
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let start = Instant::now();
        let e = probe(local(port, "/healthz"), Duration::from_millis(300)).unwrap_err();
        let took = start.elapsed();
        assert_eq!(e, "no answer within 300ms (--timeout)");
        assert!(took >= Duration::from_millis(300), "{took:?}");
        assert!(took < Duration::from_secs(5), "{took:?}");
        drop(listener);
    }

    #[test]
    fn status_lines_parse() {
        assert_eq!(
            parse_status(b"HTTP/1.0 200 OK").unwrap(),
            Status {
                code: 200,
                reason: "OK".into()
            }
        );
        assert_eq!(parse_status(b"HTTP/1.1 200").unwrap().to_string(), "200");
        assert!(parse_status(b"HTTP/1.1 abc OK").is_err());
        assert!(parse_status(b"SSH-2.0-OpenSSH").is_err());
        assert_eq!(humanize(Duration::from_secs(2)), "2s");
        assert_eq!(humanize(Duration::from_millis(1500)), "1500ms");
    }
}
