public import Foundation
public import Hummingbird
import HummingbirdWebSocket
public import Logging
import Metrics
public import Prometheus
import ServiceLifecycle

/// The node's HTTP/WebSocket API (DESIGN §8) on Hummingbird 2, over a `BrokerState`.
///
/// `makeApplication()` returns a Hummingbird application that also runs the event pump feeding
/// WebSocket clients; run it as a swift-service-lifecycle service (or `try await app.run()`).
public struct Broker: Sendable {
    /// Broker settings with working defaults.
    public struct Configuration: Sendable {
        public var host: String
        public var port: Int
        /// Larger request bodies are answered with 413 before they are fully read.
        public var maximumBodySize = 1024 * 1024
        /// A call into the state that takes longer is cancelled and answered with 504.
        public var requestTimeout: Duration = .seconds(30)
        /// Events a WebSocket client may have unread before it is disconnected.
        public var webSocketBuffer = 256
        /// The default and the largest page size of a document listing.
        public var defaultPageSize = 100
        public var maximumPageSize = 1000

        public init(host: String = "0.0.0.0", port: Int = 8081) {
            self.host = host
            self.port = port
        }
    }

    /// Every HTTP route (method, path template), as documented in `openapi.json`.
    public static let routes: [(method: HTTPRequest.Method, path: String)] = [
        (.get, "/api/v1/health"),
        (.get, "/api/v1/ready"),
        (.get, "/api/v1/node"),
        (.get, "/api/v1/topology"),
        (.get, "/api/v1/peers"),
        (.get, "/api/v1/peers/{id}"),
        (.get, "/api/v1/documents/{collection}"),
        (.get, "/api/v1/documents/{collection}/{id}"),
        (.put, "/api/v1/documents/{collection}/{id}"),
        (.patch, "/api/v1/documents/{collection}/{id}"),
        (.delete, "/api/v1/documents/{collection}/{id}"),
        (.get, "/api/v1/openapi.json"),
        (.get, "/metrics"),
    ]

    let state: any BrokerState
    let configuration: Configuration
    let logger: Logger
    let registry: PrometheusCollectorRegistry
    let metrics: BrokerMetrics
    let hub: EventHub

    /// Creates a broker.
    /// - Parameters:
    ///   - state: What the broker serves.
    ///   - configuration: Address, limits, timeouts.
    ///   - registry: Where the broker's metrics live and what `/metrics` renders (the node passes
    ///     the registry it bootstrapped swift-metrics with, so every module's metrics appear).
    ///   - logger: Where the broker logs (by default nowhere).
    public init(
        state: any BrokerState,
        configuration: Configuration = Configuration(),
        registry: PrometheusCollectorRegistry = PrometheusCollectorRegistry(),
        logger: Logger = Logger(label: "peat.broker", factory: { _ in SwiftLogNoOpLogHandler() })
    ) {
        self.state = state
        self.configuration = configuration
        self.logger = logger
        self.registry = registry
        self.metrics = BrokerMetrics(factory: PrometheusMetricsFactory(registry: registry))
        self.hub = EventHub(bufferSize: configuration.webSocketBuffer)
    }

    /// The application: HTTP routes, the WebSocket endpoint and the event pump.
    /// - Parameter onListening: Called with the bound address once the server accepts connections.
    public func makeApplication(onListening: @escaping @Sendable (_ host: String, _ port: Int) async -> Void = { _, _ in }) -> some ApplicationProtocol {
        let router = Router(context: BasicWebSocketRequestContext.self)
        router.add(middleware: ErrorMiddleware(metrics: metrics, logger: logger))
        addRoutes(to: router)
        addWebSocket(to: router)
        return Application(
            router: router,
            server: .http1WebSocketUpgrade(webSocketRouter: router),
            configuration: .init(address: .hostname(configuration.host, port: configuration.port), serverName: "peat-mesh-node"),
            services: [EventPump(state: state, hub: hub, metrics: metrics)],
            onServerRunning: { channel in
                let address = channel.localAddress
                await onListening(address?.ipAddress ?? "", address?.port ?? 0)
            },
            logger: logger)
    }

    /// The OpenAPI 3 document of the HTTP routes (bundled `openapi.json`).
    public static let openAPIDocument: Data = {
        guard let url = Bundle.module.url(forResource: "openapi", withExtension: "json"),
            let data = try? Data(contentsOf: url)
        else { return Data("{}".utf8) }
        return data
    }()
}

/// Feeds the state's events to WebSocket clients and counts sync events.
struct EventPump: Service {
    let state: any BrokerState
    let hub: EventHub
    let metrics: BrokerMetrics

    func run() async throws {
        for await event in state.events().cancelOnGracefulShutdown() {
            if case .syncEvent(_, _, let action, let origin) = event {
                metrics.syncEvent(action: action, local: origin == "local")
            }
            hub.publish(event)
        }
        hub.finish()
    }
}
