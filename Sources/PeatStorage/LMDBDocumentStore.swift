import CLMDB

#if canImport(Glibc)
import Glibc
#endif

/// A crash-safe `DocumentStore` on LMDB (in the node: `$PEAT_DATA_DIR/automerge/`).
///
/// Every write is one LMDB write transaction committed with fsync, so an acknowledged write
/// survives `kill -9` and power loss. One writer at a time, readers concurrent and never blocked
/// by it. Values are checksummed; a corrupt value is reported as `.corruptValue`, never decoded.
/// The map grows by doubling up to `maximumSize`, then writes fail with `.mapFull`. Key layout:
/// docs/adr/0003-lmdb-key-layout.md.
public final class LMDBDocumentStore: DocumentStore {
    /// Store settings with working defaults.
    public struct Configuration: Sendable {
        /// The map size the store starts with (it grows as needed).
        public var initialSize = 64 * 1024 * 1024
        /// The largest the store may grow.
        public var maximumSize = 64 * 1024 * 1024 * 1024

        public init() {}
    }

    /// The data format this code writes and reads.
    public static let dataFormatVersion: UInt32 = 1

    public let actorID: [UInt8]
    /// The directory holding `data.mdb` and `lock.mdb`.
    public let path: String

    private let environment: LMDBEnvironment
    private let documents: MDB_dbi
    private let meta: MDB_dbi
    private let feed = ChangeFeed()

    private static let formatKey = Array("format".utf8)
    private static let actorKey = Array("actor_id".utf8)
    private static let sequenceKey = Array("sequence".utf8)
    private static let userPrefix = Array("user/".utf8)

    /// Opens the store in `path` (created if missing).
    /// - Throws: `StorageError`: `.io` when the directory cannot be created, `.incompatibleFormat`
    ///   when it holds another data-format version, `.lmdb` for other LMDB failures.
    public init(path: String, configuration: Configuration = Configuration()) throws(StorageError) {
        self.path = path
        try Self.makeDirectory(path)
        environment = try LMDBEnvironment(
            path: path, initialMapSize: configuration.initialSize, maximumMapSize: configuration.maximumSize, maxDatabases: 4)
        let environment = environment
        let opened = try environment.write { (transaction: borrowing LMDBEnvironment.Transaction) throws(StorageError) -> (MDB_dbi, MDB_dbi, [UInt8]) in
            let documents = try environment.openDatabase("documents", in: transaction)
            let meta = try environment.openDatabase("meta", in: transaction)
            let format: UInt32? = try transaction.get(meta, Self.formatKey) { bytes throws(StorageError) in
                guard let bytes else { return nil }
                guard bytes.count == 4 else { throw StorageError(code: .incompatibleFormat, message: "the store's format record is damaged") }
                return bytes.reduce(UInt32(0)) { $0 << 8 | UInt32($1) }
            }
            switch format {
            case nil:
                try transaction.put(meta, Self.formatKey, Self.bigEndian(UInt64(Self.dataFormatVersion), bytes: 4))
                var generator = SystemRandomNumberGenerator()  // getrandom(2): a CSPRNG
                let actor = (0..<16).map { _ in UInt8.random(in: 0...255, using: &generator) }
                try transaction.put(meta, Self.actorKey, actor)
                try transaction.put(meta, Self.sequenceKey, Self.bigEndian(0, bytes: 8))
                return (documents, meta, actor)
            case Self.dataFormatVersion?:
                let actor = try transaction.get(meta, Self.actorKey) { bytes throws(StorageError) in
                    guard let bytes, bytes.count == 16 else {
                        throw StorageError(code: .corruptValue, message: "the store's actor ID record is missing or damaged")
                    }
                    return Array(bytes)
                }
                return (documents, meta, actor)
            case let other?:
                throw StorageError(
                    code: .incompatibleFormat,
                    message: "\(path) holds data format \(other); this build reads format \(Self.dataFormatVersion)")
            }
        }
        (documents, meta, actorID) = opened
    }

    /// Closes the store; later calls fail with `.closed`. Subscriptions end.
    public func close() {
        environment.close()
        feed.finish()
    }

    // MARK: Reading

    public func document(_ key: DocumentKey) throws(StorageError) -> StoredDocument? {
        let encodedKey = Self.encode(key)
        return try environment.read { (transaction: borrowing LMDBEnvironment.Transaction) throws(StorageError) in
            try transaction.get(documents, encodedKey) { bytes throws(StorageError) in
                guard let bytes else { return nil }
                return try Self.decode(bytes, key: key, encodedKey: encodedKey)
            }
        }
    }

    public func list(_ collection: String, after cursor: String?, limit: Int) throws(StorageError) -> DocumentPage {
        let prefix = Self.prefix(collection)
        let start = cursor.map { prefix + Array($0.utf8) }
        var documents: [StoredDocument] = []
        var hasMore = false
        try environment.read { (transaction: borrowing LMDBEnvironment.Transaction) throws(StorageError) in
            try transaction.forEach(self.documents, prefix: prefix, from: start) { keyBytes, valueBytes throws(StorageError) in
                let encodedKey = Array(keyBytes)
                if let start, encodedKey == start { return true }  // the cursor itself was on the previous page
                let key = try Self.decodeKey(encodedKey)
                let document = try Self.decode(valueBytes, key: key, encodedKey: encodedKey)
                guard !document.isTombstone else { return true }
                guard documents.count < max(limit, 0) else {
                    hasMore = true
                    return false
                }
                documents.append(document)
                return true
            }
        }
        return DocumentPage(documents: documents, nextCursor: hasMore ? documents.last?.key.id : nil)
    }

    public func scan(_ collection: String?) throws(StorageError) -> [StoredDocument] {
        var documents: [StoredDocument] = []
        try environment.read { (transaction: borrowing LMDBEnvironment.Transaction) throws(StorageError) in
            try transaction.forEach(self.documents, prefix: collection.map(Self.prefix) ?? []) { keyBytes, valueBytes throws(StorageError) in
                let encodedKey = Array(keyBytes)
                documents.append(try Self.decode(valueBytes, key: try Self.decodeKey(encodedKey), encodedKey: encodedKey))
                return true
            }
        }
        return documents
    }

    public func collections() throws(StorageError) -> [String] {
        var names: [String] = []
        try environment.read { (transaction: borrowing LMDBEnvironment.Transaction) throws(StorageError) in
            // Jump from one collection to the next: seek to "<collection>\u{1}".
            var seek: [UInt8] = []
            while true {
                var next: String?
                try transaction.forEach(documents, prefix: [], from: seek) { keyBytes, _ throws(StorageError) in
                    next = try Self.decodeKey(Array(keyBytes)).collection
                    return false
                }
                guard let name = next else { break }
                names.append(name)
                seek = Array(name.utf8) + [1]
            }
        }
        return names
    }

    public func metadata(_ name: String) throws(StorageError) -> [UInt8]? {
        let key = Self.userPrefix + Array(name.utf8)
        return try environment.read { (transaction: borrowing LMDBEnvironment.Transaction) throws(StorageError) in
            try transaction.get(meta, key) { bytes throws(StorageError) in bytes.map { Array($0) } }
        }
    }

    /// Checks that the store is open and readable with one read transaction (no scan): what a
    /// readiness probe needs, where `statistics()` would read every document.
    public func checkReadable() throws(StorageError) {
        try environment.read { (transaction: borrowing LMDBEnvironment.Transaction) throws(StorageError) in
            try transaction.get(meta, Self.formatKey) { bytes throws(StorageError) in
                guard bytes?.count == 4 else {
                    throw StorageError(code: .incompatibleFormat, message: "the store's format record is missing or damaged")
                }
            }
        }
    }

    public func statistics() throws(StorageError) -> StoreStatistics {
        var live = 0
        var tombstones = 0
        var bytes = 0
        try environment.read { (transaction: borrowing LMDBEnvironment.Transaction) throws(StorageError) in
            try transaction.forEach(documents, prefix: []) { _, value throws(StorageError) in
                guard value.count >= StoredValueCodec.headerSize else { return true }
                if StoredValueCodec.isTombstone(value) {
                    tombstones += 1
                } else {
                    live += 1
                    bytes += value.count - StoredValueCodec.headerSize
                }
                return true
            }
        }
        return StoreStatistics(liveDocuments: live, tombstones: tombstones, valueBytes: bytes)
    }

    public func changes(bufferSize: Int) -> AsyncStream<StoreEvent> {
        feed.subscribe(bufferSize: bufferSize)
    }

    // MARK: Writing

    @discardableResult
    public func apply(_ operations: [WriteOperation], origin: ChangeOrigin) throws(StorageError) -> [StoredDocument] {
        guard !operations.isEmpty else { return [] }
        let documents = documents
        let meta = meta
        let written = try environment.write { (transaction: borrowing LMDBEnvironment.Transaction) throws(StorageError) -> [StoredDocument] in
            var sequence = try transaction.get(meta, Self.sequenceKey) { bytes throws(StorageError) in
                guard let bytes, bytes.count == 8 else {
                    throw StorageError(code: .corruptValue, message: "the store's sequence record is missing or damaged")
                }
                return bytes.reduce(UInt64(0)) { $0 << 8 | UInt64($1) }
            }
            // Versions written earlier in this batch, so conditions see the batch's own writes
            // (tracked only when some operation is conditional).
            let tracksPending = operations.contains { $0.parts.ifVersion != nil }
            var pending: [DocumentKey: UInt64] = [:]
            var written: [StoredDocument] = []
            written.reserveCapacity(operations.count)
            for operation in operations {
                let key = operation.key
                let encodedKey = Self.encode(key)
                let (expected, payload, tombstone) = operation.parts
                if let expected {
                    let current: UInt64
                    if let written = pending[key] {
                        current = written
                    } else {
                        current = try transaction.get(documents, encodedKey) { bytes throws(StorageError) in
                            guard let bytes else { return UInt64(0) }
                            return try Self.decode(bytes, key: key, encodedKey: encodedKey).version
                        }
                    }
                    guard current == expected else {
                        throw StorageError(code: .versionConflict, message: "\(key) is at version \(current), not \(expected)")
                    }
                }
                sequence += 1
                try transaction.put(
                    documents, encodedKey,
                    StoredValueCodec.encode(payload: payload, version: sequence, tombstone: tombstone, key: encodedKey))
                if tracksPending { pending[key] = sequence }
                written.append(StoredDocument(key: key, value: payload, version: sequence, isTombstone: tombstone))
            }
            try transaction.put(meta, Self.sequenceKey, Self.bigEndian(sequence, bytes: 8))
            return written
        }
        if feed.hasSubscribers {
            feed.publish(
                written.map {
                    DocumentChange(key: $0.key, kind: $0.isTombstone ? .delete : .put, version: $0.version, origin: origin)
                })
        }
        return written
    }

    public func setMetadata(_ name: String, _ value: [UInt8]?) throws(StorageError) {
        let key = Self.userPrefix + Array(name.utf8)
        guard key.count <= 511 else { throw StorageError(code: .invalidKey, message: "metadata names are at most 506 bytes") }
        let meta = meta
        try environment.write { (transaction: borrowing LMDBEnvironment.Transaction) throws(StorageError) in
            if let value {
                try transaction.put(meta, key, value)
            } else {
                try transaction.delete(meta, key)
            }
        }
    }

    // MARK: Encoding

    /// `collection ‖ 0x00 ‖ id`: keys sort by collection, then ID, byte-wise.
    static func encode(_ key: DocumentKey) -> [UInt8] {
        var bytes: [UInt8] = []
        bytes.reserveCapacity(key.collection.utf8.count + 1 + key.id.utf8.count)
        bytes.append(contentsOf: key.collection.utf8)
        bytes.append(0)
        bytes.append(contentsOf: key.id.utf8)
        return bytes
    }

    static func prefix(_ collection: String) -> [UInt8] {
        Array(collection.utf8) + [0]
    }

    static func decodeKey(_ bytes: [UInt8]) throws(StorageError) -> DocumentKey {
        guard let separator = bytes.firstIndex(of: 0),
            let collection = String(validating: bytes[..<separator], as: UTF8.self),
            let id = String(validating: bytes[(separator + 1)...], as: UTF8.self)
        else {
            throw StorageError(code: .corruptValue, message: "a stored key is not a valid document key (\(bytes.count) bytes)")
        }
        guard !collection.isEmpty, !id.isEmpty else {
            throw StorageError(code: .corruptValue, message: "a stored key has an empty part (\(bytes.count) bytes)")
        }
        // As written: a key from an earlier, looser rule stays readable (DocumentKey.isValid is false).
        return DocumentKey(stored: collection, id: id)
    }

    static func decode(_ bytes: UnsafeRawBufferPointer, key: DocumentKey, encodedKey: [UInt8]) throws(StorageError) -> StoredDocument {
        guard let (payload, version, tombstone) = StoredValueCodec.decode(bytes, key: encodedKey) else {
            throw StorageError(
                code: .corruptValue,
                message: "the stored value of \(key) is corrupt or truncated (\(bytes.count) bytes); it was not decoded")
        }
        return StoredDocument(key: key, value: payload, version: version, isTombstone: tombstone)
    }

    static func bigEndian(_ value: UInt64, bytes: Int) -> [UInt8] {
        (0..<bytes).map { UInt8(truncatingIfNeeded: value >> UInt64(8 * (bytes - 1 - $0))) }
    }

    private static func makeDirectory(_ path: String) throws(StorageError) {
        var current = path.hasPrefix("/") ? "/" : ""
        for component in path.split(separator: "/") {
            current += (current.isEmpty || current.hasSuffix("/") ? "" : "/") + component
            if mkdir(current, 0o700) != 0, errno != EEXIST {
                throw StorageError(code: .io, message: "cannot create directory \(current): \(String(cString: strerror(errno)))")
            }
        }
        var info = stat()
        guard stat(path, &info) == 0, (info.st_mode & S_IFMT) == S_IFDIR else {
            throw StorageError(code: .io, message: "\(path) is not a directory")
        }
    }
}
