import Logging
import Metrics
import PeatBroker
import PeatIdentity
import PeatMesh
import PeatStorage
import PeatTransport
import Prometheus
import ServiceLifecycle
import Synchronization
import UnixSignals

#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Starts the node's services from a parsed configuration and runs them until a shutdown signal.
///
/// Identity, configuration and the data directory are established here; then the document store,
/// the mesh (transport, discovery, peer connector, sync, compaction) and the broker run as one
/// service group until SIGTERM or SIGINT.
struct NodeRunner {
    let configuration: NodeConfiguration
    /// The process environment (discovery reads the Kubernetes service variables and `KUBECONFIG`).
    let environment: Environment

    /// Runs the node; returns the process exit status.
    func run() async -> Int32 {
        // Trap SIGTERM/SIGINT first, so a signal during start-up still shuts down gracefully.
        let signals = await UnixSignalsSequence(trapping: .sigterm, .sigint)
        let format = configuration.logFormat
        let level = configuration.logLevel
        LoggingSystem.bootstrap { label in NodeLogHandler(label: label, format: format, level: level) }
        let logger = Logger(label: "peat.node")

        let identity = configuration.identity
        let keypair = identity.deviceKeypair()
        logger.info(
            "Starting peat-mesh-node",
            metadata: [
                "version": "\(PeatMeshNode.version)",
                "node_id": "\(identity.nodeID)",
                "discovery": "\(configuration.discovery.rawValue)",
                "bind_host": "\(configuration.bindHost)",
                "broker_port": "\(configuration.brokerPort)",
                "sync_port": "\(configuration.syncPort)",
                "data_dir": "\(configuration.dataDirectory)",
                "broker_auth": "\(configuration.brokerToken.summary)",
                "relays": "[\(configuration.relayURLs.map(\.description).joined(separator: ", "))]",
            ])

        do {
            try Self.prepareDataDirectory(configuration.dataDirectory)
        } catch {
            logger.critical("Cannot use the data directory", metadata: ["data_dir": "\(configuration.dataDirectory)", "reason": "\(error)"])
            _ = PeatMeshNode.refuse(ConfigurationError(variable: "PEAT_DATA_DIR", message: "\(error)"))
            return PeatMeshNode.configurationExitCode
        }

        logger.info("Node identity ready node_id=\(identity.nodeID) device_id=\(keypair.deviceID)")

        let storePath = configuration.dataDirectory + "/automerge"
        let store: LMDBDocumentStore
        do {
            store = try LMDBDocumentStore(path: storePath)
            let statistics = try store.statistics()
            logger.info(
                "Document store opened",
                metadata: ["path": "\(storePath)", "documents": "\(statistics.liveDocuments)", "actor_id": "\(Hex.encode(store.actorID))"])
        } catch {
            _ = PeatMeshNode.refuse(ConfigurationError(variable: "PEAT_DATA_DIR", message: "cannot open the document store at \(storePath): \(error.message)"))
            return 1
        }
        // Every acknowledged write is already durable; closing releases the environment cleanly.
        defer { store.close() }

        let discovery = NodeDiscovery(configuration: configuration, deviceID: keypair.deviceID.hex, environment: environment)
        if let reason = discovery.unavailableReason {
            logger.warning("Discovery unavailable", metadata: ["reason": "\(reason)"])
        }
        let registry = PrometheusCollectorRegistry()
        let metrics = PrometheusMetricsFactory(registry: registry)
        MetricsSystem.bootstrap(metrics)
        var transport = TLSSyncTransport.Configuration()
        transport.handshakeLimits.maximumPending = configuration.syncMaximumHandshakes
        transport.handshakeLimits.maximumPendingPerAddress = configuration.syncMaximumHandshakesPerAddress
        transport.relays = configuration.relayURLs
        transport.congestionControl = configuration.tcpCongestion
        transport.keepaliveInterval = .seconds(configuration.syncKeepaliveSeconds)
        transport.idleTimeout = .seconds(configuration.syncIdleTimeoutSeconds)
        transport.relayAccessKey = RelayAccessKey(secret: identity.secret)
        let mesh: PeatMesh
        do {
            var builder = PeatMeshBuilder(secret: identity.secret, context: identity.context)
                .nodeID(identity.nodeID)
                .store(store)
                .listen(host: configuration.bindHost, port: configuration.syncPort)
                .transportConfiguration(transport)
                .logger(Logger(label: "peat.mesh"))
                .transportLogger(Logger(label: "peat.mesh.transport"))
                .metricsFactory(metrics)
                .configure { mesh in
                    mesh.syncModes = SyncModeRegistry(overrides: configuration.syncModeOverrides)
                    mesh.syncPriorities = SyncPriorityRegistry(overrides: configuration.syncPriorityOverrides)
                    mesh.peerRateLimit = configuration.peerRateLimit
                    mesh.antiEntropyInterval = .seconds(configuration.antiEntropyIntervalSeconds)
                    mesh.compaction = configuration.compaction
                    // Pods are named by their identity context unless PEAT_IDENTITY_CONTEXT says otherwise:
                    // then a peer found by Kubernetes must hold the key its pod name derives.
                    mesh.identityCheckedSources = identity.context == identity.nodeID ? ["kubernetes"] : []
                }
            if let strategy = discovery.strategy { builder = builder.discovery(strategy) }
            mesh = try builder.build()
        } catch {
            logger.critical("Cannot create the mesh", metadata: ["reason": "\(error)"])
            return 1
        }
        for (collection, mode) in configuration.syncModeOverrides.sorted(by: { $0.key < $1.key }) {
            logger.info("Sync mode override applied collection=\(collection) mode=\(mode)")
        }
        for (collection, priority) in configuration.syncPriorityOverrides.sorted(by: { $0.key < $1.key }) {
            logger.info("Sync priority override applied collection=\(collection) priority=\(priority)")
        }
        if let rate = configuration.peerRateLimit { logger.info("Per-peer send budget bytes_per_second=\(rate)") }
        if let name = configuration.tcpCongestion { logger.info("TCP congestion control for sync connections algorithm=\(name)") }

        var brokerConfiguration = Broker.Configuration(host: configuration.bindHost, port: configuration.brokerPort)
        brokerConfiguration.maximumConnections = configuration.brokerMaximumConnections
        brokerConfiguration.maximumConnectionsPerAddress = configuration.brokerMaximumConnectionsPerAddress
        do {
            switch configuration.brokerToken {
            case .none: break
            case .value(let token): brokerConfiguration.token = try BrokerToken(token)
            case .file(let path): brokerConfiguration.token = try BrokerToken(file: path, logger: Logger(label: "peat.broker"))
            }
        } catch {
            // Checked when the configuration was read; the file may have gone since.
            _ = PeatMeshNode.refuse(ConfigurationError(variable: "PEAT_BROKER_TOKEN_FILE", message: error.message))
            return PeatMeshNode.configurationExitCode
        }
        let brokerState = NodeBrokerState(
            nodeID: identity.nodeID, deviceID: keypair.deviceID.hex, discovery: discovery, store: store, mesh: mesh)
        let broker = Broker(
            state: brokerState,
            configuration: brokerConfiguration,
            registry: registry,
            logger: Logger(label: "peat.broker")
        ).makeApplication { host, port in
            brokerState.brokerListening.withLock { $0 = true }
            Logger(label: "peat.broker").info("Broker listening address=\(PeerAddress(host: host, port: port))")
        }
        // Services shut down in reverse order: the broker stops taking requests (finishing those in
        // flight) first, then the mesh closes its peers and saves their sync state.
        let group = ServiceGroup(configuration: .init(services: [mesh, broker], logger: logger))
        enum Outcome: Sendable {
            case servicesEnded(failed: Bool)
            case signalled, listening, listenFailed
        }
        let status: Int32 = await withTaskGroup(of: Outcome.self) { tasks in
            tasks.addTask {
                do {
                    try await group.run()
                    return .servicesEnded(failed: false)
                } catch {
                    logger.critical("Node services failed", metadata: ["reason": "\(error)"])
                    if !(error is TransportError), !(error is MeshError), !brokerState.brokerListening.withLock({ $0 }) {
                        // Not the transport (its failures are TransportErrors, reported by the
                        // listen task) and before the broker listened: the broker's bind failed.
                        _ = PeatMeshNode.refuse(
                            ConfigurationError(
                                variable: "PEAT_BROKER_PORT",
                                message: "cannot listen on \(configuration.bindHost):\(configuration.brokerPort): \(error)"))
                    }
                    return .servicesEnded(failed: true)
                }
            }
            tasks.addTask {
                for await signal in signals {
                    logger.info("Received \(signal)")
                    await group.triggerGracefulShutdown()
                    break
                }
                return .signalled
            }
            tasks.addTask {
                do {
                    try await mesh.waitUntilListening()
                    return .listening
                } catch {
                    let reason = (error as? TransportError)?.cause.map { "\($0)" } ?? "\(error)"
                    _ = PeatMeshNode.refuse(
                        ConfigurationError(
                            variable: "PEAT_SYNC_PORT",
                            message: "cannot listen on \(configuration.bindHost):\(configuration.syncPort): \(reason)"))
                    await group.triggerGracefulShutdown()
                    return .listenFailed
                }
            }
            // The node runs until its services end (after a signal or a failure).
            var status: Int32 = 0
            while let outcome = await tasks.next() {
                switch outcome {
                case .servicesEnded(let failed):
                    if failed { status = 1 }
                    tasks.cancelAll()
                    return status
                case .listenFailed:
                    status = 1
                case .signalled, .listening:
                    break
                }
            }
            return status
        }
        logger.info("peat-mesh-node stopped")
        return status
    }

    /// Creates the data directory (and parents) if needed and checks that it is writable.
    static func prepareDataDirectory(_ path: String) throws(ConfigurationError) {
        var info = stat()
        if stat(path, &info) == 0 {
            guard (info.st_mode & S_IFMT) == S_IFDIR else {
                throw ConfigurationError(variable: "PEAT_DATA_DIR", message: "\(ConfigurationError.quote(path)) exists and is not a directory")
            }
        } else {
            do {
                try FileManager.default.createDirectory(
                    atPath: path, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
            } catch {
                throw ConfigurationError(variable: "PEAT_DATA_DIR", message: "cannot create \(ConfigurationError.quote(path)): \(error)")
            }
        }
        guard access(path, W_OK | X_OK) == 0 else {
            throw ConfigurationError(variable: "PEAT_DATA_DIR", message: "\(ConfigurationError.quote(path)) is not writable by this user")
        }
    }
}
