public import Hummingbird
import HummingbirdCore
public import Logging
import NIOCore
public import Prometheus

/// The probe endpoints of a process that is not a node (the relay): `GET /api/v1/health`,
/// `/api/v1/ready` and `/metrics`, with the node's JSON shapes, and nothing else (404). Open, like
/// the node's probes; with the broker's connection limits.
public struct HealthServer: Sendable {
    public var host: String
    public var port: Int
    /// Shown as `node_id` in health and readiness.
    public var name: String
    /// Open connections in total and from one address.
    public var maximumConnections = 512
    public var maximumConnectionsPerAddress = 64
    let registry: PrometheusCollectorRegistry
    let checks: @Sendable () async -> [BrokerReadiness.Check]
    let logger: Logger

    /// - Parameters:
    ///   - checks: The readiness checks; ready when all pass.
    public init(
        host: String, port: Int, name: String, registry: PrometheusCollectorRegistry, logger: Logger,
        checks: @escaping @Sendable () async -> [BrokerReadiness.Check]
    ) {
        self.host = host
        self.port = port
        self.name = name
        self.registry = registry
        self.logger = logger
        self.checks = checks
    }

    public func makeApplication(onListening: @escaping @Sendable (_ host: String, _ port: Int) async -> Void = { _, _ in }) -> some ApplicationProtocol {
        let router = Router()
        let name = name
        let checks = checks
        let registry = registry
        router.get("/api/v1/health") { _, _ in healthResponse(nodeID: name) }
        router.get("/api/v1/ready") { _, _ in
            let results = await checks()
            let readiness = BrokerReadiness(ready: results.allSatisfy(\.ready), nodeID: name, checks: results)
            return jsonResponse(readiness, status: readiness.ready ? .ok : .serviceUnavailable)
        }
        router.get("/metrics") { _, _ in metricsResponse(registry) }
        let connections = ConnectionsByAddress(limit: maximumConnectionsPerAddress)
        let server = HTTPServerBuilder { responder in
            LimitedChildChannel(
                base: HTTP1Channel(responder: responder, configuration: .init(idleTimeout: .seconds(60))),
                connections: connections, firstRequestTimeout: .seconds(10), token: nil)
        }
        return Application(
            router: router,
            server: server,
            configuration: .init(
                address: .hostname(host, port: port), serverName: "peat-mesh-node",
                availableConnectionsDelegate: MaximumAvailableConnections(maximumConnections)),
            onServerRunning: { channel in
                let address = channel.localAddress
                await onListening(address?.ipAddress ?? "", address?.port ?? 0)
            },
            logger: logger)
    }
}
