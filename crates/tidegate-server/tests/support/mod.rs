//! A `tidegate serve` bound on a free port and run in the test's runtime, with a client
//! for its HTTP API.

use std::time::Duration;

use serde_json::json;
use tidegate_server::{Config, ServeError, Server, Stopped};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

/// A running server: its base URL, a client, and what stops it.
pub struct Running {
    pub base: String,
    pub client: reqwest::Client,
    stop: oneshot::Sender<()>,
    running: JoinHandle<Result<Stopped, ServeError>>,
}

impl Running {
    /// Binds and runs the configuration `toml` (named `name` in errors).
    pub async fn start(name: &str, toml: &str) -> Running {
        let config = Config::from_toml(name, toml, [("", ""); 0]).unwrap();
        let server = Server::bind(config).await.unwrap();
        let base = format!("http://{}", server.local_addrs().http);
        let (stop, stopped) = oneshot::channel::<()>();
        let running = tokio::spawn(server.run(async {
            let _ = stopped.await;
        }));
        Running {
            base,
            client: reqwest::Client::new(),
            stop,
            running,
        }
    }

    /// `n` checks of `key` on `policy` (each 200 or 429); how many were admitted.
    pub async fn admitted(&self, policy: &str, key: &str, n: usize) -> usize {
        let mut admitted = 0;
        for _ in 0..n {
            let status = self
                .client
                .post(format!("{}/v1/check", self.base))
                .header("content-type", "application/json")
                .body(json!({"policy": policy, "key": key}).to_string())
                .send()
                .await
                .unwrap()
                .status()
                .as_u16();
            assert!(status == 200 || status == 429, "{status}");
            admitted += usize::from(status == 200);
        }
        admitted
    }

    /// Stops the server and waits (at most 10 s) for a clean stop.
    pub async fn stopped(self) {
        self.stop.send(()).unwrap();
        tokio::time::timeout(Duration::from_secs(10), self.running)
            .await
            .expect("the server stops")
            .unwrap()
            .unwrap();
    }
}
