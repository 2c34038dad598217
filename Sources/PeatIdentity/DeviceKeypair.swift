import CSodium

/// An Ed25519 key pair that identifies one device; its public key is the device's identity.
///
/// The secret half lives in memory that is zeroed when the last copy of the key pair is released,
/// and it never appears in `description`, logs or errors.
public struct DeviceKeypair: Sendable, CustomStringConvertible {
    /// The number of bytes in a secret seed.
    public static let seedByteCount = 32

    /// libsodium's 64-byte secret key: the 32-byte seed followed by the public key.
    private let secretKey: SecretBytes

    /// The public half of the key pair.
    public let publicKey: DevicePublicKey

    /// Generates a new random key pair from libsodium's CSPRNG.
    public static func generate() -> DeviceKeypair {
        var seed = randomBytes(count: seedByteCount)
        defer { zeroize(&seed) }
        return seed.withUnsafeBytes { DeviceKeypair(seed: $0) }
    }

    /// Derives a key pair deterministically from a seed and a context string.
    ///
    /// HKDF-SHA256 with no salt, `seed` as input keying material and the UTF-8 bytes of `context`
    /// as info gives the 32-byte Ed25519 secret seed. The same seed and context always give the
    /// same key pair (and `DeviceID`) as the original Rust `DeviceKeypair::from_seed`; another
    /// context gives an unrelated key pair.
    /// - Parameters:
    ///   - seed: The shared secret bytes (in the node, the decoded `PEAT_FORMATION_SECRET`).
    ///   - context: A per-device string (in the node, `HOSTNAME` or `PEAT_IDENTITY_CONTEXT`).
    public static func fromSeed<Seed: Collection<UInt8>>(_ seed: Seed, context: String) -> DeviceKeypair {
        let derived = SecretBytes(count: seedByteCount) { out in
            withContiguousBytes(seed) { ikm in
                Array(context.utf8).withUnsafeBytes { info in
                    HKDFSHA256.derive(ikm: ikm, salt: UnsafeRawBufferPointer(start: nil, count: 0), info: info, into: out)
                }
            }
        }
        return derived.withUnsafeBytes { DeviceKeypair(seed: $0) }
    }

    /// Recreates a key pair from its 32-byte secret seed (`rawRepresentation`).
    /// - Throws: `IdentityError` with code `.invalidLength` for any other length.
    public init<Bytes: Collection<UInt8>>(rawRepresentation: Bytes) throws(IdentityError) {
        var seed = try IdentityError.exactBytes(rawRepresentation, count: Self.seedByteCount, "an Ed25519 secret seed")
        defer { zeroize(&seed) }
        self = seed.withUnsafeBytes { DeviceKeypair(seed: $0) }
    }

    private init(seed: UnsafeRawBufferPointer) {
        precondition(seed.count == Self.seedByteCount)
        var publicBytes = [UInt8](repeating: 0, count: DevicePublicKey.byteCount)
        secretKey = SecretBytes(count: Int(crypto_sign_SECRETKEYBYTES)) { secret in
            publicBytes.withUnsafeMutableBufferPointer { pk in
                // crypto_sign_seed_keypair cannot fail for a 32-byte seed.
                _ = crypto_sign_seed_keypair(
                    pk.baseAddress!,
                    secret.baseAddress!.assumingMemoryBound(to: UInt8.self),
                    seed.baseAddress!.assumingMemoryBound(to: UInt8.self))
            }
        }
        // The length is right by construction.
        publicKey = try! DevicePublicKey(rawRepresentation: publicBytes)
    }

    /// The 32-byte secret seed, for handing the key to another library (such as a TLS stack).
    ///
    /// This copy is ordinary memory the caller owns: keep it short-lived and never log it.
    public var rawRepresentation: [UInt8] {
        secretKey.withUnsafeBytes { Array($0.prefix(Self.seedByteCount)) }
    }

    /// The device ID derived from the public key.
    public var deviceID: DeviceID { publicKey.deviceID }

    /// Signs `message` with Ed25519 (deterministic, RFC 8032).
    public func sign<Message: Collection<UInt8>>(_ message: Message) -> DeviceSignature {
        var signature = [UInt8](repeating: 0, count: DeviceSignature.byteCount)
        withContiguousBytes(message) { messageBytes in
            secretKey.withUnsafeBytes { secret in
                signature.withUnsafeMutableBufferPointer { sig in
                    _ = crypto_sign_detached(
                        sig.baseAddress!, nil,
                        messageBytes.sodiumPointer,
                        UInt64(messageBytes.count),
                        secret.baseAddress!.assumingMemoryBound(to: UInt8.self))
                }
            }
        }
        return try! DeviceSignature(rawRepresentation: signature)
    }

    /// Verifies that `signature` is this key pair's signature of `message`.
    /// - Throws: `IdentityError` with code `.invalidSignature` when it is not.
    public func verify<Message: Collection<UInt8>>(_ signature: DeviceSignature, for message: Message) throws(IdentityError) {
        try publicKey.verify(signature, for: message)
    }

    public var description: String { "DeviceKeypair(device_id: \(deviceID), secret: redacted)" }
}
