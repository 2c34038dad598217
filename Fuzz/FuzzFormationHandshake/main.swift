import PeatFuzzSupport
import PeatIdentity
import PeatTransport

/// `FormationHandshake` in either role fed a script of events: TLS completions with any ALPN and
/// peer key, frames of any kind and payload, hellos, proofs (valid, for the wrong role, from another
/// formation, or arbitrary) and timeouts. It must never trap, send or authenticate after a failure, and it may
/// report the peer authenticated only after the TLS peer key passed its checks and the last frame was
/// the proof an honest peer (a second `FormationHandshake`) computes for the accepted hello.
///
/// Input: a setup byte (role, expected peer, nonce), then one event per byte with its operands.
enum FormationHandshakeTarget {
    static let secret = Array("fuzz-formation-shared-secret-0123".utf8)
    static let formation = FormationKey(secret: secret)
    static let otherFormation = FormationKey(secret: Array("another formation's secret, 16+".utf8))
    static let local = DeviceKeypair.fromSeed(secret, context: "fuzz-local").publicKey
    static let peer = DeviceKeypair.fromSeed(secret, context: "fuzz-peer").publicKey
    static let other = DeviceKeypair.fromSeed(secret, context: "fuzz-other").publicKey
    static let alpns: [String?] = [syncALPN, nil, "h2", "peat/sync/2", ""]

    /// The proof an honest `role` side sends for the TLS keys and nonces, computed by the real machine.
    static func honestProof(
        role: MembershipRole, formation: FormationKey, key: DevicePublicKey, nonce: [UInt8], peerKey: DevicePublicKey, peerNonce: [UInt8]
    ) -> [UInt8] {
        var machine = FormationHandshake(
            role: role, localKey: key, formationKey: formation, expectedPeer: nil, nonce: try! FormationChallenge(nonce: nonce))
        _ = machine.tlsHandshakeCompleted(negotiatedProtocol: syncALPN, peerKey: peerKey)
        guard case .send(let frame) = machine.received(Frame(kind: .hello, payload: peerNonce)), frame.kind == .proof else {
            fatalError("the honest peer sent no proof")
        }
        return frame.payload
    }

    static func run(_ bytes: [UInt8]) {
        var input = FuzzInput(bytes)
        let setup = input.byte()
        let role: MembershipRole = setup & 1 == 0 ? .initiator : .responder
        let expected: DeviceID? = [nil, peer.deviceID, other.deviceID, nil][Int(setup >> 1 & 3)]
        var nonce = input.bytes(FormationChallenge.byteCount)
        nonce += Array(repeating: 0, count: FormationChallenge.byteCount - nonce.count)
        var machine = FormationHandshake(
            role: role, localKey: local, formationKey: formation, expectedPeer: expected, nonce: try! FormationChallenge(nonce: nonce))

        // What the harness knows of the machine's progress, from the actions it returned.
        var tlsPeer: DevicePublicKey?
        var acceptedHello: [UInt8]?
        var failed = false
        var authenticated = false
        var events = 0
        func check(_ action: FormationHandshake.Action) {
            if failed {
                // Failure is final: nothing is sent and nobody is authenticated after it.
                if case .send = action { fuzzInvariant(false, "a frame sent after the handshake failed") }
                if case .authenticated = action { fuzzInvariant(false, "authenticated after the handshake failed") }
            }
            switch action {
            case .fail:
                failed = true
                fuzzInvariant(!machine.isAuthenticated, "a failed handshake reports authenticated")
            case .authenticated:
                fuzzInvariant(!authenticated && tlsPeer != nil && acceptedHello != nil, "authenticated twice or out of order")
                authenticated = true
                fuzzInvariant(machine.isAuthenticated, "authenticated but isAuthenticated is false")
            case .send, .none:
                break
            }
        }

        while !input.isAtEnd, events < 64 {
            events += 1
            var action = FormationHandshake.Action.none
            var frame: Frame?
            switch input.choice(7) {
            case 0:
                let alpn = alpns[input.choice(alpns.count)]
                let key = [peer, local, other, nil][input.choice(4)]
                action = machine.tlsHandshakeCompleted(negotiatedProtocol: alpn, peerKey: key)
                if case .send(let hello) = action {
                    let spoken = alpn.flatMap(SyncProtocolVersion.init(alpn:)) != nil
                    fuzzInvariant(tlsPeer == nil && spoken && key != nil && key != local, "TLS accepted twice or a bad peer")
                    fuzzInvariant(hello == Frame(kind: .hello, payload: nonce), "the hello does not carry the nonce")
                    if let expected { fuzzInvariant(key?.deviceID == expected, "TLS accepted an unexpected device") }
                    tlsPeer = key
                }
            case 1:
                frame = Frame(kind: Frame.Kind(rawValue: input.byte()), payload: input.message())
            case 2:
                frame = Frame(kind: .hello, payload: input.bytes(FormationChallenge.byteCount))
            case 3, 4:
                // A proof from the TLS peer (or one posing as it): honest, for the wrong role, or from
                // another formation — over the accepted hello (or a guessed one).
                let hello = acceptedHello ?? Array(repeating: 0, count: FormationChallenge.byteCount)
                let variant = input.choice(4)
                let proverRole = variant == 1 ? role : role.peer
                let proof = honestProof(
                    role: proverRole, formation: variant == 2 ? otherFormation : formation, key: variant == 3 ? other : (tlsPeer ?? peer),
                    nonce: hello, peerKey: local, peerNonce: nonce)
                frame = Frame(kind: .proof, payload: proof)
            case 5:
                frame = Frame(kind: .proof, payload: input.bytes(Int(input.byte() % 40)))
            default:
                action = machine.timedOut()
            }
            if let frame {
                action = machine.received(frame)
                if case .send(let proof) = action {
                    fuzzInvariant(frame.kind == .hello && acceptedHello == nil && tlsPeer != nil, "a proof sent out of turn")
                    acceptedHello = frame.payload
                    // Our proof must be the one the honest peer expects.
                    let expectedProof = honestProof(
                        role: role, formation: formation, key: local, nonce: nonce, peerKey: tlsPeer!, peerNonce: frame.payload)
                    fuzzInvariant(proof == Frame(kind: .proof, payload: expectedProof), "this side's proof is not the honest one")
                }
                if case .authenticated(let identity) = action {
                    let valid = honestProof(
                        role: role.peer, formation: formation, key: tlsPeer!, nonce: acceptedHello!, peerKey: local, peerNonce: nonce)
                    fuzzInvariant(frame.kind == .proof && frame.payload == valid, "authenticated without a valid proof")
                    fuzzInvariant(identity == PeerIdentity(publicKey: tlsPeer!), "authenticated another identity than the TLS peer")
                }
            }
            check(action)
        }
    }

    static func seeds() -> [(name: String, bytes: [UInt8])] {
        let nonce = Array(repeating: UInt8(0x11), count: 32)
        let peerNonce = Array(repeating: UInt8(0x22), count: 32)
        // TLS ok (syncALPN, peer key), the peer's hello, the honest proof.
        let honest: [UInt8] = [0, 0, 0] + [2] + peerNonce + [3, 0]
        return [
            ("initiator-honest", [0] + nonce + honest),
            ("responder-honest", [1] + nonce + honest),
            ("expected-peer-honest", [2] + nonce + honest),
            ("unexpected-peer", [4] + nonce + honest),
            ("wrong-role-proof", [0] + nonce + [0, 0, 0, 2] + peerNonce + [3, 1]),
            ("other-formation-proof", [1] + nonce + [0, 0, 0, 2] + peerNonce + [4, 2]),
            ("proof-by-other-key", [0] + nonce + [0, 0, 0, 2] + peerNonce + [4, 3]),
            ("garbage-proof", [0] + nonce + [0, 0, 0, 2] + peerNonce + [5, 32] + Array(repeating: 0x5A, count: 32)),
            ("no-alpn", [0] + nonce + [0, 1, 0]),
            ("self-key", [0] + nonce + [0, 0, 1]),
            ("data-before-auth", [0] + nonce + [0, 0, 0, 1, 0, 0, 4, 1, 2, 3, 4]),
            ("proof-before-hello", [0] + nonce + [0, 0, 0, 3, 0]),
            ("hello-before-tls", [0] + nonce + [2] + peerNonce),
            ("short-hello", [0] + nonce + [0, 0, 0, 1, 1, 0, 3, 1, 2, 3]),
            ("timeout-then-frames", [0] + nonce + [0, 0, 0, 6, 2] + peerNonce + [3, 0]),
            ("frames-after-auth", [0] + nonce + honest + [1, 0, 0, 1, 9, 2] + peerNonce + [6]),
        ]
    }
}

extension MembershipRole {
    /// The other side's role.
    var peer: MembershipRole { self == .initiator ? .responder : .initiator }
}

@_cdecl("LLVMFuzzerTestOneInput")
func fuzzOneInput(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    FormationHandshakeTarget.run(FuzzMain.bytes(data, size))
    return 0
}

FuzzMain.run(seeds: FormationHandshakeTarget.seeds)
