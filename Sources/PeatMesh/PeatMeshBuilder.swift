public import Logging
public import Metrics
public import PeatCRDT
public import PeatDiscovery
public import PeatIdentity
public import PeatStorage
public import PeatTransport
public import ServiceLifecycle

/// Assembles a `PeatMesh`: identity from the formation secret and a context, a store, a transport,
/// a discovery strategy and the configuration. Everything but the secret has a working default: an
/// in-memory store, TLS on `0.0.0.0:11204`, no discovery (peers can still dial in).
///
///     let mesh = try PeatMeshBuilder(secret: secret, context: "edge-7")
///         .store(try LMDBDocumentStore(path: "/data/automerge"))
///         .discovery(StaticDiscovery(peers: peers))
///         .syncMode(.latestOnly, for: "positions")
///         .build()
public struct PeatMeshBuilder {
    /// Makes a transport for the mesh's device key and formation key.
    public typealias TransportFactory = (_ keypair: DeviceKeypair, _ formationKey: FormationKey) throws -> any SyncTransport & Service

    private let secret: FormationSecret
    private let context: String
    private var configuration: PeatMesh.Configuration
    private var store: (any DocumentStore)?
    private var discovery: (any DiscoveryStrategy)?
    private var listenHost = "0.0.0.0"
    private var listenPort = 11204
    private var transportConfiguration: TLSSyncTransport.Configuration?
    private var transportFactory: TransportFactory?
    private var logger = Logger(label: "peat.mesh", factory: { _ in SwiftLogNoOpLogHandler() })
    private var transportLogger: Logger?
    private var metricsFactory: (any MetricsFactory)?
    private var clock: any Clock<Duration> = ContinuousClock()

    /// Starts a builder for the device whose key derives from `secret` and `context` (DESIGN §3);
    /// the node ID is `context` unless `nodeID(_:)` sets another.
    public init(secret: FormationSecret, context: String) {
        self.secret = secret
        self.context = context
        configuration = PeatMesh.Configuration(nodeID: context)
    }

    /// The node ID peers and logs show (default: the context).
    public func nodeID(_ nodeID: String) -> Self { with { $0.configuration.nodeID = nodeID } }

    /// Adjusts the configuration (intervals, compaction, cache size, ...).
    public func configure(_ body: (inout PeatMesh.Configuration) -> Void) -> Self { with { body(&$0.configuration) } }

    /// Sets one collection's sync mode.
    public func syncMode(_ mode: SyncMode, for collection: String) -> Self { with { $0.configuration.syncModes.set(collection, mode) } }

    /// Sets one collection's sync priority.
    public func syncPriority(_ priority: SyncPriority, for collection: String) -> Self {
        with { $0.configuration.syncPriorities.set(collection, priority) }
    }

    /// The document store (default: a new `InMemoryDocumentStore`).
    public func store(_ store: any DocumentStore) -> Self { with { $0.store = store } }

    /// The discovery strategy the mesh runs and dials peers from (default: none).
    public func discovery(_ discovery: any DiscoveryStrategy) -> Self { with { $0.discovery = discovery } }

    /// Where the default TLS transport listens (default `0.0.0.0:11204`; port 0 picks a free port).
    public func listen(host: String, port: Int) -> Self {
        with {
            $0.listenHost = host
            $0.listenPort = port
        }
    }

    /// Limits and timeouts of the default TLS transport (its host and port come from `listen`).
    public func transportConfiguration(_ configuration: TLSSyncTransport.Configuration) -> Self {
        with { $0.transportConfiguration = configuration }
    }

    /// Another transport (for example `InMemorySyncTransport` in tests).
    public func transport(_ factory: @escaping TransportFactory) -> Self { with { $0.transportFactory = factory } }

    /// Where the mesh logs (and the default transport, with `component=transport`, unless
    /// `transportLogger(_:)` says otherwise); by default nowhere.
    public func logger(_ logger: Logger) -> Self { with { $0.logger = logger } }

    /// Where the default TLS transport logs (connections refused, listening address).
    public func transportLogger(_ logger: Logger) -> Self { with { $0.transportLogger = logger } }

    /// Where the mesh's (and the default transport's) metrics go (default: `MetricsSystem.factory`,
    /// whatever the executable bootstrapped).
    public func metricsFactory(_ factory: any MetricsFactory) -> Self { with { $0.metricsFactory = factory } }

    /// The clock the mesh's timers run on: anti-entropy, push delay, redial backoff, maintenance
    /// (default: `ContinuousClock`; tests drive their own).
    public func clock(_ clock: any Clock<Duration>) -> Self { with { $0.clock = clock } }

    /// Builds the mesh; run it to start syncing.
    /// - Throws: `MeshError` with `.invalidConfiguration` when the transport cannot be created.
    public func build() throws(MeshError) -> PeatMesh {
        let keypair = secret.deviceKeypair(context: context)
        let formationKey = secret.formationKey()
        let metrics = metricsFactory ?? MetricsSystem.factory
        let transport: any SyncTransport & Service
        var waitUntilListening: (@Sendable () async throws -> Void)?
        do {
            if let transportFactory {
                transport = try transportFactory(keypair, formationKey)
            } else {
                var tls = transportConfiguration ?? TLSSyncTransport.Configuration()
                tls.host = listenHost
                tls.port = listenPort
                var transportLogger = transportLogger ?? logger
                if self.transportLogger == nil { transportLogger[metadataKey: "component"] = "transport" }
                let made = try TLSSyncTransport(
                    keypair: keypair, formationKey: formationKey, configuration: tls, logger: transportLogger, metricsFactory: metrics)
                transport = made
                waitUntilListening = { _ = try await made.listeningAddress() }
            }
        } catch {
            throw MeshError(code: .invalidConfiguration, message: "cannot create the sync transport: \(error)", cause: error)
        }
        let secret = secret
        let parts = PeatMesh.Parts(
            store: store ?? InMemoryDocumentStore(), transport: transport, discovery: discovery, waitUntilListening: waitUntilListening,
            deriveDevice: { secret.deviceKeypair(context: $0).deviceID }, clock: clock, traffic: MeshTraffic(factory: metrics),
            logger: logger)
        return try PeatMesh(configuration: configuration, deviceID: keypair.deviceID, parts: parts)
    }

    private func with(_ change: (inout Self) -> Void) -> Self {
        var copy = self
        change(&copy)
        return copy
    }
}
