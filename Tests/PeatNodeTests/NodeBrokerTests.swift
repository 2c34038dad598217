import Foundation
import PeatTestSupport
import Testing

#if canImport(FoundationNetworking)
import FoundationNetworking
#endif

/// The running node's broker, exercised over HTTP as operators and probes do.
@Suite(.timeLimit(.minutes(1)))
struct NodeBrokerTests {
    static func get(_ url: String) async throws -> (status: Int, json: [String: Any]) {
        let (data, response) = try await URLSession.shared.data(from: URL(string: url)!)
        let status = (response as? HTTPURLResponse)?.statusCode ?? 0
        return (status, (try JSONSerialization.jsonObject(with: data) as? [String: Any]) ?? [:])
    }

    @Test(arguments: [("static", 200, true), ("kubernetes", 503, false)])
    func brokerServesHealthNodeAndHonestReadiness(_ discovery: String, _ readyStatus: Int, _ ready: Bool) async throws {
        let dataDirectory = RunCommandTests.temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: dataDirectory) }
        let node = try NodeProcess(environment: RunCommandTests.environment(dataDirectory: dataDirectory, ["PEAT_DISCOVERY": discovery]))
        let output = try node.waitForOutput(containing: "Broker listening")
        let port = try #require(RunCommandTests.brokerPort(in: output))
        let base = "http://127.0.0.1:\(port)"

        let health = try await Self.get(base + "/api/v1/health")
        #expect(health.status == 200)
        #expect(health.json["status"] as? String == "healthy" && health.json["node_id"] as? String == "peat-mesh-1")

        let info = try await Self.get(base + "/api/v1/node")
        #expect(info.json["device_id"] as? String == "6249fce8bedd0145bde16f39d326a57c")

        let readiness = try await Self.get(base + "/api/v1/ready")
        #expect(readiness.status == readyStatus)
        #expect(readiness.json["ready"] as? Bool == ready)
        let checks = (readiness.json["checks"] as? [[String: Any]] ?? []).compactMap { $0["name"] as? String }
        #expect(checks == ["store", "transport", "discovery"])

        let peers = try await Self.get(base + "/api/v1/peers")
        #expect(peers.json["count"] as? Int == 0)

        let empty = try await Self.get(base + "/api/v1/documents/beacons")
        #expect(empty.status == 200 && empty.json["count"] as? Int == 0)
        let missing = try await Self.get(base + "/api/v1/documents/beacons/b1")
        #expect(missing.status == 404 && missing.json["status"] as? Int == 404)

        node.signal(SIGTERM)
        #expect(try node.finish().status == 0)
    }

    static func status(_ url: String, token: String?) async throws -> (status: Int, wwwAuthenticate: String?) {
        var request = URLRequest(url: URL(string: url)!)
        if let token { request.setValue("Bearer \(token)", forHTTPHeaderField: "Authorization") }
        let (_, response) = try await URLSession.shared.data(for: request)
        let http = response as? HTTPURLResponse
        return (http?.statusCode ?? 0, http?.value(forHTTPHeaderField: "WWW-Authenticate"))
    }

    /// `PEAT_BROKER_TOKEN_FILE` as the chart mounts it: protected routes need the token, probes and
    /// metrics do not, a rewritten file rotates it, and the token shows up in no output.
    @Test func aTokenFileProtectsTheAPIAndRotates() async throws {
        let dataDirectory = RunCommandTests.temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: dataDirectory) }
        let tokenFile = dataDirectory + "-broker-token"
        defer { try? FileManager.default.removeItem(atPath: tokenFile) }
        let first = "first-\(UUID().uuidString)"
        let second = "second-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: dataDirectory, withIntermediateDirectories: true)
        try (first + "\n").write(toFile: tokenFile, atomically: true, encoding: .utf8)
        let node = try NodeProcess(
            environment: RunCommandTests.environment(dataDirectory: dataDirectory, ["PEAT_BROKER_TOKEN_FILE": tokenFile]))
        let output = try node.waitForOutput(containing: "Broker listening")
        #expect(output.contains("broker_auth=file:\(tokenFile)"))
        let base = "http://127.0.0.1:\(try #require(RunCommandTests.brokerPort(in: output)))"

        for open in ["/api/v1/health", "/metrics"] { #expect(try await Self.status(base + open, token: nil).status == 200) }
        #expect(try await Self.status(base + "/api/v1/ready", token: nil).status != 401)
        let refused = try await Self.status(base + "/api/v1/node", token: nil)
        #expect(refused.status == 401 && refused.wwwAuthenticate == "Bearer")
        #expect(try await Self.status(base + "/api/v1/node", token: "wrong").status == 401)
        #expect(try await Self.status(base + "/api/v1/node", token: first).status == 200)

        try second.write(toFile: tokenFile, atomically: true, encoding: .utf8)
        try await eventually("the rotated token is accepted", timeout: .seconds(10)) {
            try await Self.status(base + "/api/v1/node", token: second).status == 200
        }
        #expect(try await Self.status(base + "/api/v1/node", token: first).status == 401)

        node.signal(SIGTERM)
        let result = try node.finish()
        #expect(result.status == 0)
        #expect(![first, second].contains { result.stdout.contains($0) || result.stderr.contains($0) })
    }

    @Test func staticPeersAreDiscoveredAndListed() async throws {
        let dataDirectory = RunCommandTests.temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: dataDirectory) }
        let node = try NodeProcess(
            environment: RunCommandTests.environment(
                dataDirectory: dataDirectory, ["PEAT_STATIC_PEERS": "peat-mesh-7@127.0.0.1:21204, 127.0.0.1:21205"]))
        let output = try node.waitForOutput(containing: "Broker listening")
        _ = try node.waitForOutput(containing: "Peer discovered peer=peat-mesh-7")
        let port = try #require(RunCommandTests.brokerPort(in: output))
        let peers = try await Self.get("http://127.0.0.1:\(port)/api/v1/peers")
        let listed = (peers.json["peers"] as? [[String: Any]] ?? [])
        #expect(Set(listed.compactMap { $0["id"] as? String }) == ["peat-mesh-7", "127.0.0.1:21205"])
        // Nothing listens there: the connector keeps dialling with backoff.
        #expect(
            listed.allSatisfy { peer in
                peer["connected"] as? Bool == false && ["discovered", "connecting", "backoff"].contains(peer["state"] as? String ?? "")
            })
        let readiness = try await Self.get("http://127.0.0.1:\(port)/api/v1/ready")
        let discovery = (readiness.json["checks"] as? [[String: Any]] ?? []).first { $0["name"] as? String == "discovery" }
        #expect(discovery?["ready"] as? Bool == true)
        #expect((discovery?["message"] as? String)?.contains("2 peer(s) discovered") == true)
        node.signal(SIGTERM)
        let result = try node.finish()
        #expect(result.status == 0)
        #expect(result.stdout.contains("Peer discovered peer=peat-mesh-7 addresses=[127.0.0.1:21204] source=static"))
    }
}
