import PeatIdentity
import Testing

struct DeviceKeypairTests {
    @Test(arguments: IdentityVectors.shared.device_keys)
    func fromSeedMatchesReferenceVector(_ vector: IdentityVectors.DeviceKey) {
        let keypair = DeviceKeypair.fromSeed(Array(vector.seed_utf8.utf8), context: vector.context)
        #expect(hex(keypair.rawRepresentation) == vector.secret_key_hex)
        #expect(keypair.publicKey.hex == vector.public_key_hex)
        #expect(keypair.deviceID.hex == vector.device_id)
    }

    @Test(arguments: IdentityVectors.shared.node_identities)
    func nodeIdentityMatchesReferenceVector(_ vector: IdentityVectors.NodeIdentity) throws {
        let secret = try FormationSecret(base64: vector.PEAT_FORMATION_SECRET)
        let keypair = secret.deviceKeypair(context: vector.HOSTNAME)
        #expect(keypair.publicKey.hex == vector.public_key_hex)
        #expect(keypair.deviceID.hex == vector.device_id)
    }

    struct RFC8032Case: Sendable, CustomTestStringConvertible {
        let name: String
        let secret: String
        let publicKey: String
        let message: String
        let signature: String
        var testDescription: String { name }
    }

    /// RFC 8032 §7.1 tests 1-3.
    static let rfc8032: [RFC8032Case] = [
        RFC8032Case(
            name: "TEST 1 (empty message)",
            secret: "9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60",
            publicKey: "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a",
            message: "",
            signature: "e5564300c360ac729086e2cc806e828a84877f1eb8e5d974d873e06522490155"
                + "5fb8821590a33bacc61e39701cf9b46bd25bf5f0595bbe24655141438e7a100b"),
        RFC8032Case(
            name: "TEST 2 (one byte)",
            secret: "4ccd089b28ff96da9db6c346ec114e0f5b8a319f35aba624da8cf6ed4fb8a6fb",
            publicKey: "3d4017c3e843895a92b70aa74d1b7ebc9c982ccf2ec4968cc0cd55f12af4660c",
            message: "72",
            signature: "92a009a9f0d4cab8720e820b5f642540a2b27b5416503f8fb3762223ebdb69da"
                + "085ac1e43e15996e458f3613d0f11d8c387b2eaeb4302aeeb00d291612bb0c00"),
        RFC8032Case(
            name: "TEST 3 (two bytes)",
            secret: "c5aa8df43f9f837bedb7442f31dcb7b166d38535076f094b85ce3a2e0b4458f7",
            publicKey: "fc51cd8e6218a1a38da47ed00230f0580816ed13ba3303ac5deb911548908025",
            message: "af82",
            signature: "6291d657deec24024827e69c3abe01a30ce548a284743a445e3680d7db5ac3ac"
                + "18ff9b538d16f290ae67f760984dc6594a7c15e9716ed28dc027beceea1ec40a"),
    ]

    @Test(arguments: rfc8032)
    func signsAndVerifiesRFC8032Vector(_ vector: RFC8032Case) throws {
        let keypair = try DeviceKeypair(rawRepresentation: bytes(hex: vector.secret))
        let message = bytes(hex: vector.message)
        #expect(keypair.publicKey.hex == vector.publicKey)
        let signature = keypair.sign(message)
        #expect(hex(signature.rawRepresentation) == vector.signature)

        let publicKey = try DevicePublicKey(rawRepresentation: bytes(hex: vector.publicKey))
        let published = try DeviceSignature(rawRepresentation: bytes(hex: vector.signature))
        #expect(publicKey.isValidSignature(published, for: message))
        try publicKey.verify(published, for: message)
    }

    @Test func verificationFailsForAlteredMessage() {
        let keypair = DeviceKeypair.generate()
        let signature = keypair.sign(Array("original message".utf8))
        #expect(throws: IdentityError.self) {
            try keypair.verify(signature, for: Array("original messagf".utf8))
        }
        #expect(!keypair.publicKey.isValidSignature(signature, for: Array("".utf8)))
    }

    @Test func verificationFailsForWrongKey() throws {
        let signer = DeviceKeypair.generate()
        let other = DeviceKeypair.generate()
        let message = Array("test message".utf8)
        let signature = signer.sign(message)
        try signer.verify(signature, for: message)
        #expect {
            try other.verify(signature, for: message)
        } throws: { error in
            (error as? IdentityError)?.code == .invalidSignature
        }
    }

    @Test func verificationFailsForAlteredSignature() throws {
        let keypair = DeviceKeypair.generate()
        let message = Array("payload".utf8)
        let signature = keypair.sign(message).rawRepresentation
        for index in [0, 31, 32, 63] {
            var tampered = signature
            tampered[index] ^= 0x01
            #expect(!keypair.publicKey.isValidSignature(try DeviceSignature(rawRepresentation: tampered), for: message))
        }
    }

    @Test(arguments: [0, 16, 31, 33, 64])
    func rejectsSecretSeedOfWrongLength(_ length: Int) {
        #expect {
            try DeviceKeypair(rawRepresentation: [UInt8](repeating: 7, count: length))
        } throws: { error in
            (error as? IdentityError)?.code == .invalidLength
        }
    }

    @Test(arguments: [0, 31, 33, 64])
    func rejectsPublicKeyOfWrongLength(_ length: Int) {
        #expect(throws: IdentityError.self) {
            try DevicePublicKey(rawRepresentation: [UInt8](repeating: 7, count: length))
        }
    }

    @Test(arguments: [0, 32, 63, 65])
    func rejectsSignatureOfWrongLength(_ length: Int) {
        #expect(throws: IdentityError.self) {
            try DeviceSignature(rawRepresentation: [UInt8](repeating: 7, count: length))
        }
    }

    @Test func rawRepresentationRoundTrips() throws {
        let original = DeviceKeypair.generate()
        let restored = try DeviceKeypair(rawRepresentation: original.rawRepresentation)
        #expect(restored.publicKey == original.publicKey)
        #expect(restored.deviceID == original.deviceID)
        let message = Array("round trip".utf8)
        try original.verify(restored.sign(message), for: message)
    }

    @Test func generatedKeypairsDiffer() {
        #expect(DeviceKeypair.generate().deviceID != DeviceKeypair.generate().deviceID)
    }

    @Test func contextAndSeedBothChangeTheKey() {
        let seed = Array("shared-seed".utf8)
        let a = DeviceKeypair.fromSeed(seed, context: "context-a")
        #expect(a.deviceID == DeviceKeypair.fromSeed(seed, context: "context-a").deviceID)
        #expect(a.deviceID != DeviceKeypair.fromSeed(seed, context: "context-b").deviceID)
        #expect(a.deviceID != DeviceKeypair.fromSeed(Array("shared-seee".utf8), context: "context-a").deviceID)
    }

    @Test func emptySeedStillGivesAWorkingKey() throws {
        let keypair = DeviceKeypair.fromSeed([UInt8](), context: "some-context")
        let message = Array("msg".utf8)
        try keypair.verify(keypair.sign(message), for: message)
    }

    @Test func descriptionNeverShowsTheSecret() {
        let keypair = DeviceKeypair.fromSeed(Array("my-kubernetes-secret".utf8), context: "pod-alpha")
        let secretHex = hex(keypair.rawRepresentation)
        for text in [keypair.description, String(describing: keypair), String(reflecting: keypair)] {
            #expect(!text.contains(secretHex))
            #expect(!text.contains(String(secretHex.prefix(16))))
        }
        #expect(keypair.description.contains(keypair.deviceID.hex))
    }
}
