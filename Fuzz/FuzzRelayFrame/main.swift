import NIOCore
import PeatFuzzSupport
import PeatIdentity
import PeatTransport

/// The relay protocol before a session starts: `RelayFrame.decode(from:)` on a byte stream cut into
/// arbitrary chunks, then the frames it decoded, mixed with honest, foreign, replayed and tampered
/// ones, driving a `RelayServerHandshake` and a `RelayClientHandshake`.
///
/// - The decoder never traps; a partial frame consumes nothing; a decoded frame re-encodes to
///   exactly the bytes it consumed; it throws only for an unknown kind or a length over the limit.
/// - The relay admits only the untampered clientAuth an honest client (a real `RelayClientHandshake`
///   of this formation) sends in answer to the serverHello this relay sent, and admits that one;
///   after a refusal (or the admission) it answers nothing but refusals.
/// - The client sends clientAuth only in answer to a serverHello carrying a valid relay proof for its
///   nonce (the one a real `RelayServerHandshake` of this formation sends), and at most once.
///
/// Input: the stream as chunks (a length byte, bit 7 compacting the buffer first, and that many
/// bytes) up to an empty chunk; a byte choosing the client's intent; then events, one byte each with
/// its operands: bit 7 clear for the relay (`Relay.event`), set for the client (`Client.event`).
enum RelayFrameTarget {
    static let secret = try! FormationSecret(rawBytes: Array("fuzz-relay-formation-secret-0123".utf8))
    static let accessKey = RelayAccessKey(secret: secret)
    static let otherAccessKey = RelayAccessKey(secret: try! FormationSecret(rawBytes: Array("another formation's secret, 16+".utf8)))
    static let certificateHash = Array(repeating: UInt8(0xCE), count: 32)
    static let otherCertificateHash = Array(repeating: UInt8(0x3C), count: 32)
    /// The relay's nonce, and the nonce of the client under test.
    static let relayNonce = Array(repeating: UInt8(0xA0), count: RelayProtocol.nonceByteCount)
    static let clientNonce = Array(repeating: UInt8(0xC0), count: RelayProtocol.nonceByteCount)
    /// The honest clients' devices (the first is the client under test's).
    static let keypairs = [
        DeviceKeypair.fromSeed(Array("fuzz-relay-devices".utf8), context: "a"), DeviceKeypair.fromSeed(Array("fuzz-relay-devices".utf8), context: "b"),
    ]
    static let intents: [RelayIntent] = [
        .listen, .connect(target: keypairs[1].deviceID, token: Array(repeating: 0x77, count: RelayIntent.tokenByteCount)),
        .accept(token: Array(repeating: 0x55, count: RelayIntent.tokenByteCount)),
    ]

    static func nonce(_ byte: UInt8) -> [UInt8] { Array(repeating: byte, count: RelayProtocol.nonceByteCount) }

    static func clientHello(_ nonce: [UInt8]) -> RelayFrame {
        RelayFrame(kind: .clientHello, payload: [RelayProtocol.version] + nonce)
    }

    /// A real relay that answered the clientHello of `clientNonce`, and its serverHello.
    static func relay(
        key: RelayAccessKey = accessKey, hash: [UInt8] = certificateHash, nonce: [UInt8] = relayNonce, clientNonce: [UInt8]
    ) -> (RelayServerHandshake, RelayFrame) {
        var server = RelayServerHandshake(accessKey: key, certificateHash: hash, nonce: nonce)
        guard case .send(let hello) = server.received(clientHello(clientNonce)) else { fatalError("the honest relay sent no serverHello") }
        return (server, hello)
    }

    /// The clientAuth a real client of `key` (nonce `clientNonce`) answers `serverHello` with; nil when
    /// the client refuses that serverHello.
    static func clientAuth(
        key: RelayAccessKey = accessKey, hash: [UInt8] = certificateHash, keypair: DeviceKeypair, intent: RelayIntent, clientNonce: [UInt8],
        serverHello: RelayFrame
    ) -> RelayFrame? {
        var client = RelayClientHandshake(accessKey: key, keypair: keypair, intent: intent, certificateHash: hash, nonce: clientNonce)
        _ = client.start()
        guard case .send(let auth) = client.received(serverHello) else { return nil }
        return auth
    }

    /// `frame` changed by the input: a byte flipped, bytes overwritten, cut short, extended, or another kind.
    static func tampered(_ frame: RelayFrame, _ input: inout FuzzInput) -> RelayFrame {
        var frame = frame
        switch input.choice(5) {
        case 0 where !frame.payload.isEmpty:
            let position = Int(input.byte()) % frame.payload.count
            frame.payload[position] ^= max(1, input.byte())
        case 1 where !frame.payload.isEmpty:
            let position = Int(input.byte()) % frame.payload.count
            let bytes = input.bytes(1 + input.choice(64)).prefix(frame.payload.count - position)
            frame.payload.replaceSubrange(position..<position + bytes.count, with: bytes)
        case 2 where !frame.payload.isEmpty:
            frame.payload.removeLast(1 + Int(input.byte()) % frame.payload.count)
        case 3:
            frame.payload += input.bytes(1 + input.choice(40))
        default:
            let others = RelayFrame.Kind.allCases.filter { $0 != frame.kind }
            frame.kind = others[input.choice(others.count)]
        }
        return frame
    }

    static func arbitraryFrame(_ input: inout FuzzInput) -> RelayFrame {
        RelayFrame(kind: RelayFrame.Kind.allCases[input.choice(RelayFrame.Kind.allCases.count)], payload: input.message())
    }

    /// Part 1: decodes the stream's chunks; returns the frames decoded before the end or the first error.
    static func decodeStream(_ input: inout FuzzInput) -> [RelayFrame] {
        var buffer = ByteBufferAllocator().buffer(capacity: 64)
        var fed: [UInt8] = []
        var consumed = 0
        var frames: [RelayFrame] = []
        var failed = false
        while !input.isAtEnd {
            let header = input.byte()
            let count = Int(header & 0x7F)
            if count == 0 { break }
            let chunk = input.bytes(count)
            if failed { continue }  // The connection is closed: the rest of the stream is never read.
            if header & 0x80 != 0 { buffer.discardReadBytes() }
            buffer.writeBytes(chunk)
            fed += chunk
            while true {
                let readerIndex = buffer.readerIndex
                let pending = Array(fed[consumed...])
                fuzzInvariant(Array(buffer.readableBytesView) == pending, "the buffer does not hold the bytes not consumed")
                let frame: RelayFrame?
                do {
                    frame = try RelayFrame.decode(from: &buffer)
                } catch {
                    // Only an unknown kind or a length over the limit, and before consuming anything.
                    fuzzInvariant(buffer.readerIndex == readerIndex, "a refused frame consumed bytes")
                    if RelayFrame.Kind(rawValue: pending[0]) == nil {
                        fuzzInvariant(error.code == .malformedFrame, "an unknown kind threw \(error.code)")
                    } else {
                        let length = pending.count >= 3 ? Int(pending[1]) << 8 | Int(pending[2]) : 0
                        fuzzInvariant(pending.count >= 3, "threw on a partial header of a known kind")
                        fuzzInvariant(length > RelayFrame.maximumPayloadSize, "threw \(error.code) for a valid \(length)-byte frame")
                        fuzzInvariant(error.code == .frameTooLarge, "an oversize length threw \(error.code)")
                    }
                    failed = true
                    break
                }
                guard let frame else {
                    // Partial: nothing consumed, and the bytes really are the start of a valid frame.
                    fuzzInvariant(buffer.readerIndex == readerIndex && buffer.readableBytes == pending.count, "a partial frame consumed bytes")
                    if let kind = pending.first {
                        fuzzInvariant(RelayFrame.Kind(rawValue: kind) != nil, "an unknown kind was taken for a partial frame")
                    }
                    if pending.count >= 3 {
                        let length = Int(pending[1]) << 8 | Int(pending[2])
                        fuzzInvariant(length <= RelayFrame.maximumPayloadSize, "an oversize length was taken for a partial frame")
                        fuzzInvariant(pending.count < RelayFrame.headerSize + length, "a whole frame was taken for a partial one")
                    }
                    break
                }
                let taken = buffer.readerIndex - readerIndex
                fuzzInvariant(taken == RelayFrame.headerSize + frame.payload.count, "the frame consumed \(taken) bytes")
                fuzzInvariant(frame.encoded == Array(pending.prefix(taken)), "a decoded frame does not re-encode to its bytes")
                var out = ByteBufferAllocator().buffer(capacity: taken)
                frame.encode(into: &out)
                fuzzInvariant(Array(out.readableBytesView) == frame.encoded, "encode(into:) and encoded differ")
                consumed += taken
                frames.append(frame)
                checkIntent(frame.payload[...])
                if frame.kind == .clientAuth, frame.payload.count > 128 { checkIntent(frame.payload[128...]) }
            }
        }
        return frames
    }

    /// A decoded intent re-encodes to its bytes.
    static func checkIntent(_ bytes: ArraySlice<UInt8>) {
        guard let intent = RelayIntent(decoding: bytes) else { return }
        fuzzInvariant(intent.encoded == Array(bytes), "an intent does not re-encode to its bytes")
    }

    /// Part 2: the relay's side, as the harness has seen it.
    struct Relay {
        var machine = RelayServerHandshake(accessKey: accessKey, certificateHash: certificateHash, nonce: relayNonce)
        /// The nonce of the clientHello it answered, and its answer.
        var acceptedNonce: [UInt8]?
        var sentHello: RelayFrame?
        var done = false

        mutating func event(_ kind: Int, _ input: inout FuzzInput, decoded: inout IndexingIterator<[RelayFrame]>) {
            var expectAdmitted: (DeviceKeypair, RelayIntent)?
            var expectNotAdmitted = false
            let frame: RelayFrame
            let helloNonce = acceptedNonce ?? nonce(0)
            let answered = sentHello ?? relay(clientNonce: helloNonce).1
            switch kind {
            case 0:
                frame = decoded.next() ?? arbitraryFrame(&input)
            case 1:
                frame = clientHello(nonce(input.byte()))
            case 2, 3:
                // An honest client's answer to this relay's serverHello: admitted when it is awaited.
                let keypair = keypairs[input.choice(keypairs.count)]
                let intent = intents[input.choice(intents.count)]
                guard let auth = clientAuth(keypair: keypair, intent: intent, clientNonce: helloNonce, serverHello: answered) else {
                    fatalError("invariant broken: an honest client refused this relay's serverHello")
                }
                frame = auth
                if sentHello != nil, !done { expectAdmitted = (keypair, intent) }
            case 4:
                // An honest answer to another session's serverHello: another relay nonce, another client
                // nonce, or another certificate (a man in the middle).
                let keypair = keypairs[input.choice(keypairs.count)]
                let intent = intents[input.choice(intents.count)]
                let variant = input.choice(3)
                let other = nonce(input.byte())
                let auth: RelayFrame?
                switch variant {
                case 0:
                    auth = clientAuth(keypair: keypair, intent: intent, clientNonce: helloNonce, serverHello: relay(nonce: other, clientNonce: helloNonce).1)
                case 1: auth = clientAuth(keypair: keypair, intent: intent, clientNonce: other, serverHello: relay(clientNonce: other).1)
                default:
                    auth = clientAuth(
                        hash: otherCertificateHash, keypair: keypair, intent: intent, clientNonce: helloNonce,
                        serverHello: relay(hash: otherCertificateHash, clientNonce: helloNonce).1)
                }
                guard let auth else { fatalError("invariant broken: an honest client refused an honest serverHello") }
                frame = auth
            case 5:
                // A client of another formation, answering a relay of its own with this relay's nonce and certificate.
                let keypair = keypairs[input.choice(keypairs.count)]
                let intent = intents[input.choice(intents.count)]
                let foreignHello = relay(key: otherAccessKey, clientNonce: helloNonce).1
                guard let auth = clientAuth(key: otherAccessKey, keypair: keypair, intent: intent, clientNonce: helloNonce, serverHello: foreignHello)
                else { fatalError("invariant broken: a client refused its own formation's relay") }
                frame = auth
                expectNotAdmitted = sentHello != nil && !done
            case 6:
                let keypair = keypairs[input.choice(keypairs.count)]
                let intent = intents[input.choice(intents.count)]
                guard let auth = clientAuth(keypair: keypair, intent: intent, clientNonce: helloNonce, serverHello: answered) else {
                    fatalError("invariant broken: an honest client refused this relay's serverHello")
                }
                frame = tampered(sentHello == nil ? clientHello(helloNonce) : auth, &input)
            default:
                frame = arbitraryFrame(&input)
            }
            let action = machine.received(frame)
            if done {
                guard case .refuse = action else { fatalError("invariant broken: the relay answered \(action) after it was done") }
            }
            switch action {
            case .send(let answer):
                fuzzInvariant(sentHello == nil && acceptedNonce == nil, "a second serverHello")
                fuzzInvariant(
                    frame.kind == .clientHello && frame.payload.count == 1 + RelayProtocol.nonceByteCount && frame.payload[0] == RelayProtocol.version,
                    "a serverHello for a malformed clientHello")
                fuzzInvariant(
                    answer.kind == .serverHello && answer.payload.prefix(RelayProtocol.nonceByteCount).elementsEqual(relayNonce), "not this relay's serverHello"
                )
                let theirNonce = Array(frame.payload.dropFirst())
                fuzzInvariant(
                    clientAuth(keypair: keypairs[0], intent: .listen, clientNonce: theirNonce, serverHello: answer) != nil,
                    "an honest client refuses the relay's proof")
                acceptedNonce = theirNonce
                sentHello = answer
            case .admitted(let peer, let intent):
                // Only the honest answer to the serverHello this relay sent, byte for byte.
                guard let acceptedNonce, let sentHello, let keypair = keypairs.first(where: { $0.publicKey == peer.publicKey }) else {
                    fatalError("invariant broken: admitted \(peer) without a serverHello or as a stranger")
                }
                let honest = clientAuth(keypair: keypair, intent: intent, clientNonce: acceptedNonce, serverHello: sentHello)
                fuzzInvariant(frame == honest, "admitted a clientAuth that is not the honest answer")
                if let expectAdmitted {
                    fuzzInvariant(expectAdmitted.0.publicKey == peer.publicKey && expectAdmitted.1 == intent, "admitted another device or intent")
                }
                done = true
            case .refuse(let reason, _):
                fuzzInvariant(expectAdmitted == nil, "refused (\(reason)) the honest answer to its serverHello")
                if expectNotAdmitted { fuzzInvariant(reason == .notAdmitted, "another formation's client refused for \(reason)") }
                done = true
            }
            fuzzInvariant(machine.isDone == done, "isDone is \(machine.isDone) after \(action)")
        }
    }

    /// Part 3: the client's side, as the harness has seen it.
    struct Client {
        let intent: RelayIntent
        var machine: RelayClientHandshake
        let hello: RelayFrame
        var finished = false

        init(intent: RelayIntent) {
            self.intent = intent
            machine = RelayClientHandshake(accessKey: accessKey, keypair: keypairs[0], intent: intent, certificateHash: certificateHash, nonce: clientNonce)
            hello = machine.start()
            fuzzInvariant(hello == clientHello(clientNonce), "the clientHello does not carry the nonce")
        }

        mutating func event(_ kind: Int, _ input: inout FuzzInput, decoded: inout IndexingIterator<[RelayFrame]>) {
            let frame: RelayFrame
            var expectAuth = false
            switch kind {
            case 0:
                frame = decoded.next() ?? arbitraryFrame(&input)
            case 1, 2:
                frame = relay(nonce: nonce(input.byte()), clientNonce: clientNonce).1
                expectAuth = !finished
            case 3:
                frame = relay(key: otherAccessKey, nonce: nonce(input.byte()), clientNonce: clientNonce).1
            case 4:
                frame = relay(hash: otherCertificateHash, nonce: nonce(input.byte()), clientNonce: clientNonce).1
            case 5:
                frame = relay(nonce: nonce(input.byte()), clientNonce: nonce(input.byte())).1
            case 6:
                frame = tampered(relay(nonce: nonce(input.byte()), clientNonce: clientNonce).1, &input)
            default:
                frame = arbitraryFrame(&input)
            }
            let action = machine.received(frame)
            if finished {
                guard case .fail = action else { fatalError("invariant broken: the client answered \(action) after it was done") }
            }
            switch action {
            case .send(let auth):
                // Only for the serverHello a real relay of this formation sends for this nonce.
                let theirNonce = Array(frame.payload.prefix(RelayProtocol.nonceByteCount))
                var (honest, honestHello) = relay(nonce: theirNonce, clientNonce: clientNonce)
                fuzzInvariant(frame == honestHello, "clientAuth sent for a serverHello without a valid relay proof")
                fuzzInvariant(auth.kind == .clientAuth && machine.isAuthSent, "sent \(auth.kind), isAuthSent \(machine.isAuthSent)")
                fuzzInvariant(
                    honest.received(auth) == .admitted(peer: PeerIdentity(publicKey: keypairs[0].publicKey), intent: intent),
                    "the relay does not admit the client's clientAuth")
                finished = true
            case .fail(let code, _):
                fuzzInvariant(!expectAuth, "failed (\(code)) on an honest serverHello")
                if !finished, frame.kind == .refused { fuzzInvariant(code == .relayRefused, "a refusal failed as \(code)") }
                fuzzInvariant(!machine.isAuthSent, "failed but isAuthSent")
                finished = true
            case .none:
                fuzzInvariant(!expectAuth, "nothing sent for an honest serverHello")
            }
        }
    }

    static func run(_ bytes: [UInt8]) {
        var input = FuzzInput(bytes)
        var decoded = decodeStream(&input).makeIterator()
        var server = Relay()
        var client = Client(intent: intents[input.choice(intents.count)])
        var events = 0
        while !input.isAtEnd, events < 64 {
            events += 1
            let event = input.byte()
            if event & 0x80 == 0 {
                server.event(Int(event) % 8, &input, decoded: &decoded)
            } else {
                client.event(Int(event & 0x7F) % 8, &input, decoded: &decoded)
            }
        }
    }

    static func seeds() -> [(name: String, bytes: [UInt8])] {
        /// The stream in chunks of `size` bytes, then its end.
        func stream(_ frames: [RelayFrame], chunk size: Int = 127, raw: [UInt8] = []) -> [UInt8] {
            let bytes = frames.flatMap(\.encoded) + raw
            var out: [UInt8] = []
            var offset = 0
            while offset < bytes.count {
                let end = min(bytes.count, offset + size)
                out.append(UInt8(end - offset))
                out += bytes[offset..<end]
                offset = end
            }
            return out + [0]
        }
        let hello = clientHello(nonce(0x11))
        let serverHello = relay(clientNonce: nonce(0x11)).1
        let auth = clientAuth(keypair: keypairs[0], intent: intents[1], clientNonce: nonce(0x11), serverHello: serverHello)!
        let all = RelayFrame.Kind.allCases.map { RelayFrame(kind: $0, payload: Array(repeating: $0.rawValue, count: Int($0.rawValue) * 3)) }
        // Events: relay (bit 7 clear) and client (bit 7 set); see `Relay.event` and `Client.event`.
        let honestRelay: [UInt8] = [1, 0x11, 2, 0, 0]
        return [
            ("decoded-session-admitted", stream([hello, auth]) + [1, 0, 0]),
            ("decoded-session-split-bytes", stream([hello, auth], chunk: 1) + [0, 0, 0, 0]),
            ("decoded-then-frames-after", stream([hello, auth, RelayFrame(kind: .ping, payload: Array(0..<8))]) + [2, 0, 0, 0]),
            ("every-kind", stream(all, chunk: 50) + [0] + (0..<9).flatMap { _ in [UInt8(0), 0x80] }),
            (
                "compacting-chunks",
                [0x83] + Array(hello.encoded.prefix(3)) + [0x90] + Array(hello.encoded.dropFirst(3).prefix(16)) + [0x80 | 17]
                    + Array(hello.encoded.dropFirst(19)) + [0, 0, 0]
            ),
            ("unknown-kind", stream([hello], raw: [0xEE, 0, 0]) + [0, 0, 0]),
            ("oversize-length", stream([hello], raw: [RelayFrame.Kind.ping.rawValue, 0x02, 0x01]) + [0, 0]),
            ("length-max", stream([], raw: [RelayFrame.Kind.clientAuth.rawValue, 0xFF, 0xFF])),
            ("partial-frame", stream([], raw: Array(auth.encoded.dropLast(5)))),
            ("relay-honest", [0, 0] + honestRelay),
            ("relay-honest-then-more", [0, 0] + honestRelay + [2, 1, 2, 1, 0x22]),
            ("relay-replayed-relay-nonce", [0, 0, 1, 0x11, 4, 0, 0, 0, 0x42]),
            ("relay-replayed-client-nonce", [0, 0, 1, 0x11, 4, 1, 1, 1, 0x42]),
            ("relay-other-certificate", [0, 0, 1, 0x11, 4, 0, 2, 2, 0]),
            ("relay-other-formation", [0, 0, 1, 0x11, 5, 0, 0]),
            ("relay-tampered-byte", [0, 0, 1, 0x11, 6, 0, 0, 0, 100, 1]),
            ("relay-overwritten-signature", [0, 0, 1, 0x11, 6, 0, 0, 1, 64, 63] + Array(repeating: 0, count: 64)),
            ("relay-tampered-short", [0, 0, 1, 0x11, 6, 1, 1, 2, 3]),
            ("relay-tampered-long", [0, 0, 1, 0x11, 6, 0, 2, 3, 4, 1, 2, 3, 4, 5]),
            ("relay-tampered-kind", [0, 0, 1, 0x11, 6, 1, 0, 4, 0]),
            ("relay-auth-before-hello", [0, 0, 2, 0, 0]),
            ("relay-bad-hello", [0, 0, 7, 0, 0, 33] + [2] + nonce(0x11)),
            ("client-honest", [0, 1, 0x81, 0x5A]),
            ("client-honest-twice", [0, 2, 0x81, 0x5A, 0x82, 0x5A]),
            ("client-other-formation", [0, 0, 0x83, 0x5A]),
            ("client-other-certificate", [0, 0, 0x84, 0x5A]),
            ("client-replayed", [0, 0, 0x85, 0x5A, 0x11]),
            ("client-tampered-proof", [0, 0, 0x86, 0x5A, 0, 60, 0x80]),
            ("client-overwritten-proof", [0, 0, 0x86, 0x5A, 1, 32, 31] + Array(repeating: 0, count: 32)),
            ("client-tampered-short", [0, 0, 0x86, 0x5A, 2, 0]),
            ("client-refused", [0, 0, 0x87, UInt8(RelayFrame.Kind.allCases.firstIndex(of: .refused)!), 0, 5, 1] + Array("nope".utf8)),
            ("client-decoded-server-hello", stream([relay(clientNonce: clientNonce).1]) + [0, 0x80]),
            ("both-sides", [0, 1] + honestRelay + [0x81, 0x33, 0x87, 0, 0, 0]),
        ]
    }
}

@_cdecl("LLVMFuzzerTestOneInput")
func fuzzOneInput(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    RelayFrameTarget.run(FuzzMain.bytes(data, size))
    return 0
}

FuzzMain.run(seeds: RelayFrameTarget.seeds)
