/// The one error type of PeatTransport.
///
/// Messages name what went wrong and with which peer or address; they never contain key
/// material, proofs or frame contents.
public struct TransportError: Error, Sendable, CustomStringConvertible {
    /// What went wrong, as a stable, comparable value.
    public struct Code: Hashable, Sendable, CustomStringConvertible {
        private enum Value: String, Hashable, Sendable {
            case malformedFrame
            case frameTooLarge
            case unsupportedVersion
            case protocolViolation
            case handshakeFailed
            case handshakeTimeout
            case notFormationMember
            case unexpectedIdentity
            case alpnMismatch
            case connectionClosed
            case idleTimeout
            case connectFailed
            case listenFailed
            case duplicateConnection
            case transportClosed
            case tooManyHandshakes
            case relayRefused
        }

        private let value: Value
        private init(_ value: Value) { self.value = value }

        /// Bytes that are not a valid frame.
        public static let malformedFrame = Code(.malformedFrame)
        /// A frame whose length field exceeds the maximum frame size.
        public static let frameTooLarge = Code(.frameTooLarge)
        /// A frame of a protocol version this node does not speak.
        public static let unsupportedVersion = Code(.unsupportedVersion)
        /// A valid frame at a point where the protocol does not allow it.
        public static let protocolViolation = Code(.protocolViolation)
        /// The TLS or formation handshake could not complete.
        public static let handshakeFailed = Code(.handshakeFailed)
        /// The handshake did not complete in time.
        public static let handshakeTimeout = Code(.handshakeTimeout)
        /// The peer did not prove that it holds the formation secret.
        public static let notFormationMember = Code(.notFormationMember)
        /// The peer's device key is not the one the caller expected.
        public static let unexpectedIdentity = Code(.unexpectedIdentity)
        /// The peer did not negotiate the expected application protocol.
        public static let alpnMismatch = Code(.alpnMismatch)
        /// The connection is closed.
        public static let connectionClosed = Code(.connectionClosed)
        /// Nothing arrived from the peer within the idle timeout.
        public static let idleTimeout = Code(.idleTimeout)
        /// A connection to the peer could not be opened.
        public static let connectFailed = Code(.connectFailed)
        /// The listener could not be bound.
        public static let listenFailed = Code(.listenFailed)
        /// Closed in favour of another connection to the same peer (simultaneous dial).
        public static let duplicateConnection = Code(.duplicateConnection)
        /// The transport has shut down.
        public static let transportClosed = Code(.transportClosed)
        /// Refused on arrival: the listener's handshake limits (`HandshakeLimits`) were reached.
        public static let tooManyHandshakes = Code(.tooManyHandshakes)
        /// A relay refused the request (no such peer, a limit, a failed admission proof), or did
        /// not prove it holds the formation's relay access key.
        public static let relayRefused = Code(.relayRefused)

        public var description: String { value.rawValue }
    }

    /// What went wrong.
    public var code: Code
    /// A human-readable explanation, safe to log.
    public var message: String
    /// The underlying error, if another layer reported it.
    public var cause: (any Error & Sendable)?
    /// The authenticated peer the error is about, when known (for `.duplicateConnection`: the
    /// device this node is already connected to).
    public var peer: PeerIdentity?

    /// Creates an error.
    public init(code: Code, message: String, cause: (any Error & Sendable)? = nil, peer: PeerIdentity? = nil) {
        self.code = code
        self.message = message
        self.cause = cause
        self.peer = peer
    }

    public var description: String {
        if let cause { return "TransportError(\(code)): \(message) (cause: \(cause))" }
        return "TransportError(\(code)): \(message)"
    }
}
