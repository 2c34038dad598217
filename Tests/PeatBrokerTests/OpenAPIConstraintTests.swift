import Foundation
import Hummingbird
import HummingbirdTesting
import PeatBroker
import PeatStorage
import Testing

/// The OpenAPI document states what the server enforces: a value its schemas admit is one the
/// server accepts (so a generated client never sends a request the server refuses), and the
/// security and status codes match what the server does.
struct OpenAPIConstraintTests {
    static var document: [String: Any] { (try? JSONSerialization.jsonObject(with: Broker.openAPIDocument) as? [String: Any]) ?? [:] }

    static func component(_ kind: String, _ name: String) -> [String: Any] {
        ((document["components"] as? [String: Any])?[kind] as? [String: Any])?[name] as? [String: Any] ?? [:]
    }

    /// Whether `value` satisfies a string schema (type string; minLength/maxLength in characters;
    /// pattern; anyOf), as a JSON Schema validator would.
    static func admits(_ schema: [String: Any], _ value: String) -> Bool {
        if let anyOf = schema["anyOf"] as? [[String: Any]], !anyOf.contains(where: { admits($0, value) }) { return false }
        let length = value.unicodeScalars.count
        if let minimum = schema["minLength"] as? Int, length < minimum { return false }
        if let maximum = schema["maxLength"] as? Int, length > maximum { return false }
        if let pattern = schema["pattern"] as? String {
            guard let regex = try? NSRegularExpression(pattern: pattern) else { return false }
            // ECMA-262 `$` (JSON Schema's dialect) matches only at the end; ICU's also before a final
            // line terminator (U+0085 ...), so the match must cover the whole string.
            let range = NSRange(value.startIndex..., in: value)
            if regex.firstMatch(in: value, range: range)?.range != range { return false }
        }
        return true
    }

    /// Strings near the rules' edges: empty, dots, slashes, control characters, multi-byte
    /// characters, lengths around 63, 128 and 255.
    static func samples(count: Int, seed: UInt64) -> [String] {
        var state = seed
        func next() -> UInt64 {
            state = state &* 6_364_136_223_846_793_005 &+ 1_442_695_040_888_963_407
            return state >> 33
        }
        let alphabet: [String] = ["a", "Z", "0", "_", "-", ".", "/", " ", "%", "?", "#", "\u{0}", "\u{1f}", "\u{7f}", "\u{85}", "é", "日", "🙂", "~", ":"]
        var result = ["", ".", "..", "...", "a", "a/b", "%2F", String(repeating: "a", count: 128), String(repeating: "a", count: 129)]
        result += [
            String(repeating: "a", count: 255), String(repeating: "a", count: 256), String(repeating: "é", count: 63), String(repeating: "é", count: 128),
        ]
        for _ in 0..<count {
            let length = [1, 2, 3, 8, 62, 63, 64, 127, 128, 129, 254, 255, 256][Int(next() % 13)]
            result.append((0..<length).map { _ in alphabet[Int(next() % UInt64(alphabet.count))] }.joined())
        }
        return result
    }

    @Test func pathAndQuerySchemasAdmitOnlyWhatTheServerAccepts() {
        let collection = Self.component("parameters", "Collection")["schema"] as? [String: Any] ?? [:]
        let id = Self.component("parameters", "DocumentID")["schema"] as? [String: Any] ?? [:]
        let ifMatch = Self.component("parameters", "IfMatch")["schema"] as? [String: Any] ?? [:]
        #expect(!collection.isEmpty && !id.isEmpty && !ifMatch.isEmpty)
        for sample in Self.samples(count: 4000, seed: 15) {
            // The collection rule is stated exactly.
            #expect(Self.admits(collection, sample) == DocumentKey.isValidCollection(sample), "collection \(sample.debugDescription)")
            // The ID rule is stated as a subset that keeps every ASCII ID.
            if Self.admits(id, sample) { #expect(DocumentKey.isValidID(sample), "id \(sample.debugDescription)") }
            if DocumentKey.isValidID(sample), sample.utf8.allSatisfy({ $0 < 0x80 }) { #expect(Self.admits(id, sample), "id \(sample.debugDescription)") }
        }
        for version in ["0", "42", "\"42\"", "9999999999999999999", "\"1\"", "-1", "1.5", "W/\"1\"", "\"\"", "", "18446744073709551616", "abc"] {
            let accepted = UInt64(version.trimmingCharacters(in: CharacterSet(charactersIn: "\""))) != nil && !version.hasPrefix("W/")
            if Self.admits(ifMatch, version) { #expect(accepted, "If-Match \(version)") }
        }
    }

    @Test func theCursorSchemaAdmitsOnlyValidCursors() throws {
        let paths = try #require(Self.document["paths"] as? [String: [String: Any]])
        let list = try #require(paths["/api/v1/documents/{collection}"]?["get"] as? [String: Any])
        let parameters = try #require(list["parameters"] as? [[String: Any]])
        let cursor = try #require(parameters.first { $0["name"] as? String == "cursor" }?["schema"] as? [String: Any])
        for sample in Self.samples(count: 2000, seed: 16) where Self.admits(cursor, sample) {
            #expect(DocumentKey.isValidCursor(sample), "cursor \(sample.debugDescription)")
        }
    }

    @Test func securityAndStatusCodesMatchTheServer() async throws {
        #expect((Self.component("securitySchemes", "bearerAuth")["scheme"] as? String) == "bearer")
        #expect((Self.document["security"] as? [[String: Any]])?.first?["bearerAuth"] != nil)
        var configuration = Broker.Configuration(host: "127.0.0.1", port: 0)
        configuration.token = try BrokerToken("openapi-check")
        let app = Broker(state: FakeBrokerState(), configuration: configuration).makeApplication()
        try await app.test(.router) { client in
            let paths = try #require(Self.document["paths"] as? [String: [String: Any]])
            for (path, item) in paths {
                for (method, value) in item {
                    let operation = try #require(value as? [String: Any])
                    let responses = try #require(operation["responses"] as? [String: Any])
                    let open = (operation["security"] as? [Any])?.isEmpty == true
                    let uri = path.replacingOccurrences(of: "{collection}", with: "beacons").replacingOccurrences(of: "{id}", with: "doc-1")
                    try await client.execute(uri: uri, method: HTTPRequest.Method(rawValue: method.uppercased())!, body: ByteBuffer(string: "{}")) {
                        response in
                        // Without the token: exactly the operations declared open are served.
                        #expect((response.status != .unauthorized) == open, "\(method) \(path)")
                        #expect(open || responses["401"] != nil, "\(method) \(path) declares 401")
                    }
                }
            }
        }
    }
}
