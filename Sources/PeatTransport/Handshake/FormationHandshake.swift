package import PeatIdentity

/// The formation handshake as a plain state machine: what to send and when a peer is accepted.
///
/// After TLS (which authenticated each side's Ed25519 certificate key) both sides:
/// 1. check the negotiated ALPN (a sync protocol version this side speaks) and the peer's key (not
///    ourselves; the expected device if known);
/// 2. send `hello` with a fresh 32-byte nonce;
/// 3. on the peer's hello, send `proof` = the formation key's membership proof over a transcript
///    of the ALPN, both certificate keys and both nonces, for this side's role;
/// 4. on the peer's proof, verify it for the peer's role: only then is the peer authenticated.
///
/// The transcript binds the proof to this TLS session's keys and fresh nonces, so it cannot be
/// replayed elsewhere or relayed through a man in the middle; the role stops reflection.
package struct FormationHandshake {
    package enum Action: Equatable {
        /// Send this frame to the peer.
        case send(Frame)
        /// The peer is authenticated; application data may flow.
        case authenticated(PeerIdentity)
        /// Close the connection with this error; nothing else is sent.
        case fail(TransportError.Code, String)
        /// Nothing to do.
        case none
    }

    private enum State {
        case awaitingTLS
        case awaitingHello(peer: PeerIdentity)
        case awaitingProof(peer: PeerIdentity, transcript: MembershipTranscript)
        case authenticated(PeerIdentity)
        case failed
    }

    private var state = State.awaitingTLS
    package let role: MembershipRole
    package let localKey: DevicePublicKey
    package let formationKey: FormationKey
    package let expectedPeer: DeviceID?
    package let nonce: [UInt8]
    /// The sync protocol versions this side accepts.
    package let versions: [SyncProtocolVersion]
    /// The version TLS negotiated, once checked.
    package private(set) var version: SyncProtocolVersion?

    package init(
        role: MembershipRole, localKey: DevicePublicKey, formationKey: FormationKey, expectedPeer: DeviceID?,
        nonce: FormationChallenge = .random(), versions: [SyncProtocolVersion] = SyncProtocolVersion.allCases
    ) {
        self.versions = versions
        self.role = role
        self.localKey = localKey
        self.formationKey = formationKey
        self.expectedPeer = expectedPeer
        self.nonce = nonce.nonce
    }

    package var isAuthenticated: Bool {
        if case .authenticated = state { return true }
        return false
    }

    /// TLS finished; `peerKey` is the key of the peer's verified certificate.
    package mutating func tlsHandshakeCompleted(negotiatedProtocol: String?, peerKey: DevicePublicKey?) -> Action {
        guard case .awaitingTLS = state else { return fail(.protocolViolation, "TLS completed twice") }
        guard let negotiated = negotiatedProtocol.flatMap(SyncProtocolVersion.init(alpn:)), versions.contains(negotiated) else {
            let offered = SyncProtocolVersion.alpns(versions).joined(separator: " or ")
            return fail(.alpnMismatch, "the peer negotiated \(negotiatedProtocol.map { "\"\($0)\"" } ?? "no application protocol"), not \(offered)")
        }
        guard let peerKey else { return fail(.handshakeFailed, "the peer presented no Ed25519 certificate") }
        guard peerKey != localKey else { return fail(.handshakeFailed, "the peer is this node itself") }
        if let expectedPeer, peerKey.deviceID != expectedPeer {
            return fail(.unexpectedIdentity, "the peer is device \(peerKey.deviceID), expected \(expectedPeer)")
        }
        let peer = PeerIdentity(publicKey: peerKey)
        version = negotiated
        state = .awaitingHello(peer: peer)
        return .send(Frame(kind: .hello, payload: nonce))
    }

    /// A frame arrived before authentication completed (after it, frames bypass the handshake).
    package mutating func received(_ frame: Frame) -> Action {
        switch (state, frame.kind) {
        case (.awaitingHello(let peer), .hello):
            guard frame.payload.count == FormationChallenge.byteCount else {
                return fail(.protocolViolation, "hello of \(frame.payload.count) bytes")
            }
            let transcript = transcript(peer: peer, peerNonce: frame.payload)
            state = .awaitingProof(peer: peer, transcript: transcript)
            let proof = formationKey.membershipProof(for: role, transcript: transcript)
            return .send(Frame(kind: .proof, payload: proof.rawRepresentation))
        case (.awaitingProof(let peer, let transcript), .proof):
            do {
                let proof = try MembershipProof(rawRepresentation: frame.payload)
                try formationKey.verifyMembershipProof(proof, from: role.peerRole, transcript: transcript)
            } catch {
                return fail(.notFormationMember, "device \(peer.deviceID) did not prove formation membership")
            }
            state = .authenticated(peer)
            return .authenticated(peer)
        case (.failed, _):
            return .none
        default:
            return fail(.protocolViolation, "unexpected \(frame.kind) frame during the formation handshake")
        }
    }

    /// The handshake deadline passed.
    package mutating func timedOut() -> Action {
        switch state {
        case .authenticated, .failed: return .none
        default: return fail(.handshakeTimeout, "the formation handshake did not complete in time")
        }
    }

    private func transcript(peer: PeerIdentity, peerNonce: [UInt8]) -> MembershipTranscript {
        let (initiatorKey, responderKey) = role == .initiator ? (localKey, peer.publicKey) : (peer.publicKey, localKey)
        let (initiatorNonce, responderNonce) = role == .initiator ? (nonce, peerNonce) : (peerNonce, nonce)
        var transcript = MembershipTranscript()
        transcript.append("alpn", Array((version ?? .v1).alpn.utf8))
        transcript.append("initiator-key", initiatorKey.rawRepresentation)
        transcript.append("responder-key", responderKey.rawRepresentation)
        transcript.append("initiator-nonce", initiatorNonce)
        transcript.append("responder-nonce", responderNonce)
        return transcript
    }

    private mutating func fail(_ code: TransportError.Code, _ message: String) -> Action {
        state = .failed
        return .fail(code, message)
    }
}

extension MembershipRole {
    /// The other side's role.
    var peerRole: MembershipRole { self == .initiator ? .responder : .initiator }
}
