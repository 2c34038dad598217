public import NIOCore

/// Splits a byte stream into `Frame`s, rejecting anything malformed.
///
/// The length field is checked against `maximumPayloadSize` before any payload is buffered, so a
/// hostile peer cannot make the node allocate what a length field claims. Any error is final: the
/// connection is closed, not resynchronised.
public struct FrameDecoder: ByteToMessageDecoder, NIOSingleStepByteToMessageDecoder {
    public typealias InboundOut = Frame

    /// The largest payload accepted once the peer is authenticated.
    public let maximumPayloadSize: Int
    /// The largest payload accepted while `gate` is closed (handshake frames are 32 bytes).
    public static let handshakePayloadLimit = 64
    private let gate: AuthenticationGate?

    /// - Parameter maximumPayloadSize: The largest payload accepted.
    public init(maximumPayloadSize: Int = Frame.defaultMaximumPayloadSize) {
        self.maximumPayloadSize = maximumPayloadSize
        self.gate = nil
    }

    /// A decoder that accepts only handshake-sized frames until `gate` opens, so a peer that has
    /// not proved formation membership cannot make the node buffer a large frame.
    package init(maximumPayloadSize: Int, gate: AuthenticationGate) {
        self.maximumPayloadSize = maximumPayloadSize
        self.gate = gate
    }

    private var currentLimit: Int {
        if let gate, !gate.isOpen { return min(Self.handshakePayloadLimit, maximumPayloadSize) }
        return maximumPayloadSize
    }

    public mutating func decode(buffer: inout ByteBuffer) throws -> Frame? {
        guard let header = buffer.getBytes(at: buffer.readerIndex, length: Frame.headerSize) else { return nil }
        guard header[0] == Frame.version else {
            throw TransportError(code: .unsupportedVersion, message: "frame version \(header[0]); this node speaks \(Frame.version)")
        }
        guard Frame.Kind.known.contains(header[1]) else {
            throw TransportError(code: .malformedFrame, message: "unknown frame kind \(header[1])")
        }
        let length = Int(header[2]) << 24 | Int(header[3]) << 16 | Int(header[4]) << 8 | Int(header[5])
        let limit = currentLimit
        guard length <= limit else {
            throw TransportError(
                code: .frameTooLarge,
                message: "frame of \(length) bytes exceeds the maximum of \(limit)")
        }
        guard buffer.readableBytes >= Frame.headerSize + length else { return nil }
        buffer.moveReaderIndex(forwardBy: Frame.headerSize)
        let payload = buffer.readBytes(length: length)!
        return Frame(kind: Frame.Kind(rawValue: header[1]), payload: payload)
    }

    public mutating func decodeLast(buffer: inout ByteBuffer, seenEOF: Bool) throws -> Frame? {
        if let frame = try decode(buffer: &buffer) { return frame }
        if buffer.readableBytes > 0 {
            throw TransportError(code: .malformedFrame, message: "connection ended inside a frame (\(buffer.readableBytes) bytes left)")
        }
        return nil
    }
}

/// Opened by the formation handshake once the peer is authenticated; read by the frame decoder.
/// Both live on the channel's event loop.
package final class AuthenticationGate {
    package var isOpen = false

    package init() {}
}

/// Writes `Frame`s in the wire format of `Frame`.
public struct FrameEncoder: MessageToByteEncoder {
    public typealias OutboundIn = Frame

    public init() {}

    public func encode(data frame: Frame, out: inout ByteBuffer) throws {
        guard frame.payload.count <= Int(UInt32.max) else {
            throw TransportError(code: .frameTooLarge, message: "frame of \(frame.payload.count) bytes cannot be encoded")
        }
        out.reserveCapacity(Frame.headerSize + frame.payload.count)
        out.writeInteger(Frame.version)
        out.writeInteger(frame.kind.rawValue)
        out.writeInteger(UInt32(frame.payload.count))
        out.writeBytes(frame.payload)
    }
}
