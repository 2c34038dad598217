/// One unit on the wire: a kind and a payload.
///
/// Wire format, version 1 (all integers big-endian):
///
///     +---------+------+----------------+-----------------+
///     | version | kind | length (UInt32)| payload (length)|
///     |  1 byte |1 byte|    4 bytes     |                 |
///     +---------+------+----------------+-----------------+
///
/// `length` never exceeds the receiver's maximum frame size; a larger one closes the connection
/// before any of the payload is buffered.
public struct Frame: Sendable, Hashable {
    /// The protocol version this implementation writes and accepts.
    public static let version: UInt8 = 1
    /// Bytes before the payload.
    public static let headerSize = 6
    /// The default largest payload accepted: 4 MiB.
    public static let defaultMaximumPayloadSize = 4 * 1024 * 1024

    /// What a frame carries.
    public struct Kind: RawRepresentable, Hashable, Sendable, CustomStringConvertible {
        public let rawValue: UInt8
        public init(rawValue: UInt8) { self.rawValue = rawValue }

        /// Application data (only after both sides proved formation membership).
        public static let data = Kind(rawValue: 0)
        /// Handshake: a fresh 32-byte nonce.
        public static let hello = Kind(rawValue: 1)
        /// Handshake: a 32-byte formation membership proof.
        public static let proof = Kind(rawValue: 2)
        /// Keepalive request; the payload is echoed in the pong.
        public static let ping = Kind(rawValue: 3)
        /// Keepalive answer.
        public static let pong = Kind(rawValue: 4)

        static let known: Set<UInt8> = [0, 1, 2, 3, 4]

        public var description: String {
            switch rawValue {
            case 0: "data"
            case 1: "hello"
            case 2: "proof"
            case 3: "ping"
            case 4: "pong"
            default: "kind(\(rawValue))"
            }
        }
    }

    public var kind: Kind
    public var payload: [UInt8]

    public init(kind: Kind, payload: [UInt8]) {
        self.kind = kind
        self.payload = payload
    }
}
