import Foundation
import Hummingbird
import HummingbirdTesting
import PeatBroker
import Testing

/// The OpenAPI document in the repository and the routes the broker serves must agree.
struct OpenAPIAgreementTests {
    static func documentedOperations() throws -> Set<String> {
        let document = try #require(JSONSerialization.jsonObject(with: Broker.openAPIDocument) as? [String: Any])
        let paths = try #require(document["paths"] as? [String: [String: Any]])
        var operations = Set<String>()
        for (path, item) in paths {
            for method in item.keys where ["get", "put", "post", "patch", "delete"].contains(method) {
                operations.insert("\(method.uppercased()) \(path)")
            }
        }
        return operations
    }

    @Test func everyRouteIsDocumentedAndEveryDocumentedRouteExists() throws {
        let served = Set(Broker.routes.map { "\($0.method.rawValue) \($0.path)" })
        let documented = try Self.documentedOperations()
        #expect(served.subtracting(documented).isEmpty, "undocumented routes: \(served.subtracting(documented).sorted())")
        #expect(documented.subtracting(served).isEmpty, "documented but not served: \(documented.subtracting(served).sorted())")
    }

    @Test func everyDocumentedOperationIsAnsweredByTheRouter() async throws {
        let operations = try Self.documentedOperations()
        let app = Broker(state: FakeBrokerState(), configuration: .init(host: "127.0.0.1", port: 0)).makeApplication()
        try await app.test(.router) { client in
            for operation in operations.sorted() {
                let parts = operation.split(separator: " ", maxSplits: 1)
                let path = String(parts[1])
                    .replacingOccurrences(of: "{collection}", with: "beacons")
                    .replacingOccurrences(of: "{id}", with: "doc-1")
                let method = HTTPRequest.Method(rawValue: String(parts[0]))!
                try await client.execute(uri: path, method: method, body: ByteBuffer(string: "{}")) { response in
                    // Served: anything but "no such route" or "wrong method" (404 only from a missing document).
                    #expect(response.status != .methodNotAllowed, "\(operation)")
                    if response.status == .notFound {
                        let body = String(buffer: response.body)
                        #expect(!body.contains("no route"), "\(operation) is not routed")
                    }
                }
            }
        }
    }

    @Test func servedDocumentIsTheRepositoryFile() async throws {
        let repositoryFile = URL(fileURLWithPath: #filePath)
            .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
            .appendingPathComponent("Sources/PeatBroker/openapi.json")
        let onDisk = try Data(contentsOf: repositoryFile)
        let app = Broker(state: FakeBrokerState(), configuration: .init(host: "127.0.0.1", port: 0)).makeApplication()
        try await app.test(.router) { client in
            try await client.execute(uri: "/api/v1/openapi.json", method: .get) { response in
                #expect(response.status == .ok)
                #expect(Data(buffer: response.body) == onDisk)
            }
        }
    }
}
