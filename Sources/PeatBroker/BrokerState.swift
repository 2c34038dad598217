/// What the broker serves, behind a protocol so it is testable with a fake and embeddable
/// without the mesh. The node implements it over the mesh, the store and the transport.
public protocol BrokerState: Sendable {
    /// This node's identity and uptime.
    func nodeInfo() async -> BrokerNodeInfo
    /// Real readiness checks (store open, transport listening, discovery running, ...).
    func readiness() async -> BrokerReadiness
    /// Known peers and their connection state.
    func peers() async -> [BrokerPeer]
    /// A summary of the mesh topology.
    func topology() async -> BrokerTopology

    /// One page of live documents of a collection, in ID order.
    func listDocuments(_ collection: String, limit: Int, after cursor: String?) async throws(BrokerError) -> BrokerDocumentPage
    /// One live document, or nil.
    func document(_ collection: String, _ id: String) async throws(BrokerError) -> BrokerDocument?
    /// Replaces (or creates) a document with `value`, a JSON object.
    /// - Parameter ifVersion: Only if the current version is this one (0: only if absent).
    func putDocument(_ collection: String, _ id: String, _ value: [String: JSONValue], ifVersion: UInt64?) async throws(BrokerError) -> BrokerWriteResult
    /// Applies an RFC 7396 merge patch to an existing document.
    func patchDocument(_ collection: String, _ id: String, _ patch: [String: JSONValue], ifVersion: UInt64?) async throws(BrokerError) -> BrokerDocument
    /// Deletes a document (a tombstone); false if there was no live document.
    func deleteDocument(_ collection: String, _ id: String, ifVersion: UInt64?) async throws(BrokerError) -> Bool

    /// Mesh and sync events for WebSocket clients; the broker subscribes once and fans out.
    func events() -> AsyncStream<BrokerEvent>

    /// The document store's size for `/metrics`, if the state has a store.
    func storeSize() async -> BrokerStoreSize?
}

extension BrokerState {
    public func storeSize() async -> BrokerStoreSize? { nil }
}

/// The document store's size, as `/metrics` reports it.
public struct BrokerStoreSize: Sendable, Equatable {
    public var documents: Int
    public var bytes: Int

    public init(documents: Int, bytes: Int) {
        self.documents = documents
        self.bytes = bytes
    }
}

public struct BrokerNodeInfo: Sendable, Equatable, Codable {
    public var nodeID: String
    public var deviceID: String
    public var uptimeSeconds: UInt64
    public var version: String

    public init(nodeID: String, deviceID: String, uptimeSeconds: UInt64, version: String) {
        self.nodeID = nodeID
        self.deviceID = deviceID
        self.uptimeSeconds = uptimeSeconds
        self.version = version
    }

    enum CodingKeys: String, CodingKey {
        case nodeID = "node_id"
        case deviceID = "device_id"
        case uptimeSeconds = "uptime_secs"
        case version
    }
}

public struct BrokerReadiness: Sendable, Equatable, Codable {
    public struct Check: Sendable, Equatable, Codable {
        public var name: String
        public var ready: Bool
        public var message: String?

        public init(name: String, ready: Bool, message: String? = nil) {
            self.name = name
            self.ready = ready
            self.message = message
        }

        public func encode(to encoder: any Encoder) throws {
            var container = encoder.container(keyedBy: CodingKeys.self)
            try container.encode(name, forKey: .name)
            try container.encode(ready, forKey: .ready)
            try container.encode(message, forKey: .message)  // null when absent, as the original
        }
    }

    public var ready: Bool
    public var nodeID: String
    public var checks: [Check]

    public init(ready: Bool, nodeID: String, checks: [Check]) {
        self.ready = ready
        self.nodeID = nodeID
        self.checks = checks
    }

    enum CodingKeys: String, CodingKey {
        case ready
        case nodeID = "node_id"
        case checks
    }
}

public struct BrokerPeer: Sendable, Equatable, Codable {
    public var id: String
    public var connected: Bool
    public var state: String
    public var rttMilliseconds: UInt64?
    /// `direct` or `relay` while connected (absent otherwise).
    public var path: String?
    /// The relay's URL when `path` is `relay`.
    public var relayURL: String?

    public init(id: String, connected: Bool, state: String, rttMilliseconds: UInt64?, path: String? = nil, relayURL: String? = nil) {
        self.id = id
        self.connected = connected
        self.state = state
        self.rttMilliseconds = rttMilliseconds
        self.path = path
        self.relayURL = relayURL
    }

    enum CodingKeys: String, CodingKey {
        case id, connected, state, path
        case rttMilliseconds = "rtt_ms"
        case relayURL = "relay_url"
    }

    public func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encode(id, forKey: .id)
        try container.encode(connected, forKey: .connected)
        try container.encode(state, forKey: .state)
        try container.encode(rttMilliseconds, forKey: .rttMilliseconds)  // null when unknown
        try container.encodeIfPresent(path, forKey: .path)
        try container.encodeIfPresent(relayURL, forKey: .relayURL)
    }
}

public struct BrokerTopology: Sendable, Equatable, Codable {
    public var peerCount: Int
    public var role: String
    public var hierarchyLevel: Int

    public init(peerCount: Int, role: String, hierarchyLevel: Int) {
        self.peerCount = peerCount
        self.role = role
        self.hierarchyLevel = hierarchyLevel
    }

    enum CodingKeys: String, CodingKey {
        case peerCount = "peer_count"
        case role
        case hierarchyLevel = "hierarchy_level"
    }
}

/// A document as the broker shows it.
public struct BrokerDocument: Sendable, Equatable {
    public var id: String
    public var value: [String: JSONValue]
    /// The version for `If-Match` (shown as the ETag).
    public var version: UInt64

    public init(id: String, value: [String: JSONValue], version: UInt64) {
        self.id = id
        self.value = value
        self.version = version
    }
}

public struct BrokerDocumentPage: Sendable, Equatable {
    public var documents: [BrokerDocument]
    public var nextCursor: String?

    public init(documents: [BrokerDocument], nextCursor: String?) {
        self.documents = documents
        self.nextCursor = nextCursor
    }
}

public struct BrokerWriteResult: Sendable, Equatable {
    public var document: BrokerDocument
    public var created: Bool

    public init(document: BrokerDocument, created: Bool) {
        self.document = document
        self.created = created
    }
}

/// An event for WebSocket clients, sent as a JSON text frame tagged by `type`.
public enum BrokerEvent: Sendable, Equatable {
    case peerConnected(peerID: String)
    case peerDisconnected(peerID: String, reason: String)
    case topologyChanged(newRole: String, peerCount: Int)
    /// A document changed: `action` is `put` or `delete`; `origin` is `local` or the peer's ID.
    case syncEvent(collection: String, documentID: String, action: String, origin: String)

    /// The collection a sync event is about (nil for mesh events).
    var collection: String? {
        if case .syncEvent(let collection, _, _, _) = self { return collection }
        return nil
    }

    var json: JSONValue {
        switch self {
        case .peerConnected(let peerID):
            .object(["type": .string("PeerConnected"), "peer_id": .string(peerID)])
        case .peerDisconnected(let peerID, let reason):
            .object(["type": .string("PeerDisconnected"), "peer_id": .string(peerID), "reason": .string(reason)])
        case .topologyChanged(let role, let count):
            .object(["type": .string("TopologyChanged"), "new_role": .string(role), "peer_count": .int(Int64(count))])
        case .syncEvent(let collection, let id, let action, let origin):
            .object([
                "type": .string("SyncEvent"), "collection": .string(collection), "doc_id": .string(id),
                "action": .string(action), "origin": .string(origin),
            ])
        }
    }
}
