public import NIOCore
public import PeatIdentity

/// One unit of the relay protocol, exchanged after the HTTP/1.1 Upgrade to `peat-relay/1` and before
/// a relayed session starts (after `sessionStarted` the connection carries the two peers' own TLS
/// bytes, which the relay forwards untouched).
///
/// Wire format (integers big-endian): `kind (1 byte) | length (UInt16) | payload (length)`; a
/// payload is at most `maximumPayloadSize` bytes, so a frame is bounded before it is buffered.
public struct RelayFrame: Sendable, Hashable {
    /// Bytes before the payload.
    public static let headerSize = 3
    /// The largest payload of any relay frame.
    public static let maximumPayloadSize = 512

    /// What a frame carries. Payload layouts (fixed sizes unless stated):
    public enum Kind: UInt8, Sendable, CaseIterable {
        /// client → relay: version (1) + client nonce (32).
        case clientHello = 1
        /// relay → client: relay nonce (32) + relay proof (32).
        case serverHello = 2
        /// client → relay: device public key (32) + access proof (32) + device signature (64) +
        /// intent (1) + intent data: `listen` none, `connect` target device ID (16) + session token
        /// (16), `accept` session token (16).
        case clientAuth = 3
        /// relay → client: a `listen` client is registered (empty).
        case admitted = 4
        /// relay → client: refused; reason (1) + UTF-8 message (at most 200 bytes).
        case refused = 5
        /// relay → listening client: a peer wants a session: its device ID (16) + session token (16).
        case incoming = 6
        /// either way: keepalive request, 8 bytes echoed in the pong.
        case ping = 7
        /// either way: keepalive answer.
        case pong = 8
        /// relay → session client: paired; from the next byte on the connection is the session (empty).
        case sessionStarted = 9
    }

    public var kind: Kind
    public var payload: [UInt8]

    public init(kind: Kind, payload: [UInt8] = []) {
        self.kind = kind
        self.payload = payload
    }

    /// Appends the encoded frame to `buffer`.
    public func encode(into buffer: inout ByteBuffer) {
        buffer.writeInteger(kind.rawValue)
        buffer.writeInteger(UInt16(payload.count))
        buffer.writeBytes(payload)
    }

    /// The encoded frame in a buffer from `allocator`.
    public func buffer(_ allocator: ByteBufferAllocator) -> ByteBuffer {
        var out = allocator.buffer(capacity: Self.headerSize + payload.count)
        encode(into: &out)
        return out
    }

    /// The encoded frame.
    public var encoded: [UInt8] {
        [kind.rawValue, UInt8(payload.count >> 8), UInt8(payload.count & 0xFF)] + payload
    }

    /// Reads one frame from the front of `buffer`: nil (and nothing consumed) when it holds only
    /// part of one.
    /// - Throws: `TransportError` (`.malformedFrame` for an unknown kind, `.frameTooLarge` for a
    ///   length over `maximumPayloadSize`), before any payload is buffered.
    public static func decode(from buffer: inout ByteBuffer) throws(TransportError) -> RelayFrame? {
        guard let kindByte = buffer.getInteger(at: buffer.readerIndex, as: UInt8.self) else { return nil }
        guard let kind = Kind(rawValue: kindByte) else {
            throw TransportError(code: .malformedFrame, message: "relay frame of unknown kind \(kindByte)")
        }
        guard let length = buffer.getInteger(at: buffer.readerIndex + 1, as: UInt16.self) else { return nil }
        guard Int(length) <= maximumPayloadSize else {
            throw TransportError(code: .frameTooLarge, message: "relay frame of \(length) bytes; at most \(maximumPayloadSize)")
        }
        guard buffer.readableBytes >= headerSize + Int(length) else { return nil }
        buffer.moveReaderIndex(forwardBy: headerSize)
        let payload = buffer.readBytes(length: Int(length)) ?? []
        return RelayFrame(kind: kind, payload: payload)
    }
}

/// Why a relay refused a request (the `refused` frame's reason byte).
public enum RelayRefusal: UInt8, Sendable, CaseIterable, CustomStringConvertible {
    /// The access proof or the device signature did not verify.
    case notAdmitted = 1
    /// The target device has no listening connection to this relay.
    case peerUnavailable = 2
    /// A connection limit (per client or in total) was reached.
    case limitReached = 3
    /// The peer did not accept the session in time.
    case timedOut = 4
    /// A frame the protocol does not allow at this point.
    case protocolViolation = 5
    /// The relay is shutting down.
    case shuttingDown = 6

    public var description: String {
        switch self {
        case .notAdmitted: "notAdmitted"
        case .peerUnavailable: "peerUnavailable"
        case .limitReached: "limitReached"
        case .timedOut: "timedOut"
        case .protocolViolation: "protocolViolation"
        case .shuttingDown: "shuttingDown"
        }
    }
}

/// What a client asks the relay for once admitted.
public enum RelayIntent: Sendable, Hashable {
    /// Keep this connection as the device's control connection: `incoming` frames arrive on it.
    case listen
    /// Start a session with `target`; `token` names it in the `incoming` the target receives.
    case connect(target: DeviceID, token: [UInt8])
    /// Join the session `token` that an `incoming` frame announced.
    case accept(token: [UInt8])

    /// The number of bytes in a session token.
    public static let tokenByteCount = 16

    var code: UInt8 {
        switch self {
        case .listen: 1
        case .connect: 2
        case .accept: 3
        }
    }

    package var encoded: [UInt8] {
        switch self {
        case .listen: [code]
        case .connect(let target, let token): [code] + target.rawRepresentation + token
        case .accept(let token): [code] + token
        }
    }

    package init?(decoding bytes: ArraySlice<UInt8>) {
        guard let code = bytes.first else { return nil }
        let data = bytes.dropFirst()
        switch code {
        case 1 where data.isEmpty:
            self = .listen
        case 2 where data.count == DeviceID.byteCount + Self.tokenByteCount:
            guard let target = try? DeviceID(rawRepresentation: data.prefix(DeviceID.byteCount)) else { return nil }
            self = .connect(target: target, token: Array(data.suffix(Self.tokenByteCount)))
        case 3 where data.count == Self.tokenByteCount:
            self = .accept(token: Array(data))
        default:
            return nil
        }
    }
}
