import PeatIdentity
import Testing

@testable import PeatTransport

struct FormationHandshakeTests {
    static let secret = Array("formation-shared-secret-from-k8s-secret".utf8)

    struct Side {
        var machine: FormationHandshake
        let keypair: DeviceKeypair
    }

    static func side(_ role: MembershipRole, secret: [UInt8] = secret, expecting: DeviceID? = nil, name: String) -> Side {
        let keypair = DeviceKeypair.fromSeed(Self.secret, context: name)
        return Side(
            machine: FormationHandshake(
                role: role, localKey: keypair.publicKey, formationKey: FormationKey(secret: secret), expectedPeer: expecting),
            keypair: keypair)
    }

    /// Runs both machines to completion, delivering every frame; returns each side's final action.
    static func run(_ a: inout Side, _ b: inout Side) -> (FormationHandshake.Action, FormationHandshake.Action) {
        var toB: [Frame] = []
        var toA: [Frame] = []
        var lastA = a.machine.tlsHandshakeCompleted(negotiatedProtocol: syncALPN, peerKey: b.keypair.publicKey)
        var lastB = b.machine.tlsHandshakeCompleted(negotiatedProtocol: syncALPN, peerKey: a.keypair.publicKey)
        if case .send(let frame) = lastA { toB.append(frame) }
        if case .send(let frame) = lastB { toA.append(frame) }
        while !toA.isEmpty || !toB.isEmpty {
            if !toB.isEmpty {
                lastB = b.machine.received(toB.removeFirst())
                if case .send(let frame) = lastB { toA.append(frame) }
            }
            if !toA.isEmpty {
                lastA = a.machine.received(toA.removeFirst())
                if case .send(let frame) = lastA { toB.append(frame) }
            }
        }
        return (lastA, lastB)
    }

    @Test func membersAuthenticateEachOther() {
        var a = Self.side(.initiator, name: "peat-mesh-0")
        var b = Self.side(.responder, name: "peat-mesh-1")
        let (resultA, resultB) = Self.run(&a, &b)
        #expect(resultA == .authenticated(PeerIdentity(publicKey: b.keypair.publicKey)))
        #expect(resultB == .authenticated(PeerIdentity(publicKey: a.keypair.publicKey)))
        #expect(a.machine.isAuthenticated && b.machine.isAuthenticated)
    }

    @Test func wrongSecretFailsOnBothSides() {
        var a = Self.side(.initiator, name: "peat-mesh-0")
        var b = Self.side(.responder, secret: Array("another formation's secret".utf8), name: "peat-mesh-1")
        let (resultA, resultB) = Self.run(&a, &b)
        guard case .fail(.notFormationMember, _) = resultA, case .fail(.notFormationMember, _) = resultB else {
            Issue.record("expected both sides to reject: \(resultA) / \(resultB)")
            return
        }
        #expect(!a.machine.isAuthenticated && !b.machine.isAuthenticated)
    }

    @Test func rejectsWrongALPNAndMissingKeyAndSelf() {
        var a = Self.side(.initiator, name: "a")
        let other = DeviceKeypair.generate().publicKey
        guard case .fail(.alpnMismatch, _) = a.machine.tlsHandshakeCompleted(negotiatedProtocol: nil, peerKey: other) else {
            Issue.record("no ALPN must fail")
            return
        }
        var b = Self.side(.initiator, name: "b")
        guard case .fail(.alpnMismatch, _) = b.machine.tlsHandshakeCompleted(negotiatedProtocol: "h2", peerKey: other) else {
            Issue.record("wrong ALPN must fail")
            return
        }
        var c = Self.side(.initiator, name: "c")
        guard case .fail(.handshakeFailed, _) = c.machine.tlsHandshakeCompleted(negotiatedProtocol: syncALPN, peerKey: nil) else {
            Issue.record("no key must fail")
            return
        }
        var d = Self.side(.initiator, name: "d")
        guard case .fail(.handshakeFailed, _) = d.machine.tlsHandshakeCompleted(negotiatedProtocol: syncALPN, peerKey: d.keypair.publicKey) else {
            Issue.record("a connection to ourselves must fail")
            return
        }
    }

    @Test func rejectsUnexpectedPeerBeforeSendingAnything() {
        let expected = DeviceKeypair.fromSeed(Self.secret, context: "peat-mesh-2").deviceID
        var a = Self.side(.initiator, expecting: expected, name: "peat-mesh-0")
        let impostor = DeviceKeypair.fromSeed(Self.secret, context: "peat-mesh-1")
        guard case .fail(.unexpectedIdentity, _) = a.machine.tlsHandshakeCompleted(negotiatedProtocol: syncALPN, peerKey: impostor.publicKey) else {
            Issue.record("an unexpected identity must fail")
            return
        }
        var ok = Self.side(.initiator, expecting: impostor.deviceID, name: "peat-mesh-0")
        guard case .send(let hello) = ok.machine.tlsHandshakeCompleted(negotiatedProtocol: syncALPN, peerKey: impostor.publicKey) else {
            Issue.record("the expected identity must pass")
            return
        }
        #expect(hello.kind == .hello && hello.payload.count == 32)
    }

    @Test(arguments: [Frame.Kind.data, .ping, .pong, .proof])
    func rejectsAnyOtherFrameBeforeAuthentication(_ kind: Frame.Kind) {
        var a = Self.side(.responder, name: "a")
        _ = a.machine.tlsHandshakeCompleted(negotiatedProtocol: syncALPN, peerKey: DeviceKeypair.generate().publicKey)
        guard case .fail(.protocolViolation, _) = a.machine.received(Frame(kind: kind, payload: [UInt8](repeating: 0, count: 32))) else {
            Issue.record("\(kind) before hello must fail")
            return
        }
        #expect(!a.machine.isAuthenticated)
    }

    @Test func rejectsReflectedProof() {
        var a = Self.side(.initiator, name: "a")
        let b = DeviceKeypair.fromSeed(Self.secret, context: "b")
        _ = a.machine.tlsHandshakeCompleted(negotiatedProtocol: syncALPN, peerKey: b.publicKey)
        guard case .send(let ourProof) = a.machine.received(Frame(kind: .hello, payload: [UInt8](repeating: 1, count: 32))) else {
            Issue.record("expected a proof")
            return
        }
        // An attacker without the secret echoes our own proof back.
        guard case .fail(.notFormationMember, _) = a.machine.received(ourProof) else {
            Issue.record("a reflected proof must fail")
            return
        }
    }

    @Test func timesOutUntilAuthenticated() {
        var a = Self.side(.initiator, name: "a")
        guard case .fail(.handshakeTimeout, _) = a.machine.timedOut() else {
            Issue.record("must time out")
            return
        }
        var b = Self.side(.initiator, name: "b")
        var c = Self.side(.responder, name: "c")
        _ = Self.run(&b, &c)
        #expect(b.machine.timedOut() == .none)
    }
}
