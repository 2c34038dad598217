import Logging
import PeatBroker
import PeatCRDT
import PeatDiscovery
import PeatMesh
import PeatStorage
import PeatTransport

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

/// Everything `peat-mesh-node` reads from its environment, parsed strictly.
///
/// A value that cannot be used is a `ConfigurationError` naming the variable; nothing falls back
/// to a default silently. Variables and defaults are listed in README.md ("Configuration").
struct NodeConfiguration: Sendable {
    enum DiscoveryMode: String, Sendable {
        case kubernetes, mdns, `static`
    }

    enum LogFormat: String, Sendable {
        case text, json
    }

    /// Where the broker's bearer token comes from (never the token itself in a log or an error).
    enum BrokerTokenSource: Sendable, Equatable {
        /// No token: the API is open.
        case none
        /// `PEAT_BROKER_TOKEN`.
        case value(String)
        /// `PEAT_BROKER_TOKEN_FILE`, re-read when it changes.
        case file(String)

        /// For the start-up line: which source, never the token.
        var summary: String {
            switch self {
            case .none: "none"
            case .value: "token"
            case .file(let path): "file:\(path)"
            }
        }
    }

    var identity: IdentityConfiguration
    var discovery: DiscoveryMode
    var staticPeers: [StaticDiscovery.Peer]
    var dataDirectory: String
    var bindHost: String
    var brokerPort: Int
    var syncPort: Int
    var relayURLs: [RelayURL]
    var compaction: CompactionConfiguration
    /// `PEAT_SYNC_MODE_OVERRIDES`: per-collection sync modes over the design's defaults.
    var syncModeOverrides: [String: SyncMode]
    /// `PEAT_SYNC_PRIORITY_OVERRIDES`: per-collection sync priorities over the defaults.
    var syncPriorityOverrides: [String: SyncPriority]
    /// `PEAT_TCP_CONGESTION`: the TCP congestion control of sync connections (default: the system's).
    var tcpCongestion: String?
    /// `PEAT_PEER_RATE_LIMIT`: bytes per second each peer session may send (default: no limit).
    var peerRateLimit: Int?
    /// `PEAT_ANTI_ENTROPY_INTERVAL_SECS`: seconds between anti-entropy passes (default 5).
    var antiEntropyIntervalSeconds: Int
    /// `PEAT_SYNC_KEEPALIVE_SECS` / `PEAT_SYNC_IDLE_TIMEOUT_SECS`: a ping after this long without
    /// writing (default 5); a sync connection closed after this long without reading a byte (default 15).
    var syncKeepaliveSeconds: Int
    var syncIdleTimeoutSeconds: Int
    var logLevel: Logger.Level
    var logFormat: LogFormat
    var brokerToken: BrokerTokenSource
    /// `PEAT_BROKER_MAX_CONNECTIONS` / `_PER_ADDRESS`: open broker connections, in total and from one address.
    var brokerMaximumConnections: Int
    var brokerMaximumConnectionsPerAddress: Int
    /// `PEAT_SYNC_MAX_HANDSHAKES` / `_PER_ADDRESS`: sync handshakes in flight, in total and from one address.
    var syncMaximumHandshakes: Int
    var syncMaximumHandshakesPerAddress: Int

    init(environment: Environment) throws(ConfigurationError) {
        identity = try IdentityConfiguration(environment: environment)
        discovery = try environment.choice(
            "PEAT_DISCOVERY",
            ["kubernetes": .kubernetes, "k8s": .kubernetes, "mdns": .mdns, "static": .static],
            default: .kubernetes)
        do {
            staticPeers = try StaticDiscovery.parsePeers(environment["PEAT_STATIC_PEERS"] ?? "")
        } catch {
            throw ConfigurationError(variable: "PEAT_STATIC_PEERS", message: error.message)
        }
        dataDirectory = environment["PEAT_DATA_DIR"] ?? "/data"
        bindHost = try Self.parseBindHost(environment["PEAT_BIND_HOST"] ?? "0.0.0.0")
        brokerPort = try environment.port("PEAT_BROKER_PORT", default: 8081)
        syncPort = try environment.port("PEAT_SYNC_PORT", alias: "PEAT_IROH_BIND_PORT", default: 11204)
        if brokerPort == syncPort, brokerPort != 0 {
            throw ConfigurationError(
                variable: "PEAT_BROKER_PORT/PEAT_SYNC_PORT",
                message: "the broker and sync listeners cannot share port \(brokerPort)")
        }
        let relays = try environment.value("PEAT_RELAY_URLS", alias: "PEAT_IROH_RELAY_URLS")
        relayURLs = try environment.list(relays?.value).map { url throws(ConfigurationError) in
            try Self.parseRelayURL(url, variable: relays?.name ?? "PEAT_RELAY_URLS")
        }
        compaction = CompactionConfiguration(
            enabled: try environment.boolean("PEAT_COMPACTION_ENABLED", default: false),
            interval: .seconds(try environment.integer("PEAT_COMPACTION_INTERVAL_SECS", in: 1...31_536_000, default: 300)),
            thresholdBytes: try environment.integer("PEAT_COMPACTION_THRESHOLD_BYTES", in: 0...(1 << 40), default: 65_536),
            collections: try environment.list("PEAT_COMPACTION_COLLECTIONS").map { name throws(ConfigurationError) in
                try Self.parseCollectionName(name)
            })
        syncModeOverrides = try Self.parseSyncModeOverrides(environment.list("PEAT_SYNC_MODE_OVERRIDES"))
        syncPriorityOverrides = try Self.parseSyncPriorityOverrides(environment.list("PEAT_SYNC_PRIORITY_OVERRIDES"))
        peerRateLimit =
            environment["PEAT_PEER_RATE_LIMIT"] == nil ? nil : try environment.integer("PEAT_PEER_RATE_LIMIT", in: 128...(1 << 40), default: 0)
        tcpCongestion = try Self.parseTCPCongestion(environment["PEAT_TCP_CONGESTION"])
        antiEntropyIntervalSeconds = try environment.integer("PEAT_ANTI_ENTROPY_INTERVAL_SECS", in: 1...3600, default: 5)
        syncKeepaliveSeconds = try environment.integer("PEAT_SYNC_KEEPALIVE_SECS", in: 1...3600, default: 5)
        syncIdleTimeoutSeconds = try environment.integer("PEAT_SYNC_IDLE_TIMEOUT_SECS", in: 2...86_400, default: 15)
        guard syncIdleTimeoutSeconds > syncKeepaliveSeconds else {
            throw ConfigurationError(
                variable: "PEAT_SYNC_IDLE_TIMEOUT_SECS",
                message: "must be longer than PEAT_SYNC_KEEPALIVE_SECS (\(syncKeepaliveSeconds)), got \(syncIdleTimeoutSeconds)")
        }
        (logLevel, logFormat) = try Self.parseLogging(environment)
        brokerToken = try Self.parseBrokerToken(environment)
        brokerMaximumConnections = try environment.integer("PEAT_BROKER_MAX_CONNECTIONS", in: 1...65_536, default: 512)
        brokerMaximumConnectionsPerAddress = try environment.integer("PEAT_BROKER_MAX_CONNECTIONS_PER_ADDRESS", in: 1...65_536, default: 64)
        syncMaximumHandshakes = try environment.integer("PEAT_SYNC_MAX_HANDSHAKES", in: 1...65_536, default: 128)
        syncMaximumHandshakesPerAddress = try environment.integer("PEAT_SYNC_MAX_HANDSHAKES_PER_ADDRESS", in: 1...65_536, default: 16)
    }

    /// `PEAT_BROKER_TOKEN` or `PEAT_BROKER_TOKEN_FILE` (not both), checked now so a bad token or an
    /// unreadable file stops the node at start; messages never contain the token.
    static func parseBrokerToken(_ environment: Environment) throws(ConfigurationError) -> BrokerTokenSource {
        switch (environment["PEAT_BROKER_TOKEN"], environment["PEAT_BROKER_TOKEN_FILE"]) {
        case (nil, nil):
            return .none
        case (.some, .some):
            throw ConfigurationError(
                variable: "PEAT_BROKER_TOKEN/PEAT_BROKER_TOKEN_FILE", message: "both are set; set only one (the file, for a mounted Secret)")
        case (let token?, nil):
            do {
                _ = try BrokerToken(token)
            } catch {
                throw ConfigurationError(variable: "PEAT_BROKER_TOKEN", message: error.message)
            }
            return .value(token)
        case (nil, let path?):
            do {
                _ = try BrokerToken(file: path)
            } catch {
                throw ConfigurationError(variable: "PEAT_BROKER_TOKEN_FILE", message: error.message)
            }
            return .file(path)
        }
    }

    // MARK: Value parsers

    /// `PEAT_LOG_LEVEL` (default info) and `PEAT_LOG_FORMAT` (text or json).
    static func parseLogging(_ environment: Environment) throws(ConfigurationError) -> (level: Logger.Level, format: LogFormat) {
        let level: Logger.Level = try environment.choice(
            "PEAT_LOG_LEVEL",
            [
                "trace": .trace, "debug": .debug, "info": .info, "notice": .notice,
                "warn": .warning, "warning": .warning, "error": .error, "critical": .critical,
            ],
            default: .info)
        let format: LogFormat = try environment.choice("PEAT_LOG_FORMAT", ["text": .text, "json": .json], default: .text)
        return (level, format)
    }

    static func parseBindHost(_ text: String) throws(ConfigurationError) -> String {
        guard StaticDiscovery.isIPv4(text) || StaticDiscovery.isIPv6(text) else {
            throw ConfigurationError(
                variable: "PEAT_BIND_HOST",
                message: "must be an IPv4 or IPv6 address such as 0.0.0.0, 127.0.0.1 or ::, got \(ConfigurationError.quote(text))")
        }
        return text
    }

    /// `https://HOST[:PORT]` (port 443 when omitted). A peat-mesh relay always serves TLS, so a plain
    /// `http://` URL, which the original accepted and ignored, is refused.
    static func parseRelayURL(_ text: String, variable: String) throws(ConfigurationError) -> RelayURL {
        do {
            return try RelayURL(parsing: text)
        } catch {
            throw ConfigurationError(variable: variable, message: error.message)
        }
    }

    /// `collection=mode` entries, mode `latest_only`, `full_history` or `windowed:<seconds>` (as in the original).
    static func parseSyncModeOverrides(_ entries: [String]) throws(ConfigurationError) -> [String: SyncMode] {
        var overrides: [String: SyncMode] = [:]
        for entry in entries {
            let parts = entry.split(separator: "=", maxSplits: 1).map { $0.trimmingSpaces() }
            guard parts.count == 2, DocumentKey.isValidCollection(parts[0]), let mode = SyncModeRegistry.parseMode(parts[1]) else {
                throw ConfigurationError(
                    variable: "PEAT_SYNC_MODE_OVERRIDES",
                    message: "entry \(ConfigurationError.quote(entry)) is not collection=latest_only|full_history|windowed:<seconds>")
            }
            overrides[parts[0]] = mode
        }
        return overrides
    }

    /// A kernel congestion control name: 1-15 lower-case letters, digits or `_` (`bbr`, `cubic`).
    static func parseTCPCongestion(_ value: String?) throws(ConfigurationError) -> String? {
        guard let value else { return nil }
        guard value.utf8.count <= 15, value.utf8.allSatisfy({ (0x61...0x7A).contains($0) || (0x30...0x39).contains($0) || $0 == 0x5F }) else {
            throw ConfigurationError(
                variable: "PEAT_TCP_CONGESTION", message: "must be a congestion control name like bbr or cubic, got \(ConfigurationError.quote(value))")
        }
        return value
    }

    static func parseSyncPriorityOverrides(_ entries: [String]) throws(ConfigurationError) -> [String: SyncPriority] {
        var overrides: [String: SyncPriority] = [:]
        for entry in entries {
            let parts = entry.split(separator: "=", maxSplits: 1).map { $0.trimmingSpaces() }
            guard parts.count == 2, DocumentKey.isValidCollection(parts[0]), let priority = SyncPriority(parsing: parts[1]) else {
                throw ConfigurationError(
                    variable: "PEAT_SYNC_PRIORITY_OVERRIDES", message: "entry \(ConfigurationError.quote(entry)) is not collection=high|normal|low")
            }
            overrides[parts[0]] = priority
        }
        return overrides
    }

    /// Collection names follow the store's rule (`DocumentKey.isValidCollection`).
    static func parseCollectionName(_ name: String) throws(ConfigurationError) -> String {
        guard DocumentKey.isValidCollection(name) else {
            throw ConfigurationError(
                variable: "PEAT_COMPACTION_COLLECTIONS",
                message: "entry \(ConfigurationError.quote(name)) is not a collection name (letters, digits, _ - .)")
        }
        return name
    }
}
