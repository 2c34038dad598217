import CSodium

/// A fixed block of secret bytes that is zeroed when the last reference goes away.
///
/// The bytes live in memory this type owns, never in a copy-on-write array that could leave
/// stray copies behind. They can only be read through `withUnsafeBytes`, and `description`
/// never shows them.
final class SecretBytes: @unchecked Sendable, CustomStringConvertible {
    // @unchecked Sendable: the buffer is written only during `init` and zeroed in `deinit`,
    // when no other reference exists; in between it is read-only.
    private let buffer: UnsafeMutableRawBufferPointer

    /// Copies `bytes` into a new secret block.
    init<Bytes: Collection<UInt8>>(copying bytes: Bytes) {
        ensureSodium()
        buffer = .allocate(byteCount: bytes.count, alignment: 16)
        _ = buffer.initializeMemory(as: UInt8.self, from: bytes)
    }

    /// Creates a block of `count` bytes filled by `initializer`.
    init(count: Int, initializer: (UnsafeMutableRawBufferPointer) throws -> Void) rethrows {
        ensureSodium()
        buffer = .allocate(byteCount: count, alignment: 16)
        buffer.initializeMemory(as: UInt8.self, repeating: 0)
        do {
            try initializer(buffer)
        } catch {
            if let base = buffer.baseAddress { sodium_memzero(base, buffer.count) }
            buffer.deallocate()
            throw error
        }
    }

    deinit {
        if let base = buffer.baseAddress { sodium_memzero(base, buffer.count) }
        buffer.deallocate()
    }

    /// The number of secret bytes.
    var count: Int { buffer.count }

    /// Calls `body` with read access to the secret bytes; `body` must not let them escape.
    func withUnsafeBytes<R>(_ body: (UnsafeRawBufferPointer) throws -> R) rethrows -> R {
        try body(UnsafeRawBufferPointer(buffer))
    }

    var description: String { "SecretBytes(\(buffer.count) bytes, redacted)" }
}
