import CSodium

/// HKDF with SHA-256 (RFC 5869), built on libsodium's HMAC-SHA256.
///
/// Debian's libsodium 1.0.18 has no HKDF call. An absent salt means a salt of 32 zero bytes
/// (RFC 5869 §2.2), which is what the original `Hkdf::new(None, ikm)` does.
public enum HKDFSHA256 {
    /// The largest output HKDF-SHA256 can produce: 255 blocks of 32 bytes.
    public static let maximumOutputByteCount = 255 * HMACSHA256.byteCount

    /// Derives `outputByteCount` bytes of keying material (extract, then expand).
    /// - Parameters:
    ///   - inputKeyMaterial: The secret input (IKM).
    ///   - salt: The salt; `nil` or empty means 32 zero bytes.
    ///   - info: Context that binds the output to its purpose.
    ///   - outputByteCount: How many bytes to produce, at most `maximumOutputByteCount`.
    /// - Returns: The output keying material.
    /// - Throws: `IdentityError` with code `.invalidLength` when `outputByteCount` is out of range.
    public static func deriveKey<IKM: Collection<UInt8>, Info: Collection<UInt8>>(
        inputKeyMaterial: IKM,
        salt: [UInt8]? = nil,
        info: Info,
        outputByteCount: Int
    ) throws(IdentityError) -> [UInt8] {
        guard (0...maximumOutputByteCount).contains(outputByteCount) else {
            throw IdentityError(
                code: .invalidLength,
                message: "HKDF-SHA256 output length must be 0...\(maximumOutputByteCount), got \(outputByteCount)")
        }
        var output = [UInt8](repeating: 0, count: outputByteCount)
        withContiguousBytes(inputKeyMaterial) { ikm in
            (salt ?? []).withUnsafeBytes { saltBytes in
                withContiguousBytes(info) { infoBytes in
                    output.withUnsafeMutableBytes { out in
                        derive(ikm: ikm, salt: saltBytes, info: infoBytes, into: out)
                    }
                }
            }
        }
        return output
    }

    /// The extract step: PRK = HMAC-SHA256(salt, IKM).
    static func extract(ikm: UnsafeRawBufferPointer, salt: UnsafeRawBufferPointer, into prk: UnsafeMutableRawBufferPointer) {
        let zeroSalt = [UInt8](repeating: 0, count: HMACSHA256.byteCount)
        zeroSalt.withUnsafeBytes { zeros in
            let state = HMACSHA256.State(key: salt.count == 0 ? zeros : salt)
            state.update(ikm)
            state.finalize(into: prk)
        }
    }

    /// Extract and expand into `out` (at most 255 × 32 bytes) with intermediate values zeroed.
    static func derive(
        ikm: UnsafeRawBufferPointer,
        salt: UnsafeRawBufferPointer,
        info: UnsafeRawBufferPointer,
        into out: UnsafeMutableRawBufferPointer
    ) {
        precondition(out.count <= maximumOutputByteCount)
        let prk = SecretBytes(count: HMACSHA256.byteCount) { extract(ikm: ikm, salt: salt, into: $0) }
        // T(0) is empty; T(i) = HMAC(PRK, T(i-1) || info || i).
        var block = [UInt8](repeating: 0, count: HMACSHA256.byteCount)
        defer { zeroize(&block) }
        var written = 0
        var counter: UInt8 = 1
        while written < out.count {
            prk.withUnsafeBytes { key in
                let state = HMACSHA256.State(key: key)
                if counter > 1 { block.withUnsafeBytes { state.update($0) } }
                state.update(info)
                withUnsafeBytes(of: counter) { state.update($0) }
                block.withUnsafeMutableBytes { state.finalize(into: $0) }
            }
            let take = min(HMACSHA256.byteCount, out.count - written)
            block.withUnsafeBytes { out.baseAddress!.advanced(by: written).copyMemory(from: $0.baseAddress!, byteCount: take) }
            written += take
            counter &+= 1
        }
    }
}
