import PeatCRDT

/// How the mesh stores a document: a small header, then the CRDT's saved bytes.
///
///     [0]     0xB7 (magic)
///     [1]     format version (1)
///     [2]     sync mode the digest was computed for (0 LatestOnly, 1 FullHistory, 2 WindowedHistory)
///     [3..19) the document's sync digest, so the anti-entropy index is rebuilt by one scan
///     [19...] `Document.save()`
enum StoredEnvelope {
    static let magic: UInt8 = 0xB7
    static let version: UInt8 = 1
    static let headerSize = 3 + MeshMessage.digestSize

    static func tag(_ mode: SyncMode) -> UInt8 {
        switch mode {
        case .latestOnly: 0
        case .fullHistory: 1
        case .windowedHistory: 2
        }
    }

    static func encode(mode: SyncMode, digest: [UInt8], body: [UInt8]) -> [UInt8] {
        var bytes: [UInt8] = []
        bytes.reserveCapacity(headerSize + body.count)
        bytes.append(magic)
        bytes.append(version)
        bytes.append(tag(mode))
        bytes.append(contentsOf: digest)
        bytes.append(contentsOf: body)
        return bytes
    }

    /// The header fields, or nil when `bytes` is not a mesh document.
    static func header(_ bytes: [UInt8]) -> (modeTag: UInt8, digest: [UInt8])? {
        guard bytes.count >= headerSize, bytes[0] == magic, bytes[1] == version else { return nil }
        return (bytes[2], Array(bytes[3..<headerSize]))
    }

    static func body(_ bytes: [UInt8]) -> [UInt8] {
        Array(bytes[headerSize...])
    }
}
