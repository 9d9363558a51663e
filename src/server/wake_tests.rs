//! Stopping the endpoint server: `unblock` wakes a `serve` blocked in accept, on the
//! loopback for a listener on all interfaces.

use super::*;

#[test]
fn a_listener_on_all_interfaces_is_woken_on_the_loopback() {
    let v4: SocketAddr = "0.0.0.0:8401".parse().unwrap();
    assert_eq!(
        wake_addrs(v4),
        ["127.0.0.1:8401".parse::<SocketAddr>().unwrap()]
    );
    let v6: SocketAddr = "[::]:8401".parse().unwrap();
    let want: Vec<SocketAddr> = vec![
        "[::1]:8401".parse().unwrap(),
        "127.0.0.1:8401".parse().unwrap(),
    ];
    assert_eq!(wake_addrs(v6), want);
    let scoped: SocketAddr = "[fe80::1%2]:8401".parse().unwrap();
    assert_eq!(wake_addrs(scoped), [scoped], "the scope is kept");
}

#[test]
fn unblock_ends_a_blocked_serve_at_once() {
    let server = bind("127.0.0.1:0").unwrap();
    let metrics = Arc::new(Metrics::new().unwrap());
    let state = State {
        metrics: metrics.clone(),
        health: Arc::new(Health::new(Arc::default())),
        streams: Arc::new(StreamRegistry::default()),
    };
    std::thread::scope(|s| {
        let served = s.spawn(|| serve(&server, &state));
        // Let it block in accept (with nothing to accept, it would block for ever).
        std::thread::sleep(Duration::from_millis(100));
        server.unblock();
        served.join().unwrap();
    });
}
