//! What the layer's integration tests share.

use std::net::SocketAddr;

use axum::Router;

/// Serves `app` on a free loopback port (with each connection's address, for the
/// client-IP key); returns its base URL, without a trailing `/`.
pub async fn serve(app: Router) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        axum::serve(
            listener,
            app.into_make_service_with_connect_info::<SocketAddr>(),
        )
        .await
        .unwrap();
    });
    format!("http://{addr}")
}
