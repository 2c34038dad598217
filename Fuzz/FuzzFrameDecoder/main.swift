import NIOCore
import PeatFuzzSupport
import PeatTransport

/// `FrameDecoder.decode(buffer:)` / `decodeLast(buffer:seenEOF:)` on a byte stream cut into arbitrary
/// chunks, ungated or behind a closed `AuthenticationGate` that opens after the first frame. Every
/// frame decoded must re-encode to exactly the bytes it came from and respect the limit in force.
///
/// Input: a mode byte (limit, gate), then chunks (a length byte and that many bytes) until the end.
enum FrameDecoderTarget {
    static let limits = [64, 1024, Frame.defaultMaximumPayloadSize]

    static func run(_ bytes: [UInt8]) {
        var input = FuzzInput(bytes)
        let mode = input.byte()
        let limit = limits[Int(mode & 0x03) % limits.count]
        let gate: AuthenticationGate? = mode & 0x04 != 0 ? AuthenticationGate() : nil
        var decoder = gate.map { FrameDecoder(maximumPayloadSize: limit, gate: $0) } ?? FrameDecoder(maximumPayloadSize: limit)
        var buffer = ByteBufferAllocator().buffer(capacity: 256)
        var fed: [UInt8] = []
        var decoded: [UInt8] = []
        let encoder = FrameEncoder()
        func check(_ frame: Frame, limit: Int) {
            fuzzInvariant(frame.payload.count <= limit, "a frame of \(frame.payload.count) bytes passed the limit \(limit)")
            var out = ByteBufferAllocator().buffer(capacity: frame.payload.count + Frame.headerSize)
            try! encoder.encode(data: frame, out: &out)
            decoded += out.readableBytesView
            fuzzInvariant(fed.starts(with: decoded), "a decoded frame does not re-encode to its bytes")
        }
        do {
            while !input.isAtEnd {
                let chunk = input.bytes(Int(input.byte()))
                fed += chunk
                buffer.writeBytes(chunk)
                while true {
                    let current = gate.map { $0.isOpen ? limit : min(limit, FrameDecoder.handshakePayloadLimit) } ?? limit
                    guard let frame = try decoder.decode(buffer: &buffer) else { break }
                    check(frame, limit: current)
                    gate?.isOpen = true
                }
            }
            while let frame = try decoder.decodeLast(buffer: &buffer, seenEOF: true) { check(frame, limit: limit) }
            fuzzInvariant(decoded == fed, "the stream ended cleanly with \(fed.count - decoded.count) bytes not decoded")
        } catch {
            fuzzInvariant(error is TransportError, "FrameDecoder threw \(type(of: error))")
        }
    }

    static func seeds() -> [(name: String, bytes: [UInt8])] {
        func encoded(_ frames: [Frame]) -> [UInt8] {
            var out = ByteBufferAllocator().buffer(capacity: 64)
            let encoder = FrameEncoder()
            for frame in frames { try! encoder.encode(data: frame, out: &out) }
            return Array(out.readableBytesView)
        }
        /// Mode, then the stream in chunks of `size` bytes.
        func script(mode: UInt8, _ stream: [UInt8], chunk size: Int = 255) -> [UInt8] {
            var out = [mode]
            var offset = 0
            while offset < stream.count {
                let end = min(stream.count, offset + size)
                out.append(UInt8(end - offset))
                out += stream[offset..<end]
                offset = end
            }
            return out
        }
        let hello = Frame(kind: .hello, payload: Array(repeating: 0xA5, count: 32))
        let proof = Frame(kind: .proof, payload: Array(0..<32))
        let data = Frame(kind: .data, payload: Array("the mesh says hello".utf8))
        let ping = Frame(kind: .ping, payload: [0, 0, 0, 0, 0, 0, 0, 1])
        let pong = Frame(kind: .pong, payload: [0, 0, 0, 0, 0, 0, 0, 1])
        let handshake = encoded([hello, proof, data, ping, pong])
        let large = encoded([hello, Frame(kind: .data, payload: Array(repeating: 7, count: 900))])
        var seeds: [(String, [UInt8])] = [
            ("handshake-then-data", script(mode: 0x01, handshake)),
            ("handshake-gated", script(mode: 0x05, handshake)),
            ("handshake-split-bytes", script(mode: 0x06, handshake, chunk: 1)),
            ("large-frame-gated", script(mode: 0x05, large, chunk: 100)),
            ("empty-payloads", script(mode: 0x00, encoded([Frame(kind: .data, payload: []), Frame(kind: .ping, payload: [])]))),
            ("wrong-version", script(mode: 0x01, [2, 0, 0, 0, 0, 1, 9])),
            ("unknown-kind", script(mode: 0x01, [1, 9, 0, 0, 0, 0])),
            ("length-above-limit", script(mode: 0x00, [1, 0, 0, 0, 0, 65])),
            ("length-max", script(mode: 0x02, [1, 0, 0xFF, 0xFF, 0xFF, 0xFF])),
            ("truncated-payload", script(mode: 0x01, Array(handshake.dropLast(3)))),
        ]
        seeds.append(("header-only", script(mode: 0x02, [1, 0, 0, 0, 1, 0])))
        return seeds
    }
}

@_cdecl("LLVMFuzzerTestOneInput")
func fuzzOneInput(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    FrameDecoderTarget.run(FuzzMain.bytes(data, size))
    return 0
}

FuzzMain.run(seeds: FrameDecoderTarget.seeds)
