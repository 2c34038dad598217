import Metrics
import Prometheus

/// The broker's metrics, recorded through swift-metrics into its Prometheus registry.
/// Labels are bounded: route templates, methods, status classes — never IDs.
struct BrokerMetrics: Sendable {
    let factory: PrometheusMetricsFactory

    init(factory: PrometheusMetricsFactory) {
        self.factory = factory
    }

    func request(route: String, method: String, status: Int, seconds: Double) {
        Counter(
            label: "peat_http_requests_total",
            dimensions: [("route", route), ("method", method), ("status", String(status))],
            factory: factory
        ).increment()
        Timer(label: "peat_http_request_duration_seconds", dimensions: [("route", route)], factory: factory)
            .recordNanoseconds(Int64(seconds * 1e9))
    }

    func syncEvent(action: String, local: Bool) {
        Counter(
            label: "peat_sync_events_total",
            dimensions: [("action", action == "delete" ? "delete" : "put"), ("origin", local ? "local" : "remote")],
            factory: factory
        ).increment()
    }

    func snapshot(peersKnown: Int, peersConnected: Int, webSocketClients: Int) {
        Gauge(label: "peat_peers_known", factory: factory).record(peersKnown)
        Gauge(label: "peat_peers_connected", factory: factory).record(peersConnected)
        Gauge(label: "peat_websocket_clients", factory: factory).record(webSocketClients)
    }
}
