import NIOCore
import NIOEmbedded
import Testing

@testable import PeatTransport

struct FrameCodecTests {
    static func encode(_ frames: [Frame]) throws -> ByteBuffer {
        var buffer = ByteBuffer()
        for frame in frames { try FrameEncoder().encode(data: frame, out: &buffer) }
        return buffer
    }

    static func decodeAll(_ bytes: [UInt8], maximum: Int = 1024) throws -> [Frame] {
        var decoder = FrameDecoder(maximumPayloadSize: maximum)
        var buffer = ByteBuffer(bytes: bytes)
        var frames: [Frame] = []
        while let frame = try decoder.decode(buffer: &buffer) { frames.append(frame) }
        if let last = try decoder.decodeLast(buffer: &buffer, seenEOF: true) { frames.append(last) }
        return frames
    }

    @Test func roundTripsFramesOfEveryKind() throws {
        let frames = [
            Frame(kind: .data, payload: Array("hello".utf8)),
            Frame(kind: .hello, payload: [UInt8](repeating: 7, count: 32)),
            Frame(kind: .proof, payload: []),
            Frame(kind: .ping, payload: [1, 2, 3, 4, 5, 6, 7, 8]),
            Frame(kind: .pong, payload: [8, 7, 6, 5, 4, 3, 2, 1]),
            Frame(kind: .data, payload: [UInt8](repeating: 0xab, count: 1024)),
        ]
        let bytes = Array(try Self.encode(frames).readableBytesView)
        #expect(bytes.prefix(6) == [1, 0, 0, 0, 0, 5])
        #expect(try Self.decodeAll(bytes) == frames)
    }

    @Test func decodesFramesDeliveredOneByteAtATime() throws {
        let frames = [Frame(kind: .data, payload: Array("split".utf8)), Frame(kind: .ping, payload: [9])]
        let channel = EmbeddedChannel(handler: ByteToMessageHandler(FrameDecoder()))
        for byte in try Self.encode(frames).readableBytesView {
            try channel.writeInbound(ByteBuffer(bytes: [byte]))
        }
        #expect(try channel.readInbound(as: Frame.self) == frames[0])
        #expect(try channel.readInbound(as: Frame.self) == frames[1])
        #expect(try channel.readInbound(as: Frame.self) == nil)
        _ = try channel.finish()
    }

    @Test func rejectsLengthAboveMaximumBeforeBufferingThePayload() {
        // Header claims 4 GiB; only the 6 header bytes are present.
        #expect {
            try Self.decodeAll([1, 0, 0xff, 0xff, 0xff, 0xff])
        } throws: { ($0 as? TransportError)?.code == .frameTooLarge }
        #expect {
            try Self.decodeAll([1, 0, 0, 0, 4, 1] + [UInt8](repeating: 0, count: 1025), maximum: 1024)
        } throws: { ($0 as? TransportError)?.code == .frameTooLarge }
    }

    @Test func acceptsPayloadOfExactlyTheMaximum() throws {
        #expect(try Self.decodeAll([1, 0, 0, 0, 4, 0] + [UInt8](repeating: 3, count: 1024), maximum: 1024).first?.payload.count == 1024)
    }

    @Test(arguments: [[UInt8]([2, 0, 0, 0, 0, 0]), [0, 0, 0, 0, 0, 0], [0xff, 0, 0, 0, 0, 0]])
    func rejectsUnknownVersion(_ bytes: [UInt8]) {
        #expect { try Self.decodeAll(bytes) } throws: { ($0 as? TransportError)?.code == .unsupportedVersion }
    }

    @Test(arguments: [UInt8(5), 6, 0x7f, 0xff])
    func rejectsUnknownKind(_ kind: UInt8) {
        #expect { try Self.decodeAll([1, kind, 0, 0, 0, 0]) } throws: { ($0 as? TransportError)?.code == .malformedFrame }
    }

    @Test(arguments: [1, 5, 7, 10])
    func rejectsConnectionEndingInsideAFrame(_ length: Int) throws {
        let bytes = Array(try Self.encode([Frame(kind: .data, payload: [1, 2, 3, 4, 5])]).readableBytesView)
        #expect { try Self.decodeAll(Array(bytes.prefix(length))) } throws: { ($0 as? TransportError)?.code == .malformedFrame }
    }

    @Test func survivesRandomGarbage() {
        var generator = SystemRandomNumberGenerator()
        for _ in 0..<2000 {
            let bytes = (0..<Int.random(in: 0...64, using: &generator)).map { _ in UInt8.random(in: 0...255, using: &generator) }
            do {
                for frame in try Self.decodeAll(bytes, maximum: 64) {
                    #expect(frame.payload.count <= 64)
                }
            } catch {
                #expect(error is TransportError)
            }
        }
    }
}

struct AuthenticationGateTests {
    @Test func onlyHandshakeSizedFramesBeforeAuthentication() throws {
        let gate = AuthenticationGate()
        var decoder = FrameDecoder(maximumPayloadSize: 1 << 20, gate: gate)
        var small = ByteBuffer(bytes: [1, 1, 0, 0, 0, 32] + [UInt8](repeating: 0, count: 32))
        #expect(try decoder.decode(buffer: &small)?.payload.count == 32)
        var large = ByteBuffer(bytes: [1, 0, 0, 0, 0x10, 0])  // 4096 bytes claimed
        #expect { try decoder.decode(buffer: &large) } throws: { ($0 as? TransportError)?.code == .frameTooLarge }
        gate.isOpen = true
        var afterwards = ByteBuffer(bytes: [1, 0, 0, 0, 0x10, 0] + [UInt8](repeating: 0, count: 4096))
        #expect(try decoder.decode(buffer: &afterwards)?.payload.count == 4096)
    }
}
