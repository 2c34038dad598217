import PeatCRDT
import PeatStorage

/// What the engine keeps per connected peer: each document's sync state, the documents with
/// something to tell, the control messages to send, and the root digest both last agreed on.
struct PeerSyncState {
    let token: UInt64
    let nodeID: String
    /// The peer's store incarnation: persisted states are valid only for the same one.
    let incarnation: [UInt8]
    let doorbell: AsyncStream<Void>.Continuation
    var controls: [MeshMessage] = []
    var agreedRoot: [UInt8]?
    /// States in use this session.
    private var states: [DocumentKey: SyncState] = [:]
    /// Persisted states (what the peer confirmed in earlier sessions), decoded on first use.
    private var persisted: [DocumentKey: [UInt8]] = [:]
    /// Documents whose state changed since the last save.
    private(set) var unsaved: Set<DocumentKey> = []
    /// Documents to generate a message for, in first-come order.
    private var queue: [DocumentKey] = []
    private var queueHead = 0
    private var queued: Set<DocumentKey> = []

    init(token: UInt64, nodeID: String, incarnation: [UInt8], doorbell: AsyncStream<Void>.Continuation) {
        self.token = token
        self.nodeID = nodeID
        self.incarnation = incarnation
        self.doorbell = doorbell
    }

    mutating func restore(from persisted: [DocumentKey: [UInt8]]) {
        self.persisted = persisted
    }

    mutating func state(for key: DocumentKey) -> SyncState {
        if let state = states[key] { return state }
        guard let bytes = persisted[key], let state = try? SyncState(restoring: bytes) else { return SyncState() }
        return state
    }

    mutating func setState(_ state: SyncState, for key: DocumentKey) {
        states[key] = state
        unsaved.insert(key)
    }

    /// Forgets what was sent about a document (the object it was built from is gone); keeps what the
    /// peer confirmed.
    mutating func forgetSent(_ key: DocumentKey) {
        guard let state = states.removeValue(forKey: key) else { return }
        persisted[key] = state.persistentBytes()
    }

    /// Anti-entropy found the document differs: start its sync over from what the peer confirmed, so
    /// the next message is at least a summary even if this side believed it had sent everything.
    mutating func resync(_ key: DocumentKey) {
        forgetSent(key)
        enqueue(key)
    }

    mutating func enqueue(_ key: DocumentKey) {
        guard queued.insert(key).inserted else { return }
        queue.append(key)
        doorbell.yield()
    }

    mutating func popQueued() -> DocumentKey? {
        guard queueHead < queue.count else { return nil }
        let key = queue[queueHead]
        queueHead += 1
        if queueHead == queue.count {
            queue.removeAll(keepingCapacity: true)
            queueHead = 0
        }
        queued.remove(key)
        return key
    }

    mutating func popControl() -> MeshMessage? {
        controls.isEmpty ? nil : controls.removeFirst()
    }

    mutating func markSaved() {
        unsaved.removeAll()
    }

    // MARK: Persisted form

    /// `[1][incarnation 16][count]` then per document `collection, id, SyncState.persistentBytes()`.
    func encodePersisted() -> [UInt8] {
        var merged = persisted
        for (key, state) in states { merged[key] = state.persistentBytes() }
        var w = WireWriter(capacity: 32 + merged.count * 48)
        w.byte(1)
        w.raw(incarnation)
        w.uleb(merged.count)
        for (key, bytes) in merged {
            w.string(key.collection)
            w.string(key.id)
            w.data(bytes)
        }
        return w.bytes
    }

    static func decodePersisted(_ bytes: [UInt8]) throws(MeshError) -> (incarnation: [UInt8], states: [DocumentKey: [UInt8]]) {
        var r = WireReader(bytes)
        guard try r.byte() == 1 else { throw WireReader.malformed("persisted sync state version") }
        let incarnation = try r.raw(16)
        let n = try r.count(minimumItemSize: 3)
        var states: [DocumentKey: [UInt8]] = [:]
        for _ in 0..<n {
            let collection = try r.string(maximumLength: DocumentKey.maximumCollectionLength)
            let id = try r.string(maximumLength: 4 * DocumentKey.maximumIDLength)
            let state = try r.data()
            guard let key = try? DocumentKey(collection: collection, id: id) else { throw WireReader.malformed("key") }
            states[key] = state
        }
        guard r.isAtEnd else { throw WireReader.malformed("trailing bytes") }
        return (incarnation, states)
    }
}
