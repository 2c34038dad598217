import Logging
import PeatCRDT
import PeatIdentity
import PeatStorage

/// The one owner of this node's documents: local writes, reads, and every peer's sync state.
///
/// Documents (not thread-safe) live only here; sessions ask the engine for the next frame to send and
/// hand it what they receive. Every state change is persisted before anything is sent about it, so a
/// peer never hears of a change this node could lose. Deletion is a reserved root field inside the
/// CRDT (so concurrent edits, snapshots and history all honour it) mirrored by a store tombstone.
actor DocumentEngine {
    /// The reserved root field that marks a deleted document; user documents may not use it.
    static let deletedField = "\u{1}peat.deleted"
    /// Soft limit for the document messages of one frame.
    static let frameBudget = 256 * 1024

    struct Cached {
        var document: Document
        /// The store version it was loaded from or last written as (0: never stored).
        var version: UInt64
        var lastUse: UInt64
    }

    let store: any DocumentStore
    let actorID: ActorID
    let registry: SyncModeRegistry
    let logger: Logger
    private let cacheCapacity: Int
    private let emit: @Sendable (MeshEvent) -> Void
    private var cache: [DocumentKey: Cached] = [:]
    private var clock: UInt64 = 0
    private(set) var index = DocumentIndex()
    private var peers: [DeviceID: PeerSyncState] = [:]
    private var nextToken: UInt64 = 0
    /// Collections whose sync messages failed, logged once each.
    private var reportedFailures: Set<String> = []

    init(store: any DocumentStore, registry: SyncModeRegistry, cacheCapacity: Int, logger: Logger, emit: @escaping @Sendable (MeshEvent) -> Void) throws(MeshError) {
        guard let actorID = ActorID(bytes: store.actorID) else {
            throw MeshError(code: .invalidConfiguration, message: "the store's actor ID is not 16 bytes")
        }
        self.store = store
        self.actorID = actorID
        self.registry = registry
        self.cacheCapacity = max(cacheCapacity, 16)
        self.logger = logger
        self.emit = emit
    }

    // MARK: Index

    /// Builds the anti-entropy index from one scan of the store.
    func buildIndex() throws(MeshError) {
        let documents: [StoredDocument]
        do {
            documents = try store.scan(nil)
        } catch {
            throw MeshError(code: .storage, message: "cannot scan the document store: \(error.message)", cause: error)
        }
        index = DocumentIndex()
        for stored in documents {
            guard let header = StoredEnvelope.header(stored.value) else {
                if !stored.isTombstone || !stored.value.isEmpty {
                    logger.warning("Skipping a stored value that is not a mesh document", metadata: ["doc.key": "\(stored.key)"])
                }
                continue
            }
            let mode = registry.mode(for: stored.key.collection)
            if header.modeTag == StoredEnvelope.tag(mode) {
                index.update(stored.key, digest: header.digest)
            } else {
                // The collection's sync mode changed since the document was stored: loading it
                // records its digest under the current mode.
                _ = try? load(stored.key)
            }
        }
    }

    var documentCount: Int { index.count }

    // MARK: Documents

    /// The cached or stored document under `key`; nil when never stored.
    private func load(_ key: DocumentKey) throws(MeshError) -> Cached? {
        clock &+= 1
        if var cached = cache[key] {
            cached.lastUse = clock
            cache[key] = cached
            return cached
        }
        let stored: StoredDocument?
        do {
            stored = try store.document(key)
        } catch {
            throw MeshError(code: .storage, message: "cannot read \(key): \(error.message)", cause: error)
        }
        guard let stored, let header = StoredEnvelope.header(stored.value) else { return nil }
        let document: Document
        do {
            document = try Document(loading: StoredEnvelope.body(stored.value), actor: actorID)
        } catch {
            throw MeshError(code: .storage, message: "the stored document \(key) cannot be decoded: \(error)", cause: error)
        }
        // The index describes what is stored, not what was recorded: a damaged document (or one whose
        // collection changed sync mode) is then out of sync with its peers, and they repair it.
        let mode = registry.mode(for: key.collection)
        let digest = document.syncDigest(mode: mode)
        if header.digest != digest, header.modeTag == StoredEnvelope.tag(mode) {
            logger.warning("A stored document does not match its recorded digest; peers will repair it", metadata: ["doc.key": "\(key)"])
        }
        index.update(key, digest: digest)
        let cached = Cached(document: document, version: stored.version, lastUse: clock)
        insert(key, cached)
        return cached
    }

    /// The document under `key`, or a new empty one (cached, not stored) when there is none.
    private func loadOrCreate(_ key: DocumentKey) throws(MeshError) -> Cached {
        if let cached = try load(key) { return cached }
        let cached = Cached(document: Document(actor: actorID), version: 0, lastUse: clock)
        insert(key, cached)
        return cached
    }

    private func insert(_ key: DocumentKey, _ cached: Cached) {
        cache[key] = cached
        guard cache.count > cacheCapacity else { return }
        // Evict the least recently used quarter in one pass.
        let victims = cache.sorted { $0.value.lastUse < $1.value.lastUse }.prefix(cache.count - cacheCapacity * 3 / 4)
        for (victim, _) in victims where victim != key { evict(victim) }
    }

    /// Drops a document from the cache. What each peer's sync state remembers about messages built
    /// from that object is dropped too (it refers to that object's state counter); what the peers
    /// confirmed stays.
    private func evict(_ key: DocumentKey) {
        cache[key] = nil
        for device in peers.keys {
            peers[device]!.forgetSent(key)
        }
    }

    static func isDeleted(_ document: Document) -> Bool {
        document.get(.root, deletedField) == .scalar(.bool(true))
    }

    private func materialise(_ key: DocumentKey, _ cached: Cached) -> MeshDocument? {
        guard !Self.isDeleted(cached.document), cached.version > 0 else { return nil }
        guard case .object(var fields) = cached.document.toJSON() else { return nil }
        fields[Self.deletedField] = nil
        return MeshDocument(key: key, value: fields, version: cached.version)
    }

    func document(_ key: DocumentKey) throws(MeshError) -> MeshDocument? {
        guard let cached = try load(key) else { return nil }
        return materialise(key, cached)
    }

    func list(_ collection: String, after cursor: String?, limit: Int) throws(MeshError) -> MeshDocumentPage {
        let page: DocumentPage
        do {
            page = try store.list(collection, after: cursor, limit: limit)
        } catch {
            throw MeshError(code: .storage, message: "cannot list \(collection): \(error.message)", cause: error)
        }
        var documents: [MeshDocument] = []
        documents.reserveCapacity(page.documents.count)
        for stored in page.documents {
            // A listed document that fails to decode is reported by `load` and left out.
            do {
                if let cached = try load(stored.key), let document = materialise(stored.key, cached) {
                    documents.append(document)
                }
            } catch {
                logger.error("Cannot read a stored document", metadata: ["doc.key": "\(stored.key)", "reason": "\(error.message)"])
            }
        }
        return MeshDocumentPage(documents: documents, nextCursor: page.nextCursor)
    }

    /// Applies a local edit and persists it; returns the document as written (nil after a delete).
    func apply(_ edit: MeshEdit, to key: DocumentKey, ifVersion: UInt64?) throws(MeshError) -> (document: MeshDocument?, created: Bool, changed: Bool) {
        let existing = try load(key)
        let live = existing.flatMap { materialise(key, $0) }
        if let ifVersion, ifVersion != (live?.version ?? 0) {
            throw MeshError(code: .versionConflict, message: "\(key) is at version \(live?.version ?? 0), not \(ifVersion)")
        }
        switch edit {
        case .replace(let fields), .mergePatch(let fields):
            guard fields[Self.deletedField] == nil else {
                throw MeshError(code: .invalidDocument, message: "documents may not use the reserved field name \\u0001peat.deleted")
            }
        case .delete:
            break
        }
        if live == nil {
            switch edit {
            case .mergePatch, .delete: throw MeshError(code: .notFound, message: "no document \(key)")
            case .replace: break
            }
        }
        let cached: Cached
        if let existing { cached = existing } else { cached = try loadOrCreate(key) }
        let document = cached.document
        let before = document.stateVersion
        do {
            switch edit {
            case .replace(let fields):
                try document.replace(with: .object(fields))
            case .mergePatch(let patch):
                try document.applyMergePatch(.object(patch))
            case .delete:
                try document.replace(with: .object([Self.deletedField: .bool(true)]))
            }
        } catch {
            // Edits made before the failure are discarded with the cached object.
            evict(key)
            throw MeshError(code: .invalidDocument, message: "\(error)", cause: error)
        }
        if live == nil, document.stateVersion == before {
            // A new, empty document still needs a change of its own, or peers would never store it.
            do {
                try document.put(.root, Self.deletedField, .bool(false))
            } catch {
                evict(key)
                throw MeshError(code: .invalidDocument, message: "\(error)", cause: error)
            }
        }
        document.commit()
        guard document.stateVersion != before else {
            return (live, false, false)
        }
        let written = try persist([(key, cached)], origin: .local)
        return (materialise(key, written[0]), live == nil, true)
    }

    /// Runs an embedding service's own edit on the live (or a new) document.
    func update(_ key: DocumentKey, _ body: @Sendable (Document) throws -> Void) throws(MeshError) -> MeshDocument? {
        let cached = try loadOrCreate(key)
        let before = cached.document.stateVersion
        do {
            try body(cached.document)
        } catch {
            evict(key)
            throw MeshError(code: .invalidDocument, message: "the edit failed: \(error)", cause: nil)
        }
        cached.document.commit()
        guard cached.document.stateVersion != before else { return materialise(key, cached) }
        let written = try persist([(key, cached)], origin: .local)
        return materialise(key, written[0])
    }

    /// Writes documents in one atomic store batch, then updates the index, queues them for every peer
    /// except `skipping` (the peer they came from hears from its own session), and reports them.
    private func persist(_ items: [(DocumentKey, Cached)], origin: MeshChangeOrigin, skipping: DeviceID? = nil) throws(MeshError) -> [Cached] {
        var operations: [WriteOperation] = []
        var digests: [[UInt8]] = []
        operations.reserveCapacity(items.count)
        for (key, cached) in items {
            let mode = registry.mode(for: key.collection)
            let digest = cached.document.syncDigest(mode: mode)
            digests.append(digest)
            let bytes = StoredEnvelope.encode(mode: mode, digest: digest, body: cached.document.save())
            // The expected version guards against another writer of the same store.
            operations.append(Self.isDeleted(cached.document)
                ? .tombstone(key, bytes, ifVersion: cached.version)
                : .put(key, bytes, ifVersion: cached.version))
        }
        let written: [StoredDocument]
        do {
            let storeOrigin: ChangeOrigin = switch origin {
            case .local: .local
            case .peer(let nodeID): .remote(peer: nodeID)
            }
            written = try store.apply(operations, origin: storeOrigin)
        } catch {
            // The in-memory copies hold changes the store does not: drop them.
            for (key, _) in items { evict(key) }
            throw MeshError(code: .storage, message: "cannot store \(items.count) document(s): \(error.message)", cause: error)
        }
        var result: [Cached] = []
        for (i, (key, var cached)) in items.enumerated() {
            cached.version = written[i].version
            cache[key] = cached
            result.append(cached)
            index.update(key, digest: digests[i])
            for device in peers.keys where device != skipping {
                peers[device]!.enqueue(key)
            }
            emit(.documentChanged(key, deleted: written[i].isTombstone, origin: origin))
        }
        return result
    }

    /// Rebuilds large documents without history (compaction); returns (documents, bytes before, after).
    func compact(_ keys: [DocumentKey]) -> (documents: Int, before: Int, after: Int) {
        var compacted = 0, before = 0, after = 0
        for key in keys {
            do {
                guard let cached = try load(key), cached.version > 0 else { continue }
                let size = cached.document.save().count
                cached.document.compact()
                let newSize = cached.document.save().count
                guard newSize < size else { continue }
                _ = try persist([(key, cached)], origin: .local)
                compacted += 1
                before += size
                after += newSize
            } catch {
                logger.warning("Compaction skipped a document", metadata: ["doc.key": "\(key)", "reason": "\(error.message)"])
            }
        }
        return (compacted, before, after)
    }

    /// Drops history older than the window of a WindowedHistory collection's documents.
    func dropHistory(_ collection: String, olderThan cutoff: Int64) -> (documents: Int, changes: Int) {
        var documents = 0, changes = 0
        let keys: [DocumentKey]
        do {
            keys = try store.scan(collection).filter { !$0.isTombstone }.map(\.key)
        } catch {
            logger.warning("Cannot scan a collection for its history window", metadata: ["collection": "\(collection)", "reason": "\(error.message)"])
            return (0, 0)
        }
        for key in keys {
            do {
                guard let cached = try load(key) else { continue }
                let dropped = cached.document.dropHistory(before: cutoff)
                guard dropped > 0 else { continue }
                _ = try persist([(key, cached)], origin: .local)
                documents += 1
                changes += dropped
            } catch {
                logger.warning("History window skipped a document", metadata: ["doc.key": "\(key)", "reason": "\(error.message)"])
            }
        }
        return (documents, changes)
    }

    // MARK: Peers

    /// Starts syncing with a peer that said hello; returns the token that ends it.
    func attach(device: DeviceID, nodeID: String, incarnation: [UInt8], doorbell: AsyncStream<Void>.Continuation) -> UInt64 {
        if let previous = peers[device] { persistSyncStates(previous, device: device) }
        nextToken += 1
        var peer = PeerSyncState(token: nextToken, nodeID: nodeID, incarnation: incarnation, doorbell: doorbell)
        peer.restore(from: loadPersisted(device: device, incarnation: incarnation))
        peer.controls.append(.root(digest: index.root, documents: index.count, isReply: false))
        peers[device] = peer
        doorbell.yield()
        return nextToken
    }

    /// Ends a peer's sync session and keeps what it confirmed.
    func detach(device: DeviceID, token: UInt64) {
        guard let peer = peers[device], peer.token == token else { return }
        persistSyncStates(peer, device: device)
        peer.doorbell.finish()
        peers[device] = nil
    }

    /// The periodic anti-entropy pass: offers the root digest only when it moved since the peer and
    /// this node last agreed, so peers in sync exchange nothing.
    func antiEntropy(device: DeviceID, persist: Bool) {
        guard var peer = peers[device] else { return }
        let root = index.root
        if peer.agreedRoot != root, !peer.controls.contains(where: { if case .root = $0 { true } else { false } }) {
            peer.controls.append(.root(digest: root, documents: index.count, isReply: false))
            peer.doorbell.yield()
        }
        if persist, !peer.unsaved.isEmpty {
            persistSyncStates(peer, device: device)
            peer.markSaved()
        }
        peers[device] = peer
    }

    /// Persists every connected peer's sync state (at shutdown).
    func persistAll() {
        for (device, peer) in peers {
            persistSyncStates(peer, device: device)
            peers[device]!.markSaved()
        }
    }

    /// Handles one message from a peer.
    /// - Throws: `MeshError` for messages the protocol does not allow here (the session closes).
    func receive(_ message: MeshMessage, from device: DeviceID) throws(MeshError) {
        guard peers[device] != nil else { return }
        switch message {
        case .hello:
            throw MeshError(code: .protocolViolation, message: "a second hello")
        case .chunk:
            throw MeshError(code: .protocolViolation, message: "a chunk outside reassembly")
        case .root(let digest, _, let isReply):
            let mine = index.root
            if digest == mine {
                peers[device]!.agreedRoot = mine
                if !isReply { peers[device]!.controls.append(.root(digest: mine, documents: index.count, isReply: true)) }
            } else {
                peers[device]!.controls.append(.groups(index.groupDigests))
            }
            peers[device]!.doorbell.yield()
        case .groups(let theirs):
            let mine = index.groupDigests
            for group in mine.indices where theirs[group] != mine[group] {
                peers[device]!.controls.append(.buckets(group: UInt8(group), digests: index.bucketDigests(group: group)))
            }
            peers[device]!.doorbell.yield()
        case .buckets(let group, let theirs):
            let mine = index.bucketDigests(group: Int(group))
            for offset in mine.indices where theirs[offset] != mine[offset] {
                let bucket = Int(group) * MeshMessage.groupSize + offset
                peers[device]!.controls.append(.keys(bucket: UInt8(bucket), entries: index.entries(inBucket: bucket)))
            }
            peers[device]!.doorbell.yield()
        case .keys(let bucket, let theirs, let isReply):
            let mine = index.entries(inBucket: Int(bucket))
            if !isReply {
                peers[device]!.controls.append(.keys(bucket: bucket, entries: mine, isReply: true))
            }
            var theirDigests: [DocumentKey: [UInt8]] = [:]
            for entry in theirs { theirDigests[entry.key] = entry.digest }
            for entry in mine where theirDigests.removeValue(forKey: entry.key) != entry.digest {
                peers[device]!.resync(entry.key)
            }
            for key in theirDigests.keys.sorted() { peers[device]!.resync(key) }
            peers[device]!.doorbell.yield()
        case .documents(let messages):
            try receiveDocuments(messages, from: device)
        }
    }

    private func receiveDocuments(_ messages: [MeshMessage.DocumentMessage], from device: DeviceID) throws(MeshError) {
        var changed: [(DocumentKey, Cached)] = []
        var changedKeys: Set<DocumentKey> = []
        for message in messages {
            let key = message.key
            let mode = registry.mode(for: key.collection)
            guard let cached = loadForSync(key) else { continue }
            let before = cached.document.stateVersion
            var state = peers[device]!.state(for: key)
            do {
                try cached.document.receiveSyncMessage(message.payload, &state, mode: mode)
            } catch {
                if reportedFailures.insert(key.collection).inserted {
                    logger.warning(
                        "A peer's sync message for a document does not apply",
                        metadata: ["peer": "\(peers[device]!.nodeID)", "doc.key": "\(key)", "sync_mode": "\(mode)", "reason": "\(error)"])
                }
                state = SyncState()
            }
            peers[device]!.setState(state, for: key)
            peers[device]!.enqueue(key)
            if cached.document.stateVersion != before, changedKeys.insert(key).inserted {
                changed.append((key, cached))
            }
        }
        if !changed.isEmpty {
            // One atomic batch for the frame; the sender's session answers from its own queue.
            do {
                _ = try persist(changed, origin: .peer(peers[device]!.nodeID), skipping: device)
            } catch {
                logger.error("Cannot store documents received from a peer", metadata: ["peer": "\(peers[device]!.nodeID)", "reason": "\(error.message)"])
            }
        }
        peers[device]!.doorbell.yield()
    }

    /// `loadOrCreate` for the sync paths: a document that cannot be read is logged and skipped.
    private func loadForSync(_ key: DocumentKey) -> Cached? {
        do {
            return try loadOrCreate(key)
        } catch {
            logger.error("Cannot sync a stored document", metadata: ["doc.key": "\(key)", "reason": "\(error.message)"])
            return nil
        }
    }

    /// The next frame for a peer: control messages first, then a batch of document messages; nil
    /// when there is nothing to send.
    func nextFrame(for device: DeviceID) -> [UInt8]? {
        guard peers[device] != nil else { return nil }
        if let control = peers[device]!.popControl() { return control.encoded() }
        var batch: [MeshMessage.DocumentMessage] = []
        var size = 0
        while size < Self.frameBudget, let key = peers[device]!.popQueued() {
            guard let cached = loadForSync(key) else { continue }
            var state = peers[device]!.state(for: key)
            let message = cached.document.generateSyncMessage(&state, mode: registry.mode(for: key.collection))
            peers[device]!.setState(state, for: key)
            if let message {
                batch.append(.init(key: key, payload: message))
                size += message.count + key.collection.utf8.count + key.id.utf8.count + 8
            }
        }
        return batch.isEmpty ? nil : MeshMessage.documents(batch).encoded()
    }

    // MARK: Persisted sync state

    static func metadataName(_ device: DeviceID) -> String { "mesh.sync.\(device.hex)" }

    private func loadPersisted(device: DeviceID, incarnation: [UInt8]) -> [DocumentKey: [UInt8]] {
        guard let bytes = try? store.metadata(Self.metadataName(device)) else { return [:] }
        do {
            let (stored, states) = try PeerSyncState.decodePersisted(bytes)
            guard stored == incarnation else {
                // The peer's store was recreated: what it confirmed before is gone with it.
                logger.info("Peer has a new store incarnation; its sync state starts over", metadata: ["peer.device_id": "\(device)"])
                try? store.setMetadata(Self.metadataName(device), nil)
                return [:]
            }
            return states
        } catch {
            logger.warning("Discarding an unreadable persisted sync state", metadata: ["peer.device_id": "\(device)", "reason": "\(error.message)"])
            return [:]
        }
    }

    private func persistSyncStates(_ peer: PeerSyncState, device: DeviceID) {
        guard !peer.unsaved.isEmpty else { return }
        do {
            try store.setMetadata(Self.metadataName(device), peer.encodePersisted())
        } catch {
            logger.warning("Cannot persist a peer's sync state", metadata: ["peer.device_id": "\(device)", "reason": "\(error.message)"])
        }
    }
}
