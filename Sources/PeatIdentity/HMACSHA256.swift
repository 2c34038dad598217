import CSodium

/// HMAC-SHA256 (RFC 2104) on libsodium, for keys of any length.
///
/// libsodium's one-shot `crypto_auth_hmacsha256` takes only 32-byte keys, so this uses its
/// streaming init/update/final calls, which follow RFC 2104 for any key length.
public enum HMACSHA256 {
    /// The length of an authentication code in bytes.
    public static let byteCount = 32

    /// Computes HMAC-SHA256 over the concatenation of `messages`.
    /// - Parameters:
    ///   - messages: The message parts, authenticated as if concatenated.
    ///   - key: The key, of any length.
    /// - Returns: The 32-byte authentication code.
    public static func authenticationCode<Key: Collection<UInt8>>(
        for messages: [[UInt8]],
        key: Key
    ) -> [UInt8] {
        var code = [UInt8](repeating: 0, count: byteCount)
        withContiguousBytes(key) { keyBytes in
            let state = State(key: keyBytes)
            for message in messages {
                message.withUnsafeBytes { state.update($0) }
            }
            code.withUnsafeMutableBytes { state.finalize(into: $0) }
        }
        return code
    }

    /// Computes HMAC-SHA256 of `message`.
    /// - Parameters:
    ///   - message: The message.
    ///   - key: The key, of any length.
    /// - Returns: The 32-byte authentication code.
    public static func authenticationCode<Message: Collection<UInt8>, Key: Collection<UInt8>>(
        for message: Message,
        key: Key
    ) -> [UInt8] {
        authenticationCode(for: [Array(message)], key: key)
    }

    /// A streaming HMAC computation whose key-dependent state is zeroed when it ends.
    struct State: ~Copyable {
        // Heap-allocated so `deinit` can zero it: a noncopyable struct's deinit cannot mutate self.
        private let state: UnsafeMutablePointer<crypto_auth_hmacsha256_state>

        init(key: UnsafeRawBufferPointer) {
            ensureSodium()
            state = .allocate(capacity: 1)
            state.initialize(to: crypto_auth_hmacsha256_state())
            _ = crypto_auth_hmacsha256_init(state, key.sodiumPointer, key.count)
        }

        func update(_ bytes: UnsafeRawBufferPointer) {
            guard bytes.count > 0 else { return }
            _ = crypto_auth_hmacsha256_update(state, bytes.sodiumPointer, UInt64(bytes.count))
        }

        /// Writes the 32-byte code into `out`.
        func finalize(into out: UnsafeMutableRawBufferPointer) {
            precondition(out.count == HMACSHA256.byteCount)
            _ = crypto_auth_hmacsha256_final(state, out.sodiumPointer)
        }

        deinit {
            sodium_memzero(state, MemoryLayout<crypto_auth_hmacsha256_state>.size)
            state.deallocate()
        }
    }
}
