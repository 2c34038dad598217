import Testing

@testable import PeatIdentity

struct FormationSecretTests {
    @Test func decodesStandardBase64() throws {
        let secret = try FormationSecret(base64: "dGVzdC1mb3JtYXRpb24tc2VjcmV0LTEyMzQ1Njc4")
        #expect(secret.byteCount == 30)
        #expect(secret.bytes.withUnsafeBytes { String(decoding: $0, as: UTF8.self) } == "test-formation-secret-12345678")
    }

    @Test(arguments: [
        " dGVzdC1mb3JtYXRpb24tc2VjcmV0LTEyMzQ1Njc4",
        "dGVzdC1mb3JtYXRpb24tc2VjcmV0LTEyMzQ1Njc4\n",
        "\t dGVzdC1mb3JtYXRpb24tc2VjcmV0LTEyMzQ1Njc4 \r\n",
    ])
    func trimsSurroundingWhitespace(_ text: String) throws {
        let trimmed = try FormationSecret(base64: "dGVzdC1mb3JtYXRpb24tc2VjcmV0LTEyMzQ1Njc4")
        let secret = try FormationSecret(base64: text)
        #expect(secret.deviceKeypair(context: "peat-mesh-0").deviceID == trimmed.deviceKeypair(context: "peat-mesh-0").deviceID)
    }

    @Test(arguments: [
        "not-valid-base64!!!",
        "dGVzdC1mb3JtYXRpb24tc2VjcmV0LTEyMzQ1Njc",  // missing padding
        "dGVzdC1mb3JtYXRpb24tc2VjcmV0LTEyMzQ1Njc4=",  // extra padding
        "dGVzdC1mb3JtYXRpb24t c2VjcmV0LTEyMzQ1Njc4",  // inner space
        "dGVzdC1mb3JtYXRpb24t\nc2VjcmV0LTEyMzQ1Njc4",  // inner newline
        "dGVzdC1mb3JtYXRpb24tc2VjcmV0LTEyMzQ1Njc4====",
        "QkJCQkJCQkJCQkJCQkJCQkJCQkJCQkJCQkJCQkJCQkJ=",  // non-canonical trailing bits
        "QkJCQkJCQkJCQkJCQkJCQkJCQkJCQkJCQkJCQkJCQkI",  // unpadded
        "QkJCQkJCQkJCQkJCQkJC_kJCQkJCQkJCQkJCQkJCQkI=",  // URL-safe alphabet
        "QkJCQkJCQkJCQkJCQkJC-kJCQkJCQkJCQkJCQkJCQkI=",
        "QkJCQkJCQkJCQkJCQkJCQkJCQkJCQkJCQkJCQkJCQkI=QkI=",
        "ＱkJCQkJCQkJCQkJCQkJCQkJCQkJCQkJCQkJCQkJCQkI=",
    ])
    func rejectsMalformedBase64WithoutQuotingIt(_ text: String) {
        #expect {
            try FormationSecret(base64: text)
        } throws: { error in
            guard let error = error as? IdentityError else { return false }
            return error.code == .invalidBase64 && !error.message.contains(text) && !error.description.contains(text)
        }
    }

    @Test(arguments: ["", "   ", "\n", "AA==", "AAAAAAAAAAAAAAAAAAAA", "YWJjZGVmZ2hpamtsbW5v"])
    func rejectsSecretsShorterThanSixteenBytes(_ text: String) {
        #expect {
            try FormationSecret(base64: text)
        } throws: { error in
            (error as? IdentityError)?.code == .secretTooShort
        }
    }

    @Test func acceptsExactlySixteenBytes() throws {
        // "YWJjZGVmZ2hpamtsbW5vcA==" is "abcdefghijklmnop".
        #expect(try FormationSecret(base64: "YWJjZGVmZ2hpamtsbW5vcA==").byteCount == 16)
    }

    @Test func generatedSecretRoundTripsThroughBase64() throws {
        let generated = FormationSecret.generate()
        #expect(generated.byteCount == 32)
        let text = generated.base64EncodedString()
        #expect(text.count == 44 && text.hasSuffix("="))
        let parsed = try FormationSecret(base64: text)
        #expect(parsed.deviceKeypair(context: "x").deviceID == generated.deviceKeypair(context: "x").deviceID)
        #expect(FormationSecret.generate().base64EncodedString() != text)
    }

    @Test func rawBytesBelowMinimumAreRejected() {
        #expect(throws: IdentityError.self) { try FormationSecret(rawBytes: [UInt8](repeating: 1, count: 15)) }
    }

    @Test func descriptionNeverShowsTheSecret() throws {
        let text = "dGVzdC1mb3JtYXRpb24tc2VjcmV0LTEyMzQ1Njc4"
        let secret = try FormationSecret(base64: text)
        for rendering in [secret.description, String(reflecting: secret), "\(secret)"] {
            #expect(!rendering.contains(text))
            #expect(!rendering.contains("test-formation"))
        }
    }
}
