import Metrics
import Prometheus
import Synchronization

/// The broker's metrics, recorded through swift-metrics into its Prometheus registry.
/// Labels are bounded: route templates, methods, status classes — never IDs.
final class BrokerMetrics: Sendable {
    let factory: PrometheusMetricsFactory
    /// Metric handles by label set: creating one goes through the registry's lock and lookup,
    /// too slow for every request.
    private let counters = Mutex<[String: Metrics.Counter]>([:])
    private let timers = Mutex<[String: Metrics.Timer]>([:])

    init(factory: PrometheusMetricsFactory) {
        self.factory = factory
    }

    func request(route: String, method: String, status: Int, seconds: Double) {
        let counterKey = "\(route) \(method) \(status)"
        let counter = counters.withLock { counters in
            if let counter = counters[counterKey] { return counter }
            let counter = Metrics.Counter(
                label: "peat_http_requests_total",
                dimensions: [("route", route), ("method", method), ("status", String(status))],
                factory: factory)
            counters[counterKey] = counter
            return counter
        }
        counter.increment()
        let timer = timers.withLock { timers in
            if let timer = timers[route] { return timer }
            let timer = Metrics.Timer(label: "peat_http_request_duration_seconds", dimensions: [("route", route)], factory: factory)
            timers[route] = timer
            return timer
        }
        timer.recordNanoseconds(Int64(seconds * 1e9))
    }

    func syncEvent(action: String, local: Bool) {
        Metrics.Counter(
            label: "peat_sync_events_total",
            dimensions: [("action", action == "delete" ? "delete" : "put"), ("origin", local ? "local" : "remote")],
            factory: factory
        ).increment()
    }

    func snapshot(peersKnown: Int, peersConnected: Int, webSocketClients: Int, store: BrokerStoreSize?) {
        if let store {
            Metrics.Gauge(label: "peat_store_documents", factory: factory).record(store.documents)
            Metrics.Gauge(label: "peat_store_value_bytes", factory: factory).record(store.bytes)
        }
        Metrics.Gauge(label: "peat_peers_known", factory: factory).record(peersKnown)
        Metrics.Gauge(label: "peat_peers_connected", factory: factory).record(peersConnected)
        Metrics.Gauge(label: "peat_websocket_clients", factory: factory).record(webSocketClients)
    }
}
