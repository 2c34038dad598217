/// The one error type of PeatStorage.
public struct StorageError: Error, Sendable, CustomStringConvertible {
    /// What went wrong, as a stable, comparable value.
    public struct Code: Hashable, Sendable, CustomStringConvertible {
        private enum Value: String, Hashable, Sendable {
            case invalidKey, corruptValue, incompatibleFormat, mapFull, versionConflict, closed, lmdb, io
        }

        private let value: Value
        private init(_ value: Value) { self.value = value }

        /// A collection name or document ID that the store cannot hold.
        public static let invalidKey = Code(.invalidKey)
        /// A stored value failed its checksum or is truncated: reported, never decoded.
        public static let corruptValue = Code(.corruptValue)
        /// The data directory was written by an incompatible data-format version.
        public static let incompatibleFormat = Code(.incompatibleFormat)
        /// The store reached its maximum size (`MDB_MAP_FULL` after growing as far as allowed).
        public static let mapFull = Code(.mapFull)
        /// A conditional write found another version than the one expected.
        public static let versionConflict = Code(.versionConflict)
        /// The store is closed.
        public static let closed = Code(.closed)
        /// LMDB reported another error.
        public static let lmdb = Code(.lmdb)
        /// The data directory could not be created or opened.
        public static let io = Code(.io)

        public var description: String { value.rawValue }
    }

    /// What went wrong.
    public var code: Code
    /// A human-readable explanation, safe to log.
    public var message: String
    /// The underlying error, if another layer reported it.
    public var cause: (any Error & Sendable)?

    /// Creates an error.
    public init(code: Code, message: String, cause: (any Error & Sendable)? = nil) {
        self.code = code
        self.message = message
        self.cause = cause
    }

    public var description: String {
        if let cause { return "StorageError(\(code)): \(message) (cause: \(cause))" }
        return "StorageError(\(code)): \(message)"
    }
}
