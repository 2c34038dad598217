import CSodium

/// The formation's shared secret, as operators configure it (`PEAT_FORMATION_SECRET`).
///
/// The configured text is trimmed of surrounding white space and decoded as standard, padded
/// base64 (the strict RFC 4648 alphabet with canonical padding, exactly like the original's
/// `base64::STANDARD`). Fewer than `minimumByteCount` decoded bytes are refused: a short or empty
/// secret would give every device an identity anyone can compute.
///
/// The decoded bytes are zeroed on release and never shown; errors never quote the input.
public struct FormationSecret: Sendable, CustomStringConvertible {
    /// The fewest decoded bytes a formation secret may have.
    public static let minimumByteCount = 16

    /// The number of bytes `generate()` produces.
    public static let generatedByteCount = 32

    let bytes: SecretBytes

    /// Parses a configured secret: trims white space, decodes standard padded base64, checks length.
    /// - Parameter base64: The configured text.
    /// - Throws: `IdentityError` with code `.invalidBase64` or `.secretTooShort`; the message
    ///   describes the problem without quoting the input.
    public init(base64: String) throws(IdentityError) {
        let trimmed = Array(Self.trimmingWhitespace(base64).utf8)
        var decodedCount = 0
        var failed = false
        let decoded = SecretBytes(count: trimmed.count / 4 * 3) { out in
            ensureSodium()
            var length = 0
            let status = trimmed.withUnsafeBufferPointer { input in
                input.withMemoryRebound(to: CChar.self) { chars in
                    sodium_base642bin(
                        out.sodiumPointer, out.count,
                        chars.baseAddress, chars.count,
                        nil, &length, nil,
                        sodium_base64_VARIANT_ORIGINAL)
                }
            }
            failed = status != 0 || trimmed.count % 4 != 0
            decodedCount = length
        }
        guard !failed else {
            throw IdentityError(
                code: .invalidBase64,
                message: "the formation secret is not standard padded base64 (\(trimmed.count) characters after trimming)")
        }
        guard decodedCount >= Self.minimumByteCount else {
            throw IdentityError(
                code: .secretTooShort,
                message: "the formation secret decodes to \(decodedCount) bytes; at least \(Self.minimumByteCount) are required")
        }
        bytes = decoded.withUnsafeBytes { SecretBytes(copying: $0.prefix(decodedCount)) }
    }

    /// Wraps raw secret bytes (at least `minimumByteCount`).
    /// - Throws: `IdentityError` with code `.secretTooShort` for fewer bytes.
    public init<Bytes: Collection<UInt8>>(rawBytes: Bytes) throws(IdentityError) {
        guard rawBytes.count >= Self.minimumByteCount else {
            throw IdentityError(
                code: .secretTooShort,
                message: "a formation secret needs at least \(Self.minimumByteCount) bytes, got \(rawBytes.count)")
        }
        bytes = SecretBytes(copying: rawBytes)
    }

    /// Generates a new random 32-byte secret from libsodium's CSPRNG.
    public static func generate() -> FormationSecret {
        var raw = randomBytes(count: generatedByteCount)
        defer { zeroize(&raw) }
        return try! FormationSecret(rawBytes: raw)
    }

    /// The number of decoded secret bytes.
    public var byteCount: Int { bytes.count }

    /// The secret as standard padded base64, the form `PEAT_FORMATION_SECRET` takes.
    ///
    /// This is the secret itself: hand it to a secret store, never to a log.
    public func base64EncodedString() -> String {
        ensureSodium()
        let capacity = sodium_base64_encoded_len(bytes.count, sodium_base64_VARIANT_ORIGINAL)
        var text = [CChar](repeating: 0, count: capacity)
        bytes.withUnsafeBytes { raw in
            _ = sodium_bin2base64(
                &text, capacity, raw.sodiumPointer, raw.count,
                sodium_base64_VARIANT_ORIGINAL)
        }
        defer { text.withUnsafeMutableBytes { sodium_memzero($0.baseAddress!, $0.count) } }
        return String(decoding: text.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }

    /// Derives this formation's key pair for one device (`DeviceKeypair.fromSeed`).
    /// - Parameter context: The device's context (`HOSTNAME` or `PEAT_IDENTITY_CONTEXT`).
    public func deviceKeypair(context: String) -> DeviceKeypair {
        bytes.withUnsafeBytes { DeviceKeypair.fromSeed($0, context: context) }
    }

    /// Derives the formation key (`FormationKey`) for `formationID`.
    public func formationKey(formationID: String = FormationKey.defaultFormationID) -> FormationKey {
        bytes.withUnsafeBytes { FormationKey(formationID: formationID, secret: $0) }
    }

    public var description: String { "FormationSecret(\(bytes.count) bytes, redacted)" }

    /// Trims white space and newlines at both ends, as the original's `str::trim` does.
    private static func trimmingWhitespace(_ text: String) -> Substring {
        let isSpace: (Character) -> Bool = { $0.isWhitespace }
        guard let first = text.firstIndex(where: { !isSpace($0) }),
            let last = text.lastIndex(where: { !isSpace($0) })
        else { return "" }
        return text[first...last]
    }
}
