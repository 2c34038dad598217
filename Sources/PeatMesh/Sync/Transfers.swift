import Crypto
import PeatIdentity

/// A large mesh message travels as `part`s (protocol 2): pieces of at most `partSize` bytes that
/// frames of higher priority can overtake, named by the first 16 bytes of the message's SHA-256 so
/// that a session after a disconnection resumes it where the last one stopped. See
/// docs/adr/0008-ddil-sync.md.
package struct TransferID: Hashable, Sendable, CustomStringConvertible {
    static let byteCount = 16
    let bytes: [UInt8]

    init(bytes: [UInt8]) {
        precondition(bytes.count == Self.byteCount)
        self.bytes = bytes
    }

    /// The ID of `message`.
    init(of message: [UInt8]) {
        bytes = Array(SHA256.hash(data: message).prefix(Self.byteCount))
    }

    package var description: String { Hex.encode(bytes.prefix(6)) }
}

/// A message being sent in parts.
struct OutboundTransfer: Equatable {
    let id: TransferID
    let message: [UInt8]
    private(set) var offset: Int

    /// Starts at `offset`: what the peer said in its hello it already holds (0 for a new transfer).
    init(_ message: [UInt8], id: TransferID, resumingAt offset: Int) {
        self.id = id
        self.message = message
        self.offset = offset > 0 && offset < message.count ? offset : 0
    }

    var isFinished: Bool { offset >= message.count }

    /// The next part, of at most `size` bytes.
    mutating func nextPart(size: Int) -> MeshMessage {
        let end = min(offset + size, message.count)
        defer { offset = end }
        return .part(id: id, offset: offset, total: message.count, bytes: Array(message[offset..<end]))
    }
}

/// What one peer sent of its large messages and has not finished: kept between its sessions (in
/// memory), named in this node's hello so the peer resumes each from the first byte missing here.
///
/// Bounded: at most `maximumTransfers` messages and `maximumBytes` bytes per peer; starting a new
/// one drops the least recently extended.
package struct HeldTransfers: Equatable {
    static let maximumTransfers = 4
    static let maximumBytes = 64 * 1024 * 1024

    struct Partial: Equatable {
        let total: Int
        var bytes: [UInt8]
        var lastUse: UInt64
    }

    private(set) var partials: [TransferID: Partial] = [:]
    private var uses: UInt64 = 0

    package init() {}

    var isEmpty: Bool { partials.isEmpty }

    /// Bytes held.
    var byteCount: Int { partials.values.reduce(0) { $0 + $1.bytes.count } }

    /// What this node holds, for its hello: each transfer and how many bytes of it arrived.
    var resumePoints: [MeshMessage.ResumePoint] {
        partials.map { MeshMessage.ResumePoint(id: $0.key, offset: $0.value.bytes.count) }.sorted { $0.id.bytes.lexicographicallyPrecedes($1.id.bytes) }
    }

    /// Adds one part; returns the whole message when this part completed it (checked against its ID).
    /// - Throws: `MeshError(.protocolViolation)` for a part that does not continue what is held, is
    ///   empty, overruns its total or whose message does not match its ID; the transfer is dropped.
    mutating func receive(id: TransferID, offset: Int, total: Int, bytes: [UInt8], maximumMessageSize: Int) throws(MeshError) -> [UInt8]? {
        guard !bytes.isEmpty, total <= maximumMessageSize, offset < total, bytes.count <= total - offset else {
            partials[id] = nil
            throw Self.violation("a part of transfer \(id) is empty or overruns its \(total) bytes")
        }
        var partial: Partial
        if offset == 0 {  // a new transfer, or one the peer restarts
            partial = Partial(total: total, bytes: [], lastUse: 0)
            partial.bytes.reserveCapacity(min(total, 1 << 20))
            partials[id] = nil
        } else {
            guard let held = partials.removeValue(forKey: id), held.total == total, held.bytes.count == offset else {
                throw Self.violation("a part of transfer \(id) does not continue it at byte \(offset)")
            }
            partial = held
        }
        uses += 1
        partial.bytes += bytes
        partial.lastUse = uses
        guard partial.bytes.count == total else {
            partials[id] = partial
            evict(keeping: id)
            return nil
        }
        guard TransferID(of: partial.bytes) == id else { throw Self.violation("transfer \(id) does not match its hash") }
        return partial.bytes
    }

    /// Drops the least recently extended transfers (never `kept`) until the bounds hold.
    private mutating func evict(keeping kept: TransferID) {
        while partials.count > Self.maximumTransfers || byteCount > Self.maximumBytes {
            guard let oldest = partials.filter({ $0.key != kept }).min(by: { $0.value.lastUse < $1.value.lastUse })?.key else { return }
            partials[oldest] = nil
        }
    }

    private static func violation(_ what: String) -> MeshError {
        MeshError(code: .protocolViolation, message: what)
    }
}
