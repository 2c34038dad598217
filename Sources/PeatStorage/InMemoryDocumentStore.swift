import Synchronization

/// A `DocumentStore` in memory, for tests and for embedding without persistence.
public final class InMemoryDocumentStore: DocumentStore {
    private struct State {
        var documents: [DocumentKey: StoredDocument] = [:]
        var metadata: [String: [UInt8]] = [:]
        var sequence: UInt64 = 0
    }

    public let actorID: [UInt8]
    private let state = Mutex(State())
    private let feed = ChangeFeed()

    /// Creates an empty store with a fresh random actor ID.
    public init() {
        var generator = SystemRandomNumberGenerator()
        actorID = (0..<16).map { _ in UInt8.random(in: 0...255, using: &generator) }
    }

    public func document(_ key: DocumentKey) throws(StorageError) -> StoredDocument? {
        state.withLock { $0.documents[key] }
    }

    @discardableResult
    public func apply(_ operations: [WriteOperation], origin: ChangeOrigin) throws(StorageError) -> [StoredDocument] {
        let result: Result<([StoredDocument], [DocumentChange]), StorageError> = state.withLock { state in
            var working = state
            var written: [StoredDocument] = []
            var changes: [DocumentChange] = []
            for operation in operations {
                let key = operation.key
                let current = working.documents[key]?.version ?? 0
                let (expected, value, isTombstone) = operation.parts
                if let expected, expected != current {
                    return .failure(
                        StorageError(
                            code: .versionConflict, message: "\(key) is at version \(current), not \(expected)"))
                }
                working.sequence += 1
                let document = StoredDocument(key: key, value: value, version: working.sequence, isTombstone: isTombstone)
                working.documents[key] = document
                written.append(document)
                changes.append(
                    DocumentChange(
                        key: key, kind: document.isTombstone ? .delete : .put, version: document.version, origin: origin))
            }
            state = working
            return .success((written, changes))
        }
        let (written, changes) = try result.get()
        feed.publish(changes)
        return written
    }

    public func list(_ collection: String, after cursor: String?, limit: Int) throws(StorageError) -> DocumentPage {
        let documents = state.withLock { state in
            state.documents.values.filter { $0.key.collection == collection && !$0.isTombstone }
        }.sorted { $0.key < $1.key }
        let remaining = documents.drop { document in
            guard let cursor else { return false }
            return !cursor.utf8.lexicographicallyPrecedes(document.key.id.utf8)
        }
        let page = Array(remaining.prefix(max(limit, 0)))
        let more = remaining.count > page.count
        return DocumentPage(documents: page, nextCursor: more ? page.last?.key.id : nil)
    }

    public func scan(_ collection: String?) throws(StorageError) -> [StoredDocument] {
        state.withLock { state in
            state.documents.values.filter { collection == nil || $0.key.collection == collection }
        }.sorted { $0.key < $1.key }
    }

    public func collections() throws(StorageError) -> [String] {
        Set(state.withLock { $0.documents.keys.map(\.collection) }).sorted { $0.utf8.lexicographicallyPrecedes($1.utf8) }
    }

    public func changes(bufferSize: Int) -> AsyncStream<StoreEvent> {
        feed.subscribe(bufferSize: bufferSize)
    }

    public func metadata(_ name: String) throws(StorageError) -> [UInt8]? {
        state.withLock { $0.metadata[name] }
    }

    public func setMetadata(_ name: String, _ value: [UInt8]?) throws(StorageError) {
        state.withLock { $0.metadata[name] = value }
    }

    public func statistics() throws(StorageError) -> StoreStatistics {
        state.withLock { state in
            let live = state.documents.values.filter { !$0.isTombstone }
            return StoreStatistics(
                liveDocuments: live.count, tombstones: state.documents.count - live.count,
                valueBytes: live.reduce(0) { $0 + $1.value.count })
        }
    }
}
