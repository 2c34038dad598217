import Foundation
import PeatIdentity
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// Two sites with no route between them and a relay host with a leg on each, as network
/// namespaces: site A (198.51.100.1, two nodes), site B (203.0.113.1, one node), the relay
/// (198.51.100.2 and 203.0.113.2, no forwarding). Same-site peers connect directly, cross-site peers
/// through the relay, writes cross both ways, a stranger gets nothing, a relay restart loses nothing.
/// Needs root and iproute2 (CI has both).
@Suite(.serialized, .timeLimit(.minutes(3)), .enabled(if: getuid() == 0, "needs root: it creates network namespaces for two sites and a relay"))
struct RelaySitesTests {
    static let secret = IdentityCommandTests.secret

    /// The three namespaces and their veth pairs (TEST-NET-2 and TEST-NET-3, never a private range).
    struct Sites: ~Copyable {
        let a: String
        let b: String
        let relay: String
        static let addressA = "198.51.100.1"
        static let relayOnA = "198.51.100.2"
        static let addressB = "203.0.113.1"
        static let relayOnB = "203.0.113.2"

        init() throws {
            let suffix = String(UInt32.random(in: 0...0xFFFFF), radix: 16)
            a = "peatSA\(suffix)"
            b = "peatSB\(suffix)"
            relay = "peatSR\(suffix)"
            let (ra, ar, rb, br) = ("pra\(suffix)", "par\(suffix)", "prb\(suffix)", "pbr\(suffix)")
            for command in [
                ["netns", "add", a], ["netns", "add", b], ["netns", "add", relay],
                ["link", "add", ar, "type", "veth", "peer", "name", ra],
                ["link", "add", br, "type", "veth", "peer", "name", rb],
                ["link", "set", ar, "netns", a], ["link", "set", ra, "netns", relay],
                ["link", "set", br, "netns", b], ["link", "set", rb, "netns", relay],
                ["-n", a, "addr", "add", "\(Self.addressA)/30", "dev", ar],
                ["-n", relay, "addr", "add", "\(Self.relayOnA)/30", "dev", ra],
                ["-n", b, "addr", "add", "\(Self.addressB)/30", "dev", br],
                ["-n", relay, "addr", "add", "\(Self.relayOnB)/30", "dev", rb],
                ["-n", a, "link", "set", ar, "up"], ["-n", relay, "link", "set", ra, "up"],
                ["-n", b, "link", "set", br, "up"], ["-n", relay, "link", "set", rb, "up"],
                ["-n", a, "link", "set", "lo", "up"], ["-n", b, "link", "set", "lo", "up"], ["-n", relay, "link", "set", "lo", "up"],
            ] {
                try TwoHosts.ip(command)
            }
        }

        deinit {
            for namespace in [a, b, relay] { _ = try? TwoHosts.ip(["netns", "del", namespace]) }
        }
    }

    /// `curl` inside `namespace`: (HTTP status, body).
    static func curl(_ namespace: String, _ method: String, _ url: String, _ body: String? = nil) throws -> (Int, String) {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/sbin/ip")
        var arguments = ["netns", "exec", namespace, "curl", "-s", "-m", "5", "-o", "-", "-w", "\n%{http_code}", "-X", method, url]
        if let body { arguments += ["-H", "Content-Type: application/json", "--data", body] }
        process.arguments = arguments
        let output = Pipe()
        process.standardOutput = output
        try process.run()
        process.waitUntilExit()
        let text = String(decoding: output.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        let lines = text.split(separator: "\n", omittingEmptySubsequences: false)
        return (Int(lines.last ?? "") ?? 0, lines.dropLast().joined(separator: "\n"))
    }

    static func waitUntil(_ what: String, timeout: TimeInterval = 60, _ condition: () throws -> Bool) throws {
        let deadline = Date().addingTimeInterval(timeout)
        while try !condition() {
            guard Date() < deadline else { throw NodeProcessError.timedOut(waitingFor: what, output: "") }
            usleep(100_000)
        }
    }

    static func node(
        _ name: String, site: String, address: String, syncPort: Int, brokerPort: Int, peers: String, relay: String, directory: String,
        secret: String = secret
    ) throws -> NodeProcess {
        try NodeProcess(
            environment: [
                "PEAT_FORMATION_SECRET": secret, "HOSTNAME": name, "PEAT_DISCOVERY": "static", "PEAT_STATIC_PEERS": peers,
                "PEAT_BIND_HOST": address, "PEAT_SYNC_PORT": "\(syncPort)", "PEAT_BROKER_PORT": "\(brokerPort)",
                "PEAT_DATA_DIR": directory + "/" + name, "PEAT_RELAY_URLS": relay, "PEAT_ANTI_ENTROPY_INTERVAL_SECS": "1",
            ], namespace: site)
    }

    static func startRelay(_ sites: borrowing Sites) throws -> NodeProcess {
        let key = RelayAccessKey(secret: try FormationSecret(base64: secret)).base64EncodedString()
        let relay = try NodeProcess(
            arguments: ["relay"], environment: ["PEAT_RELAY_ACCESS_KEY": key, "PEAT_BIND_HOST": "0.0.0.0"], namespace: sites.relay)
        try relay.waitForOutput(containing: "Health endpoints listening", timeout: 30)
        return relay
    }

    @Test func sitesWithoutARouteSyncThroughTheRelay() throws {
        let sites = try Sites()
        let directory = RunCommandTests.temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        var relay = try Self.startRelay(sites)
        let (a, b) = (Sites.addressA, Sites.addressB)
        let relayA = "https://\(Sites.relayOnA):3340"
        let relayB = "https://\(Sites.relayOnB):3340"
        // a-1 lists b-1 at its address (no route: the dial fails, then the relay); b-1 knows site A's
        // nodes only as relay-only peers.
        let a1 = try Self.node(
            "a-1", site: sites.a, address: a, syncPort: 11204, brokerPort: 8081, peers: "a-2@\(a):11205,b-1@\(b):11204", relay: relayA,
            directory: directory)
        let a2 = try Self.node(
            "a-2", site: sites.a, address: a, syncPort: 11205, brokerPort: 8082, peers: "a-1@\(a):11204,b-1@relay", relay: relayA,
            directory: directory)
        let b1 = try Self.node(
            "b-1", site: sites.b, address: b, syncPort: 11204, brokerPort: 8081, peers: "a-1@relay,a-2@relay", relay: relayB,
            directory: directory)
        let nodes = [a1, a2, b1]
        defer {
            for process in nodes + [relay] { process.signal(SIGTERM) }
            for process in nodes + [relay] { _ = try? process.finish() }
        }
        func paths(_ site: String, _ port: Int) throws -> [String: String] {
            let (status, body) = try Self.curl(site, "GET", "http://\(site == sites.a ? a : b):\(port)/api/v1/peers")
            guard status == 200, let json = try JSONSerialization.jsonObject(with: Data(body.utf8)) as? [String: Any] else { return [:] }
            let peers = json["peers"] as? [[String: Any]] ?? []
            return Dictionary(
                uniqueKeysWithValues: peers.filter { $0["connected"] as? Bool == true }.compactMap { peer in
                    (peer["id"] as? String).map { ($0, "\(peer["path"] ?? "?") \(peer["relay_url"] ?? "")") }
                })
        }
        try Self.waitUntil("every node connected to the other two") {
            try paths(sites.a, 8081).count == 2 && paths(sites.a, 8082).count == 2 && paths(sites.b, 8081).count == 2
        }
        #expect(try paths(sites.a, 8081) == ["a-2": "direct ", "b-1": "relay \(relayA)"])
        #expect(try paths(sites.a, 8082) == ["a-1": "direct ", "b-1": "relay \(relayA)"])
        #expect(try paths(sites.b, 8081) == ["a-1": "relay \(relayB)", "a-2": "relay \(relayB)"])
        #expect(try a1.waitForOutput(containing: "Peer connected peer=b-1", timeout: 5).contains("path=relay"))

        // Writes cross both ways.
        #expect(try Self.curl(sites.b, "PUT", "http://\(b):8081/api/v1/documents/commands/from-b", #"{"site":"b"}"#).0 == 201)
        #expect(try Self.curl(sites.a, "PUT", "http://\(a):8082/api/v1/documents/commands/from-a", #"{"site":"a"}"#).0 == 201)
        try Self.waitUntil("writes on every node") {
            try Self.curl(sites.a, "GET", "http://\(a):8081/api/v1/documents/commands/from-b").0 == 200
                && Self.curl(sites.a, "GET", "http://\(a):8082/api/v1/documents/commands/from-b").0 == 200
                && Self.curl(sites.b, "GET", "http://\(b):8081/api/v1/documents/commands/from-a").0 == 200
        }

        // A stranger (another formation) at site B gets nothing through the relay.
        let stranger = try Self.node(
            "s-1", site: sites.b, address: b, syncPort: 11206, brokerPort: 8086, peers: "a-1@relay", relay: relayB, directory: directory,
            secret: FormationSecret.generate().base64EncodedString())
        defer {
            stranger.signal(SIGTERM)
            _ = try? stranger.finish()
        }
        #expect(try stranger.waitForOutput(containing: "Relay unreachable", timeout: 30).contains("reason=relayRefused"))
        // (Earlier refusals, such as a session asked for before its target registered, have other reasons.)
        let refusals = try relay.waitForOutput(containing: "reason=admissionAbandoned", timeout: 20)
        #expect(refusals.split(separator: "\n").contains { $0.contains("Relay refused a client") && $0.contains("reason=admissionAbandoned") })
        #expect(try paths(sites.a, 8081).keys.sorted() == ["a-2", "b-1"])

        // The relay restarts: a write made while it is down reaches the other site afterwards.
        relay.signal(SIGTERM)
        #expect(try relay.finish().status == 0)
        try Self.waitUntil("relayed sessions ended") { try paths(sites.b, 8081).isEmpty }
        #expect(try Self.curl(sites.a, "PUT", "http://\(a):8081/api/v1/documents/commands/during-outage", #"{"n":1}"#).0 == 201)
        relay = try Self.startRelay(sites)
        try Self.waitUntil("the write made during the outage reaches site B") {
            try Self.curl(sites.b, "GET", "http://\(b):8081/api/v1/documents/commands/during-outage").0 == 200
        }
        try Self.waitUntil("site B connected to both site-A nodes again") { try paths(sites.b, 8081).count == 2 }
    }
}
