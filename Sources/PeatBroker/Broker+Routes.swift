import Foundation
import Hummingbird
import HummingbirdWebSocket
import PeatStorage

extension Broker {
    /// A path parameter, percent-decoded (`%2F` is a `/` and so an invalid ID, not a separator).
    static func parameter(_ name: String, _ context: some RequestContext) throws -> String {
        let raw = context.parameters.get(name) ?? ""
        guard let decoded = raw.removingPercentEncoding else {
            throw BrokerError(code: .badRequest, message: "invalid percent-encoding in the \(name)")
        }
        return decoded
    }

    static func collection(_ context: some RequestContext) throws -> String {
        let name = try parameter("collection", context)
        guard DocumentKey.isValidCollection(name) else {
            throw BrokerError(code: .badRequest, message: "invalid collection name: \(DocumentKey.collectionRule)")
        }
        return name
    }

    static func documentID(_ context: some RequestContext) throws -> String {
        let id = try parameter("id", context)
        guard DocumentKey.isValidID(id) else {
            throw BrokerError(code: .badRequest, message: "invalid document id: \(DocumentKey.idRule)")
        }
        return id
    }

    /// The version an `If-Match: "<version>"` header asks for (nil without the header).
    static func ifMatch(_ request: Request) throws -> UInt64? {
        guard let header = request.headers[.ifMatch] else { return nil }
        let trimmed = header.trimmingCharacters(in: .whitespaces)
        let unquoted =
            trimmed.hasPrefix("\"") && trimmed.hasSuffix("\"") && trimmed.count >= 2
            ? String(trimmed.dropFirst().dropLast()) : trimmed
        guard let version = UInt64(unquoted) else {
            throw BrokerError(code: .badRequest, message: "If-Match must be a version ETag such as \"42\"")
        }
        return version
    }

    /// Reads a JSON object body, answering 413 above the limit and 400 for anything else.
    func jsonObjectBody(_ request: Request) async throws -> [String: JSONValue] {
        let buffer: ByteBuffer
        do {
            buffer = try await request.body.collect(upTo: configuration.maximumBodySize)
        } catch let error as any HTTPResponseError where error.status == .contentTooLarge {
            throw BrokerError(code: .payloadTooLarge, message: "request body exceeds \(configuration.maximumBodySize) bytes")
        }
        let value: JSONValue
        do {
            value = try JSONDecoder().decode(JSONValue.self, from: Data(buffer: buffer))
        } catch {
            throw BrokerError(code: .badRequest, message: "request body is not valid JSON")
        }
        guard let object = value.object else {
            throw BrokerError(code: .badRequest, message: "a document must be a JSON object")
        }
        return object
    }

    static func documentBody(collection: String, document: BrokerDocument) -> Response {
        jsonResponse(
            JSONValue.object(["collection": .string(collection), "id": .string(document.id), "document": .object(document.value)]),
            headers: [.eTag: "\"\(document.version)\""])
    }

    func addRoutes(to router: Router<BasicWebSocketRequestContext>) {
        let state = state
        let configuration = configuration
        let timeout = configuration.requestTimeout

        // Probes and identity are answered from memory; writes, listings and peer queries get a deadline.
        router.get("/api/v1/health") { _, _ in
            healthResponse(nodeID: await state.nodeInfo().nodeID)
        }
        router.get("/api/v1/ready") { _, _ in
            let readiness = await state.readiness()
            return jsonResponse(readiness, status: readiness.ready ? .ok : .serviceUnavailable)
        }
        router.get("/api/v1/node") { _, _ in
            jsonResponse(await state.nodeInfo())
        }
        router.get("/api/v1/topology") { _, _ in
            jsonResponse(try await withDeadline(timeout) { await state.topology() })
        }
        router.get("/api/v1/peers") { _, _ in
            let peers = try await withDeadline(timeout) { await state.peers() }
            return jsonResponse(PeerList(count: peers.count, peers: peers))
        }
        router.get("/api/v1/peers/{id}") { _, context in
            let id = try Self.parameter("id", context)
            let peers = try await withDeadline(timeout) { await state.peers() }
            guard let peer = peers.first(where: { $0.id == id }) else {
                throw BrokerError(code: .notFound, message: "peer not found: \(id)")
            }
            return jsonResponse(peer)
        }
        router.get("/api/v1/documents/{collection}") { request, context in
            let collection = try Self.collection(context)
            let limitText = request.uri.queryParameters.get("limit")
            let limit: Int
            if let limitText {
                guard let parsed = Int(limitText), (1...configuration.maximumPageSize).contains(parsed) else {
                    throw BrokerError(code: .badRequest, message: "limit must be 1-\(configuration.maximumPageSize)")
                }
                limit = parsed
            } else {
                limit = configuration.defaultPageSize
            }
            let cursor: String? = request.uri.queryParameters.get("cursor").map { String($0) }
            if let cursor, !DocumentKey.isValidCursor(cursor) { throw BrokerError(code: .badRequest, message: "invalid cursor") }
            let page = try await withDeadline(timeout) { try await state.listDocuments(collection, limit: limit, after: cursor) }
            var body: [String: JSONValue] = [
                "collection": .string(collection),
                "count": .int(Int64(page.documents.count)),
                "documents": .array(
                    page.documents.map { document in
                        var members = document.value
                        members["_id"] = .string(document.id)
                        return .object(members)
                    }),
            ]
            if let next = page.nextCursor { body["next_cursor"] = .string(next) }
            return jsonResponse(JSONValue.object(body))
        }
        router.get("/api/v1/documents/{collection}/{id}") { _, context in
            let collection = try Self.collection(context)
            let id = try Self.documentID(context)
            // A point read is not given a deadline: it is bounded by the store, and a deadline's
            // two child tasks would cost a third of this route's throughput.
            guard let document = try await state.document(collection, id) else {
                throw BrokerError(code: .notFound, message: "document not found: \(collection)/\(id)")
            }
            return Self.documentBody(collection: collection, document: document)
        }
        router.put("/api/v1/documents/{collection}/{id}") { request, context in
            let collection = try Self.collection(context)
            let id = try Self.documentID(context)
            let version = try Self.ifMatch(request)
            let value = try await self.jsonObjectBody(request)
            let result = try await withDeadline(timeout) { try await state.putDocument(collection, id, value, ifVersion: version) }
            var response = Self.documentBody(collection: collection, document: result.document)
            if result.created { response.status = .created }
            return response
        }
        router.patch("/api/v1/documents/{collection}/{id}") { request, context in
            let collection = try Self.collection(context)
            let id = try Self.documentID(context)
            let version = try Self.ifMatch(request)
            let patch = try await self.jsonObjectBody(request)
            let document = try await withDeadline(timeout) { try await state.patchDocument(collection, id, patch, ifVersion: version) }
            return Self.documentBody(collection: collection, document: document)
        }
        router.delete("/api/v1/documents/{collection}/{id}") { request, context in
            let collection = try Self.collection(context)
            let id = try Self.documentID(context)
            let version = try Self.ifMatch(request)
            guard try await withDeadline(timeout, { try await state.deleteDocument(collection, id, ifVersion: version) }) else {
                throw BrokerError(code: .notFound, message: "document not found: \(collection)/\(id)")
            }
            return jsonResponse(JSONValue.object(["collection": .string(collection), "id": .string(id), "deleted": .bool(true)]))
        }
        router.get("/api/v1/openapi.json") { _, _ in
            Response(
                status: .ok, headers: [.contentType: "application/json"],
                body: .init(byteBuffer: ByteBuffer(bytes: Self.openAPIDocument)))
        }
        let metrics = metrics
        let registry = registry
        let hub = hub
        router.get("/metrics") { _, _ in
            let peers = try await withDeadline(timeout) { await state.peers() }
            let store = try await withDeadline(timeout) { await state.storeSize() }
            metrics.snapshot(
                peersKnown: peers.count, peersConnected: peers.filter(\.connected).count, webSocketClients: hub.clientCount,
                store: store)
            return metricsResponse(registry)
        }
    }

    private struct PeerList: Encodable {
        let count: Int
        let peers: [BrokerPeer]
    }
}
