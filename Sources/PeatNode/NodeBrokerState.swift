import PeatBroker
import PeatCRDT
import PeatMesh
import PeatStorage
import Synchronization

/// What the broker serves: identity, real readiness checks (store open, transport listening,
/// discovery running), the mesh's peers and documents, and mesh events for WebSocket clients.
final class NodeBrokerState: BrokerState {
    let nodeID: String
    let deviceID: String
    let discovery: NodeDiscovery
    let store: LMDBDocumentStore
    let mesh: PeatMesh
    private let started = ContinuousClock.now
    /// Set once the broker's listener is bound.
    let brokerListening = Mutex(false)

    init(nodeID: String, deviceID: String, discovery: NodeDiscovery, store: LMDBDocumentStore, mesh: PeatMesh) {
        self.nodeID = nodeID
        self.deviceID = deviceID
        self.discovery = discovery
        self.store = store
        self.mesh = mesh
    }

    func nodeInfo() async -> BrokerNodeInfo {
        let uptime = started.duration(to: .now).components.seconds
        return BrokerNodeInfo(nodeID: nodeID, deviceID: deviceID, uptimeSeconds: UInt64(max(uptime, 0)), version: PeatMeshNode.version)
    }

    func readiness() async -> BrokerReadiness {
        var checks: [BrokerReadiness.Check] = []
        do {
            try store.checkReadable()
            checks.append(.init(name: "store", ready: true))
        } catch {
            checks.append(.init(name: "store", ready: false, message: error.message))
        }
        let listening = mesh.isSyncReady
        checks.append(.init(name: "transport", ready: listening, message: listening ? nil : "the sync listener is not bound"))
        let discoveryState = discovery.readiness(running: mesh.isDiscoveryRunning, discovered: mesh.discoveredPeerCount)
        checks.append(.init(name: "discovery", ready: discoveryState.ready, message: discoveryState.message))
        return BrokerReadiness(ready: checks.allSatisfy(\.ready), nodeID: nodeID, checks: checks)
    }

    func peers() async -> [BrokerPeer] {
        mesh.peers().map { peer in
            BrokerPeer(
                id: peer.id, connected: peer.connected, state: peer.state,
                rttMilliseconds: peer.roundTripTime.map { UInt64(max(($0 / .milliseconds(1)).rounded(), 0)) },
                path: peer.path?.name, relayURL: peer.path?.relayURL?.description)
        }
    }

    func storeSize() async -> BrokerStoreSize? {
        guard let statistics = try? store.statistics() else { return nil }
        return BrokerStoreSize(documents: statistics.liveDocuments, bytes: statistics.valueBytes)
    }

    func topology() async -> BrokerTopology {
        BrokerTopology(peerCount: mesh.peers().filter(\.connected).count, role: "peer", hierarchyLevel: 0)
    }

    // MARK: Documents

    func listDocuments(_ collection: String, limit: Int, after cursor: String?) async throws(BrokerError) -> BrokerDocumentPage {
        let page = try await Self.mapErrors { () async throws(MeshError) in try await mesh.documents(in: collection, after: cursor, limit: limit) }
        return BrokerDocumentPage(documents: page.documents.map(Self.broker), nextCursor: page.nextCursor)
    }

    func document(_ collection: String, _ id: String) async throws(BrokerError) -> BrokerDocument? {
        try await Self.mapErrors { () async throws(MeshError) in try await mesh.document(collection, id) }.map(Self.broker)
    }

    func putDocument(_ collection: String, _ id: String, _ value: [String: JSONValue], ifVersion: UInt64?) async throws(BrokerError) -> BrokerWriteResult {
        let result = try await Self.mapErrors { () async throws(MeshError) in try await mesh.put(collection, id, value, ifVersion: ifVersion) }
        return BrokerWriteResult(document: Self.broker(result.document), created: result.created)
    }

    func patchDocument(_ collection: String, _ id: String, _ patch: [String: JSONValue], ifVersion: UInt64?) async throws(BrokerError) -> BrokerDocument {
        return Self.broker(try await Self.mapErrors { () async throws(MeshError) in try await mesh.patch(collection, id, patch, ifVersion: ifVersion) })
    }

    func deleteDocument(_ collection: String, _ id: String, ifVersion: UInt64?) async throws(BrokerError) -> Bool {
        try await Self.mapErrors { () async throws(MeshError) in try await mesh.delete(collection, id, ifVersion: ifVersion) }
    }

    func events() -> AsyncStream<BrokerEvent> {
        let source = EventSource(mesh.events().makeAsyncIterator())
        return AsyncStream(unfolding: { await source.next() })
    }

    // MARK: Conversions

    static func mapErrors<T>(_ body: () async throws(MeshError) -> T) async throws(BrokerError) -> T {
        do {
            return try await body()
        } catch {
            let code: BrokerError.Code =
                switch error.code {
                case .notFound: .notFound
                case .versionConflict: .preconditionFailed
                case .invalidDocument, .invalidKey: .badRequest
                case .closed, .storage: .unavailable
                default: .internalError
                }
            throw BrokerError(code: code, message: error.message)
        }
    }

    static func broker(_ document: MeshDocument) -> BrokerDocument {
        BrokerDocument(id: document.key.id, value: document.value, version: document.version)
    }
}

/// Maps mesh events to broker events for the broker's single subscription.
private final class EventSource: @unchecked Sendable {
    // @unchecked Sendable: the broker's event pump is the only caller of `next`.
    private var iterator: AsyncStream<MeshEvent>.Iterator

    init(_ iterator: AsyncStream<MeshEvent>.Iterator) {
        self.iterator = iterator
    }

    func next() async -> BrokerEvent? {
        guard let event = await iterator.next() else { return nil }
        switch event {
        case .peerConnected(let peer):
            return .peerConnected(peerID: peer.id)
        case .peerDisconnected(let peer, let reason):
            return .peerDisconnected(peerID: peer.id, reason: reason)
        case .documentChanged(let key, let deleted, let origin):
            return .syncEvent(collection: key.collection, documentID: key.id, action: deleted ? "delete" : "put", origin: "\(origin)")
        }
    }
}
