import PeatCRDT
import PeatFuzzCRDTSupport
import PeatFuzzSupport

/// `LZCompression.decompress(_:size:)` on hostile streams with a declared size under the change
/// batch decoder's expansion bound (it must throw or return exactly `size` bytes), and
/// `compress` → `decompress` on arbitrary bytes (it must give them back).
///
/// Input: a mode byte, two bytes of declared size (decompression), then the stream or the plain bytes.
enum LZCompressionTarget {
    /// `ChangeBatchDecoder.maximumExpansion`: the decoder never declares more than this times its input.
    static let maximumExpansion = 64

    static func run(_ bytes: [UInt8]) {
        var input = FuzzInput(bytes)
        if input.byte() & 1 == 0 {
            let declared = Int(input.byte()) << 8 | Int(input.byte())
            let stream = input.rest()
            let size = min(declared, stream.count * maximumExpansion)
            guard let out = try? LZCompression.decompress(stream[...], size: size) else { return }
            fuzzInvariant(out.count == size, "decompressed \(out.count) bytes, not the declared \(size)")
        } else {
            let plain = input.rest()
            let packed = LZCompression.compress(plain)
            let out = try? LZCompression.decompress(packed[...], size: plain.count)
            fuzzInvariant(out == plain, "compress then decompress changed \(plain.count) bytes")
        }
    }

    static func seeds() -> [(name: String, bytes: [UInt8])] {
        let texts: [(String, [UInt8])] = [
            ("long-save", SampleDocuments.long().save()),
            ("repeats", Array(repeating: 0xAB, count: 300)),
            ("sentence", Array("the quick brown fox jumps over the lazy dog; ".utf8) + Array("the quick brown fox jumps over the lazy dog".utf8)),
        ]
        var seeds: [(String, [UInt8])] = []
        for (name, plain) in texts {
            seeds.append(("roundtrip-\(name)", [1] + plain))
            let packed = LZCompression.compress(plain)
            seeds.append(("stream-\(name)", [0, UInt8(plain.count >> 8), UInt8(plain.count & 0xFF)] + packed))
        }
        seeds.append(("stream-bad-offset", [0, 0, 8, 0x04, 0xFF, 0xFF]))
        seeds.append(("stream-long-literal", [0, 0x01, 0x00, 0xF0, 0xFF, 0x01]))
        return seeds
    }
}

@_cdecl("LLVMFuzzerTestOneInput")
func fuzzOneInput(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    LZCompressionTarget.run(FuzzMain.bytes(data, size))
    return 0
}

FuzzMain.run(seeds: LZCompressionTarget.seeds)
