/// The 16-byte identity of one writer of changes: one per store incarnation, never reused.
///
/// A node that restarts with an empty data directory keeps its DeviceID but must get a new actor,
/// otherwise it could emit a second, different change under an (actor, seq) pair it already used.
/// Ordering is byte-lexicographic, which is what breaks ties between concurrent operations.
public struct ActorID: Hashable, Comparable, Sendable, CustomStringConvertible {
    let high: UInt64
    let low: UInt64

    init(high: UInt64, low: UInt64) {
        self.high = high
        self.low = low
    }

    /// Creates an actor from exactly 16 bytes; `nil` for any other length.
    public init?<C: Collection>(bytes: C) where C.Element == UInt8 {
        guard bytes.count == 16 else { return nil }
        var h: UInt64 = 0
        var l: UInt64 = 0
        for (i, b) in bytes.enumerated() {
            if i < 8 { h = h << 8 | UInt64(b) } else { l = l << 8 | UInt64(b) }
        }
        self.init(high: h, low: l)
    }

    /// A fresh random actor (system random number generator).
    public static func random() -> ActorID {
        var rng = SystemRandomNumberGenerator()
        return ActorID(high: rng.next(), low: rng.next())
    }

    /// The 16 bytes, most significant first.
    public var bytes: [UInt8] {
        var w = ByteWriter(capacity: 16)
        w.uint64BigEndian(high)
        w.uint64BigEndian(low)
        return w.bytes
    }

    /// 32 lowercase hex digits.
    public var description: String {
        let digits = Array("0123456789abcdef".utf8)
        var out = [UInt8]()
        out.reserveCapacity(32)
        for b in bytes {
            out.append(digits[Int(b >> 4)])
            out.append(digits[Int(b & 0xF)])
        }
        return String(decoding: out, as: UTF8.self)
    }

    public static func < (a: ActorID, b: ActorID) -> Bool { (a.high, a.low) < (b.high, b.low) }
}
