import PeatBroker
import Synchronization

/// A `BrokerState` double: documents in memory with versions, scripted peers, readiness and events.
final class FakeBrokerState: BrokerState {
    struct Stored {
        var value: [String: JSONValue]
        var version: UInt64
    }

    private let documents = Mutex<[String: [String: Stored]]>([:])
    private let sequence = Mutex<UInt64>(0)
    let readyChecks = Mutex<[BrokerReadiness.Check]>([.init(name: "store", ready: true)])
    let peerList = Mutex<[BrokerPeer]>([])
    /// Added to every state call (to test the request deadline).
    let delay = Mutex<Duration>(.zero)
    let eventStream: AsyncStream<BrokerEvent>
    let eventSink: AsyncStream<BrokerEvent>.Continuation

    init() {
        (eventStream, eventSink) = AsyncStream.makeStream(of: BrokerEvent.self)
    }

    private func pause() async {
        let delay = delay.withLock { $0 }
        if delay > .zero { try? await Task.sleep(for: delay) }
    }

    func nodeInfo() async -> BrokerNodeInfo {
        await pause()
        return BrokerNodeInfo(nodeID: "peat-mesh-0", deviceID: "f15e5546858a28909aae7c0e24e0ffe1", uptimeSeconds: 42, version: "0.1.0")
    }

    func readiness() async -> BrokerReadiness {
        let checks = readyChecks.withLock { $0 }
        return BrokerReadiness(ready: checks.allSatisfy(\.ready), nodeID: "peat-mesh-0", checks: checks)
    }

    func peers() async -> [BrokerPeer] { peerList.withLock { $0 } }

    func topology() async -> BrokerTopology {
        BrokerTopology(peerCount: peerList.withLock { $0.count }, role: "peer", hierarchyLevel: 0)
    }

    func listDocuments(_ collection: String, limit: Int, after cursor: String?) async throws(BrokerError) -> BrokerDocumentPage {
        await pause()
        let all = documents.withLock { $0[collection] ?? [:] }
            .map { BrokerDocument(id: $0.key, value: $0.value.value, version: $0.value.version) }
            .sorted { $0.id.utf8.lexicographicallyPrecedes($1.id.utf8) }
            .filter { cursor == nil || cursor!.utf8.lexicographicallyPrecedes($0.id.utf8) }
        let page = Array(all.prefix(limit))
        return BrokerDocumentPage(documents: page, nextCursor: all.count > page.count ? page.last?.id : nil)
    }

    func document(_ collection: String, _ id: String) async throws(BrokerError) -> BrokerDocument? {
        await pause()
        return documents.withLock { $0[collection]?[id] }.map { BrokerDocument(id: id, value: $0.value, version: $0.version) }
    }

    private func nextVersion() -> UInt64 {
        sequence.withLock {
            $0 += 1
            return $0
        }
    }

    func putDocument(_ collection: String, _ id: String, _ value: [String: JSONValue], ifVersion: UInt64?) async throws(BrokerError) -> BrokerWriteResult {
        await pause()
        let version = nextVersion()
        let result: Result<Bool, BrokerError> = documents.withLock { documents in
            let current = documents[collection]?[id]?.version ?? 0
            if let ifVersion, ifVersion != current {
                return .failure(BrokerError(code: .preconditionFailed, message: "version is \(current)"))
            }
            documents[collection, default: [:]][id] = Stored(value: value, version: version)
            return .success(current == 0)
        }
        let created = try result.get()
        eventSink.yield(.syncEvent(collection: collection, documentID: id, action: "put", origin: "local"))
        return BrokerWriteResult(document: BrokerDocument(id: id, value: value, version: version), created: created)
    }

    func patchDocument(_ collection: String, _ id: String, _ patch: [String: JSONValue], ifVersion: UInt64?) async throws(BrokerError) -> BrokerDocument {
        guard let current = try await document(collection, id) else {
            throw BrokerError(code: .notFound, message: "document not found: \(collection)/\(id)")
        }
        guard case .object(let merged) = JSONValue.object(current.value).mergePatched(with: .object(patch)) else {
            throw BrokerError(code: .internalError, message: "merge produced a non-object")
        }
        return try await putDocument(collection, id, merged, ifVersion: ifVersion ?? current.version).document
    }

    func deleteDocument(_ collection: String, _ id: String, ifVersion: UInt64?) async throws(BrokerError) -> Bool {
        let result: Result<Bool, BrokerError> = documents.withLock { documents in
            guard let current = documents[collection]?[id] else { return .success(false) }
            if let ifVersion, ifVersion != current.version {
                return .failure(BrokerError(code: .preconditionFailed, message: "version is \(current.version)"))
            }
            documents[collection]?[id] = nil
            return .success(true)
        }
        return try result.get()
    }

    func events() -> AsyncStream<BrokerEvent> { eventStream }

    func storeSize() async -> BrokerStoreSize? {
        let count = documents.withLock { $0.values.reduce(0) { $0 + $1.count } }
        return BrokerStoreSize(documents: count, bytes: count * 10)
    }
}
