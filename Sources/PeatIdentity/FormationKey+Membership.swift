/// A fresh random challenge a node sends to make a peer prove formation membership.
public struct FormationChallenge: Hashable, Sendable {
    /// The number of bytes in a challenge nonce.
    public static let byteCount = 32

    /// The 32-byte nonce.
    public let nonce: [UInt8]

    /// Creates a challenge from a received 32-byte nonce.
    /// - Throws: `IdentityError` with code `.invalidLength` for any other length.
    public init<Bytes: Collection<UInt8>>(nonce: Bytes) throws(IdentityError) {
        self.nonce = try IdentityError.exactBytes(nonce, count: Self.byteCount, "a formation challenge")
    }

    /// A new challenge with a nonce from libsodium's CSPRNG.
    public static func random() -> FormationChallenge {
        try! FormationChallenge(nonce: randomBytes(count: byteCount))
    }
}

/// Which side of a connection produced a membership proof.
///
/// The role is authenticated inside the proof, so a peer cannot reflect the proof it received
/// back as its own.
public enum MembershipRole: UInt8, Sendable, CaseIterable {
    /// The side that opened the connection.
    case initiator = 1
    /// The side that accepted the connection.
    case responder = 2
}

/// An unambiguous encoding of the values a membership proof is bound to.
///
/// Each field is appended with its label and length, so no two different sequences of fields
/// encode to the same bytes. A transport appends what identifies the session — a TLS exporter
/// value, or both certificates' keys and both nonces — in the same order on both sides.
public struct MembershipTranscript: Sendable, Hashable {
    /// The encoded transcript.
    public private(set) var bytes: [UInt8] = Array("peat-membership-transcript-v1".utf8)

    /// Creates an empty transcript.
    public init() {}

    /// Appends one labelled field.
    /// - Parameters:
    ///   - label: What the field is (for example `tls-exporter`); at most 255 UTF-8 bytes.
    ///   - value: The field's bytes.
    public mutating func append<Bytes: Collection<UInt8>>(_ label: String, _ value: Bytes) {
        let labelBytes = Array(label.utf8.prefix(255))
        bytes.append(UInt8(labelBytes.count))
        bytes.append(contentsOf: labelBytes)
        let length = UInt32(truncatingIfNeeded: value.count)
        for shift in stride(from: 24, through: 0, by: -8) {
            bytes.append(UInt8(truncatingIfNeeded: length >> UInt32(shift)))
        }
        bytes.append(contentsOf: value)
    }
}

/// A 32-byte HMAC that proves knowledge of the formation key.
public struct MembershipProof: Sendable, CustomStringConvertible {
    /// The number of bytes in a proof.
    public static let byteCount = HMACSHA256.byteCount

    /// The 32 raw bytes.
    public let rawRepresentation: [UInt8]

    /// Creates a proof from 32 received bytes.
    /// - Throws: `IdentityError` with code `.invalidLength` for any other length.
    public init<Bytes: Collection<UInt8>>(rawRepresentation bytes: Bytes) throws(IdentityError) {
        rawRepresentation = try IdentityError.exactBytes(bytes, count: Self.byteCount, "a membership proof")
    }

    public var description: String { "MembershipProof(32 bytes)" }
}

extension FormationKey {
    private static let proofLabel = Array("peat-membership-proof-v1".utf8)

    // MARK: Challenge and response (wire-compatible with the original)

    /// Answers a peer's challenge: HMAC-SHA256(key, nonce ‖ formation ID), as the original does.
    public func response(to challenge: FormationChallenge) -> MembershipProof {
        try! MembershipProof(rawRepresentation: authenticate([challenge.nonce, Array(formationID.utf8)]))
    }

    /// Checks a peer's answer to a challenge this node sent, in constant time.
    /// - Throws: `IdentityError` with code `.invalidMembershipProof` when the answer is wrong.
    public func verifyResponse(_ response: MembershipProof, to challenge: FormationChallenge) throws(IdentityError) {
        guard constantTimeEqual(self.response(to: challenge).rawRepresentation, response.rawRepresentation) else {
            throw IdentityError(code: .invalidMembershipProof, message: "the peer's formation challenge response is wrong")
        }
    }

    // MARK: Session-bound proof

    /// Proves membership bound to one session: HMAC-SHA256(key, label ‖ role ‖ formation ID ‖ transcript).
    ///
    /// Because the transcript identifies the session (for example a TLS exporter value), a proof
    /// cannot be replayed on another connection; because the role is included, it cannot be
    /// reflected back to its sender.
    /// - Parameters:
    ///   - role: This node's side of the connection.
    ///   - transcript: The session values both sides agree on.
    public func membershipProof(for role: MembershipRole, transcript: MembershipTranscript) -> MembershipProof {
        var formation = MembershipTranscript()
        formation.append("formation-id", Array(formationID.utf8))
        let parts = [Self.proofLabel, [role.rawValue], formation.bytes, transcript.bytes]
        return try! MembershipProof(rawRepresentation: authenticate(parts))
    }

    /// Verifies a peer's session-bound proof, in constant time.
    /// - Parameters:
    ///   - proof: The proof the peer sent.
    ///   - role: The peer's side of the connection (the opposite of this node's).
    ///   - transcript: The session values, as this node computed them.
    /// - Throws: `IdentityError` with code `.invalidMembershipProof` when the proof is wrong.
    public func verifyMembershipProof(
        _ proof: MembershipProof,
        from role: MembershipRole,
        transcript: MembershipTranscript
    ) throws(IdentityError) {
        let expected = membershipProof(for: role, transcript: transcript)
        guard constantTimeEqual(expected.rawRepresentation, proof.rawRepresentation) else {
            throw IdentityError(
                code: .invalidMembershipProof,
                message: "the peer did not prove membership of formation \(formationID)")
        }
    }
}
