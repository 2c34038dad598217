import CSodium

/// SHA-256 on libsodium.
enum SHA256 {
    static let byteCount = 32

    static func hash<Bytes: Collection<UInt8>>(_ bytes: Bytes) -> [UInt8] {
        ensureSodium()
        var digest = [UInt8](repeating: 0, count: byteCount)
        withContiguousBytes(bytes) { input in
            digest.withUnsafeMutableBytes { out in
                _ = crypto_hash_sha256(
                    out.baseAddress!.assumingMemoryBound(to: UInt8.self),
                    input.sodiumPointer,
                    UInt64(input.count))
            }
        }
        return digest
    }
}
