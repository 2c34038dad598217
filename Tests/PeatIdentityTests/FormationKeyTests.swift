import Testing

@testable import PeatIdentity

struct FormationKeyTests {
    @Test(arguments: IdentityVectors.shared.formation_keys)
    func derivesReferenceSharedSecretAndHMACKey(_ vector: IdentityVectors.FormationKeyVector) throws {
        let secret = try FormationSecret(base64: vector.secret_base64)
        let key = secret.formationKey(formationID: vector.formation_id)
        #expect(key.formationID == vector.formation_id)
        #expect(key.sharedSecret.withUnsafeBytes { hex($0) } == vector.shared_secret_hex)
        #expect(key.hmacKey.withUnsafeBytes { hex($0) } == vector.hmac_key_hex)
    }

    @Test(arguments: IdentityVectors.shared.formation_keys)
    func respondsToChallengesLikeTheOriginal(_ vector: IdentityVectors.FormationKeyVector) throws {
        let key = try FormationSecret(base64: vector.secret_base64).formationKey(formationID: vector.formation_id)
        let zeros = try FormationChallenge(nonce: [UInt8](repeating: 0, count: 32))
        let counting = try FormationChallenge(nonce: Array(0..<32))
        #expect(hex(key.response(to: zeros).rawRepresentation) == vector.hmac_sha256_nonce_zeros_then_id_hex)
        #expect(hex(key.response(to: counting).rawRepresentation) == vector.hmac_sha256_nonce_0_to_31_then_id_hex)
        try key.verifyResponse(key.response(to: counting), to: counting)
    }

    @Test func exactlyThirtyTwoByteSecretIsUsedAsIs() {
        let secret = [UInt8](repeating: 0x42, count: 32)
        let key = FormationKey(secret: secret)
        #expect(key.sharedSecret.withUnsafeBytes { Array($0) } == secret)
        #expect(key.formationID == "peat")
        let longer = FormationKey(secret: secret + [0x42])
        #expect(longer.sharedSecret.withUnsafeBytes { Array($0) } != secret)
    }

    @Test func wrongSecretFailsTheChallenge() throws {
        let verifier = FormationKey(secret: [UInt8](repeating: 0x42, count: 32))
        let impostor = FormationKey(secret: [UInt8](repeating: 0x43, count: 32))
        let challenge = FormationChallenge.random()
        #expect {
            try verifier.verifyResponse(impostor.response(to: challenge), to: challenge)
        } throws: { error in
            (error as? IdentityError)?.code == .invalidMembershipProof
        }
    }

    @Test func wrongFormationFailsTheChallenge() {
        let secret = [UInt8](repeating: 0x42, count: 32)
        let alpha = FormationKey(formationID: "alpha-company", secret: secret)
        let bravo = FormationKey(formationID: "bravo-company", secret: secret)
        let challenge = FormationChallenge.random()
        #expect(throws: IdentityError.self) {
            try alpha.verifyResponse(bravo.response(to: challenge), to: challenge)
        }
    }

    @Test func responseIsBoundToItsChallenge() {
        let key = FormationKey(secret: Array("a formation secret".utf8))
        let first = FormationChallenge.random()
        let second = FormationChallenge.random()
        #expect(first != second)
        #expect(throws: IdentityError.self) {
            try key.verifyResponse(key.response(to: first), to: second)
        }
    }

    @Test(arguments: [0, 31, 33])
    func rejectsChallengeOfWrongLength(_ length: Int) {
        #expect(throws: IdentityError.self) {
            try FormationChallenge(nonce: [UInt8](repeating: 0, count: length))
        }
    }

    @Test func descriptionNeverShowsKeyMaterial() throws {
        let vector = IdentityVectors.shared.formation_keys[0]
        let key = try FormationSecret(base64: vector.secret_base64).formationKey()
        for text in [key.description, String(reflecting: key)] {
            #expect(!text.contains(vector.hmac_key_hex.prefix(12)))
            #expect(!text.contains(vector.shared_secret_hex.prefix(12)))
        }
    }
}

struct MembershipProofTests {
    static let secret = Array("formation-shared-secret-from-k8s-secret".utf8)

    static func transcript(exporter: [UInt8] = Array(repeating: 7, count: 32)) -> MembershipTranscript {
        var transcript = MembershipTranscript()
        transcript.append("tls-exporter", exporter)
        transcript.append("initiator-key", [UInt8](repeating: 1, count: 32))
        transcript.append("responder-key", [UInt8](repeating: 2, count: 32))
        return transcript
    }

    @Test func membersVerifyEachOthersProofs() throws {
        let initiator = FormationKey(secret: Self.secret)
        let responder = FormationKey(secret: Self.secret)
        let transcript = Self.transcript()
        try responder.verifyMembershipProof(
            initiator.membershipProof(for: .initiator, transcript: transcript), from: .initiator, transcript: transcript)
        try initiator.verifyMembershipProof(
            responder.membershipProof(for: .responder, transcript: transcript), from: .responder, transcript: transcript)
    }

    @Test func proofWithAnotherSecretIsRejected() {
        let member = FormationKey(secret: Self.secret)
        let outsider = FormationKey(secret: Array("another-secret-entirely".utf8))
        let transcript = Self.transcript()
        #expect {
            try member.verifyMembershipProof(
                outsider.membershipProof(for: .initiator, transcript: transcript), from: .initiator, transcript: transcript)
        } throws: { error in
            (error as? IdentityError)?.code == .invalidMembershipProof
        }
    }

    @Test func proofFromAnotherSessionIsRejected() {
        let key = FormationKey(secret: Self.secret)
        let proof = key.membershipProof(for: .initiator, transcript: Self.transcript())
        let otherSession = Self.transcript(exporter: Array(repeating: 8, count: 32))
        #expect(throws: IdentityError.self) {
            try key.verifyMembershipProof(proof, from: .initiator, transcript: otherSession)
        }
    }

    @Test func reflectedProofIsRejected() {
        let key = FormationKey(secret: Self.secret)
        let transcript = Self.transcript()
        let mine = key.membershipProof(for: .initiator, transcript: transcript)
        // A peer without the secret echoes our own proof back as its answer.
        #expect(throws: IdentityError.self) {
            try key.verifyMembershipProof(mine, from: .responder, transcript: transcript)
        }
    }

    @Test func proofIsBoundToTheFormationID() {
        let alpha = FormationKey(formationID: "alpha", secret: Self.secret)
        let beta = FormationKey(formationID: "beta", secret: Self.secret)
        let transcript = Self.transcript()
        #expect(throws: IdentityError.self) {
            try alpha.verifyMembershipProof(
                beta.membershipProof(for: .initiator, transcript: transcript), from: .initiator, transcript: transcript)
        }
    }

    @Test func transcriptFieldBoundariesAreUnambiguous() {
        var split1 = MembershipTranscript()
        split1.append("a", [1, 2])
        split1.append("b", [3])
        var split2 = MembershipTranscript()
        split2.append("a", [1])
        split2.append("b", [2, 3])
        #expect(split1.bytes != split2.bytes)
        let key = FormationKey(secret: Self.secret)
        #expect(
            key.membershipProof(for: .initiator, transcript: split1).rawRepresentation
                != key.membershipProof(for: .initiator, transcript: split2).rawRepresentation)
    }

    @Test(arguments: [0, 31, 33])
    func rejectsProofOfWrongLength(_ length: Int) {
        #expect(throws: IdentityError.self) {
            try MembershipProof(rawRepresentation: [UInt8](repeating: 0, count: length))
        }
    }
}
