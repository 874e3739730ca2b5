//! `lease` on a `[policies]` entry over real HTTP: two `tidegate serve` instances share
//! one hot key through one Redis, answering from slices; together they admit at most
//! the limit, and the slices they hold are returned to Redis when they shut down.

mod support;

use redis_test_server::RedisServer;
use support::Running;
use tidegate_server::{Config, Server};

async fn start(redis: &RedisServer) -> Running {
    let toml = format!(
        "listen = \"127.0.0.1:0\"\n[store]\nurl = \"{}\"\ntimeout = \"2s\"\n[policies]\nhot = \"fixed_window:100/1h,lease=15\"\ntable = {{ algorithm = \"gcra\", limit = 50, window = \"1h\", lease = \"10%\" }}\n",
        redis.url()
    );
    Running::start("leases.toml", &toml).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_instances_share_a_leased_key_and_return_their_slices_on_shutdown() {
    let redis = RedisServer::start();
    let (a, b) = (start(&redis).await, start(&redis).await);
    // Interleaved: each instance takes slices of 15 from the shared 100.
    let mut admitted = 0;
    for _ in 0..3 {
        admitted += a.admitted("hot", "k", 7).await;
        admitted += b.admitted("hot", "k", 11).await;
    }
    assert_eq!(admitted, 54, "nothing is denied below the limit");
    let table = a.admitted("table", "k", 7).await + b.admitted("table", "k", 3).await;
    assert_eq!(table, 10);
    a.stopped().await;
    b.stopped().await;
    // Whatever the two held went back: a third instance can admit exactly the rest.
    let c = start(&redis).await;
    assert_eq!(c.admitted("hot", "k", 60).await, 100 - 54);
    assert_eq!(c.admitted("table", "k", 60).await, 50 - 10);
    c.stopped().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_refuses_a_lease_on_a_list_of_policies() {
    let redis = RedisServer::start();
    let toml = format!(
        "listen = \"127.0.0.1:0\"\n[store]\nurl = \"{}\"\n[policies]\nboth = \"fixed_window:100/1h,lease=10;gcra:10/1s\"\n",
        redis.url()
    );
    let config = Config::from_toml("leases.toml", &toml, [("", ""); 0]).unwrap();
    let e = Server::bind(config).await.unwrap_err();
    let source = std::error::Error::source(&e)
        .map(ToString::to_string)
        .unwrap_or_default();
    assert!(e.to_string().contains("policies.both"), "{e}");
    assert!(
        source.contains("`lease` applies to a key guarded by one policy"),
        "{source}"
    );
}
