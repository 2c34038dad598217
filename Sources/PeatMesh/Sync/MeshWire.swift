/// Little helpers for the mesh protocol's binary messages: unsigned LEB128 numbers, length-prefixed
/// byte strings and UTF-8 strings. Readers check every length against the bytes that remain.
struct WireWriter {
    private(set) var bytes: [UInt8] = []

    init(capacity: Int = 64) {
        bytes.reserveCapacity(capacity)
    }

    mutating func byte(_ value: UInt8) { bytes.append(value) }

    mutating func uleb(_ value: Int) { uleb(UInt64(value)) }

    mutating func uleb(_ value: UInt64) {
        var v = value
        repeat {
            var b = UInt8(v & 0x7F)
            v >>= 7
            if v != 0 { b |= 0x80 }
            bytes.append(b)
        } while v != 0
    }

    mutating func raw(_ data: some Collection<UInt8>) { bytes.append(contentsOf: data) }

    mutating func data(_ data: [UInt8]) {
        uleb(data.count)
        bytes.append(contentsOf: data)
    }

    mutating func string(_ text: String) {
        uleb(text.utf8.count)
        bytes.append(contentsOf: text.utf8)
    }
}

struct WireReader {
    private let bytes: [UInt8]
    private var offset = 0

    init(_ bytes: [UInt8]) {
        self.bytes = bytes
    }

    var isAtEnd: Bool { offset == bytes.count }
    var remaining: Int { bytes.count - offset }

    static func malformed(_ what: String) -> MeshError {
        MeshError(code: .protocolViolation, message: "malformed mesh message: \(what)")
    }

    mutating func byte() throws(MeshError) -> UInt8 {
        guard offset < bytes.count else { throw Self.malformed("truncated") }
        defer { offset += 1 }
        return bytes[offset]
    }

    mutating func uleb() throws(MeshError) -> UInt64 {
        var result: UInt64 = 0
        var shift: UInt64 = 0
        while true {
            let b = try byte()
            guard shift < 64, shift < 63 || b <= 1 else { throw Self.malformed("number too large") }
            result |= UInt64(b & 0x7F) << shift
            if b & 0x80 == 0 { return result }
            shift += 7
        }
    }

    /// A count of items that each take at least `minimumItemSize` bytes: never more than could fit.
    mutating func count(minimumItemSize: Int) throws(MeshError) -> Int {
        let n = try uleb()
        guard n <= UInt64(remaining / max(minimumItemSize, 1)) else { throw Self.malformed("count exceeds the message") }
        return Int(n)
    }

    mutating func raw(_ count: Int) throws(MeshError) -> [UInt8] {
        guard count >= 0, count <= remaining else { throw Self.malformed("truncated") }
        defer { offset += count }
        return Array(bytes[offset..<offset + count])
    }

    mutating func data() throws(MeshError) -> [UInt8] {
        let n = try uleb()
        guard n <= UInt64(remaining) else { throw Self.malformed("length exceeds the message") }
        return try raw(Int(n))
    }

    mutating func string(maximumLength: Int) throws(MeshError) -> String {
        let n = try uleb()
        guard n <= UInt64(min(maximumLength, remaining)) else { throw Self.malformed("string too long") }
        let raw = try raw(Int(n))
        guard let text = String(validating: raw, as: UTF8.self) else { throw Self.malformed("string is not UTF-8") }
        return text
    }
}
