import PeatBroker
import PeatStorage
import PeatTransport
import Synchronization

/// What the broker serves in this build: identity, real readiness checks, the authenticated
/// peers of the sync transport and their events. Document routes answer 503 until the document
/// engine and the sync coordinator land (issue "PeatMesh and peat-mesh-node").
final class NodeBrokerState: BrokerState {
    let nodeID: String
    let deviceID: String
    let discovery: NodeDiscovery
    let store: LMDBDocumentStore
    let transport: TLSSyncTransport
    private let started = ContinuousClock.now
    /// Set once the sync listener is bound.
    let transportListening = Mutex(false)
    /// Set once the broker's listener is bound.
    let brokerListening = Mutex(false)

    init(nodeID: String, deviceID: String, discovery: NodeDiscovery, store: LMDBDocumentStore, transport: TLSSyncTransport) {
        self.nodeID = nodeID
        self.deviceID = deviceID
        self.discovery = discovery
        self.store = store
        self.transport = transport
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
        let listening = transportListening.withLock { $0 }
        checks.append(.init(name: "transport", ready: listening, message: listening ? nil : "the sync listener is not bound"))
        let discoveryState = discovery.readiness
        checks.append(.init(name: "discovery", ready: discoveryState.ready, message: discoveryState.message))
        return BrokerReadiness(ready: checks.allSatisfy(\.ready), nodeID: nodeID, checks: checks)
    }

    /// Authenticated connections (by device ID) and discovered peers not yet dialled (by node ID);
    /// the peer connector that links the two lands with the mesh composition.
    func peers() async -> [BrokerPeer] {
        let connected = transport.activeConnections.map { connection in
            BrokerPeer(
                id: connection.peer.deviceID.hex, connected: true, state: "connected",
                rttMilliseconds: connection.roundTripTime.map { UInt64(max(($0 / .milliseconds(1)).rounded(), 0)) })
        }
        let discovered = discovery.discovered.map { BrokerPeer(id: $0.nodeID, connected: false, state: "discovered", rttMilliseconds: nil) }
        return connected + discovered
    }

    func storeSize() async -> BrokerStoreSize? {
        guard let statistics = try? store.statistics() else { return nil }
        return BrokerStoreSize(documents: statistics.liveDocuments, bytes: statistics.valueBytes)
    }

    func topology() async -> BrokerTopology {
        BrokerTopology(peerCount: transport.activeConnections.count, role: "peer", hierarchyLevel: 0)
    }

    private static let noDocuments = BrokerError(
        code: .unavailable, message: "documents are served once the document engine and sync land; this build does not store them yet")

    func listDocuments(_ collection: String, limit: Int, after cursor: String?) async throws(BrokerError) -> BrokerDocumentPage {
        throw Self.noDocuments
    }

    func document(_ collection: String, _ id: String) async throws(BrokerError) -> BrokerDocument? {
        throw Self.noDocuments
    }

    func putDocument(_ collection: String, _ id: String, _ value: [String: JSONValue], ifVersion: UInt64?) async throws(BrokerError) -> BrokerWriteResult {
        throw Self.noDocuments
    }

    func patchDocument(_ collection: String, _ id: String, _ patch: [String: JSONValue], ifVersion: UInt64?) async throws(BrokerError) -> BrokerDocument {
        throw Self.noDocuments
    }

    func deleteDocument(_ collection: String, _ id: String, ifVersion: UInt64?) async throws(BrokerError) -> Bool {
        throw Self.noDocuments
    }

    func events() -> AsyncStream<BrokerEvent> {
        let source = EventSource(transport.events.makeAsyncIterator())
        return AsyncStream(unfolding: { await source.next() })
    }
}

/// Maps transport events to broker events for the broker's single subscription.
private final class EventSource: @unchecked Sendable {
    // @unchecked Sendable: the broker's event pump is the only caller of `next`.
    private var iterator: AsyncStream<ConnectionEvent>.Iterator

    init(_ iterator: AsyncStream<ConnectionEvent>.Iterator) {
        self.iterator = iterator
    }

    func next() async -> BrokerEvent? {
        while let event = await iterator.next() {
            switch event {
            case .connected(let peer, _, _):
                return .peerConnected(peerID: peer.deviceID.hex)
            case .disconnected(let peer, let reason):
                return .peerDisconnected(peerID: peer.deviceID.hex, reason: reason.map { "\($0.code)" } ?? "closed")
            case .roundTripTime, .rejected:
                continue
            }
        }
        return nil
    }
}
