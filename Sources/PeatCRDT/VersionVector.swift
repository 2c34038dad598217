/// The SHA-256 hash of a change's canonical encoding: its identity in dependency lists.
public struct ChangeHash: Hashable, Comparable, Sendable, CustomStringConvertible {
    let a: UInt64, b: UInt64, c: UInt64, d: UInt64

    init(a: UInt64, b: UInt64, c: UInt64, d: UInt64) {
        (self.a, self.b, self.c, self.d) = (a, b, c, d)
    }

    /// Creates a hash from exactly 32 bytes.
    public init?<C: Collection>(bytes: C) where C.Element == UInt8 {
        guard bytes.count == 32 else { return nil }
        var words = [UInt64](repeating: 0, count: 4)
        for (i, byte) in bytes.enumerated() { words[i / 8] = words[i / 8] << 8 | UInt64(byte) }
        self.init(a: words[0], b: words[1], c: words[2], d: words[3])
    }

    /// The 32 bytes.
    public var bytes: [UInt8] {
        var w = ByteWriter(capacity: 32)
        for word in [a, b, c, d] { w.uint64BigEndian(word) }
        return w.bytes
    }

    public var description: String { ActorID(high: a, low: b).description + ActorID(high: c, low: d).description }

    /// Byte order (canonical encodings list hashes sorted).
    public static func < (x: ChangeHash, y: ChangeHash) -> Bool { (x.a, x.b, x.c, x.d) < (y.a, y.b, y.c, y.d) }
}

/// Per actor, the highest change sequence number a replica has: the version summary sync exchanges.
///
/// Replicas apply changes in causal order, so a version vector describes a causally closed set of
/// changes and "what the peer is missing" is exactly the changes above its entries.
public struct VersionVector: Hashable, Sendable, CustomStringConvertible {
    /// Sequence number per actor; actors with no changes are absent.
    public private(set) var entries: [ActorID: UInt64]

    /// Creates a version vector (zero entries are dropped).
    public init(_ entries: [ActorID: UInt64] = [:]) {
        self.entries = entries.filter { $0.value > 0 }
    }

    /// The sequence number for `actor` (0 when absent).
    public subscript(actor: ActorID) -> UInt64 { entries[actor] ?? 0 }

    /// True when this vector has everything `other` has.
    public func includes(_ other: VersionVector) -> Bool {
        other.entries.allSatisfy { self[$0.key] >= $0.value }
    }

    /// The entry-wise maximum.
    public func merged(with other: VersionVector) -> VersionVector {
        VersionVector(entries.merging(other.entries, uniquingKeysWith: max))
    }

    public var description: String {
        "{" + entries.sorted { $0.key < $1.key }.map { "\($0.key): \($0.value)" }.joined(separator: ", ") + "}"
    }

    /// Compact binary form (entries sorted by actor).
    public func encoded() -> [UInt8] {
        var w = ByteWriter(capacity: 1 + entries.count * 18)
        encode(into: &w)
        return w.bytes
    }

    func encode(into w: inout ByteWriter) {
        w.uleb(entries.count)
        for (actor, seq) in entries.sorted(by: { $0.key < $1.key }) {
            w.uint64BigEndian(actor.high)
            w.uint64BigEndian(actor.low)
            w.uleb(seq)
        }
    }

    /// Decodes `encoded()` output.
    /// - Throws: `PeatCRDTError` with code `.malformedEncoding` on bad input.
    public init(decoding bytes: [UInt8]) throws(PeatCRDTError) {
        var r = ByteReader(bytes)
        try self.init(from: &r)
        guard r.isAtEnd else { throw ByteReader.malformed("trailing bytes after version vector") }
    }

    init(from r: inout ByteReader) throws(PeatCRDTError) {
        let n = try r.count(minimumItemSize: 17)
        var entries: [ActorID: UInt64] = [:]
        entries.reserveCapacity(n)
        for _ in 0..<n {
            let actor = ActorID(high: try r.uint64BigEndian(), low: try r.uint64BigEndian())
            let seq = try r.uleb()
            // The bound change batches put on seqs: a document that adopts this vector (a snapshot
            // standing in for history) must still be able to count its next change.
            guard seq < ChangeBatchDecoder.counterLimit else { throw ByteReader.malformed("sequence number out of range in version vector") }
            guard entries.updateValue(seq, forKey: actor) == nil else {
                throw ByteReader.malformed("duplicate actor in version vector")
            }
        }
        self.init(entries)
    }
}
