/// The one error type of PeatIdentity.
///
/// Messages never contain secret material: not the formation secret, not derived keys, not the
/// bytes of a value that failed to parse as a secret.
public struct IdentityError: Error, Sendable, CustomStringConvertible {
    /// What went wrong, as a stable, comparable value. New codes can be added without breaking
    /// callers that switch on the ones they know.
    public struct Code: Hashable, Sendable, CustomStringConvertible {
        private enum Value: String, Hashable, Sendable {
            case invalidLength
            case invalidHex
            case invalidBase64
            case secretTooShort
            case invalidPublicKey
            case invalidSignature
            case invalidMembershipProof
            case cryptoFailure
        }

        private let value: Value

        private init(_ value: Value) {
            self.value = value
        }

        /// A byte string had the wrong length for what it should hold.
        public static let invalidLength = Code(.invalidLength)
        /// A string was not hexadecimal of the expected length.
        public static let invalidHex = Code(.invalidHex)
        /// A string was not standard, padded base64.
        public static let invalidBase64 = Code(.invalidBase64)
        /// A formation secret decoded to fewer bytes than the minimum.
        public static let secretTooShort = Code(.secretTooShort)
        /// Bytes were not a usable Ed25519 public key.
        public static let invalidPublicKey = Code(.invalidPublicKey)
        /// A signature did not verify.
        public static let invalidSignature = Code(.invalidSignature)
        /// A formation membership proof did not verify.
        public static let invalidMembershipProof = Code(.invalidMembershipProof)
        /// libsodium reported a failure it should never report.
        public static let cryptoFailure = Code(.cryptoFailure)

        public var description: String { value.rawValue }
    }

    /// What went wrong.
    public var code: Code
    /// A human-readable explanation, safe to log.
    public var message: String
    /// The underlying error, if another layer reported it.
    public var cause: (any Error & Sendable)?

    /// Creates an error.
    /// - Parameters:
    ///   - code: What went wrong.
    ///   - message: A human-readable explanation; it must not contain secret material.
    ///   - cause: The underlying error, if any.
    public init(code: Code, message: String, cause: (any Error & Sendable)? = nil) {
        self.code = code
        self.message = message
        self.cause = cause
    }

    public var description: String {
        if let cause {
            return "IdentityError(\(code)): \(message) (cause: \(cause))"
        }
        return "IdentityError(\(code)): \(message)"
    }
}

extension IdentityError {
    /// Copies `bytes` if there are exactly `count` of them, else throws `.invalidLength`.
    /// - Parameter what: The value's name for the message, e.g. "an Ed25519 public key".
    static func exactBytes<Bytes: Collection<UInt8>>(_ bytes: Bytes, count: Int, _ what: String) throws(IdentityError) -> [UInt8] {
        guard bytes.count == count else {
            throw IdentityError(code: .invalidLength, message: "\(what) is \(count) bytes, got \(bytes.count)")
        }
        return Array(bytes)
    }
}
