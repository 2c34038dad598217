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
import ServiceLifecycle
import UnixSignals

/// Starts the node's services from a parsed configuration and runs them until a shutdown signal.
///
/// Identity, configuration and the data directory are established here. The sync transport,
/// discovery, document store and broker are composed in by their own modules as they land;
/// until then the node says so in its start-up log instead of pretending to serve them.
struct NodeRunner {
    let configuration: NodeConfiguration

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
        logger.notice(
            "This build establishes identity and configuration only; sync transport, discovery, document store and broker are not part of it yet")

        let node = IdleNodeService()
        let group = ServiceGroup(configuration: .init(services: [node], logger: logger))
        await withTaskGroup(of: Void.self) { tasks in
            tasks.addTask {
                do {
                    try await group.run()
                } catch {
                    logger.error("Node services failed", metadata: ["reason": "\(error)"])
                }
            }
            tasks.addTask {
                for await signal in signals {
                    logger.info("Received \(signal)")
                    await group.triggerGracefulShutdown()
                    break
                }
            }
            await tasks.next()
            tasks.cancelAll()
        }
        logger.info("peat-mesh-node stopped")
        return 0
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

/// Holds the node up until graceful shutdown; the mesh services take its place as they land.
struct IdleNodeService: Service {
    func run() async throws {
        try? await gracefulShutdown()
    }
}
