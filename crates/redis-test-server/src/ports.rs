//! Free loopback ports, reserved per process so concurrent tests never share one.

use super::*;

/// Ports (client and cluster bus) owned by live servers of this process, so
/// concurrent tests in the same process never pick the same port.
pub(crate) static RESERVED_PORTS: Mutex<BTreeSet<u16>> = Mutex::new(BTreeSet::new());

pub(crate) fn bus_port(port: u16) -> u16 {
    port + CLUSTER_BUS_OFFSET
}

/// Ports a server on `port` occupies.
pub(crate) fn ports_of(port: u16, cluster: bool) -> Vec<u16> {
    if cluster {
        vec![port, bus_port(port)]
    } else {
        vec![port]
    }
}

pub(crate) fn can_bind(port: u16) -> bool {
    TcpListener::bind((Ipv4Addr::LOCALHOST, port)).is_ok()
}

/// Picks a free loopback port (and a free bus port for cluster nodes) and
/// reserves it for this process. The OS may still hand it to another process
/// before redis-server binds it: callers retry on "Address already in use".
pub(crate) fn reserve_port(cluster: bool) -> u16 {
    for _ in 0..1000 {
        let port = match TcpListener::bind((Ipv4Addr::LOCALHOST, 0)) {
            Ok(listener) => match listener.local_addr() {
                Ok(addr) => addr.port(),
                Err(_) => continue,
            },
            Err(e) => panic!("redis-test-server: cannot bind 127.0.0.1:0 to find a free port: {e}"),
        };
        if cluster && (port > u16::MAX - CLUSTER_BUS_OFFSET || !can_bind(bus_port(port))) {
            continue;
        }
        let wanted = ports_of(port, cluster);
        let mut reserved = lock(&RESERVED_PORTS);
        if wanted.iter().any(|p| reserved.contains(p)) {
            continue;
        }
        reserved.extend(wanted);
        return port;
    }
    panic!("redis-test-server: could not find a free loopback port after 1000 tries");
}

pub(crate) fn release_port(port: u16, cluster: bool) {
    let mut reserved = lock(&RESERVED_PORTS);
    for p in ports_of(port, cluster) {
        reserved.remove(&p);
    }
}
