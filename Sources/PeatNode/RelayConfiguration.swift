import Logging
import PeatIdentity
import PeatTransport

/// The relay's settings (`peat-mesh-node relay`), read from the environment like the node's.
///
/// The relay never takes the formation secret: it admits members by `PEAT_RELAY_ACCESS_KEY`, the
/// one-way derivation `peat-mesh-node relay-key` prints, and refuses to start when
/// `PEAT_FORMATION_SECRET` is set, so a relay host cannot end up holding it by accident.
struct RelayConfiguration: Sendable {
    var bindHost: String
    /// `PEAT_RELAY_PORT` (default 3340): the relay listener (TLS + HTTP/1.1 Upgrade).
    var relayPort: Int
    /// `PEAT_BROKER_PORT` (default 8081): health, readiness and metrics.
    var healthPort: Int
    var accessKey: RelayAccessKey
    /// `PEAT_RELAY_TLS_CERT` / `PEAT_RELAY_TLS_KEY`: PEM files of a certificate (for example CA-signed).
    var certificatePaths: (certificate: String, key: String)?
    /// `PEAT_RELAY_MAX_CONNECTIONS` / `PEAT_RELAY_MAX_CONNECTIONS_PER_CLIENT`.
    var maximumConnections: Int
    var maximumConnectionsPerClient: Int
    /// `PEAT_RELAY_CLIENT_RATE_LIMIT` / `PEAT_RELAY_RATE_LIMIT`: bytes per second per device / in total.
    var clientBytesPerSecond: Int
    var totalBytesPerSecond: Int
    var name: String
    var logLevel: Logger.Level
    var logFormat: NodeConfiguration.LogFormat

    init(environment: Environment) throws(ConfigurationError) {
        if environment["PEAT_FORMATION_SECRET"] != nil {
            throw ConfigurationError(
                variable: "PEAT_FORMATION_SECRET",
                message: "is set; a relay must not hold the formation secret: give it PEAT_RELAY_ACCESS_KEY (`peat-mesh-node relay-key`) instead")
        }
        guard let key = environment["PEAT_RELAY_ACCESS_KEY"] else {
            throw ConfigurationError(
                variable: "PEAT_RELAY_ACCESS_KEY",
                message: "not set; it is required: run `peat-mesh-node relay-key` where PEAT_FORMATION_SECRET is set and give the relay its output")
        }
        do {
            accessKey = try RelayAccessKey(base64: key)
        } catch {
            throw ConfigurationError(variable: "PEAT_RELAY_ACCESS_KEY", message: error.message)
        }
        bindHost = try NodeConfiguration.parseBindHost(environment["PEAT_BIND_HOST"] ?? "0.0.0.0")
        relayPort = try environment.port("PEAT_RELAY_PORT", default: 3340)
        healthPort = try environment.port("PEAT_BROKER_PORT", default: 8081)
        if relayPort == healthPort, relayPort != 0 {
            throw ConfigurationError(variable: "PEAT_RELAY_PORT/PEAT_BROKER_PORT", message: "the relay and health listeners cannot share port \(relayPort)")
        }
        switch (environment["PEAT_RELAY_TLS_CERT"], environment["PEAT_RELAY_TLS_KEY"]) {
        case (nil, nil):
            certificatePaths = nil
        case (let certificate?, let key?):
            certificatePaths = (certificate, key)
        default:
            throw ConfigurationError(variable: "PEAT_RELAY_TLS_CERT/PEAT_RELAY_TLS_KEY", message: "set both (PEM files) or neither (a self-signed certificate)")
        }
        maximumConnections = try environment.integer("PEAT_RELAY_MAX_CONNECTIONS", in: 1...1_000_000, default: 4096)
        maximumConnectionsPerClient = try environment.integer("PEAT_RELAY_MAX_CONNECTIONS_PER_CLIENT", in: 2...65_536, default: 32)
        clientBytesPerSecond = try environment.integer("PEAT_RELAY_CLIENT_RATE_LIMIT", in: 1024...(1 << 40), default: 8 << 20)
        totalBytesPerSecond = try environment.integer("PEAT_RELAY_RATE_LIMIT", in: 1024...(1 << 40), default: 128 << 20)
        name = environment["HOSTNAME"] ?? IdentityConfiguration.defaultHostname
        let node = try NodeConfiguration.parseLogging(environment)
        logLevel = node.level
        logFormat = node.format
    }

    var serverConfiguration: RelayServer.Configuration {
        get throws {
            var configuration = RelayServer.Configuration(host: bindHost, port: relayPort, accessKey: accessKey)
            if let (certificate, key) = certificatePaths {
                configuration.certificate = try RelayCertificate(certificatePath: certificate, keyPath: key)
            }
            configuration.maximumConnections = maximumConnections
            configuration.maximumConnectionsPerClient = maximumConnectionsPerClient
            configuration.clientBytesPerSecond = clientBytesPerSecond
            configuration.totalBytesPerSecond = totalBytesPerSecond
            return configuration
        }
    }
}
