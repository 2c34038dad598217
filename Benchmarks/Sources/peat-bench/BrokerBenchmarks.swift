import Foundation
import Hummingbird
import PeatBroker

#if canImport(FoundationNetworking)
import FoundationNetworking
#endif

/// GET of a 1 KiB document through the broker against a bare Hummingbird route returning the
/// same bytes, both loaded by `wrk` on loopback in the same run.
enum BrokerBenchmarks {
    static let duration = 5

    static func run() async throws {
        guard FileManager.default.isExecutableFile(atPath: "/usr/bin/wrk") else {
            emit(#"RESULT {"workload":"broker_get_1KiB","error":"wrk is not installed (apt-get install wrk)"}"#)
            return
        }
        let document: [String: JSONValue] = ["payload": .string(String(repeating: "p", count: 1000)), "seq": .int(7)]
        let state = OneDocumentState(document: document)
        let body = try JSONEncoder().encode(
            JSONValue.object([
                "collection": .string("beacons"), "id": .string("b1"), "document": .object(document),
            ]))

        var ours = 0.0
        var bare = 0.0
        for round in 0..<2 {
            let runOurs = {
                try await serve(
                    Broker(state: state, configuration: .init(host: "127.0.0.1", port: 18_781)).makeApplication(), port: 18_781,
                    path: "/api/v1/documents/beacons/b1")
            }
            let runBare = { try await serve(bareApplication(body: body, port: 18_782), port: 18_782, path: "/api/v1/documents/beacons/b1") }
            if round == 0 {
                ours = max(ours, try await runOurs())
                bare = max(bare, try await runBare())
            } else {
                bare = max(bare, try await runBare())
                ours = max(ours, try await runOurs())
            }
        }
        emit(
            #"RESULT {"workload":"broker_get_1KiB","ours_requests_per_s":\#(Int(ours)),"baseline":"bare Hummingbird route, same bytes","baseline_requests_per_s":\#(Int(bare)),"ratio":\#(((ours / bare) * 1000).rounded() / 1000),"load":"wrk -t2 -c32 -d\#(duration)s"}"#
        )
    }

    static func bareApplication(body: Data, port: Int) -> some ApplicationProtocol {
        let router = Router()
        let bytes = ByteBuffer(bytes: body)
        router.get("/api/v1/documents/{collection}/{id}") { _, _ in
            Response(status: .ok, headers: [.contentType: "application/json"], body: .init(byteBuffer: bytes))
        }
        return Application(router: router, configuration: .init(address: .hostname("127.0.0.1", port: port)))
    }

    /// Runs `app`, loads it with wrk, returns requests per second.
    static func serve(_ app: some ApplicationProtocol, port: Int, path: String) async throws -> Double {
        try await withThrowingTaskGroup(of: Double?.self) { group in
            group.addTask {
                try await app.runService()
                return nil
            }
            group.addTask {
                // Wait for the listener, then load it.
                for _ in 0..<200 {
                    if (try? await probe(port: port, path: path)) == true { break }
                    try await Task.sleep(for: .milliseconds(20))
                }
                return try wrk(url: "http://127.0.0.1:\(port)\(path)")
            }
            var result = 0.0
            while let value = try await group.next() {
                if let value {
                    result = value
                    group.cancelAll()
                }
            }
            return result
        }
    }

    static func probe(port: Int, path: String) async throws -> Bool {
        let url = URL(string: "http://127.0.0.1:\(port)\(path)")!
        let (_, response) = try await URLSession.shared.data(from: url)
        return (response as? HTTPURLResponse)?.statusCode == 200
    }

    static func wrk(url: String) throws -> Double {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/wrk")
        process.arguments = ["-t2", "-c32", "-d\(duration)s", url]
        let output = Pipe()
        process.standardOutput = output
        try process.run()
        let data = output.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        let text = String(decoding: data, as: UTF8.self)
        guard let line = text.split(separator: "\n").first(where: { $0.hasPrefix("Requests/sec:") }),
            let value = Double(line.split(separator: " ").last ?? "")
        else { return 0 }
        return value
    }
}

/// A state serving one document, as cheaply as possible (the broker is what is measured).
struct OneDocumentState: BrokerState {
    let document: [String: JSONValue]

    func nodeInfo() async -> BrokerNodeInfo { BrokerNodeInfo(nodeID: "bench", deviceID: String(repeating: "0", count: 32), uptimeSeconds: 0, version: "0") }
    func readiness() async -> BrokerReadiness { BrokerReadiness(ready: true, nodeID: "bench", checks: []) }
    func peers() async -> [BrokerPeer] { [] }
    func topology() async -> BrokerTopology { BrokerTopology(peerCount: 0, role: "peer", hierarchyLevel: 0) }
    func listDocuments(_ collection: String, limit: Int, after cursor: String?) async throws(BrokerError) -> BrokerDocumentPage {
        BrokerDocumentPage(documents: [BrokerDocument(id: "b1", value: document, version: 1)], nextCursor: nil)
    }
    func document(_ collection: String, _ id: String) async throws(BrokerError) -> BrokerDocument? {
        BrokerDocument(id: id, value: document, version: 1)
    }
    func putDocument(_ collection: String, _ id: String, _ value: [String: JSONValue], ifVersion: UInt64?) async throws(BrokerError) -> BrokerWriteResult {
        throw BrokerError(code: .unavailable, message: "read-only benchmark state")
    }
    func patchDocument(_ collection: String, _ id: String, _ patch: [String: JSONValue], ifVersion: UInt64?) async throws(BrokerError) -> BrokerDocument {
        throw BrokerError(code: .unavailable, message: "read-only benchmark state")
    }
    func deleteDocument(_ collection: String, _ id: String, ifVersion: UInt64?) async throws(BrokerError) -> Bool {
        throw BrokerError(code: .unavailable, message: "read-only benchmark state")
    }
    func events() -> AsyncStream<BrokerEvent> { AsyncStream { _ in } }
}
