/// A small LZ77 compressor (LZ4-style sequences) for large change batches.
///
/// Each sequence is a token (high nibble: literal count, low nibble: match length - 4; 15 means
/// "more in a LEB128 that follows"), the literals, then a 2-byte little-endian back offset. The stream
/// ends after the literals of the last sequence, once the declared size is reached. Decompression
/// checks every length and offset, so hostile input fails with `.malformedEncoding`.
package enum LZCompression {
    static let minimumMatch = 4
    static let hashBits = 16
    static let maximumOffset = 65_535

    package static func compress(_ input: [UInt8]) -> [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity(input.count / 2 + 16)
        let n = input.count
        input.withUnsafeBufferPointer { src in
            var table = [Int32](repeating: -1, count: 1 << hashBits)
            var anchor = 0
            var i = 0
            @inline(__always) func read32(_ p: Int) -> UInt32 {
                UInt32(src[p]) | UInt32(src[p + 1]) << 8 | UInt32(src[p + 2]) << 16 | UInt32(src[p + 3]) << 24
            }
            @inline(__always) func hash(_ v: UInt32) -> Int { Int((v &* 2_654_435_761) >> UInt32(32 - hashBits)) }
            while i + minimumMatch <= n {
                let v = read32(i)
                let h = hash(v)
                let candidate = Int(table[h])
                table[h] = Int32(i)
                if candidate >= 0, i - candidate <= maximumOffset, read32(candidate) == v {
                    var length = minimumMatch
                    while i + length < n, src[candidate + length] == src[i + length] { length += 1 }
                    emit(literals: src[anchor..<i], match: length, offset: i - candidate, into: &out)
                    // Index a few positions inside the match so the next repeats are found.
                    let end = i + length
                    var j = i + 1
                    while j + minimumMatch <= n, j < end {
                        table[hash(read32(j))] = Int32(j)
                        j += 2
                    }
                    i = end
                    anchor = i
                } else {
                    i += 1
                }
            }
            if anchor < n { emit(literals: src[anchor..<n], match: 0, offset: 0, into: &out) }
        }
        return out
    }

    private static func emit(literals: Slice<UnsafeBufferPointer<UInt8>>, match: Int, offset: Int, into out: inout [UInt8]) {
        let lit = literals.count
        let m = match == 0 ? 0 : match - minimumMatch
        out.append(UInt8(min(lit, 15)) << 4 | UInt8(min(m, 15)))
        var w = ByteWriter(capacity: 8)
        if lit >= 15 { w.uleb(lit - 15) }
        out += w.bytes
        out.append(contentsOf: literals)
        if match > 0 {
            var w2 = ByteWriter(capacity: 8)
            if m >= 15 { w2.uleb(m - 15) }
            out.append(UInt8(offset & 0xFF))
            out.append(UInt8(offset >> 8))
            out += w2.bytes
        }
    }

    package static func decompress(_ input: ArraySlice<UInt8>, size: Int) throws(PeatCRDTError) -> [UInt8] {
        var out = [UInt8](repeating: 0, count: size)
        var n = 0
        var r = ByteReader(Array(input))
        while n < size {
            let token = try r.byte()
            var lit = Int(token >> 4)
            if lit == 15 {
                let extra = try r.int()
                guard extra <= size else { throw ByteReader.malformed("compressed length out of range") }
                lit += extra
            }
            guard lit <= size - n else { throw ByteReader.malformed("compressed literals overrun") }
            let literals = try r.raw(lit)
            out.withUnsafeMutableBufferPointer { dst in
                var k = n
                for b in literals {
                    dst[k] = b
                    k += 1
                }
            }
            n += lit
            if n == size { break }
            let lo = Int(try r.byte())
            let hi = Int(try r.byte())
            let offset = lo | hi << 8
            var length = Int(token & 0x0F)
            if length == 15 {
                let extra = try r.int()
                guard extra <= size else { throw ByteReader.malformed("compressed length out of range") }
                length += extra
            }
            length += minimumMatch
            guard offset > 0, offset <= n else { throw ByteReader.malformed("compressed offset out of range") }
            guard length <= size - n else { throw ByteReader.malformed("compressed match overrun") }
            // Byte by byte: a match may overlap the bytes it produces (offset < length).
            out.withUnsafeMutableBufferPointer { dst in
                let start = n - offset
                for k in 0..<length { dst[n + k] = dst[start + k] }
            }
            n += length
        }
        guard r.isAtEnd else { throw ByteReader.malformed("trailing compressed bytes") }
        return out
    }
}
