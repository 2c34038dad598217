/// Appends the primitives of PeatCRDT's binary formats: LEB128 integers, raw bytes, length-prefixed strings.
package struct ByteWriter {
    package var bytes: [UInt8]

    package init(capacity: Int = 64) {
        bytes = []
        bytes.reserveCapacity(capacity)
    }

    @inline(__always)
    package mutating func byte(_ value: UInt8) { bytes.append(value) }

    @inline(__always)
    package mutating func uleb(_ value: UInt64) {
        var v = value
        while v >= 0x80 {
            bytes.append(UInt8(truncatingIfNeeded: v) | 0x80)
            v >>= 7
        }
        bytes.append(UInt8(v))
    }

    @inline(__always)
    package mutating func uleb(_ value: Int) { uleb(UInt64(value)) }

    /// Signed LEB128 (two's complement, sign-extended), as in DWARF/WebAssembly.
    @inline(__always)
    package mutating func sleb(_ value: Int64) {
        var v = value
        while true {
            let b = UInt8(truncatingIfNeeded: v) & 0x7F
            v >>= 7
            if (v == 0 && b & 0x40 == 0) || (v == -1 && b & 0x40 != 0) {
                bytes.append(b)
                return
            }
            bytes.append(b | 0x80)
        }
    }

    package mutating func raw<C: Collection>(_ data: C) where C.Element == UInt8 { bytes.append(contentsOf: data) }

    package mutating func string(_ s: String) {
        var s = s
        s.withUTF8 { utf8 in
            uleb(utf8.count)
            bytes.append(contentsOf: utf8)
        }
    }

    package mutating func data(_ d: [UInt8]) {
        uleb(d.count)
        bytes.append(contentsOf: d)
    }

    package mutating func double(_ d: Double) {
        let bits = d.bitPattern
        for shift in stride(from: 0, to: 64, by: 8) { bytes.append(UInt8(truncatingIfNeeded: bits >> UInt64(shift))) }
    }

    package mutating func uint64BigEndian(_ v: UInt64) {
        for shift in stride(from: 56, through: 0, by: -8) { bytes.append(UInt8(truncatingIfNeeded: v >> UInt64(shift))) }
    }
}
