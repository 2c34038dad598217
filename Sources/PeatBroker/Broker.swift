public import Foundation
public import Hummingbird
import HummingbirdCore
import HummingbirdWebSocket
public import Logging
import Metrics
import NIOCore
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
        /// When set, every route but `GET /api/v1/health`, `/api/v1/ready` and `/metrics` needs
        /// `Authorization: Bearer <token>`. Without it the API is open (and `makeApplication` logs
        /// one warning when `host` is not a loopback address).
        public var token: BrokerToken?
        /// Open connections in total; past it the broker accepts no more until one closes.
        public var maximumConnections = 512
        /// Open connections from one IP address; more are closed at once.
        public var maximumConnectionsPerAddress = 64
        /// A connection must deliver its first request head within this time.
        public var firstRequestTimeout: Duration = .seconds(10)
        /// A keep-alive connection idle between requests for this long is closed.
        public var idleTimeout: Duration = .seconds(60)
        /// A WebSocket is pinged this often (and closed when the client stops answering).
        public var webSocketPingInterval: Duration = .seconds(30)

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
        if let token = configuration.token {
            router.add(middleware: BearerAuthentication(token: token))
        } else if !Self.isLoopback(configuration.host) {
            logger.warning(
                "Broker API is unauthenticated: no PEAT_BROKER_TOKEN or PEAT_BROKER_TOKEN_FILE, listening on a non-loopback address",
                metadata: ["address": "\(configuration.host):\(configuration.port)"])
        }
        addRoutes(to: router)
        addWebSocket(to: router)
        let webSocketResponder = router.buildResponder()
        let channel = HTTP1WebSocketUpgradeChannel.Configuration(
            http1: .init(idleTimeout: TimeAmount(configuration.idleTimeout)),
            ws: .init(autoPing: .enabled(timePeriod: configuration.webSocketPingInterval)))
        let connections = ConnectionsByAddress(limit: configuration.maximumConnectionsPerAddress)
        let firstRequestTimeout = TimeAmount(configuration.firstRequestTimeout)
        let token = configuration.token
        let server = HTTPServerBuilder { responder in
            LimitedChildChannel(
                base: HTTP1WebSocketUpgradeChannel(responder: responder, webSocketResponder: webSocketResponder, configuration: channel),
                connections: connections, firstRequestTimeout: firstRequestTimeout, token: token)
        }
        return Application(
            router: router,
            server: server,
            configuration: .init(
                address: .hostname(configuration.host, port: configuration.port), serverName: "peat-mesh-node",
                availableConnectionsDelegate: MaximumAvailableConnections(configuration.maximumConnections)),
            services: [EventPump(state: state, hub: hub, metrics: metrics)],
            onServerRunning: { channel in
                let address = channel.localAddress
                await onListening(address?.ipAddress ?? "", address?.port ?? 0)
            },
            logger: logger)
    }

    /// The methods `routes` serve on `path` (template segments `{name}` match any one segment),
    /// in the order of `routes`; empty for a path the broker does not have.
    static func allowedMethods(for path: String) -> [HTTPRequest.Method] {
        let segments = path.split(separator: "/", omittingEmptySubsequences: false)
        return routes.filter { route in
            let template = route.path.split(separator: "/", omittingEmptySubsequences: false)
            return template.count == segments.count
                && zip(template, segments).allSatisfy { pattern, segment in
                    pattern.hasPrefix("{") ? !segment.isEmpty : pattern == segment
                }
        }.map(\.method)
    }

    /// Whether `host` is a loopback address (127.0.0.0/8, ::1, localhost).
    static func isLoopback(_ host: String) -> Bool {
        host == "localhost" || host == "::1" || host.hasPrefix("127.") || host == "[::1]"
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
