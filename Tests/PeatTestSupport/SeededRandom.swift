/// A small deterministic generator (SplitMix64) so a property's failing seed reproduces.
public struct SeededRandom: RandomNumberGenerator, Sendable {
    public var state: UInt64

    public init(seed: UInt64) {
        state = seed
    }

    public mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476C_E5B9_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}

extension Array where Element == UInt8 {
    /// A damaged copy, one of three ways: cut short, a few bytes replaced, or replaced by noise of up
    /// to `noise` bytes — what a hostile or broken peer could send instead of a valid encoding.
    public func damaged(using rng: inout SeededRandom, noise: Int = 200) -> (bytes: [UInt8], truncated: Bool) {
        switch Int.random(in: 0..<3, using: &rng) {
        case 0 where !isEmpty:
            return (Array(prefix(Int.random(in: 0..<count, using: &rng))), true)
        case 1 where !isEmpty:
            var bytes = self
            for _ in 0..<Int.random(in: 1...4, using: &rng) {
                bytes[Int.random(in: 0..<count, using: &rng)] ^= UInt8.random(in: 1...255, using: &rng)
            }
            return (bytes, false)
        default:
            return ((0..<Int.random(in: 0..<noise, using: &rng)).map { _ in UInt8.random(in: 0...255, using: &rng) }, false)
        }
    }
}
