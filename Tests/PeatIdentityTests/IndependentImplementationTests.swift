import Crypto
import Foundation
import PeatIdentity
import PeatTestSupport
import PropertyBased
import Testing

/// Checks the libsodium-based identity against swift-crypto (BoringSSL), an independent
/// implementation of HKDF-SHA256, Ed25519 and SHA-256, on random seeds and contexts.
struct IndependentImplementationTests {
    /// swift-crypto's view of `DeviceKeypair.fromSeed`: HKDF (no salt) -> Ed25519 seed -> SHA-256 prefix.
    static func reference(seed: [UInt8], context: String) throws -> (publicKey: [UInt8], deviceID: String) {
        let derived = HKDF<Crypto.SHA256>.deriveKey(
            inputKeyMaterial: SymmetricKey(data: seed), info: Data(context.utf8), outputByteCount: 32)
        let privateKey = try derived.withUnsafeBytes { try Curve25519.Signing.PrivateKey(rawRepresentation: $0) }
        let publicKey = Array(privateKey.publicKey.rawRepresentation)
        let digest = Array(Crypto.SHA256.hash(data: publicKey))
        return (publicKey, hex(digest.prefix(16)))
    }

    static let contexts = Gen<Character>.character(in: " "..."\u{2FF}").string(of: 0...40)

    @Test func deviceIdentityAgreesForRandomSeedsAndContexts() async throws {
        await throwingPropertyCheck(count: 300, input: Gen<UInt8>.value().array(of: 0...96), Self.contexts) { seed, context in
            let keypair = DeviceKeypair.fromSeed(seed, context: context)
            let expected = try Self.reference(seed: seed, context: context)
            #expect(keypair.publicKey.rawRepresentation == expected.publicKey)
            #expect(keypair.deviceID.hex == expected.deviceID)
        }
    }

    @Test func signaturesVerifyAcrossImplementations() async throws {
        await throwingPropertyCheck(count: 100, input: Gen<UInt8>.value().array(of: 0...300)) { message in
            let keypair = DeviceKeypair.generate()
            let signature = keypair.sign(message)
            let theirKey = try Curve25519.Signing.PublicKey(rawRepresentation: keypair.publicKey.rawRepresentation)
            #expect(theirKey.isValidSignature(signature.rawRepresentation, for: message))

            let theirPrivate = try Curve25519.Signing.PrivateKey(rawRepresentation: keypair.rawRepresentation)
            let theirSignature = try DeviceSignature(rawRepresentation: theirPrivate.signature(for: message))
            #expect(keypair.publicKey.isValidSignature(theirSignature, for: message))
        }
    }

    @Test func hkdfAgreesForRandomInputs() async throws {
        let byteArrays = Gen<UInt8>.value().array(of: 0...80)
        await throwingPropertyCheck(count: 200, input: byteArrays, byteArrays, byteArrays, Gen.int(in: 1...200)) { ikm, salt, info, length in
            let ours = try HKDFSHA256.deriveKey(inputKeyMaterial: ikm, salt: salt, info: info, outputByteCount: length)
            let theirs = HKDF<Crypto.SHA256>.deriveKey(
                inputKeyMaterial: SymmetricKey(data: ikm), salt: salt, info: info, outputByteCount: length)
            #expect(ours == theirs.withUnsafeBytes { Array($0) })
        }
    }

    @Test func hmacAgreesForKeysOfAnyLength() async throws {
        await throwingPropertyCheck(count: 200, input: Gen<UInt8>.value().array(of: 0...200), Gen<UInt8>.value().array(of: 0...200)) { key, message in
            let ours = HMACSHA256.authenticationCode(for: message, key: key)
            let theirs = HMAC<Crypto.SHA256>.authenticationCode(for: message, using: SymmetricKey(data: key))
            #expect(ours == Array(theirs))
        }
    }

    @Test func formationKeyAgreesForRandomSecrets() async throws {
        await throwingPropertyCheck(count: 100, input: Gen<UInt8>.value().array(of: 16...64), Self.contexts) { secret, formationID in
            let shared = secret.count == 32 ? secret : Array(Crypto.SHA256.hash(data: secret))
            let hmacKey = HKDF<Crypto.SHA256>.deriveKey(
                inputKeyMaterial: SymmetricKey(data: shared), salt: Data(formationID.utf8),
                info: Data("peat-protocol-v1-formation".utf8), outputByteCount: 32)
            let challenge = FormationChallenge.random()
            let expected = HMAC<Crypto.SHA256>.authenticationCode(
                for: challenge.nonce + Array(formationID.utf8), using: hmacKey)
            let ours = FormationKey(formationID: formationID, secret: secret).response(to: challenge)
            #expect(ours.rawRepresentation == Array(expected))
        }
    }
}
