/// Splits one fuzz input into the choices and messages a harness needs, never failing: a read past
/// the end yields zeros or nothing, so every input is a valid (possibly short) script.
public struct FuzzInput {
    private let bytes: [UInt8]
    private var offset = 0

    public init(_ bytes: [UInt8]) {
        self.bytes = bytes
    }

    public var isAtEnd: Bool { offset >= bytes.count }

    /// The next byte, 0 past the end.
    public mutating func byte() -> UInt8 {
        guard offset < bytes.count else { return 0 }
        defer { offset += 1 }
        return bytes[offset]
    }

    /// A choice among `count` options (`count` > 0).
    public mutating func choice(_ count: Int) -> Int { Int(byte()) % count }

    /// The next `n` bytes (fewer at the end).
    public mutating func bytes(_ n: Int) -> [UInt8] {
        let end = min(bytes.count, offset + max(n, 0))
        defer { offset = end }
        return Array(bytes[offset..<end])
    }

    /// A message framed as a 2-byte big-endian length and that many bytes (fewer at the end).
    public mutating func message() -> [UInt8] {
        let length = Int(byte()) << 8 | Int(byte())
        return bytes(length)
    }

    /// Everything not read yet.
    public mutating func rest() -> [UInt8] { bytes(bytes.count - offset) }

    /// Frames `messages` the way `message()` reads them (for seeds).
    public static func framed(_ messages: [[UInt8]]) -> [UInt8] {
        var out: [UInt8] = []
        for message in messages {
            out += [UInt8(message.count >> 8 & 0xFF), UInt8(message.count & 0xFF)]
            out += message
        }
        return out
    }
}
