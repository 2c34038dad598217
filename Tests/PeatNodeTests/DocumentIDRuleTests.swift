import Foundation
import PeatCRDT
import PeatIdentity
import PeatMesh
import PeatStorage
import PeatTestSupport
import Testing

#if canImport(FoundationNetworking)
import FoundationNetworking
#endif

/// One rule for document IDs: the node's HTTP API and the embedding Swift API accept exactly the
/// same IDs, and every ID the HTTP API accepts reads back through it.
@Suite(.timeLimit(.minutes(2)))
struct DocumentIDRuleTests {
    /// Pieces IDs are made of: the characters the rule is about, URL delimiters, and other Unicode.
    static let pieces = [
        "a", "Z", "0", "-", "_", "~", ".", "..", "/", " ", "%", "%2F", "?", "#", "&", "=", "+", ":", "@", "é", "😀", "\u{200B}",
        "\u{0}", "\u{1F}", "\u{7F}", "\u{85}", "\\", "\"",
    ]

    static func generatedIDs(count: Int) -> [String] {
        var rng = SeededRandom(seed: 20_261_201)
        var ids = [
            ".", "..", "...", "a..b", "/", "a/b", String(repeating: "x", count: 255), String(repeating: "x", count: 256),
            String(repeating: "é", count: 127) + "x", String(repeating: "é", count: 128),
        ]
        while ids.count < count {
            let parts = Int.random(in: 1...6, using: &rng)
            ids.append((0..<parts).map { _ in pieces.randomElement(using: &rng)! }.joined())
        }
        return ids
    }

    /// Percent-encodes every byte but the unreserved ones, so no client or server rewrites the path.
    static func pathSegment(_ id: String) -> String {
        id.utf8.map { byte in
            let unreserved =
                (0x30...0x39).contains(byte) || (0x41...0x5A).contains(byte) || (0x61...0x7A).contains(byte)
                || byte == UInt8(ascii: "-") || byte == UInt8(ascii: "_") || byte == UInt8(ascii: "~")
            return unreserved ? String(UnicodeScalar(byte)) : String(format: "%%%02X", byte)
        }.joined()
    }

    static func request(_ method: String, _ url: URL, body: Data? = nil) async throws -> (status: Int, json: [String: Any]) {
        var request = URLRequest(url: url)
        request.httpMethod = method
        request.httpBody = body
        request.setValue("application/json", forHTTPHeaderField: "Content-Type")
        let (data, response) = try await URLSession.shared.data(for: request)
        return ((response as? HTTPURLResponse)?.statusCode ?? 0, (try? JSONSerialization.jsonObject(with: data) as? [String: Any]) ?? [:])
    }

    @Test func httpAndSwiftAPIAcceptExactlyTheSameDocumentIDs() async throws {
        let dataDirectory = RunCommandTests.temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: dataDirectory) }
        let node = try NodeProcess(environment: RunCommandTests.environment(dataDirectory: dataDirectory))
        let output = try node.waitForOutput(containing: "Broker listening")
        let port = try #require(RunCommandTests.brokerPort(in: output))
        let mesh = try PeatMeshBuilder(secret: .generate(), context: "id-rule").build()

        var accepted = 0
        var refused = 0
        for id in Self.generatedIDs(count: 400) {
            let url = try #require(URL(string: "http://127.0.0.1:\(port)/api/v1/documents/beacons/\(Self.pathSegment(id))"))
            let put = try await Self.request("PUT", url, body: Data(#"{"n":1}"#.utf8))
            let swiftAccepts: Bool
            do {
                try await mesh.put("beacons", id, ["n": .int(1)])
                swiftAccepts = true
            } catch {
                #expect(error.code == .invalidKey, "\(id.debugDescription): \(error)")
                swiftAccepts = false
            }
            // 201 when created, 200 when a repeated ID replaced it.
            #expect((put.status == 201 || put.status == 200) == swiftAccepts, "\(id.debugDescription): HTTP \(put.status), Swift API accepts: \(swiftAccepts)")
            #expect(DocumentKey.isValidID(id) == swiftAccepts)
            if put.status == 201 || put.status == 200 {
                accepted += 1
                let read = try await Self.request("GET", url)
                #expect(read.status == 200 && read.json["id"] as? String == id, "\(id.debugDescription) reads back")
            } else {
                refused += 1
                #expect(put.json["status"] as? Int == 400)
            }
        }
        // The generated IDs exercise both sides of the rule.
        #expect(accepted > 50 && refused > 50)
        node.signal(SIGTERM)
        #expect(try node.finish().status == 0)
    }
}
