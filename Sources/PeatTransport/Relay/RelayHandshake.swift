package import PeatIdentity

/// The relay protocol's name in the HTTP/1.1 Upgrade, and its version byte in `clientHello`.
package enum RelayProtocol {
    package static let upgradeToken = "peat-relay/1"
    package static let path = "/peat/relay"
    package static let version: UInt8 = 1
    package static let nonceByteCount = 32

    /// The transcript both sides' proofs cover: the protocol, the relay's TLS certificate (its
    /// SHA-256, RFC 5929's `tls-server-end-point`) and both fresh nonces. The certificate binds the
    /// proofs to this TLS session's server, so a man in the middle that terminates TLS with its own
    /// certificate cannot forward them to the real relay.
    static func transcript(certificateHash: [UInt8], clientNonce: [UInt8], relayNonce: [UInt8]) -> MembershipTranscript {
        var transcript = MembershipTranscript()
        transcript.append("protocol", Array(upgradeToken.utf8))
        transcript.append("relay-certificate", certificateHash)
        transcript.append("client-nonce", clientNonce)
        transcript.append("relay-nonce", relayNonce)
        return transcript
    }

    /// The client's part: its device key and what it asks for.
    static func clientTranscript(_ base: MembershipTranscript, key: DevicePublicKey, intent: RelayIntent) -> MembershipTranscript {
        var transcript = base
        transcript.append("client-key", key.rawRepresentation)
        transcript.append("intent", intent.encoded)
        return transcript
    }

    static let relayProofLabel = Array("peat-relay-v1 relay proof".utf8)
    static let clientProofLabel = Array("peat-relay-v1 client proof".utf8)
    static let signatureLabel = Array("peat-relay-v1 device signature".utf8)

    static func refusal(_ reason: RelayRefusal, _ message: String) -> RelayFrame {
        RelayFrame(kind: .refused, payload: [reason.rawValue] + Array(message.utf8.prefix(200)))
    }
}

/// The relay's side of admission as a state machine: frames in, actions out.
///
/// 1. client → `clientHello` (version, nonce); 2. relay → `serverHello` (nonce, proof that it holds
/// the access key over the transcript); 3. client → `clientAuth` (device key, proof that it holds
/// the access key, the device key's signature — both over the transcript plus the key and the
/// intent); 4. the relay verifies both: only then is the client admitted, as the device its key
/// derives to. The relay never learns the formation secret: the access key is a one-way derivation
/// of it (`RelayAccessKey`).
package struct RelayServerHandshake {
    package enum Action: Equatable {
        case send(RelayFrame)
        /// Admitted: `peer` proved membership (access key) and its device key.
        case admitted(peer: PeerIdentity, intent: RelayIntent)
        /// Send this refusal and close.
        case refuse(RelayRefusal, String)
    }

    private enum State {
        case awaitingHello, awaitingAuth(MembershipTranscript), done
    }

    private var state = State.awaitingHello
    private let accessKey: RelayAccessKey
    private let certificateHash: [UInt8]
    private let nonce: [UInt8]

    package init(accessKey: RelayAccessKey, certificateHash: [UInt8], nonce: [UInt8] = FormationChallenge.random().nonce) {
        self.accessKey = accessKey
        self.certificateHash = certificateHash
        self.nonce = nonce
    }

    package var isDone: Bool {
        if case .done = state { return true }
        return false
    }

    /// Whether the relay's proof went out and the client's answer has not arrived.
    package var sentServerHello: Bool {
        if case .awaitingAuth = state { return true }
        return false
    }

    package mutating func received(_ frame: RelayFrame) -> Action {
        switch (state, frame.kind) {
        case (.awaitingHello, .clientHello):
            guard frame.payload.count == 1 + RelayProtocol.nonceByteCount, frame.payload[0] == RelayProtocol.version else {
                return refuse(.protocolViolation, "clientHello of version \(frame.payload.first ?? 0) / \(frame.payload.count) bytes")
            }
            let transcript = RelayProtocol.transcript(
                certificateHash: certificateHash, clientNonce: Array(frame.payload.dropFirst()), relayNonce: nonce)
            state = .awaitingAuth(transcript)
            let proof = accessKey.authenticationCode([RelayProtocol.relayProofLabel, transcript.bytes])
            return .send(RelayFrame(kind: .serverHello, payload: nonce + proof))
        case (.awaitingAuth(let transcript), .clientAuth):
            let fixed = DevicePublicKey.byteCount + 32 + DeviceSignature.byteCount
            let payload = frame.payload
            guard payload.count > fixed, let intent = RelayIntent(decoding: payload[fixed...]),
                let key = try? DevicePublicKey(rawRepresentation: payload[0..<32]),
                let signature = try? DeviceSignature(rawRepresentation: payload[64..<fixed])
            else { return refuse(.protocolViolation, "malformed clientAuth") }
            let client = RelayProtocol.clientTranscript(transcript, key: key, intent: intent)
            guard accessKey.verify(Array(payload[32..<64]), for: [RelayProtocol.clientProofLabel, client.bytes]) else {
                return refuse(.notAdmitted, "no valid access proof")
            }
            do {
                try key.verify(signature, for: RelayProtocol.signatureLabel + client.bytes)
            } catch {
                return refuse(.notAdmitted, "no valid device signature")
            }
            state = .done
            return .admitted(peer: PeerIdentity(publicKey: key), intent: intent)
        default:
            return refuse(.protocolViolation, "unexpected \(frame.kind) frame during admission")
        }
    }

    private mutating func refuse(_ reason: RelayRefusal, _ message: String) -> Action {
        state = .done
        return .refuse(reason, message)
    }
}

/// The client's side of admission: checks the relay's proof before it proves anything itself.
package struct RelayClientHandshake {
    package enum Action: Equatable {
        case send(RelayFrame)
        /// Fail with this error and close.
        case fail(TransportError.Code, String)
        /// Nothing to do yet (the relay answers `admitted`, `sessionStarted` or `refused` next).
        case none
    }

    private enum State {
        case start, awaitingServerHello, authSent, failed
    }

    private var state = State.start
    private let accessKey: RelayAccessKey
    private let keypair: DeviceKeypair
    package let intent: RelayIntent
    private let certificateHash: [UInt8]
    private let nonce: [UInt8]

    package init(
        accessKey: RelayAccessKey, keypair: DeviceKeypair, intent: RelayIntent, certificateHash: [UInt8],
        nonce: [UInt8] = FormationChallenge.random().nonce
    ) {
        self.accessKey = accessKey
        self.keypair = keypair
        self.intent = intent
        self.certificateHash = certificateHash
        self.nonce = nonce
    }

    /// Whether `clientAuth` was sent (later frames are the relay's answer to it).
    package var isAuthSent: Bool {
        if case .authSent = state { return true }
        return false
    }

    /// The first frame, sent once the upgrade succeeded (a later call returns it again and changes
    /// nothing: the handshake never starts over).
    package mutating func start() -> RelayFrame {
        if case .start = state { state = .awaitingServerHello }
        return RelayFrame(kind: .clientHello, payload: [RelayProtocol.version] + nonce)
    }

    package mutating func received(_ frame: RelayFrame) -> Action {
        guard case .awaitingServerHello = state else {
            state = .failed
            return .fail(.protocolViolation, "unexpected \(frame.kind) frame from the relay")
        }
        if frame.kind == .refused { return failRefused(frame) }
        guard frame.kind == .serverHello, frame.payload.count == 2 * RelayProtocol.nonceByteCount else {
            state = .failed
            return .fail(.protocolViolation, "expected serverHello from the relay, got \(frame.kind)")
        }
        let relayNonce = Array(frame.payload.prefix(RelayProtocol.nonceByteCount))
        let transcript = RelayProtocol.transcript(certificateHash: certificateHash, clientNonce: nonce, relayNonce: relayNonce)
        guard accessKey.verify(Array(frame.payload.suffix(32)), for: [RelayProtocol.relayProofLabel, transcript.bytes]) else {
            state = .failed
            return .fail(.relayRefused, "the relay did not prove it holds this formation's relay access key")
        }
        let client = RelayProtocol.clientTranscript(transcript, key: keypair.publicKey, intent: intent)
        let proof = accessKey.authenticationCode([RelayProtocol.clientProofLabel, client.bytes])
        let signature = keypair.sign(RelayProtocol.signatureLabel + client.bytes)
        state = .authSent
        return .send(
            RelayFrame(kind: .clientAuth, payload: keypair.publicKey.rawRepresentation + proof + signature.rawRepresentation + intent.encoded))
    }

    private mutating func failRefused(_ frame: RelayFrame) -> Action {
        state = .failed
        return .fail(.relayRefused, RelayRefusal.describe(frame))
    }
}

extension RelayRefusal {
    /// "reason: message" of a `refused` frame, for errors and logs.
    static func describe(_ frame: RelayFrame) -> String {
        let reason = frame.payload.first.flatMap(RelayRefusal.init(rawValue:)).map(\.description) ?? "unknown"
        let message = String(decoding: frame.payload.dropFirst().prefix(200), as: UTF8.self)
        return "the relay refused: \(reason)\(message.isEmpty ? "" : " (\(message))")"
    }
}
