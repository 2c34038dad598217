import CSodium

/// libsodium must be initialised once before any other call; `sodium_init` is thread-safe and
/// idempotent, and a Swift global is initialised exactly once, on first use.
private let sodiumInitialisation: Int32 = sodium_init()

/// Makes sure libsodium is initialised. Every entry point that calls libsodium calls this first.
@inline(__always)
func ensureSodium() {
    // sodium_init returns 0 on success, 1 if already initialised, -1 if the library cannot work
    // at all (no entropy source): nothing in this module can be done safely then.
    precondition(sodiumInitialisation >= 0, "libsodium could not be initialised")
}

/// Fills a new array with `count` bytes from libsodium's CSPRNG.
func randomBytes(count: Int) -> [UInt8] {
    ensureSodium()
    var bytes = [UInt8](repeating: 0, count: count)
    bytes.withUnsafeMutableBytes { buffer in
        randombytes_buf(buffer.baseAddress!, buffer.count)
    }
    return bytes
}

/// Compares two byte strings in time that depends only on their length.
func constantTimeEqual(_ lhs: [UInt8], _ rhs: [UInt8]) -> Bool {
    ensureSodium()
    guard lhs.count == rhs.count else { return false }
    if lhs.isEmpty { return true }
    return lhs.withUnsafeBytes { l in
        rhs.withUnsafeBytes { r in
            sodium_memcmp(l.baseAddress!, r.baseAddress!, l.count) == 0
        }
    }
}

/// Calls `body` with the bytes of `bytes` in contiguous memory, copying only if needed.
func withContiguousBytes<Bytes: Collection<UInt8>, R>(
    _ bytes: Bytes,
    _ body: (UnsafeRawBufferPointer) throws -> R
) rethrows -> R {
    if let result = try bytes.withContiguousStorageIfAvailable({ try body(UnsafeRawBufferPointer($0)) }) {
        return result
    }
    var copy = Array(bytes)
    defer { zeroize(&copy) }
    return try copy.withUnsafeBytes(body)
}

/// Overwrites an array's bytes with zeros in a way the optimiser cannot remove.
func zeroize(_ bytes: inout [UInt8]) {
    ensureSodium()
    bytes.withUnsafeMutableBytes { buffer in
        if let base = buffer.baseAddress { sodium_memzero(base, buffer.count) }
    }
}

/// One readable byte that stands in for the base address of an empty buffer: libsodium takes
/// non-null pointers even for zero-length input.
nonisolated(unsafe) private let emptyInput: UnsafeMutablePointer<UInt8> = {
    let pointer = UnsafeMutablePointer<UInt8>.allocate(capacity: 1)
    pointer.initialize(to: 0)
    return pointer
}()

extension UnsafeRawBufferPointer {
    /// The bytes as a non-null pointer for libsodium (a stand-in when the buffer is empty).
    var sodiumPointer: UnsafePointer<UInt8> {
        guard let base = baseAddress, count > 0 else { return UnsafePointer(emptyInput) }
        return base.assumingMemoryBound(to: UInt8.self)
    }
}

extension UnsafeMutableRawBufferPointer {
    /// The bytes as a non-null pointer for libsodium (a stand-in when the buffer is empty).
    var sodiumPointer: UnsafeMutablePointer<UInt8> {
        guard let base = baseAddress, count > 0 else { return emptyInput }
        return base.assumingMemoryBound(to: UInt8.self)
    }
}
