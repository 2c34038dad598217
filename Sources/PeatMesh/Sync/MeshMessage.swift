import PeatCRDT
import PeatStorage

/// The messages of the mesh sync protocol (`peat/sync/1` and `/2`), one per transport frame.
///
/// Every frame starts with the protocol version and a kind byte. After `hello` each way, peers compare
/// a root digest of all their documents (anti-entropy); only when roots differ do they compare 16
/// group digests, then the 16 bucket digests of differing groups, then the keys and digests of the
/// differing buckets, and then sync exactly the
/// documents that differ with the document CRDT's own sync messages (`documents`). Frames larger than
/// a chunk travel as `chunk`s. See docs/adr/0005-mesh-sync-protocol.md.
package enum MeshMessage: Equatable, Sendable {
    static let protocolVersion: UInt8 = 1
    static let digestSize = 16
    static let bucketCount = 256
    /// Buckets are compared in 16 groups of 16, so one differing document costs two small messages.
    static let groupSize = 16

    /// The first message each way: who this node is and which store incarnation it is; in protocol 2
    /// also which of the peer's large messages it holds in part (`resume`, nil in protocol 1).
    case hello(nodeID: String, incarnation: [UInt8], resume: [ResumePoint]?)
    /// The sender's root digest over all its documents; `isReply` when answering a `root`.
    case root(digest: [UInt8], documents: Int, isReply: Bool)
    /// The sender's 16 group digests (sent when roots differ).
    case groups([[UInt8]])
    /// The sender's bucket digests of one group (sent for groups that differ).
    case buckets(group: UInt8, digests: [[UInt8]])
    /// The sender's documents in one bucket, with their digests (sent for buckets that differ).
    /// `isReply` when answering the peer's `keys` for the same bucket, so both sides restart the sync
    /// of every document that differs (each forgets what it believed it had sent).
    case keys(bucket: UInt8, entries: [KeyDigest], isReply: Bool = false)
    /// Document sync messages (PeatCRDT's `generateSyncMessage` output), several per frame.
    case documents([DocumentMessage])
    /// Protocol 1: a piece of a frame too large to send whole; the last piece has `more == false`.
    case chunk(more: Bool, bytes: [UInt8])
    /// Protocol 2: bytes `offset..<offset + bytes.count` of a `total`-byte message named `id`; other
    /// frames may come between two parts (docs/adr/0008-ddil-sync.md).
    case part(id: TransferID, offset: Int, total: Int, bytes: [UInt8])

    /// How much of one of the peer's messages in parts this node holds.
    package struct ResumePoint: Equatable, Sendable {
        var id: TransferID
        var offset: Int
    }

    package struct KeyDigest: Equatable, Sendable {
        var key: DocumentKey
        var digest: [UInt8]
    }

    package struct DocumentMessage: Equatable, Sendable {
        var key: DocumentKey
        var payload: [UInt8]
    }

    private enum Kind: UInt8 {
        case hello = 0, root, groups, buckets, keys, documents, chunk
        /// Protocol 2's hello, with its resume points.
        case resumingHello
        case part
    }

    /// What `encoded()` reserves: a part's bytes plus its header, so the frames of a large transfer
    /// are written without regrowing.
    private var encodedCapacity: Int {
        if case .part(_, _, _, let bytes) = self { return bytes.count + 40 }
        return 64
    }

    package func encoded() -> [UInt8] {
        var w = ByteWriter(capacity: encodedCapacity)
        w.byte(Self.protocolVersion)
        switch self {
        case .hello(let nodeID, let incarnation, let resume):
            w.byte((resume == nil ? Kind.hello : Kind.resumingHello).rawValue)
            w.string(nodeID)
            w.data(incarnation)
            if let resume {
                w.uleb(resume.count)
                for point in resume {
                    w.raw(point.id.bytes)
                    w.uleb(point.offset)
                }
            }
        case .root(let digest, let documents, let isReply):
            w.byte(Kind.root.rawValue)
            w.raw(digest)
            w.uleb(documents)
            w.byte(isReply ? 1 : 0)
        case .groups(let digests):
            w.byte(Kind.groups.rawValue)
            for digest in digests { w.raw(digest) }
        case .buckets(let group, let digests):
            w.byte(Kind.buckets.rawValue)
            w.byte(group)
            for digest in digests { w.raw(digest) }
        case .keys(let bucket, let entries, let isReply):
            w.byte(Kind.keys.rawValue)
            w.byte(bucket)
            w.byte(isReply ? 1 : 0)
            w.uleb(entries.count)
            for entry in entries {
                w.string(entry.key.collection)
                w.string(entry.key.id)
                w.raw(entry.digest)
            }
        case .documents(let documents):
            w = ByteWriter(capacity: documents.reduce(16) { $0 + $1.payload.count + 48 })
            w.byte(Self.protocolVersion)
            w.byte(Kind.documents.rawValue)
            w.uleb(documents.count)
            for document in documents {
                w.string(document.key.collection)
                w.string(document.key.id)
                w.data(document.payload)
            }
        case .chunk(let more, let bytes):
            w = ByteWriter(capacity: bytes.count + 8)
            w.byte(Self.protocolVersion)
            w.byte(Kind.chunk.rawValue)
            w.byte(more ? 1 : 0)
            w.data(bytes)
        case .part(let id, let offset, let total, let bytes):
            w.byte(Kind.part.rawValue)
            w.raw(id.bytes)
            w.uleb(offset)
            w.uleb(total)
            w.data(bytes)
        }
        return w.bytes
    }

    /// Decodes one frame.
    /// - Throws: `MeshError` with `.protocolViolation` for anything malformed; never traps and never
    ///   allocates more than the frame holds.
    package init(decoding bytes: [UInt8]) throws(MeshError) {
        var r = ByteReader(bytes)
        guard let version = try? r.byte() else {
            throw MeshError(code: .protocolViolation, message: "malformed mesh message: empty frame")
        }
        guard version == Self.protocolVersion else {
            throw MeshError(code: .protocolViolation, message: "unsupported mesh protocol version \(version)")
        }
        do {
            self = try Self.decodeBody(&r)
        } catch {
            throw MeshError(code: .protocolViolation, message: "malformed mesh message: \(error.message)", cause: error)
        }
    }

    private static func decodeBody(_ r: inout ByteReader) throws(PeatCRDTError) -> MeshMessage {
        guard let kind = Kind(rawValue: try r.byte()) else { throw ByteReader.malformed("unknown message kind") }
        let message: MeshMessage
        switch kind {
        case .hello, .resumingHello:
            let nodeID = try r.string(maximumLength: 253)
            let incarnation = try r.data()
            guard incarnation.count == 16 else { throw ByteReader.malformed("incarnation length") }
            var resume: [ResumePoint]?
            if kind == .resumingHello {
                let n = try r.count(minimumItemSize: TransferID.byteCount + 1)
                guard n <= HeldTransfers.maximumTransfers else { throw ByteReader.malformed("resume points") }
                resume = []
                for _ in 0..<n {
                    let id = TransferID(bytes: Array(try r.raw(TransferID.byteCount)))
                    let offset = try r.uleb()
                    guard offset < UInt64(Int32.max) else { throw ByteReader.malformed("resume offset") }
                    resume?.append(ResumePoint(id: id, offset: Int(offset)))
                }
            }
            message = .hello(nodeID: nodeID, incarnation: incarnation, resume: resume)
        case .root:
            let digest = Array(try r.raw(Self.digestSize))
            let documents = try r.uleb()
            let flag = try r.byte()
            guard documents <= UInt64(Int32.max), flag <= 1 else { throw ByteReader.malformed("root fields") }
            message = .root(digest: digest, documents: Int(documents), isReply: flag == 1)
        case .groups:
            var digests: [[UInt8]] = []
            for _ in 0..<Self.bucketCount / Self.groupSize { digests.append(Array(try r.raw(Self.digestSize))) }
            message = .groups(digests)
        case .buckets:
            let group = try r.byte()
            guard Int(group) < Self.bucketCount / Self.groupSize else { throw ByteReader.malformed("group index") }
            var digests: [[UInt8]] = []
            for _ in 0..<Self.groupSize { digests.append(Array(try r.raw(Self.digestSize))) }
            message = .buckets(group: group, digests: digests)
        case .keys:
            let bucket = try r.byte()
            let reply = try r.byte()
            guard reply <= 1 else { throw ByteReader.malformed("keys flag") }
            let n = try r.count(minimumItemSize: 2 + Self.digestSize)
            var entries: [KeyDigest] = []
            entries.reserveCapacity(n)
            for _ in 0..<n {
                let key = try Self.key(&r)
                let digest = Array(try r.raw(Self.digestSize))
                if let key { entries.append(KeyDigest(key: key, digest: digest)) }
            }
            message = .keys(bucket: bucket, entries: entries, isReply: reply == 1)
        case .documents:
            let n = try r.count(minimumItemSize: 3)
            var documents: [DocumentMessage] = []
            documents.reserveCapacity(n)
            for _ in 0..<n {
                let key = try Self.key(&r)
                let payload = try r.data()
                if let key { documents.append(DocumentMessage(key: key, payload: payload)) }
            }
            message = .documents(documents)
        case .chunk:
            let flag = try r.byte()
            guard flag <= 1 else { throw ByteReader.malformed("chunk flag") }
            message = .chunk(more: flag == 1, bytes: try r.data())
        case .part:
            let id = TransferID(bytes: Array(try r.raw(TransferID.byteCount)))
            let offset = try r.uleb()
            let total = try r.uleb()
            let bytes = try r.data()
            guard total <= UInt64(Int32.max), offset < total, !bytes.isEmpty, UInt64(bytes.count) <= total - offset else {
                throw ByteReader.malformed("part range")
            }
            message = .part(id: id, offset: Int(offset), total: Int(total), bytes: bytes)
        }
        guard r.isAtEnd else { throw ByteReader.malformed("trailing bytes") }
        return message
    }

    /// A document key as the mesh writes it: collection, then ID, each length-prefixed. Nil for a
    /// well-formed key that breaks the one key rule (`DocumentKey`), such as one a node of an earlier
    /// version stored under a looser rule: the caller skips that entry, not the whole frame, so such a
    /// key never stalls sync between nodes.
    static func key(_ r: inout ByteReader) throws(PeatCRDTError) -> DocumentKey? {
        let collection = try r.string(maximumLength: DocumentKey.maximumCollectionLength)
        let id = try r.string(maximumLength: DocumentKey.maximumIDLength)
        return try? DocumentKey(collection: collection, id: id)
    }
}
