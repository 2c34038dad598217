/// Reads PeatCRDT's binary primitives with bounds checks on every step.
///
/// Hostile input can only produce a `PeatCRDTError(.malformedEncoding)`: no read goes past the end,
/// integers longer than 10 bytes or overflowing 64 bits are refused, and every length is checked
/// against the bytes that remain before anything is allocated.
package struct ByteReader {
    private let bytes: [UInt8]
    package private(set) var offset: Int
    package let end: Int

    package init(_ bytes: [UInt8], from start: Int = 0) {
        self.bytes = bytes
        self.offset = start
        self.end = bytes.count
    }

    package var remaining: Int { end - offset }
    package var isAtEnd: Bool { offset >= end }

    package static func malformed(_ what: String) -> PeatCRDTError { PeatCRDTError(.malformedEncoding, what) }

    @inline(__always)
    package mutating func byte() throws(PeatCRDTError) -> UInt8 {
        guard offset < end else { throw Self.malformed("unexpected end of input") }
        defer { offset += 1 }
        return bytes[offset]
    }

    @inline(__always)
    package mutating func uleb() throws(PeatCRDTError) -> UInt64 {
        var result: UInt64 = 0
        var shift: UInt64 = 0
        while true {
            guard offset < end else { throw Self.malformed("truncated integer") }
            let b = bytes[offset]
            offset += 1
            if shift == 63 && b > 1 { throw Self.malformed("integer overflows 64 bits") }
            result |= UInt64(b & 0x7F) << shift
            if b & 0x80 == 0 { return result }
            shift += 7
            if shift > 63 { throw Self.malformed("integer longer than 10 bytes") }
        }
    }

    @inline(__always)
    package mutating func sleb() throws(PeatCRDTError) -> Int64 {
        var result: Int64 = 0
        var shift: Int64 = 0
        var b: UInt8
        repeat {
            guard offset < end else { throw Self.malformed("truncated integer") }
            b = bytes[offset]
            offset += 1
            if shift > 63 { throw Self.malformed("integer longer than 10 bytes") }
            result |= Int64(b & 0x7F) << shift
            shift += 7
        } while b & 0x80 != 0
        if shift < 64 && b & 0x40 != 0 { result |= -1 << shift }
        return result
    }

    /// An unsigned count that must fit in what is left (each counted item takes at least `minimumItemSize` bytes).
    package mutating func count(minimumItemSize: Int = 1) throws(PeatCRDTError) -> Int {
        let value = try uleb()
        guard value <= UInt64(remaining / max(minimumItemSize, 1)) else {
            throw Self.malformed("count \(value) exceeds the remaining input")
        }
        return Int(value)
    }

    /// A non-negative value that must fit in an `Int`.
    package mutating func int() throws(PeatCRDTError) -> Int {
        let value = try uleb()
        guard value <= UInt64(Int.max) else { throw Self.malformed("integer out of range") }
        return Int(value)
    }

    package mutating func raw(_ n: Int) throws(PeatCRDTError) -> ArraySlice<UInt8> {
        guard n >= 0, n <= remaining else { throw Self.malformed("unexpected end of input") }
        defer { offset += n }
        return bytes[offset..<offset + n]
    }

    package mutating func data() throws(PeatCRDTError) -> [UInt8] {
        let n = try count()
        return Array(try raw(n))
    }

    /// A length-prefixed UTF-8 string of at most `maximumLength` bytes.
    package mutating func string(maximumLength: Int = .max) throws(PeatCRDTError) -> String {
        let n = try count()
        guard n <= maximumLength else { throw Self.malformed("string longer than \(maximumLength) bytes") }
        let slice = try raw(n)
        guard let s = String(validating: slice, as: UTF8.self) else { throw Self.malformed("invalid UTF-8") }
        return s
    }

    package mutating func double() throws(PeatCRDTError) -> Double {
        let slice = try raw(8)
        var bits: UInt64 = 0
        for (i, b) in slice.enumerated() { bits |= UInt64(b) << UInt64(8 * i) }
        return Double(bitPattern: bits)
    }

    package mutating func uint64BigEndian() throws(PeatCRDTError) -> UInt64 {
        let slice = try raw(8)
        var v: UInt64 = 0
        for b in slice { v = v << 8 | UInt64(b) }
        return v
    }
}
