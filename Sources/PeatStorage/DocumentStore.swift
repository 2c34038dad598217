/// Where a document lives: a collection (such as `beacons`) and an ID within it.
public struct DocumentKey: Hashable, Sendable, Comparable, CustomStringConvertible {
    /// The longest collection name, in UTF-8 bytes.
    public static let maximumCollectionLength = 128
    /// The longest document ID, in UTF-8 bytes.
    public static let maximumIDLength = 255

    public let collection: String
    public let id: String

    /// Creates a key after checking it can be stored.
    /// - Throws: `StorageError` with `.invalidKey` when `isValidCollection(collection)` or
    ///   `isValidID(id)` is false.
    public init(collection: String, id: String) throws(StorageError) {
        guard Self.isValidCollection(collection) else {
            throw StorageError(code: .invalidKey, message: Self.collectionRule)
        }
        guard Self.isValidID(id) else {
            throw StorageError(code: .invalidKey, message: Self.idRule)
        }
        self.collection = collection
        self.id = id
    }

    /// A key read back from a store, as it was written: a key written under an earlier, looser rule
    /// (before `.`, `..` and `/` were refused in IDs) stays readable instead of making the store
    /// unreadable; `isValid` tells the two apart.
    init(stored collection: String, id: String) {
        self.collection = collection
        self.id = id
    }

    /// Whether the key follows today's rule. False only for a key written under an earlier rule and
    /// read back from a store: it stays readable locally, and the mesh does not sync it.
    public var isValid: Bool { Self.isValidCollection(collection) && Self.isValidID(id) }

    /// The collection-name rule, as error messages state it.
    public static let collectionRule =
        "collection names are 1-\(maximumCollectionLength) characters of letters, digits, _ - . (not . or ..)"
    /// The document-ID rule, as error messages state it.
    public static let idRule =
        "document IDs are 1-\(maximumIDLength) UTF-8 bytes without '/' or control characters, and not . or .."

    /// Whether `name` can be a collection name: 1-128 bytes of `[A-Za-z0-9_.-]`, not `.` or `..`.
    ///
    /// The one rule for collection names: the broker's routes, the mesh API and the store all use it.
    public static func isValidCollection(_ name: String) -> Bool {
        guard (1...maximumCollectionLength).contains(name.utf8.count), name != ".", name != ".." else { return false }
        return name.utf8.allSatisfy { byte in
            (0x30...0x39).contains(byte) || (0x41...0x5a).contains(byte) || (0x61...0x7a).contains(byte)
                || byte == UInt8(ascii: "_") || byte == UInt8(ascii: "-") || byte == UInt8(ascii: ".")
        }
    }

    /// Whether `id` can be a document ID: 1-255 UTF-8 bytes, no `/`, no control character (Unicode
    /// category Cc), and not `.` or `..` (path segments an HTTP client rewrites before sending, so
    /// such a document could never be read back through the broker).
    ///
    /// The one rule for document IDs: the broker's routes, the mesh API and the store all use it.
    public static func isValidID(_ id: String) -> Bool {
        (1...maximumIDLength).contains(id.utf8.count) && id != "." && id != ".."
            && !id.utf8.contains(UInt8(ascii: "/"))
            && !id.unicodeScalars.contains { $0.properties.generalCategory == .control }
    }

    /// Whether `cursor` can be a listing position (`list(_:after:limit:)`): 1-255 UTF-8 bytes without
    /// NUL. Looser than `isValidID`, so a page that ends on a key stored under an earlier rule can
    /// still be continued.
    public static func isValidCursor(_ cursor: String) -> Bool {
        (1...maximumIDLength).contains(cursor.utf8.count) && !cursor.utf8.contains(0)
    }

    /// Byte-wise order of (collection, id): the order listings and scans use.
    public static func < (lhs: DocumentKey, rhs: DocumentKey) -> Bool {
        if lhs.collection != rhs.collection {
            return lhs.collection.utf8.lexicographicallyPrecedes(rhs.collection.utf8)
        }
        return lhs.id.utf8.lexicographicallyPrecedes(rhs.id.utf8)
    }

    public var description: String { "\(collection)/\(id)" }
}

/// A stored document: opaque bytes (the document engine's encoding) plus bookkeeping.
public struct StoredDocument: Sendable, Equatable {
    public let key: DocumentKey
    /// The document's encoded state; for a tombstone, empty or what `WriteOperation.tombstone` kept.
    public let value: [UInt8]
    /// The store-wide write sequence number of the last write to this key (for conditional writes).
    public let version: UInt64
    /// True when the document was deleted: a tombstone every apply path must honour.
    public let isTombstone: Bool

    public init(key: DocumentKey, value: [UInt8], version: UInt64, isTombstone: Bool) {
        self.key = key
        self.value = value
        self.version = version
        self.isTombstone = isTombstone
    }
}

/// Who made a change: this node, or a peer whose change arrived by sync.
public enum ChangeOrigin: Hashable, Sendable {
    case local
    case remote(peer: String)
}

/// One write in an atomic batch.
public enum WriteOperation: Sendable, Equatable {
    /// Store `value` under `key`; with `ifVersion`, only if the current version is that one
    /// (0 = only if the key has never been written).
    case put(DocumentKey, [UInt8], ifVersion: UInt64? = nil)
    /// Replace the document with a tombstone.
    case delete(DocumentKey, ifVersion: UInt64? = nil)
    /// Replace the document with a tombstone that keeps `value`: the document engine's record of
    /// the deletion (for example the state a later merge must compare against). Listing, `get` and
    /// statistics treat it like any tombstone; `document(_:)` and `scan` return the value.
    case tombstone(DocumentKey, [UInt8], ifVersion: UInt64? = nil)

    var key: DocumentKey {
        switch self {
        case .put(let key, _, _), .delete(let key, _), .tombstone(let key, _, _): key
        }
    }

    /// The condition, the value written and whether it is a tombstone.
    var parts: (ifVersion: UInt64?, value: [UInt8], isTombstone: Bool) {
        switch self {
        case .put(_, let value, let ifVersion): (ifVersion, value, false)
        case .delete(_, let ifVersion): (ifVersion, [], true)
        case .tombstone(_, let value, let ifVersion): (ifVersion, value, true)
        }
    }
}

/// A change the store made, as subscribers see it.
public struct DocumentChange: Sendable, Equatable {
    public enum Kind: Sendable, Equatable { case put, delete }
    public let key: DocumentKey
    public let kind: Kind
    public let version: UInt64
    public let origin: ChangeOrigin

    public init(key: DocumentKey, kind: Kind, version: UInt64, origin: ChangeOrigin) {
        self.key = key
        self.kind = kind
        self.version = version
        self.origin = origin
    }
}

/// What a change subscription delivers.
public enum StoreEvent: Sendable, Equatable {
    /// A committed change, in commit order.
    case changed(DocumentChange)
    /// The subscriber fell more than its buffer behind and missed changes: rescan what it needs.
    case overflowed
}

/// One page of a collection listing.
public struct DocumentPage: Sendable, Equatable {
    /// Live documents (no tombstones), in ID order.
    public let documents: [StoredDocument]
    /// Pass as `after:` to get the next page; nil on the last page.
    public let nextCursor: String?

    public init(documents: [StoredDocument], nextCursor: String?) {
        self.documents = documents
        self.nextCursor = nextCursor
    }
}

/// The storage seam: documents by (collection, id), atomic batches, change notifications and
/// per-store metadata. Implementations: `InMemoryDocumentStore`, `LMDBDocumentStore`.
///
/// Writes are durable when they return (for a persistent store); every method is safe to call
/// from any task.
public protocol DocumentStore: Sendable {
    /// This store incarnation's actor ID: random, created with the store, never reused — a store
    /// recreated from an empty data directory gets a new one.
    var actorID: [UInt8] { get }

    /// The stored document or tombstone under `key`, or nil if the key was never written.
    func document(_ key: DocumentKey) throws(StorageError) -> StoredDocument?

    /// Applies `operations` atomically: all of them or none (a failed condition changes nothing).
    /// - Returns: The documents as written, in operation order.
    @discardableResult
    func apply(_ operations: [WriteOperation], origin: ChangeOrigin) throws(StorageError) -> [StoredDocument]

    /// Live documents of `collection` in ID order, after `cursor`, at most `limit`.
    func list(_ collection: String, after cursor: String?, limit: Int) throws(StorageError) -> DocumentPage

    /// Every stored document and tombstone of `collection` (all collections when nil), in key order.
    func scan(_ collection: String?) throws(StorageError) -> [StoredDocument]

    /// The collections that hold at least one key.
    func collections() throws(StorageError) -> [String]

    /// Subscribes to committed changes; iterating is subscribing, ending the iteration unsubscribes.
    /// - Parameter bufferSize: How many changes may wait unread before `.overflowed` replaces them.
    func changes(bufferSize: Int) -> AsyncStream<StoreEvent>

    /// Per-store metadata (such as per-peer sync state), nil if unset.
    func metadata(_ name: String) throws(StorageError) -> [UInt8]?

    /// Sets (or with nil, removes) per-store metadata.
    func setMetadata(_ name: String, _ value: [UInt8]?) throws(StorageError)

    /// Number of live documents and of bytes stored, for metrics and compaction.
    func statistics() throws(StorageError) -> StoreStatistics
}

/// Sizes of a store.
public struct StoreStatistics: Sendable, Equatable {
    public let liveDocuments: Int
    public let tombstones: Int
    /// Bytes of document values (payloads only).
    public let valueBytes: Int

    public init(liveDocuments: Int, tombstones: Int, valueBytes: Int) {
        self.liveDocuments = liveDocuments
        self.tombstones = tombstones
        self.valueBytes = valueBytes
    }
}

extension DocumentStore {
    /// The live document under `key` (nil for a tombstone or a key never written).
    public func get(_ key: DocumentKey) throws(StorageError) -> StoredDocument? {
        guard let document = try document(key), !document.isTombstone else { return nil }
        return document
    }

    /// Stores `value` under `key`.
    @discardableResult
    public func put(_ key: DocumentKey, _ value: [UInt8], ifVersion: UInt64? = nil, origin: ChangeOrigin = .local) throws(StorageError) -> StoredDocument {
        try apply([.put(key, value, ifVersion: ifVersion)], origin: origin)[0]
    }

    /// Replaces the document under `key` with a tombstone.
    @discardableResult
    public func delete(_ key: DocumentKey, ifVersion: UInt64? = nil, origin: ChangeOrigin = .local) throws(StorageError) -> StoredDocument {
        try apply([.delete(key, ifVersion: ifVersion)], origin: origin)[0]
    }

    /// Subscribes with a buffer of 4096 changes.
    public func changes() -> AsyncStream<StoreEvent> { changes(bufferSize: 4096) }

    /// Live documents of `collection` larger than `threshold` bytes: what compaction looks at.
    public func documents(in collection: String, largerThan threshold: Int) throws(StorageError) -> [StoredDocument] {
        try scan(collection).filter { !$0.isTombstone && $0.value.count > threshold }
    }
}
