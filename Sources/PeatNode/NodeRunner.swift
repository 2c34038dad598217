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
import Logging
import PeatIdentity
import Metrics
import PeatBroker
import PeatStorage
import Prometheus
import Synchronization
import PeatTransport
import ServiceLifecycle
import UnixSignals

/// Starts the node's services from a parsed configuration and runs them until a shutdown signal.
///
/// Identity, configuration and the data directory are established here. The sync transport,
/// discovery, document store and broker are composed in by their own modules as they land;
/// until then the node says so in its start-up log instead of pretending to serve them.
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

        let transport: TLSSyncTransport
        do {
            transport = try TLSSyncTransport(
                keypair: keypair, formationKey: identity.secret.formationKey(),
                configuration: .init(host: configuration.bindHost, port: configuration.syncPort),
                logger: Logger(label: "peat.transport"))
        } catch {
            logger.critical("Cannot create the sync transport", metadata: ["reason": "\(error)"])
            return 1
        }
        logger.notice(
            "This build serves the broker, discovers peers, authenticates formation peers on the sync port and keeps a document store, but does not dial discovered peers or sync documents yet")

        let peers = InboundPeerHolder(transport: transport, logger: logger)
        let discovery = NodeDiscovery(configuration: configuration, deviceID: keypair.deviceID.hex, environment: environment, logger: logger)
        let registry = PrometheusCollectorRegistry()
        MetricsSystem.bootstrap(PrometheusMetricsFactory(registry: registry))
        let brokerState = NodeBrokerState(
            nodeID: identity.nodeID, deviceID: keypair.deviceID.hex, discovery: discovery, store: store, transport: transport)
        let broker = Broker(
            state: brokerState,
            configuration: .init(host: configuration.bindHost, port: configuration.brokerPort),
            registry: registry,
            logger: Logger(label: "peat.broker")
        ).makeApplication { host, port in
            brokerState.brokerListening.withLock { $0 = true }
            Logger(label: "peat.broker").info("Broker listening address=\(PeerAddress(host: host, port: port))")
        }
        // Services shut down in reverse order: the broker stops taking requests first, then the
        // transport closes every connection, then the holder of those connections ends.
        let group = ServiceGroup(configuration: .init(services: [peers, discovery, transport, broker], logger: logger))
        enum Outcome: Sendable { case servicesEnded(failed: Bool), signalled, listening, listenFailed }
        let status: Int32 = await withTaskGroup(of: Outcome.self) { tasks in
            tasks.addTask {
                do {
                    try await group.run()
                    return .servicesEnded(failed: false)
                } catch {
                    logger.critical("Node services failed", metadata: ["reason": "\(error)"])
                    if !(error is TransportError), !brokerState.brokerListening.withLock({ $0 }) {
                        // Not the transport (its failures are TransportErrors, reported by the
                        // listen task) and before the broker listened: the broker's bind failed.
                        _ = PeatMeshNode.refuse(ConfigurationError(
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
                    _ = try await transport.listeningAddress()
                    brokerState.transportListening.withLock { $0 = true }
                    return .listening
                } catch {
                    let reason = (error as? TransportError)?.cause.map { "\($0)" } ?? "\(error)"
                    _ = PeatMeshNode.refuse(ConfigurationError(
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

/// Keeps authenticated inbound sync connections open until the transport closes them; the sync
/// coordinator takes its place when the mesh lands.
struct InboundPeerHolder: Service {
    let transport: TLSSyncTransport
    let logger: Logger

    func run() async throws {
        await withDiscardingTaskGroup { connections in
            for await connection in transport.inboundConnections {
                logger.debug(
                    "Authenticated inbound sync connection",
                    metadata: ["peer.device_id": "\(connection.peer.deviceID)", "peer.address": "\(connection.remoteAddress)"])
                connections.addTask {
                    _ = try? await connection.withFrames { frames, _ in
                        for try await _ in frames {}
                    }
                }
            }
        }
        // The stream ends when the transport stops, which it does first during a graceful
        // shutdown; returning before this service is asked to stop would count as a failure.
        try? await gracefulShutdown()
    }
}
