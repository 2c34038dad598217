import Testing

@testable import PeatStorage

struct XXHash64Tests {
    /// Reference values from the xxhash C library (python-xxhash), seed 0 unless given.
    static let bytes0to255FiveTimes: [UInt8] = (0..<5).reduce(into: []) { bytes, _ in bytes += (0...255).map { UInt8($0) } }

    @Test(
        arguments: [
            ([UInt8](), UInt64(0), UInt64(0xEF46_DB37_51D8_E999)),
            (Array("a".utf8), UInt64(0), UInt64(0xD24E_C4F1_A98C_6E5B)),
            (Array("abc".utf8), UInt64(0), UInt64(0x44BC_2CF5_AD77_0999)),
            (bytes0to255FiveTimes, UInt64(0), UInt64(0xAFC1_84AD_7938_A354)),
            (Array("peat".utf8), UInt64(0x5045_4154_5354_4F52), UInt64(0xB68F_36B8_76D2_669A)),
        ] as [([UInt8], UInt64, UInt64)])
    func matchesReferenceVectors(_ input: [UInt8], _ seed: UInt64, _ expected: UInt64) {
        #expect(input.withUnsafeBytes { XXHash64.hash($0, seed: seed) } == expected)
    }
}
