/// The one error type of PeatCRDT.
///
/// Decoding hostile or corrupt bytes, applying a change that does not fit the document, and
/// invalid edits (an index past the end, an object of the wrong type) all end here — never in a trap.
public struct PeatCRDTError: Error, Hashable, Sendable, CustomStringConvertible {
    /// What kind of failure this is.
    public struct Code: Hashable, Sendable, CustomStringConvertible {
        private enum Base: Hashable, Sendable {
            case malformedEncoding, unsupportedVersion, invalidChange, invalidOperation, checksumMismatch
        }
        private let base: Base
        private init(_ base: Base) { self.base = base }

        /// The bytes are not a valid encoding (truncated, out of range, bad UTF-8, ...).
        public static let malformedEncoding = Code(.malformedEncoding)
        /// The encoding is from a format version this build does not read.
        public static let unsupportedVersion = Code(.unsupportedVersion)
        /// A change is well-formed bytes but does not fit the document (unknown object, bad reference).
        public static let invalidChange = Code(.invalidChange)
        /// A local edit is not possible (index out of range, wrong object type).
        public static let invalidOperation = Code(.invalidOperation)
        /// A change's content does not match the hash it was referenced by.
        public static let checksumMismatch = Code(.checksumMismatch)

        public var description: String {
            switch base {
            case .malformedEncoding: "malformed encoding"
            case .unsupportedVersion: "unsupported version"
            case .invalidChange: "invalid change"
            case .invalidOperation: "invalid operation"
            case .checksumMismatch: "checksum mismatch"
            }
        }
    }

    /// The kind of failure.
    public let code: Code
    /// A human-readable explanation (never contains document content beyond names and sizes).
    public let message: String

    /// Creates an error.
    public init(_ code: Code, _ message: String) {
        self.code = code
        self.message = message
    }

    public var description: String { "\(code): \(message)" }
}
