import Foundation
import Hummingbird
import HummingbirdTesting
import PeatBroker
import Testing

/// Every HTTP route and error path, through Hummingbird's router test client.
@Suite(.timeLimit(.minutes(1)))
struct BrokerRouteTests {
    static func withBroker(
        _ state: FakeBrokerState = FakeBrokerState(),
        configure: (inout Broker.Configuration) -> Void = { _ in },
        _ body: @escaping @Sendable (any TestClientProtocol) async throws -> Void
    ) async throws {
        var configuration = Broker.Configuration(host: "127.0.0.1", port: 0)
        configure(&configuration)
        let app = Broker(state: state, configuration: configuration).makeApplication()
        try await app.test(.router, body)
    }

    static func json(_ buffer: ByteBuffer) throws -> [String: Any] {
        try #require(JSONSerialization.jsonObject(with: Data(buffer: buffer)) as? [String: Any])
    }

    static func body(_ text: String) -> ByteBuffer { ByteBuffer(string: text) }

    @Test func healthNodeTopologyAndPeers() async throws {
        let state = FakeBrokerState()
        state.peerList.withLock { $0 = [BrokerPeer(id: "peat-mesh-1", connected: true, state: "connected", rttMilliseconds: 3)] }
        try await Self.withBroker(state) { client in
            try await client.execute(uri: "/api/v1/health", method: .get) { response in
                #expect(response.status == .ok)
                let health = try Self.json(response.body)
                #expect(NSDictionary(dictionary: health) == ["status": "healthy", "node_id": "peat-mesh-0"])
            }
            try await client.execute(uri: "/api/v1/node", method: .get) { response in
                let node = try Self.json(response.body)
                #expect(node["node_id"] as? String == "peat-mesh-0")
                #expect(node["device_id"] as? String == "f15e5546858a28909aae7c0e24e0ffe1")
                #expect(node["uptime_secs"] as? Int == 42)
                #expect(node["version"] as? String == "0.1.0")
            }
            try await client.execute(uri: "/api/v1/topology", method: .get) { response in
                let json1 = try Self.json(response.body)
                #expect(json1["peer_count"] as? Int == 1)
            }
            try await client.execute(uri: "/api/v1/peers", method: .get) { response in
                let body = try Self.json(response.body)
                #expect(body["count"] as? Int == 1)
                let peer = try #require((body["peers"] as? [[String: Any]])?.first)
                #expect(peer["id"] as? String == "peat-mesh-1" && peer["connected"] as? Bool == true && peer["rtt_ms"] as? Int == 3)
            }
            try await client.execute(uri: "/api/v1/peers/peat-mesh-1", method: .get) { response in
                let json2 = try Self.json(response.body)
                #expect(json2["state"] as? String == "connected")
            }
            try await client.execute(uri: "/api/v1/peers/nobody", method: .get) { response in
                #expect(response.status == .notFound)
                let json3 = try Self.json(response.body)
                #expect(json3["status"] as? Int == 404)
            }
        }
    }

    @Test func readinessReflectsRealChecks() async throws {
        let state = FakeBrokerState()
        try await Self.withBroker(state) { client in
            try await client.execute(uri: "/api/v1/ready", method: .get) { response in
                #expect(response.status == .ok)
                let body = try Self.json(response.body)
                #expect(body["ready"] as? Bool == true)
                let check = try #require((body["checks"] as? [[String: Any]])?.first)
                #expect(check["name"] as? String == "store" && check["message"] is NSNull)
            }
            state.readyChecks.withLock { $0.append(.init(name: "transport", ready: false, message: "not listening")) }
            try await client.execute(uri: "/api/v1/ready", method: .get) { response in
                #expect(response.status == .serviceUnavailable)
                let body = try Self.json(response.body)
                #expect(body["ready"] as? Bool == false)
                #expect((body["checks"] as? [[String: Any]])?.last?["message"] as? String == "not listening")
            }
        }
    }

    @Test func documentLifecycleWithConditionalWrites() async throws {
        try await Self.withBroker { client in
            try await client.execute(uri: "/api/v1/documents/beacons", method: .get) { response in
                #expect(response.status == .ok)
                let body = try Self.json(response.body)
                #expect(body["count"] as? Int == 0 && (body["documents"] as? [Any])?.isEmpty == true)
            }
            var etag = ""
            try await client.execute(uri: "/api/v1/documents/beacons/b1", method: .put, body: Self.body(#"{"lat":1.5,"name":"alpha","tags":["x"]}"#)) {
                response in
                #expect(response.status == .created)
                etag = response.headers[.eTag] ?? ""
                let body = try Self.json(response.body)
                #expect(body["id"] as? String == "b1" && body["collection"] as? String == "beacons")
            }
            #expect(!etag.isEmpty)
            try await client.execute(uri: "/api/v1/documents/beacons/b1", method: .get) { response in
                #expect(response.headers[.eTag] == etag)
                let document = try #require(try Self.json(response.body)["document"] as? [String: Any])
                #expect(document["name"] as? String == "alpha" && document["lat"] as? Double == 1.5)
            }
            // A stale If-Match changes nothing.
            try await client.execute(uri: "/api/v1/documents/beacons/b1", method: .patch, headers: [.ifMatch: "\"999\""], body: Self.body(#"{"name":"beta"}"#))
            { response in
                #expect(response.status == .preconditionFailed)
                let json4 = try Self.json(response.body)
                #expect(json4["status"] as? Int == 412)
            }
            try await client.execute(
                uri: "/api/v1/documents/beacons/b1", method: .patch, headers: [.ifMatch: etag], body: Self.body(#"{"name":"beta","lat":null,"extra":{"a":1}}"#)
            ) { response in
                #expect(response.status == .ok)
                let document = try #require(try Self.json(response.body)["document"] as? [String: Any])
                #expect(document["name"] as? String == "beta" && document["lat"] == nil && (document["extra"] as? [String: Any])?["a"] as? Int == 1)
                #expect(response.headers[.eTag] != etag)
            }
            try await client.execute(uri: "/api/v1/documents/beacons/b1", method: .put, body: Self.body(#"{"only":true}"#)) { response in
                #expect(response.status == .ok)
            }
            try await client.execute(uri: "/api/v1/documents/beacons", method: .get) { response in
                let documents = try #require(try Self.json(response.body)["documents"] as? [[String: Any]])
                #expect(documents.count == 1 && documents[0]["_id"] as? String == "b1" && documents[0]["only"] as? Bool == true)
            }
            try await client.execute(uri: "/api/v1/documents/beacons/b1", method: .delete) { response in
                let deleted = try Self.json(response.body)["deleted"] as? Bool
                #expect(response.status == .ok && deleted == true)
            }
            try await client.execute(uri: "/api/v1/documents/beacons/b1", method: .get) { response in
                #expect(response.status == .notFound)
            }
            try await client.execute(uri: "/api/v1/documents/beacons/b1", method: .delete) { response in
                #expect(response.status == .notFound)
            }
            try await client.execute(uri: "/api/v1/documents/beacons/b2", method: .patch, body: Self.body(#"{"a":1}"#)) { response in
                #expect(response.status == .notFound)
            }
        }
    }

    @Test func listingPagesWithLimitAndCursor() async throws {
        try await Self.withBroker { client in
            for index in 0..<5 {
                try await client.execute(uri: "/api/v1/documents/tracks/t\(index)", method: .put, body: Self.body(#"{"i":\#(index)}"#)) { _ in }
            }
            var cursor: String?
            var seen: [String] = []
            repeat {
                let uri = "/api/v1/documents/tracks?limit=2" + (cursor.map { "&cursor=\($0)" } ?? "")
                try await client.execute(uri: uri, method: .get) { response in
                    let body = try Self.json(response.body)
                    seen += (body["documents"] as? [[String: Any]] ?? []).compactMap { $0["_id"] as? String }
                    cursor = body["next_cursor"] as? String
                }
            } while cursor != nil
            #expect(seen == ["t0", "t1", "t2", "t3", "t4"])
            for bad in ["0", "-1", "abc", "1001"] {
                try await client.execute(uri: "/api/v1/documents/tracks?limit=\(bad)", method: .get) { response in
                    #expect(response.status == .badRequest)
                }
            }
        }
    }

    @Test(arguments: [
        ("/api/v1/documents/beacons/..", 400), ("/api/v1/documents/beacons/%2E", 400), ("/api/v1/documents/beacons/%2e%2e", 400),
        ("/api/v1/documents/beacons/bad%01id", 400), ("/api/v1/documents/beacons/" + String(repeating: "x", count: 256), 400),
        ("/api/v1/documents/bad%20collection/x", 400), ("/api/v1/documents/%2E%2E/x", 400),
        ("/api/v1/documents/beacons/a%2Fb", 400),
    ])
    func rejectsInvalidIdentifiers(_ uri: String, _ status: Int) async throws {
        try await Self.withBroker { client in
            for method in [HTTPRequest.Method.get, .put, .delete] {
                try await client.execute(uri: uri, method: method, body: Self.body("{}")) { response in
                    #expect(Int(response.status.code) == status, "\(method) \(uri)")
                    let json5 = try Self.json(response.body)
                    #expect(json5["status"] as? Int == status)
                }
            }
        }
    }

    @Test(arguments: ["", "{", "[1,2]", "\"text\"", "42", "null", "{\"a\":}", "\u{FF}\u{FE}"])
    func rejectsBodiesThatAreNotJSONObjects(_ text: String) async throws {
        try await Self.withBroker { client in
            try await client.execute(uri: "/api/v1/documents/beacons/b1", method: .put, body: Self.body(text)) { response in
                #expect(response.status == .badRequest)
                let errorBody = try Self.json(response.body)
                #expect(errorBody["error"] is String)
            }
            try await client.execute(uri: "/api/v1/documents/beacons/b1", method: .get) { response in
                #expect(response.status == .notFound, "a failed write changes nothing")
            }
        }
    }

    @Test func oversizedBodyIsRefusedWith413() async throws {
        try await Self.withBroker(configure: { $0.maximumBodySize = 1024 }) { client in
            let big = "{\"data\":\"" + String(repeating: "x", count: 2048) + "\"}"
            try await client.execute(uri: "/api/v1/documents/beacons/b1", method: .put, body: Self.body(big)) { response in
                #expect(response.status == .contentTooLarge)
                let json6 = try Self.json(response.body)
                #expect(json6["status"] as? Int == 413)
            }
            try await client.execute(uri: "/api/v1/documents/beacons/b1", method: .get) { response in
                #expect(response.status == .notFound)
            }
        }
    }

    @Test func unknownRoutesAndWrongMethodsAnswerJSONErrors() async throws {
        try await Self.withBroker { client in
            try await client.execute(uri: "/nope", method: .get) { response in
                #expect(response.status == .notFound)
                let json7 = try Self.json(response.body)
                #expect(json7["status"] as? Int == 404)
            }
            try await client.execute(uri: "/api/v1/health", method: .post) { response in
                #expect(response.status == .methodNotAllowed)
                let json8 = try Self.json(response.body)
                #expect(json8["status"] as? Int == 405)
            }
            try await client.execute(uri: "/api/v1/documents/beacons", method: .delete) { response in
                #expect(response.status == .methodNotAllowed)
            }
        }
    }

    @Test func slowStateIsAnsweredWith504() async throws {
        let state = FakeBrokerState()
        state.delay.withLock { $0 = .seconds(5) }
        try await Self.withBroker(state, configure: { $0.requestTimeout = .milliseconds(100) }) { client in
            try await client.execute(uri: "/api/v1/documents/beacons/b1", method: .put, body: Self.body("{}")) { response in
                #expect(response.status == .gatewayTimeout)
                let json9 = try Self.json(response.body)
                #expect(json9["status"] as? Int == 504)
            }
        }
    }

    @Test func metricsAreInPrometheusTextFormat() async throws {
        let state = FakeBrokerState()
        state.peerList.withLock { $0 = [BrokerPeer(id: "p", connected: true, state: "connected", rttMilliseconds: nil)] }
        try await Self.withBroker(state) { client in
            try await client.execute(uri: "/api/v1/health", method: .get) { _ in }
            try await client.execute(uri: "/metrics", method: .get) { response in
                #expect(response.status == .ok)
                #expect(response.headers[.contentType]?.hasPrefix("text/plain") == true)
                let text = String(buffer: response.body)
                #expect(text.contains("peat_http_requests_total{"))
                #expect(text.contains(#"route="/api/v1/health""#))
                #expect(text.contains("peat_peers_connected 1"))
                #expect(text.contains("peat_store_documents 0"))
            }
        }
    }

    @Test func randomBodiesAndIdentifiersNeverCauseServerErrors() async throws {
        try await Self.withBroker { client in
            var generator = SystemRandomNumberGenerator()
            let alphabet = Array("abcXYZ019-_./%{}[]\":,null truefalse\\\u{0}\u{7f}é😀")
            func random(_ count: Int) -> String {
                String((0..<count).map { _ in alphabet.randomElement(using: &generator)! })
            }
            for _ in 0..<300 {
                let id =
                    random(Int.random(in: 0...12, using: &generator))
                    .addingPercentEncoding(withAllowedCharacters: .alphanumerics) ?? "x"
                let collection = ["beacons", "tracks", random(3).addingPercentEncoding(withAllowedCharacters: .alphanumerics) ?? "c"].randomElement(
                    using: &generator)!
                let method = [HTTPRequest.Method.get, .put, .patch, .delete, .post].randomElement(using: &generator)!
                let body = Bool.random(using: &generator) ? "{\"k\":\"\(random(5))\"}" : random(Int.random(in: 0...40, using: &generator))
                try await client.execute(uri: "/api/v1/documents/\(collection)/\(id)", method: method, body: Self.body(body)) { response in
                    #expect(response.status.code < 500, "\(method) \(collection)/\(id) answered \(response.status.code)")
                    if response.status.code >= 400 {
                        let errorBody = try Self.json(response.body)
                        #expect(errorBody["error"] is String)
                    }
                }
            }
        }
    }
}
