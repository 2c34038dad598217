package import Logging
import PeatCRDT
package import PeatStorage

/// The only writer of this node's documents: decoded copies in a cache, their stored envelope, the
/// document store and the anti-entropy index, kept consistent with each other.
///
/// Every change is persisted (one atomic store batch) before the index shows it, so a peer never
/// hears of a change this node could lose. Deletion is a reserved root field inside the CRDT (so
/// concurrent edits, snapshots and history all honour it) mirrored by a store tombstone.
///
/// Not thread-safe: the sync coordinator owns it and calls it from its own isolation. It knows
/// nothing of peers; the sync state machines hand it their per-document states
/// (`DocumentRepository+Sync.swift`).
package final class DocumentRepository {
    /// The reserved root field that marks a deleted document; user documents may not use it.
    static let deletedField = "\u{1}peat.deleted"

    let store: any DocumentStore
    let actorID: ActorID
    let modes: SyncModeRegistry
    let priorities: SyncPriorityRegistry
    let logger: Logger
    var cache: DocumentCache
    private(set) var index = DocumentIndex()
    /// Collections whose sync messages failed to apply, logged once each.
    private var reportedFailures: Set<String> = []

    package init(
        store: any DocumentStore, modes: SyncModeRegistry, priorities: SyncPriorityRegistry = SyncPriorityRegistry(), cacheCapacity: Int,
        logger: Logger
    ) throws(MeshError) {
        guard let actorID = ActorID(bytes: store.actorID) else {
            throw MeshError(code: .invalidConfiguration, message: "the store's actor ID is not 16 bytes")
        }
        self.store = store
        self.actorID = actorID
        self.modes = modes
        self.priorities = priorities
        self.cache = DocumentCache(capacity: cacheCapacity)
        self.logger = logger
    }

    /// The priority `key`'s changes travel at.
    func priority(of key: DocumentKey) -> SyncPriority {
        priorities.priority(for: key.collection, mode: modes.mode(for: key.collection))
    }

    // MARK: Index

    /// Builds the anti-entropy index from one scan of the store.
    package func buildIndex() throws(MeshError) {
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
            // A key written under an earlier, looser rule stays readable here but is not synced:
            // peers would refuse it.
            guard stored.key.isValid else {
                logger.warning("A stored document's key breaks the key rule; it is kept but not synced", metadata: ["doc.key": "\(stored.key)"])
                continue
            }
            if header.modeTag == StoredEnvelope.tag(modes.mode(for: stored.key.collection)) {
                index.update(stored.key, digest: header.digest)
            } else {
                // The collection's sync mode changed since the document was stored: loading it
                // records its digest under the current mode.
                _ = try? load(stored.key)
            }
        }
    }

    var documentCount: Int { index.count }

    /// True the first time a collection's sync failure is reported.
    func reportFailureOnce(_ collection: String) -> Bool {
        reportedFailures.insert(collection).inserted
    }

    // MARK: Decoded copies

    /// The cached or stored document under `key`; nil when never stored.
    func load(_ key: DocumentKey) throws(MeshError) -> DocumentCache.Entry? {
        if let cached = cache.entry(key) { return cached }
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
        let mode = modes.mode(for: key.collection)
        let digest = document.syncDigest(mode: mode)
        if header.digest != digest, header.modeTag == StoredEnvelope.tag(mode) {
            logger.warning("A stored document does not match its recorded digest; peers will repair it", metadata: ["doc.key": "\(key)"])
        }
        if key.isValid { index.update(key, digest: digest) }
        return cache.insert(key, document, version: stored.version)
    }

    /// The document under `key`, or a new empty one (cached, not stored) when there is none.
    func loadOrCreate(_ key: DocumentKey) throws(MeshError) -> DocumentCache.Entry {
        if let cached = try load(key) { return cached }
        return cache.insert(key, Document(actor: actorID), version: 0)
    }

    static func isDeleted(_ document: Document) -> Bool {
        document.get(.root, deletedField) == .scalar(.bool(true))
    }

    private func materialise(_ key: DocumentKey, _ entry: DocumentCache.Entry) -> MeshDocument? {
        guard !Self.isDeleted(entry.document), entry.version > 0 else { return nil }
        guard case .object(var fields) = entry.document.toJSON() else { return nil }
        fields[Self.deletedField] = nil
        return MeshDocument(key: key, value: fields, version: entry.version)
    }

    // MARK: Reading

    func document(_ key: DocumentKey) throws(MeshError) -> MeshDocument? {
        guard let entry = try load(key) else { return nil }
        return materialise(key, entry)
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
            // A listed document that fails to decode is reported and left out.
            do {
                if let entry = try load(stored.key), let document = materialise(stored.key, entry) {
                    documents.append(document)
                }
            } catch {
                logger.error("Cannot read a stored document", metadata: ["doc.key": "\(stored.key)", "reason": "\(error.message)"])
            }
        }
        return MeshDocumentPage(documents: documents, nextCursor: page.nextCursor)
    }

    // MARK: Local edits

    /// What a local edit did.
    package struct LocalWrite {
        /// The live document afterwards (nil after a delete).
        var document: MeshDocument?
        var created: Bool
        /// False when the edit changed nothing (nothing was written or needs sending).
        var changed: Bool
    }

    /// Applies a local edit and persists it.
    package func apply(_ edit: MeshEdit, to key: DocumentKey, ifVersion: UInt64?) throws(MeshError) -> LocalWrite {
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
            if case .mergePatch = edit, live == nil { throw MeshError(code: .notFound, message: "no document \(key)") }
        case .delete:
            if live == nil { throw MeshError(code: .notFound, message: "no document \(key)") }
        }
        let entry: DocumentCache.Entry
        if let existing { entry = existing } else { entry = try loadOrCreate(key) }
        let document = entry.document
        let before = document.stateVersion
        try edited(key) { () throws(PeatCRDTError) in
            switch edit {
            case .replace(let fields): try document.replace(with: .object(fields))
            case .mergePatch(let patch): try document.applyMergePatch(.object(patch))
            case .delete: try document.replace(with: .object([Self.deletedField: .bool(true)]))
            }
            if live == nil, document.stateVersion == before {
                // A new, empty document still needs a change of its own, or peers would never store it.
                try document.put(.root, Self.deletedField, .bool(false))
            }
        }
        document.commit()
        guard document.stateVersion != before else { return LocalWrite(document: live, created: false, changed: false) }
        try persist([(key, entry)], origin: .local)
        return LocalWrite(document: try self.document(key), created: live == nil, changed: true)
    }

    /// Runs an embedding service's own edit on the live (or a new) document; true when it changed it.
    func update(_ key: DocumentKey, _ body: @Sendable (Document) throws -> Void) throws(MeshError) -> (document: MeshDocument?, changed: Bool) {
        let entry = try loadOrCreate(key)
        let before = entry.document.stateVersion
        do {
            try body(entry.document)
        } catch {
            cache.remove(key)  // edits made before the failure are discarded with the copy
            throw MeshError(code: .invalidDocument, message: "the edit failed: \(error)", cause: nil)
        }
        entry.document.commit()
        guard entry.document.stateVersion != before else { return (materialise(key, entry), false) }
        try persist([(key, entry)], origin: .local)
        return (try document(key), true)
    }

    /// Runs an edit of a cached copy; a failure drops the copy, so its partial edits never reach the store.
    private func edited(_ key: DocumentKey, _ body: () throws(PeatCRDTError) -> Void) throws(MeshError) {
        do {
            try body()
        } catch {
            cache.remove(key)
            throw MeshError(code: .invalidDocument, message: "\(error)", cause: error)
        }
    }

    // MARK: Persistence

    /// Writes decoded copies in one atomic store batch, then updates the cache and the index.
    ///
    /// The copies are passed in (not looked up), so one evicted from the cache while a batch was
    /// being assembled is still written, and cached again.
    /// - Throws: `MeshError(.storage)`; the copies are dropped from the cache (the store does not hold their changes).
    func persist(_ items: [(key: DocumentKey, entry: DocumentCache.Entry)], origin: MeshChangeOrigin) throws(MeshError) {
        var operations: [WriteOperation] = []
        var digests: [[UInt8]] = []
        operations.reserveCapacity(items.count)
        for (key, entry) in items {
            let mode = modes.mode(for: key.collection)
            let digest = entry.document.syncDigest(mode: mode)
            digests.append(digest)
            let bytes = StoredEnvelope.encode(mode: mode, digest: digest, body: entry.document.save())
            // The expected version guards against another writer of the same store.
            operations.append(
                Self.isDeleted(entry.document)
                    ? .tombstone(key, bytes, ifVersion: entry.version)
                    : .put(key, bytes, ifVersion: entry.version))
        }
        let written: [StoredDocument]
        do {
            let storeOrigin: ChangeOrigin =
                switch origin {
                case .local: .local
                case .peer(let nodeID): .remote(peer: nodeID)
                }
            written = try store.apply(operations, origin: storeOrigin)
        } catch {
            for (key, _) in items { cache.remove(key) }
            throw MeshError(code: .storage, message: "cannot store \(items.count) document(s): \(error.message)", cause: error)
        }
        for (i, (key, entry)) in items.enumerated() {
            cache.keep(key, entry, version: written[i].version)
            if key.isValid { index.update(key, digest: digests[i]) }
        }
    }

    // MARK: Maintenance

    /// Rebuilds a collection's documents larger than `threshold` bytes without history (compaction).
    func compact(_ collection: String, largerThan threshold: Int) -> (compacted: [DocumentKey], before: Int, after: Int) {
        let keys: [DocumentKey]
        do {
            keys = try store.documents(in: collection, largerThan: threshold).map(\.key)
        } catch {
            logger.warning("Compaction cannot scan a collection collection=\(collection)", metadata: ["reason": "\(error.message)"])
            return ([], 0, 0)
        }
        var compacted: [DocumentKey] = []
        var before = 0
        var after = 0
        for key in keys {
            do {
                guard let entry = try load(key), entry.version > 0 else { continue }
                let size = entry.document.save().count
                entry.document.compact()
                let newSize = entry.document.save().count
                guard newSize < size else { continue }
                try persist([(key, entry)], origin: .local)
                compacted.append(key)
                before += size
                after += newSize
            } catch {
                logger.warning("Compaction skipped a document", metadata: ["doc.key": "\(key)", "reason": "\(error.message)"])
            }
        }
        return (compacted, before, after)
    }

    /// Drops history older than `cutoff` (milliseconds since 1970) from a collection's documents.
    func dropHistory(_ collection: String, olderThan cutoff: Int64) -> (changed: [DocumentKey], changes: Int) {
        let keys: [DocumentKey]
        do {
            keys = try store.scan(collection).filter { !$0.isTombstone }.map(\.key)
        } catch {
            logger.warning("Cannot scan a collection for its history window", metadata: ["doc.collection": "\(collection)", "reason": "\(error.message)"])
            return ([], 0)
        }
        var changed: [DocumentKey] = []
        var changes = 0
        for key in keys {
            do {
                guard let entry = try load(key) else { continue }
                let dropped = entry.document.dropHistory(before: cutoff)
                guard dropped > 0 else { continue }
                try persist([(key, entry)], origin: .local)
                changed.append(key)
                changes += dropped
            } catch {
                logger.warning("History window skipped a document", metadata: ["doc.key": "\(key)", "reason": "\(error.message)"])
            }
        }
        return (changed, changes)
    }
}
