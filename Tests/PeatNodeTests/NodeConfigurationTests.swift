import Foundation
import Logging
import PeatTransport
import Testing

@testable import PeatNode

struct NodeConfigurationTests {
    static let secret = "dGVzdC1mb3JtYXRpb24tc2VjcmV0LTEyMzQ1Njc4"

    static func parse(_ values: [String: String]) throws(ConfigurationError) -> NodeConfiguration {
        var environment = ["PEAT_FORMATION_SECRET": secret]
        environment.merge(values) { _, new in new }
        return try NodeConfiguration(environment: Environment(environment))
    }

    static func error(_ values: [String: String]) -> ConfigurationError? {
        do {
            _ = try parse(values)
            return nil
        } catch {
            return error
        }
    }

    @Test func defaultsMatchTheDesign() throws {
        let configuration = try Self.parse([:])
        #expect(configuration.identity.nodeID == "peat-mesh-0")
        #expect(configuration.identity.context == "peat-mesh-0")
        #expect(configuration.discovery == .kubernetes)
        #expect(configuration.staticPeers.isEmpty)
        #expect(configuration.dataDirectory == "/data")
        #expect(configuration.bindHost == "0.0.0.0")
        #expect(configuration.brokerPort == 8081)
        #expect(configuration.syncPort == 11204)
        #expect(configuration.relayURLs.isEmpty)
        #expect(configuration.compaction == .init(enabled: false, interval: .seconds(300), thresholdBytes: 65_536, collections: []))
        #expect(configuration.logLevel == .info)
        #expect(configuration.logFormat == .text)
        #expect(configuration.brokerToken == .none)
        #expect(configuration.brokerMaximumConnections == 512 && configuration.brokerMaximumConnectionsPerAddress == 64)
        #expect(configuration.syncMaximumHandshakes == 128 && configuration.syncMaximumHandshakesPerAddress == 16)
    }

    @Test func readsTheBrokerTokenAndTheListenerLimits() throws {
        let configuration = try Self.parse([
            "PEAT_BROKER_TOKEN": "abc.DEF-123", "PEAT_BROKER_MAX_CONNECTIONS": "10", "PEAT_BROKER_MAX_CONNECTIONS_PER_ADDRESS": "3",
            "PEAT_SYNC_MAX_HANDSHAKES": "20", "PEAT_SYNC_MAX_HANDSHAKES_PER_ADDRESS": "4",
        ])
        #expect(configuration.brokerToken == .value("abc.DEF-123"))
        #expect(configuration.brokerToken.summary == "token")
        #expect(configuration.brokerMaximumConnections == 10 && configuration.brokerMaximumConnectionsPerAddress == 3)
        #expect(configuration.syncMaximumHandshakes == 20 && configuration.syncMaximumHandshakesPerAddress == 4)

        let path = FileManager.default.temporaryDirectory.appendingPathComponent("peat-token-\(UUID().uuidString)").path
        try "from-a-file\n".write(toFile: path, atomically: true, encoding: .utf8)
        defer { try? FileManager.default.removeItem(atPath: path) }
        #expect(try Self.parse(["PEAT_BROKER_TOKEN_FILE": path]).brokerToken == .file(path))
    }

    @Test func badBrokerTokensAreRefusedWithoutShowingThem() throws {
        for (variables, variable) in [
            (["PEAT_BROKER_TOKEN": "with space secret-part"], "PEAT_BROKER_TOKEN"),
            (["PEAT_BROKER_TOKEN_FILE": "/nonexistent/secret-part"], "PEAT_BROKER_TOKEN_FILE"),
            (["PEAT_BROKER_TOKEN": "secret-part", "PEAT_BROKER_TOKEN_FILE": "/tmp/x"], "PEAT_BROKER_TOKEN/PEAT_BROKER_TOKEN_FILE"),
        ] {
            let error = Self.error(variables)
            #expect(error?.variable == variable)
            if variable == "PEAT_BROKER_TOKEN" || variable.contains("/") { #expect(error?.description.contains("secret-part") == false) }
        }
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("peat-token-\(UUID().uuidString)").path
        try "two words\n".write(toFile: path, atomically: true, encoding: .utf8)
        defer { try? FileManager.default.removeItem(atPath: path) }
        let error = Self.error(["PEAT_BROKER_TOKEN_FILE": path])
        #expect(error?.variable == "PEAT_BROKER_TOKEN_FILE" && error?.description.contains("two words") == false)
    }

    @Test func readsEveryVariable() throws {
        let configuration = try Self.parse([
            "HOSTNAME": "peat-mesh-2",
            "PEAT_IDENTITY_CONTEXT": "cluster-b/peat-mesh-2",
            "PEAT_DISCOVERY": "mdns",
            "PEAT_STATIC_PEERS": " gw-a@192.0.2.10:31204 , [fd00::1]:11204,peers.example.org:11205,",
            "PEAT_DATA_DIR": "/var/lib/peat",
            "PEAT_BIND_HOST": "::",
            "PEAT_BROKER_PORT": "18081",
            "PEAT_SYNC_PORT": "21204",
            "PEAT_RELAY_URLS": "https://relay-a.example.com, https://relay-b.example.com:3340/",
            "PEAT_COMPACTION_ENABLED": "TRUE",
            "PEAT_COMPACTION_INTERVAL_SECS": "60",
            "PEAT_COMPACTION_THRESHOLD_BYTES": "16384",
            "PEAT_COMPACTION_COLLECTIONS": "beacons,node_states",
            "PEAT_LOG_LEVEL": "warn",
            "PEAT_LOG_FORMAT": "json",
        ])
        #expect(configuration.identity.nodeID == "peat-mesh-2")
        #expect(configuration.identity.context == "cluster-b/peat-mesh-2")
        #expect(configuration.discovery == .mdns)
        #expect(
            configuration.staticPeers == [
                .init(nodeID: "gw-a", host: "192.0.2.10", port: 31204),
                .init(nodeID: nil, host: "fd00::1", port: 11204),
                .init(nodeID: nil, host: "peers.example.org", port: 11205),
            ])
        #expect(configuration.dataDirectory == "/var/lib/peat")
        #expect(configuration.bindHost == "::")
        #expect(configuration.brokerPort == 18081)
        #expect(configuration.syncPort == 21204)
        #expect(configuration.relayURLs == [RelayURL(host: "relay-a.example.com", port: 443), RelayURL(host: "relay-b.example.com", port: 3340)])
        #expect(configuration.compaction == .init(enabled: true, interval: .seconds(60), thresholdBytes: 16384, collections: ["beacons", "node_states"]))
        #expect(configuration.logLevel == .warning)
        #expect(configuration.logFormat == .json)
    }

    @Test func acceptsTheOriginalsAliases() throws {
        let configuration = try Self.parse([
            "PEAT_IROH_BIND_PORT": "31204",
            "PEAT_IROH_RELAY_URLS": "https://relay.example.com",
            "PEAT_DISCOVERY": "k8s",
        ])
        #expect(configuration.syncPort == 31204)
        #expect(configuration.relayURLs == [RelayURL(host: "relay.example.com", port: 443)])
        #expect(configuration.discovery == .kubernetes)
        #expect(try Self.parse(["PEAT_SYNC_PORT": "31204", "PEAT_IROH_BIND_PORT": "31204"]).syncPort == 31204)
    }

    @Test func conflictingAliasesAreRefused() {
        #expect(Self.error(["PEAT_SYNC_PORT": "1", "PEAT_IROH_BIND_PORT": "2"])?.variable == "PEAT_SYNC_PORT/PEAT_IROH_BIND_PORT")
        #expect(Self.error(["PEAT_RELAY_URLS": "https://a.example", "PEAT_IROH_RELAY_URLS": "https://b.example"]) != nil)
    }

    @Test func emptyOptionalValuesCountAsUnset() throws {
        let configuration = try Self.parse(["HOSTNAME": "", "PEAT_BROKER_PORT": "", "PEAT_DISCOVERY": "", "PEAT_STATIC_PEERS": ""])
        #expect(configuration.identity.nodeID == "peat-mesh-0")
        #expect(configuration.brokerPort == 8081)
        #expect(configuration.discovery == .kubernetes)
    }

    @Test func brokerAndSyncCannotShareAPort() {
        #expect(Self.error(["PEAT_BROKER_PORT": "9000", "PEAT_SYNC_PORT": "9000"]) != nil)
        #expect(Self.error(["PEAT_BROKER_PORT": "0", "PEAT_SYNC_PORT": "0"]) == nil, "port 0 means two different free ports")
    }

    @Test(arguments: [
        ("PEAT_BROKER_PORT", " 8081"), ("PEAT_BROKER_PORT", "+8081"), ("PEAT_BROKER_PORT", "99999999999999999999999"),
        ("PEAT_SYNC_PORT", "65536"), ("PEAT_STATIC_PEERS", "@host:1"), ("PEAT_STATIC_PEERS", "host:0"),
        ("PEAT_STATIC_PEERS", "host"), ("PEAT_STATIC_PEERS", "[fd00::1]11204"), ("PEAT_STATIC_PEERS", "[nothex]:1"),
        ("PEAT_STATIC_PEERS", ":11204"), ("PEAT_STATIC_PEERS", "ho st:1"), ("PEAT_BIND_HOST", "localhost"),
        ("PEAT_BIND_HOST", "256.0.0.1"), ("PEAT_LOG_LEVEL", "INFO "), ("PEAT_COMPACTION_INTERVAL_SECS", "0"),
        ("PEAT_COMPACTION_THRESHOLD_BYTES", "-5"), ("PEAT_COMPACTION_COLLECTIONS", "a b"),
        ("PEAT_RELAY_URLS", "https://"), ("PEAT_RELAY_URLS", "http://relay:3340"), ("PEAT_COMPACTION_ENABLED", "enabled"),
        ("PEAT_BROKER_MAX_CONNECTIONS", "0"), ("PEAT_BROKER_MAX_CONNECTIONS_PER_ADDRESS", "lots"),
        ("PEAT_SYNC_MAX_HANDSHAKES", "-1"), ("PEAT_SYNC_MAX_HANDSHAKES_PER_ADDRESS", "70000"),
        ("PEAT_SYNC_PRIORITY_OVERRIDES", "alerts=urgent"), ("PEAT_SYNC_PRIORITY_OVERRIDES", "alerts"),
        ("PEAT_SYNC_PRIORITY_OVERRIDES", "=high"), ("PEAT_PEER_RATE_LIMIT", "0"), ("PEAT_PEER_RATE_LIMIT", "64"),
        ("PEAT_PEER_RATE_LIMIT", "32kbit"), ("PEAT_PEER_RATE_LIMIT", "-1"), ("PEAT_TCP_CONGESTION", "BBR"), ("PEAT_SYNC_KEEPALIVE_SECS", "0"),
        ("PEAT_SYNC_IDLE_TIMEOUT_SECS", "1"),
        ("PEAT_TCP_CONGESTION", "bbr;rm"), ("PEAT_TCP_CONGESTION", "a_very_long_algorithm"),
    ])
    func refusesBadValueNamingTheVariable(_ variable: String, _ value: String) {
        let error = Self.error([variable: value])
        #expect(error?.variable == variable)
        #expect(error?.description.hasPrefix(variable) == true)
        #expect(error?.description.contains("\n") == false)
    }

    @Test func readsSyncPrioritiesAndThePeerRateLimit() throws {
        let defaults = try Self.parse([:])
        #expect(defaults.syncPriorityOverrides.isEmpty)
        #expect(defaults.peerRateLimit == nil)
        let configuration = try Self.parse([
            "PEAT_SYNC_PRIORITY_OVERRIDES": "contact_reports=high, beacons=low,alerts=normal", "PEAT_PEER_RATE_LIMIT": "16000",
        ])
        #expect(configuration.syncPriorityOverrides == ["contact_reports": .high, "beacons": .low, "alerts": .normal])
        #expect(configuration.peerRateLimit == 16000)
        #expect(try Self.parse(["PEAT_PEER_RATE_LIMIT": ""]).peerRateLimit == nil)
        #expect(defaults.tcpCongestion == nil)
        #expect(defaults.syncKeepaliveSeconds == 5 && defaults.syncIdleTimeoutSeconds == 15)
        let slow = try Self.parse(["PEAT_SYNC_KEEPALIVE_SECS": "20", "PEAT_SYNC_IDLE_TIMEOUT_SECS": "90"])
        #expect(slow.syncKeepaliveSeconds == 20 && slow.syncIdleTimeoutSeconds == 90)
        #expect(Self.error(["PEAT_SYNC_KEEPALIVE_SECS": "20"])?.variable == "PEAT_SYNC_IDLE_TIMEOUT_SECS")
        #expect(try Self.parse(["PEAT_TCP_CONGESTION": "bbr"]).tcpCongestion == "bbr")
    }

    @Test func shortCompactionIntervalIsRaisedToTheMinimum() throws {
        let configuration = try Self.parse(["PEAT_COMPACTION_INTERVAL_SECS": "3"])
        #expect(configuration.compaction.interval == .seconds(3))
        #expect(configuration.compaction.effectiveInterval == .seconds(10))
    }

    @Test func secretErrorsNeverContainTheSecret() {
        for bad in ["c2VjcmV0LXZhbHVl", "super-secret-value!", "c2VjcmV0LXZhbHVlLWxvbmctZW5vdWdo=="] {
            let error = Self.error(["PEAT_FORMATION_SECRET": bad])
            #expect(error?.variable == "PEAT_FORMATION_SECRET")
            #expect(error?.description.contains(bad) == false)
        }
    }

    @Test func missingSecretIsRefused() {
        #expect(throws: ConfigurationError.self) {
            try NodeConfiguration(environment: Environment(["HOSTNAME": "peat-mesh-0"]))
        }
    }
}
