import Foundation
import Testing

#if canImport(FoundationNetworking)
import FoundationNetworking
#endif
#if canImport(Glibc)
import Glibc
#endif

/// Three `peat-mesh-node` processes on 127.20.<k>.1-3 (`PEAT_BIND_HOST`), static peers, real TLS: the
/// way the README runs three nodes on one machine, checked through the broker as operators do.
@Suite(.timeLimit(.minutes(2)))
struct NodeClusterTests {
    static func request(_ method: String, _ url: String, _ body: [String: Any]? = nil) async throws -> (status: Int, json: [String: Any]) {
        var request = URLRequest(url: URL(string: url)!)
        request.httpMethod = method
        if let body {
            request.httpBody = try JSONSerialization.data(withJSONObject: body)
            request.setValue("application/json", forHTTPHeaderField: "Content-Type")
        }
        let (data, response) = try await URLSession.shared.data(for: request)
        return ((response as? HTTPURLResponse)?.statusCode ?? 0, (try? JSONSerialization.jsonObject(with: data) as? [String: Any]) ?? [:])
    }

    static func eventually(_ what: String, _ condition: () async throws -> Bool) async throws {
        let deadline = Date().addingTimeInterval(20)
        while try await !condition() {
            guard Date() < deadline else { throw NodeProcessError.timedOut(waitingFor: what, output: "") }
            try await Task.sleep(for: .milliseconds(25))
        }
    }

    /// Runs a blocking wait (poll, semaphore) on a Dispatch thread: the cooperative pool has only as
    /// many threads as cores, and blocking them would stall every other test running in parallel.
    static func blocking<T>(_ body: @escaping () throws -> T) async throws -> T {
        nonisolated(unsafe) let body = body
        return try await withCheckedThrowingContinuation { continuation in
            DispatchQueue.global().async {
                let result = Result { try body() }
                nonisolated(unsafe) let unsafeResult = result
                continuation.resume(with: unsafeResult)
            }
        }
    }

    @Test func threeNodesSyncWritesAndDeletesAndKeepIdentityAcrossRestart() async throws {
        let subnet = Int.random(in: 1...250)
        let hosts = (1...3).map { "127.20.\(subnet).\($0)" }
        let directories = (0..<3).map { _ in RunCommandTests.temporaryDirectory() }
        defer { for directory in directories { try? FileManager.default.removeItem(atPath: directory) } }
        func environment(_ i: Int) -> [String: String] {
            let peers = (0..<3).filter { $0 != i }.map { "node-\($0)@\(hosts[$0]):11204" }.joined(separator: ",")
            return RunCommandTests.environment(
                dataDirectory: directories[i],
                [
                    "HOSTNAME": "node-\(i)", "PEAT_BIND_HOST": hosts[i], "PEAT_SYNC_PORT": "11204", "PEAT_BROKER_PORT": "8081",
                    "PEAT_STATIC_PEERS": peers,
                ])
        }
        var nodes = try (0..<3).map { try NodeProcess(environment: environment($0)) }
        defer { for node in nodes where node.process.isRunning { node.signal(SIGKILL) } }
        let base = hosts.map { "http://\($0):8081/api/v1" }
        for i in 0..<3 {
            let node = nodes[i]
            _ = try await Self.blocking { try node.waitForOutput(containing: "Sync stack ready") }
            _ = try await Self.blocking { try node.waitForOutput(containing: "Broker listening") }
        }
        try await Self.eventually("every node connected to the other two") {
            for url in base {
                let peers = try await Self.request("GET", url + "/peers")
                let connected = (peers.json["peers"] as? [[String: Any]] ?? []).filter { $0["connected"] as? Bool == true }
                if connected.count != 2 { return false }
            }
            return true
        }
        let device = try await Self.request("GET", base[2] + "/node").json["device_id"] as? String

        // A write on node 0 is readable on nodes 1 and 2 (and listed with its `_id`); a delete on node 1
        // removes it everywhere.
        let put = try await Self.request("PUT", base[0] + "/documents/beacons/b1", ["lat": 48.1, "callsign": "alpha"])
        #expect(put.status == 200 || put.status == 201)
        try await Self.eventually("b1 on every node") {
            for url in base {
                let got = try await Self.request("GET", url + "/documents/beacons/b1")
                let document = got.json["document"] as? [String: Any]
                guard got.status == 200, document?["callsign"] as? String == "alpha", document?["lat"] as? Double == 48.1 else { return false }
            }
            return true
        }
        let listed = try await Self.request("GET", base[2] + "/documents/beacons")
        #expect(listed.json["count"] as? Int == 1 && (listed.json["documents"] as? [[String: Any]])?.first?["_id"] as? String == "b1")
        let deleted = try await Self.request("DELETE", base[1] + "/documents/beacons/b1").status
        #expect(deleted == 200 || deleted == 204)
        try await Self.eventually("b1 deleted everywhere") {
            for url in base where try await Self.request("GET", url + "/documents/beacons/b1").status != 404 { return false }
            return true
        }

        // Node 2 stops, misses a write, restarts with its data directory: same device ID, catches up.
        nodes[2].signal(SIGTERM)
        let stopping = nodes[2]
        let stopped = try await Self.blocking { try stopping.finish() }
        #expect(stopped.status == 0)
        #expect(stopped.stdout.contains("Received SIGTERM") && stopped.stdout.contains("peat-mesh-node stopped"))
        #expect(try await Self.request("PUT", base[0] + "/documents/commands/c1", ["verb": "hold"]).status == 201)
        nodes[2] = try NodeProcess(environment: environment(2))
        let restarted = nodes[2]
        _ = try await Self.blocking { try restarted.waitForOutput(containing: "Broker listening") }
        try await Self.eventually("c1 reaches the restarted node") {
            (try await Self.request("GET", base[2] + "/documents/commands/c1").json["document"] as? [String: Any])?["verb"] as? String == "hold"
        }
        #expect(try await Self.request("GET", base[2] + "/node").json["device_id"] as? String == device)

        for node in nodes { node.signal(SIGTERM) }
        for node in nodes {
            let result = try await Self.blocking { try node.finish() }
            #expect(result.status == 0)
            #expect(result.stdout.contains("Mesh started node_id=node-"))
            #expect(result.stdout.contains("Sync stack ready"))
            #expect(result.stdout.contains("Peer connected peer=node-"))
            #expect(!result.stdout.contains("\u{1B}["), "plain text, no colour")
            #expect(!result.stdout.lowercased().contains(" error "), "a healthy run logs no error line")
        }
    }
}
