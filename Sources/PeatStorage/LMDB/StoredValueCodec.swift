import CSodium

/// The on-disk form of a document value (format 1), checksummed so corruption is reported, not decoded.
///
///     [0]      format (1)
///     [1]      flags: bit 0 = tombstone
///     [2..<10] version, UInt64 big-endian
///     [10..<18] checksum: SipHash-2-4(header ‖ payload) XOR SipHash-2-4(key), fixed keys
///     [18...]  payload
///
/// Mixing in the key means a value found under the wrong key is reported as corrupt too.
enum StoredValueCodec {
    static let format: UInt8 = 1
    static let headerSize = 18

    private static let valueHashKey = [UInt8](repeating: 0x50, count: Int(crypto_shorthash_KEYBYTES))
    private static let keyHashKey = [UInt8](repeating: 0x4b, count: Int(crypto_shorthash_KEYBYTES))

    static func encode(payload: [UInt8], version: UInt64, tombstone: Bool, key: [UInt8]) -> [UInt8] {
        var bytes = [UInt8](repeating: 0, count: headerSize)
        bytes.reserveCapacity(headerSize + payload.count)
        bytes[0] = format
        bytes[1] = tombstone ? 1 : 0
        for index in 0..<8 { bytes[2 + index] = UInt8(truncatingIfNeeded: version >> UInt64(56 - 8 * index)) }
        bytes.append(contentsOf: payload)
        let sum = checksum(bytes: bytes, key: key)
        for index in 0..<8 { bytes[10 + index] = UInt8(truncatingIfNeeded: sum >> UInt64(56 - 8 * index)) }
        return bytes
    }

    /// Decodes a stored value, verifying its checksum.
    static func decode(_ stored: UnsafeRawBufferPointer, key: [UInt8]) -> (payload: [UInt8], version: UInt64, tombstone: Bool)? {
        guard stored.count >= headerSize, stored[0] == format, stored[1] & ~1 == 0 else { return nil }
        let version = (2..<10).reduce(UInt64(0)) { $0 << 8 | UInt64(stored[$1]) }
        let recorded = (10..<18).reduce(UInt64(0)) { $0 << 8 | UInt64(stored[$1]) }
        guard checksum(raw: stored, key: key) == recorded else { return nil }
        return (Array(stored[headerSize...]), version, stored[1] & 1 == 1)
    }

    /// SipHash of the value with its checksum field read as zero, mixed with SipHash of the key.
    private static func checksum(raw: UnsafeRawBufferPointer, key: [UInt8]) -> UInt64 {
        var header = Array(raw[0..<10])
        header.append(contentsOf: repeatElement(0, count: 8))
        var state = hash(header, valueHashKey)
        let payload = UnsafeRawBufferPointer(rebasing: raw[headerSize...])
        state = state &* 0x9E37_79B9_7F4A_7C15 ^ hash(payload, valueHashKey)
        return state ^ hash(key, keyHashKey)
    }

    private static func checksum(bytes: [UInt8], key: [UInt8]) -> UInt64 {
        bytes.withUnsafeBytes { checksum(raw: $0, key: key) }
    }

    private static func hash(_ bytes: [UInt8], _ hashKey: [UInt8]) -> UInt64 {
        bytes.withUnsafeBytes { hash($0, hashKey) }
    }

    private static func hash(_ bytes: UnsafeRawBufferPointer, _ hashKey: [UInt8]) -> UInt64 {
        var out = [UInt8](repeating: 0, count: Int(crypto_shorthash_BYTES))
        let placeholder: UInt8 = 0
        withUnsafePointer(to: placeholder) { empty in
            let input = bytes.baseAddress?.assumingMemoryBound(to: UInt8.self) ?? empty
            _ = crypto_shorthash(&out, input, UInt64(bytes.count), hashKey)
        }
        return out.reduce(UInt64(0)) { $0 << 8 | UInt64($1) }
    }
}
