import Testing

@testable import PeatIdentity

struct HKDFSHA256Tests {
    struct RFC5869Case: Sendable, CustomTestStringConvertible {
        let name: String
        let ikm: [UInt8]
        let salt: [UInt8]?
        let info: [UInt8]
        let prk: String
        let okm: String
        var testDescription: String { name }
    }

    /// RFC 5869 appendix A, test cases 1-3 (SHA-256).
    static let rfc5869: [RFC5869Case] = [
        RFC5869Case(
            name: "A.1 basic",
            ikm: [UInt8](repeating: 0x0b, count: 22),
            salt: Array(0x00...0x0c),
            info: Array(0xf0...0xf9),
            prk: "077709362c2e32df0ddc3f0dc47bba6390b6c73bb50f9c3122ec844ad7c2b3e5",
            okm: "3cb25f25faacd57a90434f64d0362f2a2d2d0a90cf1a5a4c5db02d56ecc4c5bf34007208d5b887185865"),
        RFC5869Case(
            name: "A.2 longer inputs and outputs",
            ikm: Array(0x00...0x4f),
            salt: Array(0x60...0xaf),
            info: Array(0xb0...0xff),
            prk: "06a6b88c5853361a06104c9ceb35b45cef760014904671014a193f40c15fc244",
            okm: "b11e398dc80327a1c8e7f78c596a49344f012eda2d4efad8a050cc4c19afa97c"
                + "59045a99cac7827271cb41c65e590e09da3275600c2f09b8367793a9aca3db71"
                + "cc30c58179ec3e87c14c01d5c1f3434f1d87"),
        RFC5869Case(
            name: "A.3 zero-length salt and info",
            ikm: [UInt8](repeating: 0x0b, count: 22),
            salt: nil,
            info: [],
            prk: "19ef24a32c717b167f33a91d6f648bdf96596776afdb6377ac434c1c293ccb04",
            okm: "8da4e775a563c18f715f802a063c5a31b8a11f5c5ee1879ec3454e5f3c738d2d9d201395faa4b61a96c8"),
    ]

    @Test(arguments: rfc5869)
    func derivesRFC5869OutputKeyingMaterial(_ vector: RFC5869Case) throws {
        let okm = try HKDFSHA256.deriveKey(
            inputKeyMaterial: vector.ikm, salt: vector.salt, info: vector.info,
            outputByteCount: vector.okm.count / 2)
        #expect(hex(okm) == vector.okm)
    }

    @Test(arguments: rfc5869)
    func extractsRFC5869PseudorandomKey(_ vector: RFC5869Case) {
        var prk = [UInt8](repeating: 0, count: 32)
        vector.ikm.withUnsafeBytes { ikm in
            (vector.salt ?? []).withUnsafeBytes { salt in
                prk.withUnsafeMutableBytes { HKDFSHA256.extract(ikm: ikm, salt: salt, into: $0) }
            }
        }
        #expect(hex(prk) == vector.prk)
    }

    @Test func emptySaltEqualsThirtyTwoZeroBytes() throws {
        let ikm = Array("input".utf8)
        let none = try HKDFSHA256.deriveKey(inputKeyMaterial: ikm, info: Array("x".utf8), outputByteCount: 32)
        let zeros = try HKDFSHA256.deriveKey(
            inputKeyMaterial: ikm, salt: [UInt8](repeating: 0, count: 32), info: Array("x".utf8), outputByteCount: 32)
        let other = try HKDFSHA256.deriveKey(
            inputKeyMaterial: ikm, salt: [1], info: Array("x".utf8), outputByteCount: 32)
        #expect(none == zeros)
        #expect(none != other)
    }

    @Test func shorterOutputIsPrefixOfLongerOutput() throws {
        let long = try HKDFSHA256.deriveKey(inputKeyMaterial: [1, 2, 3], info: [4], outputByteCount: 100)
        let short = try HKDFSHA256.deriveKey(inputKeyMaterial: [1, 2, 3], info: [4], outputByteCount: 33)
        #expect(Array(long.prefix(33)) == short)
        #expect(long.count == 100)
    }

    @Test(arguments: [-1, HKDFSHA256.maximumOutputByteCount + 1])
    func rejectsOutputLengthOutOfRange(_ length: Int) {
        #expect {
            try HKDFSHA256.deriveKey(inputKeyMaterial: [1], info: [], outputByteCount: length)
        } throws: { error in
            (error as? IdentityError)?.code == .invalidLength
        }
    }

    @Test func producesMaximumOutputLength() throws {
        let okm = try HKDFSHA256.deriveKey(
            inputKeyMaterial: [9], info: [], outputByteCount: HKDFSHA256.maximumOutputByteCount)
        #expect(okm.count == 8160)
        // The last block differs from the first: the counter advanced through all 255 blocks.
        #expect(Array(okm.suffix(32)) != Array(okm.prefix(32)))
    }
}

struct HMACSHA256Tests {
    /// RFC 4231 test cases 1, 2 and 6 (a key longer than the block size is hashed first, which
    /// libsodium's one-shot call could not do).
    @Test(arguments: [
        (
            [UInt8](repeating: 0x0b, count: 20), Array("Hi There".utf8),
            "b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7"
        ),
        (
            Array("Jefe".utf8), Array("what do ya want for nothing?".utf8),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        ),
        (
            [UInt8](repeating: 0xaa, count: 131), Array("Test Using Larger Than Block-Size Key - Hash Key First".utf8),
            "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54"
        ),
    ])
    func matchesRFC4231(key: [UInt8], message: [UInt8], expected: String) {
        #expect(hex(HMACSHA256.authenticationCode(for: message, key: key)) == expected)
    }

    @Test func partsAreAuthenticatedAsTheirConcatenation() {
        let key = Array("k".utf8)
        let whole = HMACSHA256.authenticationCode(for: Array("hello world".utf8), key: key)
        let parts = HMACSHA256.authenticationCode(for: [Array("hello".utf8), [], Array(" world".utf8)], key: key)
        #expect(whole == parts)
        #expect(whole != HMACSHA256.authenticationCode(for: Array("hello world!".utf8), key: key))
    }
}
