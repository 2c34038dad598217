import Metrics
import PeatIdentity

/// The transport's swift-metrics instruments. Labels are bounded: a rejection's reason is its
/// `TransportError.Code` and its direction `inbound` or `outbound`, never an address or a peer.
struct TransportMetrics: Sendable {
    let connected: Counter
    let disconnected: Counter
    let roundTripTime: Metrics.Timer
    private let factory: any MetricsFactory

    init(factory: any MetricsFactory) {
        self.factory = factory
        connected = Counter(label: "peat_transport_connections_total", factory: factory)
        disconnected = Counter(label: "peat_transport_disconnections_total", factory: factory)
        roundTripTime = Metrics.Timer(label: "peat_transport_rtt_seconds", factory: factory)
    }

    /// Counts an authenticated connection by path (`direct` or `relay`).
    func connected(path: ConnectionPath) {
        Counter(label: "peat_transport_sessions_total", dimensions: [("path", path.name)], factory: factory).increment()
    }

    /// The byte counters of one connection's path, as seen below its TLS (so relayed bytes count what
    /// the relay carries): `received`, `sent`.
    func bytes(path: ConnectionPath) -> (received: Counter, sent: Counter) {
        (
            Counter(label: "peat_transport_bytes_total", dimensions: [("path", path.name), ("direction", "received")], factory: factory),
            Counter(label: "peat_transport_bytes_total", dimensions: [("path", path.name), ("direction", "sent")], factory: factory)
        )
    }

    /// Counts a connection refused before or during authentication (`role`: this node's side of it).
    func rejected(_ code: TransportError.Code, role: MembershipRole) {
        let direction = role == .initiator ? "outbound" : "inbound"
        Counter(label: "peat_transport_rejections_total", dimensions: [("reason", code.description), ("direction", direction)], factory: factory)
            .increment()
    }
}
