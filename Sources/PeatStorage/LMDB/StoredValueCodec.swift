/// The on-disk form of a document value (format 1), checksummed so corruption is reported, not decoded.
///
///     [0..<8]   checksum: XXH64(bytes 8..., seed: XXH64(key)), big-endian
///     [8]       format (1)
///     [9]       flags: bit 0 = tombstone
///     [10..<18] version, UInt64 big-endian
///     [18...]   payload
///
/// Mixing in the key means a valid value found under the wrong key is reported as corrupt too.
enum StoredValueCodec {
    static let format: UInt8 = 1
    static let headerSize = 18

    static func encode(payload: [UInt8], version: UInt64, tombstone: Bool, key: [UInt8]) -> [UInt8] {
        var bytes = [UInt8](repeating: 0, count: headerSize)
        bytes.reserveCapacity(headerSize + payload.count)
        bytes[8] = format
        bytes[9] = tombstone ? 1 : 0
        store(version, into: &bytes, at: 10)
        bytes.append(contentsOf: payload)
        let sum = bytes.withUnsafeBytes { checksum(covered: UnsafeRawBufferPointer(rebasing: $0[8...]), key: key) }
        store(sum, into: &bytes, at: 0)
        return bytes
    }

    /// Decodes a stored value after verifying its checksum; nil if it is damaged in any way.
    static func decode(_ stored: UnsafeRawBufferPointer, key: [UInt8]) -> (payload: [UInt8], version: UInt64, tombstone: Bool)? {
        guard stored.count >= headerSize, stored[8] == format, stored[9] & ~1 == 0 else { return nil }
        guard load(stored, at: 0) == checksum(covered: UnsafeRawBufferPointer(rebasing: stored[8...]), key: key) else { return nil }
        return (Array(stored[headerSize...]), load(stored, at: 10), stored[9] & 1 == 1)
    }

    /// Whether a stored value is a tombstone, without verifying it (statistics only).
    static func isTombstone(_ stored: UnsafeRawBufferPointer) -> Bool {
        stored.count >= headerSize && stored[9] & 1 == 1
    }

    /// The checksum of the covered bytes, seeded with the key's hash so the key is bound in.
    static func checksum(covered: UnsafeRawBufferPointer, key: [UInt8]) -> UInt64 {
        let keyHash = key.withUnsafeBytes { XXHash64.hash($0) }
        return XXHash64.hash(covered, seed: keyHash)
    }

    private static func store(_ value: UInt64, into bytes: inout [UInt8], at offset: Int) {
        for index in 0..<8 { bytes[offset + index] = UInt8(truncatingIfNeeded: value >> UInt64(56 - 8 * index)) }
    }

    private static func load(_ bytes: UnsafeRawBufferPointer, at offset: Int) -> UInt64 {
        var value: UInt64 = 0
        for index in 0..<8 { value = value << 8 | UInt64(bytes[offset + index]) }
        return value
    }
}
