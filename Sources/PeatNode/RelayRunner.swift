import Logging
import Metrics
import PeatBroker
import PeatTransport
import Prometheus
import ServiceLifecycle
import UnixSignals

/// Runs `peat-mesh-node relay`: the relay listener and its probe endpoints until SIGTERM/SIGINT.
struct RelayRunner {
    let configuration: RelayConfiguration

    func run() async -> Int32 {
        let signals = await UnixSignalsSequence(trapping: .sigterm, .sigint)
        let format = configuration.logFormat
        let level = configuration.logLevel
        LoggingSystem.bootstrap { label in NodeLogHandler(label: label, format: format, level: level) }
        let logger = Logger(label: "peat.relay")
        logger.info(
            "Starting peat-mesh-node relay",
            metadata: [
                "version": "\(PeatMeshNode.version)",
                "bind_host": "\(configuration.bindHost)",
                "relay_port": "\(configuration.relayPort)",
                "broker_port": "\(configuration.healthPort)",
                "tls": "\(configuration.certificatePaths.map { "file:\($0.certificate)" } ?? "self-signed")",
            ])
        let registry = PrometheusCollectorRegistry()
        MetricsSystem.bootstrap(PrometheusMetricsFactory(registry: registry))
        let relay: RelayServer
        do {
            relay = try RelayServer(configuration: try configuration.serverConfiguration, logger: logger)
        } catch {
            _ = PeatMeshNode.refuse(ConfigurationError(variable: "PEAT_RELAY_TLS_CERT/PEAT_RELAY_TLS_KEY", message: "\(error)"))
            return PeatMeshNode.configurationExitCode
        }
        let health = HealthServer(
            host: configuration.bindHost, port: configuration.healthPort, name: configuration.name, registry: registry,
            logger: Logger(label: "peat.relay.health")
        ) {
            let listening = relay.isListening
            return [.init(name: "relay", ready: listening, message: listening ? nil : "the relay listener is not bound")]
        }.makeApplication { host, port in
            Logger(label: "peat.relay.health").info("Health endpoints listening address=\(PeerAddress(host: host, port: port))")
        }
        let group = ServiceGroup(configuration: .init(services: [relay, health], logger: logger))
        let status: Int32 = await withTaskGroup(of: Int32?.self) { tasks in
            tasks.addTask {
                do {
                    try await group.run()
                    return 0
                } catch {
                    logger.critical("Relay services failed", metadata: ["reason": "\(error)"])
                    return 1
                }
            }
            tasks.addTask {
                for await signal in signals {
                    logger.info("Received \(signal)")
                    await group.triggerGracefulShutdown()
                    break
                }
                return nil
            }
            var status: Int32 = 0
            while let outcome = await tasks.next() {
                if let outcome {
                    status = outcome
                    tasks.cancelAll()
                    break
                }
            }
            return status
        }
        logger.info("peat-mesh-node relay stopped")
        return status
    }
}
