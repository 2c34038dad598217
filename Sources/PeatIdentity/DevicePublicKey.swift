import CSodium

/// An Ed25519 public key: what a peer presents and what its `DeviceID` is derived from.
public struct DevicePublicKey: Hashable, Sendable, CustomStringConvertible {
    /// The number of bytes in a public key.
    public static let byteCount = 32

    /// The 32 raw bytes.
    public let rawRepresentation: [UInt8]

    /// Creates a public key from its 32 raw bytes.
    /// - Throws: `IdentityError` with code `.invalidLength` for any other length.
    public init<Bytes: Collection<UInt8>>(rawRepresentation bytes: Bytes) throws(IdentityError) {
        rawRepresentation = try IdentityError.exactBytes(bytes, count: Self.byteCount, "an Ed25519 public key")
    }

    /// The device ID derived from this key.
    public var deviceID: DeviceID { DeviceID(publicKey: self) }

    /// The key as 64 lowercase hexadecimal characters.
    public var hex: String { Hex.encode(rawRepresentation) }

    public var description: String { "DevicePublicKey(\(hex))" }

    /// Tells whether `signature` is a valid Ed25519 signature of `message` by this key.
    ///
    /// libsodium's verification rejects non-canonical signatures and small-order keys.
    public func isValidSignature<Message: Collection<UInt8>>(_ signature: DeviceSignature, for message: Message) -> Bool {
        ensureSodium()
        return withContiguousBytes(message) { messageBytes in
            signature.rawRepresentation.withUnsafeBufferPointer { sig in
                rawRepresentation.withUnsafeBufferPointer { key in
                    crypto_sign_verify_detached(
                        sig.baseAddress!,
                        messageBytes.sodiumPointer,
                        UInt64(messageBytes.count),
                        key.baseAddress!) == 0
                }
            }
        }
    }

    /// Verifies that `signature` is a valid Ed25519 signature of `message` by this key.
    /// - Throws: `IdentityError` with code `.invalidSignature` when it is not.
    public func verify<Message: Collection<UInt8>>(_ signature: DeviceSignature, for message: Message) throws(IdentityError) {
        guard isValidSignature(signature, for: message) else {
            throw IdentityError(
                code: .invalidSignature,
                message: "the signature does not verify for device \(deviceID)")
        }
    }
}

/// An Ed25519 signature (64 bytes).
public struct DeviceSignature: Hashable, Sendable, CustomStringConvertible {
    /// The number of bytes in a signature.
    public static let byteCount = 64

    /// The 64 raw bytes.
    public let rawRepresentation: [UInt8]

    /// Creates a signature from its 64 raw bytes.
    /// - Throws: `IdentityError` with code `.invalidLength` for any other length.
    public init<Bytes: Collection<UInt8>>(rawRepresentation bytes: Bytes) throws(IdentityError) {
        rawRepresentation = try IdentityError.exactBytes(bytes, count: Self.byteCount, "an Ed25519 signature")
    }

    public var description: String { "DeviceSignature(\(Hex.encode(rawRepresentation)))" }
}
