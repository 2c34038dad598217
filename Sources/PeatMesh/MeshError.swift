/// The one error type of PeatMesh.
public struct MeshError: Error, Sendable, CustomStringConvertible {
    /// What went wrong, as a stable, comparable value.
    public struct Code: Hashable, Sendable, CustomStringConvertible {
        private enum Value: String, Hashable, Sendable {
            case notFound, versionConflict, invalidDocument, invalidKey, storage, protocolViolation, invalidConfiguration, closed
        }

        private let value: Value
        private init(_ value: Value) { self.value = value }

        /// No live document under the key.
        public static let notFound = Code(.notFound)
        /// A conditional write found another version than the one expected.
        public static let versionConflict = Code(.versionConflict)
        /// The value cannot be a document (not an object, too deep, a reserved field, ...).
        public static let invalidDocument = Code(.invalidDocument)
        /// A collection name or document ID the store cannot hold.
        public static let invalidKey = Code(.invalidKey)
        /// The document store failed (full, corrupt value, closed).
        public static let storage = Code(.storage)
        /// A peer sent something the mesh protocol does not allow; its connection is closed.
        public static let protocolViolation = Code(.protocolViolation)
        /// The builder or configuration cannot make a working mesh.
        public static let invalidConfiguration = Code(.invalidConfiguration)
        /// The mesh has shut down.
        public static let closed = Code(.closed)

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
        if let cause { return "MeshError(\(code)): \(message) (cause: \(cause))" }
        return "MeshError(\(code)): \(message)"
    }
}
