import Crypto
import PeatStorage

/// Digests of every document this node holds, for anti-entropy: a root digest (256 bucket digests
/// folded together), the bucket digests, and each bucket's keys with their document digests.
///
/// A document's digest is the CRDT's sync digest (equal on two replicas exactly when they hold the
/// same state). Each key contributes a hash of (key, digest) to its bucket by XOR, so updating one
/// document costs two hashes and no rescans.
struct DocumentIndex {
    struct Entry {
        var digest: [UInt8]
        var contribution: (UInt64, UInt64)
        var bucket: Int
    }

    private(set) var entries: [DocumentKey: Entry] = [:]
    private var buckets = [(UInt64, UInt64)](repeating: (0, 0), count: MeshMessage.bucketCount)
    private var bucketKeys = [Set<DocumentKey>](repeating: [], count: MeshMessage.bucketCount)
    /// Bumped by every change, so callers can tell whether the root moved without recomputing it.
    private(set) var generation: UInt64 = 0

    var count: Int { entries.count }

    static func bucket(of key: DocumentKey) -> Int {
        var hasher = SHA256()
        hasher.update(data: Array(key.collection.utf8))
        hasher.update(data: [0])
        hasher.update(data: Array(key.id.utf8))
        return Int(Array(hasher.finalize())[0])
    }

    private static func contribution(_ key: DocumentKey, _ digest: [UInt8]) -> (UInt64, UInt64) {
        var hasher = SHA256()
        hasher.update(data: Array(key.collection.utf8))
        hasher.update(data: [0])
        hasher.update(data: Array(key.id.utf8))
        hasher.update(data: [0])
        hasher.update(data: digest)
        let bytes = Array(hasher.finalize())
        return (fold(bytes[0..<8]), fold(bytes[8..<16]))
    }

    private static func fold(_ bytes: ArraySlice<UInt8>) -> UInt64 {
        bytes.reduce(0) { $0 << 8 | UInt64($1) }
    }

    private static func bytes(_ value: (UInt64, UInt64)) -> [UInt8] {
        (0..<8).map { UInt8(truncatingIfNeeded: value.0 >> (56 - 8 * $0)) }
            + (0..<8).map { UInt8(truncatingIfNeeded: value.1 >> (56 - 8 * $0)) }
    }

    func digest(of key: DocumentKey) -> [UInt8]? { entries[key]?.digest }

    /// Records `digest` for `key` (nil removes the key); returns whether anything changed.
    @discardableResult
    mutating func update(_ key: DocumentKey, digest: [UInt8]?) -> Bool {
        let old = entries[key]
        guard old?.digest != digest else { return false }
        let bucket = old?.bucket ?? Self.bucket(of: key)
        if let old {
            buckets[bucket].0 ^= old.contribution.0
            buckets[bucket].1 ^= old.contribution.1
        }
        if let digest {
            let contribution = Self.contribution(key, digest)
            buckets[bucket].0 ^= contribution.0
            buckets[bucket].1 ^= contribution.1
            entries[key] = Entry(digest: digest, contribution: contribution, bucket: bucket)
            bucketKeys[bucket].insert(key)
        } else {
            entries[key] = nil
            bucketKeys[bucket].remove(key)
        }
        generation &+= 1
        return true
    }

    /// The root digest: a hash of the bucket digests in order.
    var root: [UInt8] {
        var hasher = SHA256()
        for bucket in buckets { hasher.update(data: Self.bytes(bucket)) }
        return Array(hasher.finalize().prefix(MeshMessage.digestSize))
    }

    /// The digests of the 16 groups of 16 buckets.
    var groupDigests: [[UInt8]] {
        stride(from: 0, to: MeshMessage.bucketCount, by: MeshMessage.groupSize).map { first in
            var hasher = SHA256()
            for bucket in buckets[first..<first + MeshMessage.groupSize] { hasher.update(data: Self.bytes(bucket)) }
            return Array(hasher.finalize().prefix(MeshMessage.digestSize))
        }
    }

    /// The bucket digests of one group.
    func bucketDigests(group: Int) -> [[UInt8]] {
        buckets[group * MeshMessage.groupSize..<(group + 1) * MeshMessage.groupSize].map(Self.bytes)
    }

    /// The keys of one bucket with their digests, in key order.
    func entries(inBucket bucket: Int) -> [MeshMessage.KeyDigest] {
        bucketKeys[bucket].sorted().compactMap { key in entries[key].map { MeshMessage.KeyDigest(key: key, digest: $0.digest) } }
    }
}
